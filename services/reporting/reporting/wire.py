"""Requests in, report messages out: the only module that knows both protos and report data."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.common.v1 import types_pb2
from timetracking.reporting.v1 import reporting_pb2 as pb
from tt_common.errors import InvalidArgument
from tt_common.money import format_decimal
from tt_common.timestamps import set_timestamp_micros
from tt_common.validation import parse_uuid

from .figures import hours_text
from .reports_repository import Period
from .summaries import InvoicePreviewReport, ProjectSummaryReport, TeamReportData, Totals
from .timesheet import TimesheetReport, parse_date_range

# --- requests ----------------------------------------------------------------------


def parse_period(message: types_pb2.Period, field: str, *, required: bool) -> Period | None:
    has_start, has_end = message.HasField("start"), message.HasField("end")
    if not (has_start or has_end):
        if required:
            raise InvalidArgument.field(field, "is required (start and end)")
        return None
    if not (has_start and has_end):
        raise InvalidArgument.field(field, "needs both start and end")
    start, end = message.start.ToDatetime(tzinfo=UTC), message.end.ToDatetime(tzinfo=UTC)
    if end <= start:
        raise InvalidArgument.field(f"{field}.end", "must be after start")
    return Period(start, end)


def timesheet_args(req: pb.TimesheetRequest) -> tuple[uuid.UUID, date, date]:
    user_id = parse_uuid(req.user_id, "user_id")
    return (user_id, *parse_date_range(req.from_date, req.to_date))


def project_summary_args(req: pb.ProjectSummaryRequest) -> tuple[uuid.UUID, Period | None]:
    project_id = parse_uuid(req.project_id, "project_id")
    period = parse_period(req.period, "period", required=False) if req.HasField("period") else None
    return project_id, period


def invoice_preview_args(req: pb.InvoicePreviewRequest) -> tuple[uuid.UUID, Period]:
    client_id = parse_uuid(req.client_id, "client_id")
    period = parse_period(req.period, "period", required=True)
    assert period is not None
    return client_id, period


def team_report_args(req: pb.TeamReportRequest) -> tuple[uuid.UUID, Period]:
    manager = parse_uuid(req.manager_user_id, "manager_user_id")
    period = parse_period(req.period, "period", required=True)
    assert period is not None
    return manager, period


# --- responses ---------------------------------------------------------------------


def _ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def _period(period: Period) -> types_pb2.Period:
    return types_pb2.Period(start=_ts(period.start), end=_ts(period.end))


def _money(amount: Decimal, currency: str) -> types_pb2.Money:
    return types_pb2.Money(amount=format_decimal(amount), currency=currency)


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def timesheet(report: TimesheetReport) -> pb.Timesheet:
    out = pb.Timesheet(
        user_id=str(report.user_id),
        user_name=report.user_name,
        timezone=report.timezone,
        timezone_known=report.timezone_known,
        from_date=report.from_date.isoformat(),
        to_date=report.to_date.isoformat(),
        total_seconds=report.total_seconds,
        total_hours=hours_text(report.total_seconds),
        billable_seconds=report.billable_seconds,
        billable_hours=hours_text(report.billable_seconds),
    )
    out.days.extend(
        pb.TimesheetDay(
            date=d.date.isoformat(),
            seconds=d.seconds,
            hours=hours_text(d.seconds),
            billable_seconds=d.billable_seconds,
            billable_hours=hours_text(d.billable_seconds),
        )
        for d in report.days
    )
    out.projects.extend(
        pb.TimesheetProject(
            project_id=str(p.project_id),
            project_name=p.project_name,
            seconds=p.seconds,
            hours=hours_text(p.seconds),
            billable_seconds=p.billable_seconds,
            billable_hours=hours_text(p.billable_seconds),
        )
        for p in report.projects
    )
    day_text: dict[date, str] = {}
    add_entry = out.entries.add
    for e in report.entries:
        # Field by field into the repeated field, leaving defaults unset: a year has
        # ~2,000 entries, and building each message from keyword arguments is slower.
        row, entry = e.row, add_entry()
        entry.entry_id = row.entry_id
        entry.project_id = row.project_id
        if row.project_name:
            entry.project_name = row.project_name
        if row.task_id:
            entry.task_id = row.task_id
        if row.task_name:
            entry.task_name = row.task_name
        entry.description = row.description
        if row.tags:
            entry.tags.extend(row.tags)
        set_timestamp_micros(entry.start_time, row.start_micros)
        set_timestamp_micros(entry.end_time, row.end_micros)
        entry.duration_seconds = row.duration_seconds
        entry.is_billable = row.is_billable
        if row.invoice_id:
            entry.invoice_id = row.invoice_id
        add_day = entry.days.add
        for day, seconds in e.days:
            piece = add_day()
            piece.date = day_text.get(day) or day_text.setdefault(day, day.isoformat())
            piece.seconds = seconds
    return out


def totals(t: Totals, currency: str) -> pb.Totals:
    return pb.Totals(
        total_seconds=t.total_seconds,
        total_hours=hours_text(t.total_seconds),
        billable_seconds=t.billable_seconds,
        billable_hours=hours_text(t.billable_seconds),
        non_billable_seconds=t.non_billable_seconds,
        non_billable_hours=hours_text(t.non_billable_seconds),
        billable_amount=_money(t.billable_amount, currency),
        uninvoiced_billable_seconds=t.uninvoiced_billable_seconds,
        uninvoiced_billable_hours=hours_text(t.uninvoiced_billable_seconds),
        uninvoiced_amount=_money(t.uninvoiced_amount, currency),
        invoiced_billable_seconds=t.invoiced_billable_seconds,
        invoiced_billable_hours=hours_text(t.invoiced_billable_seconds),
        invoiced_amount=_money(t.invoiced_amount, currency),
    )


def project_summary(report: ProjectSummaryReport) -> pb.ProjectSummary:
    b, cur = report.budget, report.currency
    hours_pct, amount_pct = b.hours_percent(), b.amount_percent()
    budget = pb.BudgetStatus(
        has_budget_hours=b.has_budget_hours,
        budget_hours=format_decimal(b.budget_hours),
        used_hours=hours_text(b.used_seconds),
        hours_utilisation_percent=format_decimal(hours_pct),
        hours_reached_80=b.hours_reached(Decimal("0.8")),
        hours_reached_100=b.hours_reached(Decimal(1)),
        has_budget_amount=b.has_budget_amount,
        used_amount=_money(b.used_amount, cur),
        amount_utilisation_percent=format_decimal(amount_pct),
        amount_reached_80=b.amount_reached(Decimal("0.8")),
        amount_reached_100=b.amount_reached(Decimal(1)),
    )
    if b.budget_amount is not None:
        budget.budget_amount.CopyFrom(_money(b.budget_amount, cur))
    out = pb.ProjectSummary(
        project_id=str(report.project_id),
        project_name=report.project_name,
        client_id=_id(report.client_id),
        currency=cur,
        totals=totals(report.totals, cur),
        tasks=[
            pb.TaskSummary(task_id=_id(t.task_id), task_name=t.task_name, totals=totals(t.totals, cur))
            for t in report.tasks
        ],
        budget=budget,
    )
    if report.period is not None:
        out.period.CopyFrom(_period(report.period))
    return out


def invoice_preview(report: InvoicePreviewReport) -> pb.InvoicePreview:
    return pb.InvoicePreview(
        client_id=str(report.client_id),
        client_name=report.client_name,
        period=_period(report.period),
        projects=[
            pb.InvoicePreviewProject(
                project_id=str(p.project_id),
                project_name=p.project_name,
                uninvoiced_billable_seconds=p.seconds,
                uninvoiced_billable_hours=hours_text(p.seconds),
                uninvoiced_amount=_money(p.amount, p.currency),
                lines=[
                    pb.InvoicePreviewLine(
                        task_id=_id(line.task_id),
                        task_name=line.task_name,
                        seconds=line.seconds,
                        hours=hours_text(line.seconds),
                        amount=_money(line.amount, p.currency),
                    )
                    for line in p.lines
                ],
            )
            for p in report.projects
        ],
        totals=[_money(amount, currency) for currency, amount in report.totals().items()],
    )


def team_report(report: TeamReportData) -> pb.TeamReport:
    return pb.TeamReport(
        manager_user_id=str(report.manager_user_id),
        period=_period(report.period),
        project_ids=[str(p) for p in report.project_ids],
        rows=[
            pb.TeamReportRow(
                project_id=str(r.project_id),
                project_name=r.project_name,
                user_id=str(r.user_id),
                user_name=r.user_name,
                seconds=r.seconds,
                hours=hours_text(r.seconds),
                billable_seconds=r.billable_seconds,
                billable_hours=hours_text(r.billable_seconds),
            )
            for r in report.rows
        ],
        users=[
            pb.TeamMemberTotal(
                user_id=str(uid),
                user_name=name,
                seconds=seconds,
                hours=hours_text(seconds),
                billable_seconds=billable,
                billable_hours=hours_text(billable),
            )
            for uid, name, seconds, billable in report.per_user()
        ],
        total_seconds=report.total_seconds,
        total_hours=hours_text(report.total_seconds),
    )
