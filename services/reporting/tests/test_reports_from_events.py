"""Reports from events: events go straight onto the running stack's topics, reports come over gRPC."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import grpc
import pytest
from openpyxl import load_workbook
from reporting_testkit import EventWriter, at, day_seconds, eventually, new_id, reference_days, snapshot

from timetracking.common.v1 import types_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.reporting.v1 import reporting_pb2 as pb


def period(start: datetime, end: datetime) -> types_pb2.Period:
    p = types_pb2.Period()
    p.start.FromDatetime(start)
    p.end.FromDatetime(end)
    return p


async def test_timesheets_in_three_zones_cut_days_like_zoneinfo(writer: EventWriter, reporting) -> None:
    """New York and Berlin across both DST changes (23 h and 25 h days), Kolkata across midnight."""
    cases = {
        "America/New_York": [
            (
                at("America/New_York", 2024, 3, 9, 21, 0),
                at("America/New_York", 2024, 3, 10, 5, 0),
            ),  # 7 h, gap
            (
                at("America/New_York", 2024, 3, 10, 8, 0),
                at("America/New_York", 2024, 3, 11, 0, 0),
            ),  # to midnight
            (
                at("America/New_York", 2024, 11, 2, 23, 0),
                at("America/New_York", 2024, 11, 3, 3, 0),
            ),  # 5 h, fold
        ],
        "Europe/Berlin": [
            (at("Europe/Berlin", 2024, 3, 30, 22, 0), at("Europe/Berlin", 2024, 3, 31, 4, 0)),  # 5 h
            (at("Europe/Berlin", 2024, 10, 26, 23, 15), at("Europe/Berlin", 2024, 10, 27, 5, 45)),  # 7.5 h
            (at("Europe/Berlin", 2024, 10, 27, 6, 0), at("Europe/Berlin", 2024, 10, 28, 0, 0)),
        ],
        "Asia/Kolkata": [
            (at("Asia/Kolkata", 2024, 3, 30, 23, 0), at("Asia/Kolkata", 2024, 3, 31, 2, 30)),
            (at("Asia/Kolkata", 2024, 10, 27, 9, 0), at("Asia/Kolkata", 2024, 10, 27, 17, 0)),
        ],
    }
    client = await writer.client()
    project = await writer.project(client, "Zones")
    users = {}
    for zone, entries in cases.items():
        user = users[zone] = await writer.user(tz=zone)
        for start, end in entries:
            snap = snapshot(
                entry_id=new_id(), user_id=user, project_id=project, start=start, end=end, version=1
            )
            await writer.entry("stopped", snap)
        # Neither a running timer nor a deleted entry counts.
        running = snapshot(
            entry_id=new_id(),
            user_id=user,
            project_id=project,
            start=at(zone, 2024, 3, 31, 9, 0),
            end=None,
            version=1,
        )
        await writer.entry("edited", running)
        gone = snapshot(
            entry_id=new_id(),
            user_id=user,
            project_id=project,
            start=at(zone, 2024, 10, 27, 18, 0),
            end=at(zone, 2024, 10, 27, 19, 0),
            version=1,
        )
        await writer.entry("stopped", gone, partition=0)
        gone.version = 2
        await writer.entry("deleted", gone, partition=0)

    for zone, entries in cases.items():
        expected = reference_days(entries, zone)
        request = pb.TimesheetRequest(user_id=users[zone], from_date="2024-03-01", to_date="2024-11-30")
        sheet = await eventually(
            lambda request=request: reporting.GetTimesheet(request),
            lambda s, expected=expected: s.timezone_known and day_seconds(s) == expected,
            what=f"timesheet in {zone}",
        )
        assert sheet.timezone == zone and len(sheet.days) == 275
        assert sheet.total_seconds == sum(int((e - s).total_seconds()) for s, e in entries)
        assert [p.seconds for p in sheet.projects] == [sheet.total_seconds]
        assert sheet.projects[0].project_name == "Zones"
        assert len(sheet.entries) == len(entries)

    # The DST days themselves: New York's 2024-03-10 has 23 hours, all booked (5 h + 16 h + ... ).
    ny = await reporting.GetTimesheet(
        pb.TimesheetRequest(user_id=users["America/New_York"], from_date="2024-03-10", to_date="2024-03-10")
    )
    assert ny.total_seconds == 4 * 3600 + 16 * 3600  # 00:00-05:00 lasts 4 real hours, 08:00-24:00 16
    assert [(d.date, d.hours) for d in ny.days] == [("2024-03-10", "20.00")]
    # Only the part inside the range counts: the entry from the 9th contributes its 10th share.
    assert {e.days[0].date for e in ny.entries} == {"2024-03-10"}


async def test_replays_duplicates_and_older_versions_change_nothing(writer: EventWriter, reporting) -> None:
    zone = "Europe/Berlin"
    user = await writer.user(tz=zone)
    client = await writer.client()
    project = await writer.project(client, "Idempotence", budget_hours="10")
    task = await writer.task(project, "Build")
    day = (2024, 5, 6)

    v1 = snapshot(
        entry_id=new_id(),
        user_id=user,
        project_id=project,
        start=at(zone, *day, 9),
        end=at(zone, *day, 10),
        version=1,
    )
    v2 = snapshot(
        entry_id=v1.entry_id,
        user_id=user,
        project_id=project,
        task_id=task,
        start=at(zone, *day, 9),
        end=at(zone, *day, 11, 30),
        version=2,
    )
    d1 = snapshot(
        entry_id=new_id(),
        user_id=user,
        project_id=project,
        start=at(zone, *day, 13),
        end=at(zone, *day, 14),
        version=1,
    )
    d2 = snapshot(
        entry_id=d1.entry_id,
        user_id=user,
        project_id=project,
        start=at(zone, *day, 13),
        end=at(zone, *day, 14),
        version=2,
    )

    async def marker() -> None:
        """A throwaway entry after the others on the same partition: once it shows, they are applied."""
        who = new_id()
        snap = snapshot(
            entry_id=new_id(),
            user_id=who,
            project_id=new_id(),
            start=datetime(2024, 1, 1, 9, tzinfo=UTC),
            end=datetime(2024, 1, 1, 10, tzinfo=UTC),
            version=1,
        )
        await writer.entry("stopped", snap, partition=0)
        request = pb.TimesheetRequest(user_id=who, from_date="2024-01-01", to_date="2024-01-01")
        await eventually(
            lambda: reporting.GetTimesheet(request), lambda s: s.total_seconds == 3600, what="marker"
        )

    for kind, snap in [("stopped", v1), ("edited", v2), ("stopped", d1), ("deleted", d2)]:
        await writer.entry(kind, snap, partition=0)
    await marker()
    sheet_request = pb.TimesheetRequest(user_id=user, from_date="2024-05-01", to_date="2024-05-31")
    summary_request = pb.ProjectSummaryRequest(project_id=project)
    before = (await reporting.GetTimesheet(sheet_request), await reporting.GetProjectSummary(summary_request))
    assert before[0].total_seconds == 9000 and [e.entry_id for e in before[0].entries] == [v1.entry_id]
    assert [(t.task_name, t.totals.total_hours) for t in before[1].tasks] == [("Build", "2.50")]

    # The same events again, and older versions after newer ones (also after the delete).
    for kind, snap in [
        ("edited", v2),
        ("stopped", v1),
        ("stopped", d1),
        ("deleted", d2),
        ("stopped", v1),
        ("stopped", d1),
    ]:
        await writer.entry(kind, snap, partition=0)
    await marker()
    after = (await reporting.GetTimesheet(sheet_request), await reporting.GetProjectSummary(summary_request))
    assert after == before


async def test_project_summary_invoice_preview_and_team_report(writer: EventWriter, reporting) -> None:
    zone = "Europe/Berlin"
    admin = await writer.user(tz="UTC", role=ppb.ROLE_ADMIN, name="Ada Admin")
    manager = await writer.user(tz=zone, role=ppb.ROLE_MANAGER, name="Max Manager")
    employee = await writer.user(tz=zone, name="Emma Employee")
    client = await writer.client("ACME")
    project = await writer.project(client, "Relaunch", budget_hours="10", budget_amount="1000")
    other = await writer.project(client, "Support", currency="USD")
    design, build = await writer.task(project, "Design"), await writer.task(project, "Build")
    await writer.member(project, manager, ppb.PROJECT_ROLE_MANAGER)
    await writer.member(project, employee)
    await writer.member(other, employee)
    invoice = new_id()

    def entry(
        user, proj, task, start, minutes, *, rate="100.00", billable=True, invoice_id="", currency="EUR"
    ):
        begin = at(zone, *start)
        end = datetime.fromtimestamp(begin.timestamp() + minutes * 60, UTC)
        return snapshot(
            entry_id=new_id(),
            user_id=user,
            project_id=proj,
            task_id=task,
            start=begin,
            end=end,
            version=1,
            rate=rate,
            billable=billable,
            invoice_id=invoice_id,
            currency=currency,
        )

    events = [
        ("stopped", entry(employee, project, design, (2024, 1, 8, 9), 180)),  # 3 h x 100 = 300.00
        (
            "claimed",
            entry(employee, project, design, (2024, 1, 9, 9), 120, invoice_id=invoice),
        ),  # 200.00 invoiced
        (
            "stopped",
            entry(employee, project, build, (2024, 1, 10, 9), 90, billable=False),
        ),  # 1.5 h non-billable
        (
            "stopped",
            entry(manager, project, build, (2024, 1, 11, 9), 140, rate="90.50"),
        ),  # 211.1666 -> 211.17
        ("stopped", entry(employee, project, "", (2024, 2, 1, 9), 60)),  # February: outside the period
        ("stopped", entry(employee, other, "", (2024, 1, 12, 9), 60, rate="50.00", currency="USD")),
    ]
    for kind, snap in events:
        await writer.entry(kind, snap)
    january = period(at(zone, 2024, 1, 1, 0, 0), at(zone, 2024, 2, 1, 0, 0))

    summary = await eventually(
        lambda: reporting.GetProjectSummary(pb.ProjectSummaryRequest(project_id=project, period=january)),
        lambda s: s.budget.used_hours == "9.83" and s.project_name == "Relaunch" and len(s.tasks) == 2,
        what="project summary",
    )
    t = summary.totals
    assert (t.total_hours, t.billable_hours, t.non_billable_hours) == ("8.83", "7.33", "1.50")
    assert (t.billable_amount.amount, t.uninvoiced_amount.amount, t.invoiced_amount.amount) == (
        "711.17",
        "511.17",
        "200.00",
    )
    assert (t.invoiced_billable_hours, t.uninvoiced_billable_hours, t.billable_amount.currency) == (
        "2.00",
        "5.33",
        "EUR",
    )
    assert [(x.task_name, x.totals.total_hours, x.totals.billable_amount.amount) for x in summary.tasks] == [
        ("Build", "3.83", "211.17"),
        ("Design", "5.00", "500.00"),
    ]
    b = summary.budget  # all time: 9 h 50 min of 10 h, 811.17 of 1000.00
    assert (b.has_budget_hours, b.hours_utilisation_percent, b.hours_reached_80, b.hours_reached_100) == (
        True,
        "98.33",
        True,
        False,
    )
    assert (
        b.used_amount.amount,
        b.amount_utilisation_percent,
        b.amount_reached_80,
        b.amount_reached_100,
    ) == (
        "811.17",
        "81.12",
        True,
        False,
    )

    preview = await eventually(
        lambda: reporting.GetInvoicePreview(pb.InvoicePreviewRequest(client_id=client, period=january)),
        lambda p: len(p.projects) == 2 and all(x.project_name for x in p.projects),
        what="invoice preview",
    )
    assert preview.client_name == "ACME"
    assert [
        (p.project_name, p.uninvoiced_billable_hours, p.uninvoiced_amount.amount) for p in preview.projects
    ] == [
        ("Relaunch", "5.33", "511.17"),
        ("Support", "1.00", "50.00"),
    ]
    assert [(m.currency, m.amount) for m in preview.totals] == [("EUR", "511.17"), ("USD", "50.00")]

    team = await eventually(
        lambda: reporting.GetTeamReport(pb.TeamReportRequest(manager_user_id=manager, period=january)),
        lambda r: len(r.rows) == 2 and all(x.user_name for x in r.rows),
        what="team report",
    )
    assert list(team.project_ids) == [project]
    assert [(r.user_name, r.hours, r.billable_hours) for r in team.rows] == [
        ("Emma Employee", "6.50", "5.00"),
        ("Max Manager", "2.33", "2.33"),
    ]
    everything = await reporting.GetTeamReport(pb.TeamReportRequest(manager_user_id=admin, period=january))
    assert {project, other} <= set(everything.project_ids)
    assert {(r.project_name, r.user_name) for r in everything.rows} >= {("Support", "Emma Employee")}
    nothing = await reporting.GetTeamReport(pb.TeamReportRequest(manager_user_id=employee, period=january))
    assert list(nothing.rows) == [] and nothing.total_hours == "0.00"

    # Exports: the same numbers as CSV and XLSX.
    csv_file = await reporting.ExportReport(
        pb.ExportReportRequest(project_summary=pb.ProjectSummaryRequest(project_id=project, period=january))
    )
    assert csv_file.content_type == "text/csv; charset=utf-8" and csv_file.filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(csv_file.content.decode())))
    assert [(r["task"], r["hours"], r["billable_amount"]) for r in rows] == [
        ("Build", "3.83", "211.17"),
        ("Design", "5.00", "500.00"),
        ("TOTAL", "8.83", "711.17"),
    ]
    xlsx = await reporting.ExportReport(
        pb.ExportReportRequest(
            timesheet=pb.TimesheetRequest(user_id=employee, from_date="2024-01-01", to_date="2024-01-31"),
            format=pb.EXPORT_FORMAT_XLSX,
        )
    )
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][:3] == ("date", "entry_id", "project") and len(table) == 1 + 4


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.TimesheetRequest(user_id="x", from_date="2024-01-01", to_date="2024-01-02"), "user_id"),
        (pb.TimesheetRequest(user_id=new_id(), from_date="2024-01-01", to_date="2025-06-01"), "to_date"),
        (pb.InvoicePreviewRequest(client_id=new_id()), "period"),
    ],
)
async def test_bad_requests_name_the_field(reporting, request_, field: str) -> None:
    import json

    call = {
        pb.TimesheetRequest: reporting.GetTimesheet,
        pb.InvoicePreviewRequest: reporting.GetInvoicePreview,
    }[type(request_)]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(request_)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = json.loads(dict(exc.value.trailing_metadata())["field-violations"])
    assert violations[0]["field"] == field


async def test_unknown_project_is_not_found(reporting) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await reporting.GetProjectSummary(pb.ProjectSummaryRequest(project_id=new_id()))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
