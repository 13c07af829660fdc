"""Money, hours, budgets, event validation and export formats: the pure rules, no infrastructure."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from reporting import exports, read_model
from reporting.figures import hours, hours_text, line_amount
from reporting.reports_repository import MoneyGroup
from reporting.summaries import build_project_summary
from timetracking.events.v1 import directory_pb2, entries_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.errors import FailedPrecondition
from tt_common.kafka import InvalidMessage


def test_hours_are_two_places_half_up() -> None:
    assert hours_text(0) == "0.00"
    assert hours_text(27 * 60) == "0.45"
    assert hours_text(18) == "0.01"  # 0.005 h rounds up
    assert hours_text(17) == "0.00"
    assert hours_text(8 * 3600 + 30 * 60) == "8.50"


@settings(max_examples=500)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_hours_text_is_the_decimal_hours_as_text(seconds: int) -> None:
    """hours_text takes an integer shortcut; it must say exactly what hours() says."""
    assert hours_text(seconds) == format(hours(seconds), "f")


def test_line_amount_rounds_once_per_line_half_up_to_the_minor_unit() -> None:
    # Three 20-minute entries at 100.01/h: per entry 33.336666.. -> 33.34 x 3 = 100.02, per line 100.01.
    line = sum(Decimal(1200) * Decimal("100.01") for _ in range(3))
    assert line_amount(line, "EUR") == Decimal("100.01")
    assert line_amount(Decimal(1800) * Decimal("0.01"), "EUR") == Decimal("0.01")  # 0.005 -> 0.01
    assert line_amount(Decimal(3600) * Decimal("1234.5"), "JPY") == Decimal("1235")
    assert line_amount(Decimal(3600) * Decimal("1.2345"), "KWD") == Decimal("1.235")


def _group(task, invoice, billable, seconds, rate, currency="EUR") -> MoneyGroup:
    return MoneyGroup(
        (task, invoice), currency, billable, invoice is not None, seconds, seconds * Decimal(rate)
    )


def test_project_summary_splits_and_flags_budgets() -> None:
    design, dev = uuid.uuid4(), uuid.uuid4()
    invoice = uuid.uuid4()
    groups = [
        _group(design, None, True, 3600 * 10, "100.00"),
        _group(design, invoice, True, 3600 * 20, "100.00"),
        _group(dev, None, False, 3600 * 5, "80.00"),
        _group(None, None, True, 1200, "90.00"),
    ]
    summary = build_project_summary(
        project_id=uuid.uuid4(),
        project_name="Relaunch",
        client_id=uuid.uuid4(),
        project_currency="EUR",
        budget_hours=Decimal("40"),
        budget_amount=Decimal("5000"),
        period=None,
        groups=groups,
        lifetime_groups=groups,
        task_names={design: "Design", dev: "Development"},
    )
    t = summary.totals
    assert (t.total_seconds, t.billable_seconds, t.non_billable_seconds) == (
        35 * 3600 + 1200,
        30 * 3600 + 1200,
        5 * 3600,
    )
    assert (t.uninvoiced_amount, t.invoiced_amount, t.billable_amount) == (
        Decimal("1030.00"),
        Decimal("2000.00"),
        Decimal("3030.00"),
    )
    assert [x.task_name for x in summary.tasks] == ["Design", "Development", ""]
    assert summary.tasks[0].totals.billable_amount == Decimal("3000.00")
    b = summary.budget
    assert b.hours_percent() == Decimal("88.33")  # 35h20m of 40h
    assert (b.hours_reached(Decimal("0.8")), b.hours_reached(Decimal(1))) == (True, False)
    assert b.amount_percent() == Decimal("60.60")
    assert (b.amount_reached(Decimal("0.8")), b.amount_reached(Decimal(1))) == (False, False)


def test_no_budget_and_mixed_currencies() -> None:
    summary = build_project_summary(
        project_id=uuid.uuid4(),
        project_name="x",
        client_id=None,
        project_currency="USD",
        budget_hours=None,
        budget_amount=Decimal(0),
        period=None,
        groups=[],
        lifetime_groups=[],
        task_names={},
    )
    assert not summary.budget.has_budget_hours and not summary.budget.has_budget_amount
    assert summary.budget.hours_percent() is None and not summary.budget.hours_reached(Decimal(1))
    assert summary.totals.billable_amount == Decimal("0.00")
    with pytest.raises(FailedPrecondition):
        build_project_summary(
            project_id=uuid.uuid4(),
            project_name="x",
            client_id=None,
            project_currency="USD",
            budget_hours=None,
            budget_amount=None,
            period=None,
            groups=[_group(None, None, True, 60, "1", "USD"), _group(None, None, True, 60, "1", "EUR")],
            lifetime_groups=[],
            task_names={},
        )


def _entry_event(**snapshot) -> entries_pb2.EntryEvent:
    snap = entries_pb2.TimeEntrySnapshot(
        entry_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        project_id=str(uuid.uuid4()),
        hourly_rate="95.00",
        currency="EUR",
        version=2,
        duration_seconds=3600,
        is_billable=True,
    )
    snap.start_time.FromDatetime(datetime(2024, 1, 1, 9, tzinfo=UTC))
    snap.end_time.FromDatetime(datetime(2024, 1, 1, 10, tzinfo=UTC))
    for k, v in snapshot.items():
        if v is None:
            snap.ClearField(k)
        else:
            setattr(snap, k, v)
    event = entries_pb2.EntryEvent(event_id=str(uuid.uuid4()), stopped=entries_pb2.EntryStopped(entry=snap))
    event.occurred_at.FromDatetime(datetime(2024, 1, 1, 10, tzinfo=UTC))
    return event


def test_a_valid_entry_event_becomes_a_row_and_a_delete_a_tombstone() -> None:
    change = read_model.entry_change(_entry_event())
    assert change.table == "entries" and change.values["version"] == 2 and not change.values["deleted"]
    assert change.values["hourly_rate"] == Decimal("95.00") and change.values["task_id"] is None
    deleted = _entry_event()
    deleted.deleted.entry.CopyFrom(deleted.stopped.entry)
    assert read_model.entry_change(deleted).values["deleted"] is True


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        ({"entry_id": "nope"}, "entry.entry_id is not a UUID"),
        ({"user_id": ""}, "entry.user_id is not a UUID"),
        ({"version": 0}, "entry.version must be positive"),
        ({"version": -3}, "entry.version must be positive"),
        ({"hourly_rate": "ten"}, "entry.hourly_rate is not a decimal"),
        ({"start_time": None}, "without start_time"),
        ({"currency": ""}, "without a currency"),
    ],
)
def test_invalid_entry_events_are_poison(snapshot: dict, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        read_model.entry_change(_entry_event(**snapshot))


def test_events_without_snapshot_or_kind_are_poison() -> None:
    with pytest.raises(InvalidMessage, match="without a kind"):
        read_model.entry_change(entries_pb2.EntryEvent(event_id=str(uuid.uuid4())))
    with pytest.raises(InvalidMessage, match="without an entry snapshot"):
        read_model.entry_change(
            entries_pb2.EntryEvent(event_id=str(uuid.uuid4()), edited=entries_pb2.EntryEdited())
        )
    with pytest.raises(InvalidMessage, match="without a kind"):
        read_model.directory_change(directory_pb2.DirectoryEvent(event_id=str(uuid.uuid4())))
    with pytest.raises(DecodeError, match="not a EntryEvent"):
        read_model.parse(entries_pb2.EntryEvent(), b"\xff\xff\xff", "EntryEvent")


def test_directory_events_keep_what_reports_need() -> None:
    user = ppb.User(
        user_id=str(uuid.uuid4()), name="Ada", role=ppb.ROLE_MANAGER, timezone="Asia/Kolkata", version=3
    )
    change = read_model.directory_change(
        directory_pb2.DirectoryEvent(event_id=str(uuid.uuid4()), user_changed=user)
    )
    assert (
        change is not None
        and change.values["role"] == "MANAGER"
        and change.values["timezone"] == "Asia/Kolkata"
    )
    user.timezone = "Mars/Olympus"
    with pytest.raises(InvalidMessage, match="IANA"):
        read_model.directory_change(
            directory_pb2.DirectoryEvent(event_id=str(uuid.uuid4()), user_changed=user)
        )
    rate = ppb.ProjectUserRate(
        project_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), hourly_rate="1", version=1
    )
    assert (
        read_model.directory_change(
            directory_pb2.DirectoryEvent(event_id=str(uuid.uuid4()), rate_changed=rate)
        )
        is None
    )


def test_exports_defuse_formulas_and_round_trip_as_csv_and_xlsx() -> None:
    table = exports.Table(
        "team-report-x", ["project", "hours"], [["=HYPERLINK(1)", Decimal("1.50")], ["ok", 2]]
    )
    content_type, name, body = exports.render(table, "csv")
    assert content_type.startswith("text/csv") and name == "team-report-x.csv"
    assert list(csv.reader(io.StringIO(body.decode()))) == [
        ["project", "hours"],
        ["'=HYPERLINK(1)", "1.50"],
        ["ok", "2"],
    ]
    content_type, name, body = exports.render(table, "xlsx")
    assert name.endswith(".xlsx") and "spreadsheetml" in content_type
    sheet = load_workbook(io.BytesIO(body)).active
    assert [list(r) for r in sheet.iter_rows(values_only=True)] == [
        ["project", "hours"],
        ["'=HYPERLINK(1)", 1.5],
        ["ok", 2],
    ]
