"""Tracking's pure rules, without infrastructure: tags, periods, stopping, request validation,
and how a dependency's gRPC status becomes a domain error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.tracking.v1 import tracking_pb2 as tpb
from tracking import wire
from tracking.directory import billing_from, check_booking_access
from tracking.domain import check_span, normalize_tags, stop_outcome
from tt_common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from tt_common.grpc_calls import error_from_status

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=2)


def field_of(exc: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return exc.value.violations[0].field


def test_tags_are_trimmed_deduplicated_and_bounded() -> None:
    assert normalize_tags([" Urgent", "urgent ", "b", "B", "c"]) == ("Urgent", "b", "c")
    assert normalize_tags([]) == ()
    with pytest.raises(InvalidArgument) as exc:
        normalize_tags(["ok", "  "])
    assert field_of(exc) == "tags[1]"
    with pytest.raises(InvalidArgument) as exc:
        normalize_tags(["x" * 51])
    assert field_of(exc) == "tags[0]"
    with pytest.raises(InvalidArgument) as exc:
        normalize_tags([f"t{i}" for i in range(21)])
    assert field_of(exc) == "tags"
    assert len(normalize_tags([f"t{i % 20}" for i in range(40)])) == 20  # duplicates do not count


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (NOW - timedelta(hours=1), NOW - timedelta(hours=2), "end_time"),
        (NOW - timedelta(hours=1), NOW - timedelta(hours=1), "end_time"),
        (NOW - timedelta(hours=25), NOW - timedelta(minutes=59), "end_time"),
        (NOW - timedelta(hours=1), NOW + timedelta(minutes=3), "end_time"),
        (NOW + timedelta(minutes=3), NOW + timedelta(minutes=4), "start_time"),
        (datetime(1999, 12, 31, tzinfo=UTC), datetime(1999, 12, 31, 1, tzinfo=UTC), "start_time"),
    ],
)
def test_bad_spans_name_the_field(start: datetime, end: datetime, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_span(start, end, NOW, SKEW)
    assert field_of(exc) == field


def test_good_spans_pass() -> None:
    check_span(NOW - timedelta(hours=24), NOW, NOW, SKEW)  # exactly 24 h
    check_span(NOW - timedelta(hours=1), NOW + timedelta(minutes=1), NOW, SKEW)  # within clock skew


def test_stopping_discards_under_a_minute_and_caps_over_a_day() -> None:
    short = stop_outcome(NOW - timedelta(seconds=59), NOW)
    assert short.discarded and not short.capped
    normal = stop_outcome(NOW - timedelta(minutes=90, seconds=30, microseconds=5), NOW)
    assert (normal.discarded, normal.capped, normal.end_time, normal.duration_seconds) == (
        False,
        False,
        NOW,
        5430,
    )
    minute = stop_outcome(NOW - timedelta(seconds=60), NOW)
    assert not minute.discarded and minute.duration_seconds == 60
    forgotten = stop_outcome(NOW - timedelta(hours=30), NOW)
    assert forgotten.capped and forgotten.end_time == NOW - timedelta(hours=6)
    assert forgotten.duration_seconds == 86400


def test_manual_entry_request_validation_names_fields() -> None:
    req = tpb.CreateManualEntryRequest(user_id="u", project_id="p")
    with pytest.raises(InvalidArgument) as exc:
        wire.manual_entry(req, NOW, SKEW)
    assert field_of(exc) == "user_id"
    req.user_id = "6f1c1d7e-8e0c-4b7e-9a51-0d7d1c3c9c11"
    req.project_id = "6f1c1d7e-8e0c-4b7e-9a51-0d7d1c3c9c12"
    with pytest.raises(InvalidArgument) as exc:
        wire.manual_entry(req, NOW, SKEW)
    assert field_of(exc) == "start_time"
    req.start_time.FromDatetime(NOW - timedelta(hours=1))
    req.end_time.seconds, req.end_time.nanos = int(NOW.timestamp()), -5
    with pytest.raises(InvalidArgument) as exc:
        wire.manual_entry(req, NOW, SKEW)
    assert field_of(exc) == "end_time"
    req.end_time.FromDatetime(NOW)
    cmd = wire.manual_entry(req, NOW, SKEW)
    assert cmd.end_time - cmd.start_time == timedelta(hours=1) and cmd.task_id is None


def test_update_request_distinguishes_unset_from_cleared() -> None:
    changes = wire.entry_changes(tpb.UpdateEntryRequest(description="x"), NOW, SKEW)
    assert not changes.needs_billing and changes.description == "x" and changes.tags is None
    cleared = wire.entry_changes(tpb.UpdateEntryRequest(task_id="", tags=tpb.TagList()), NOW, SKEW)
    assert cleared.clear_task and cleared.needs_billing and cleared.tags == ()


def test_period_is_required_and_ordered() -> None:
    req = tpb.ClaimUninvoicedEntriesRequest()
    with pytest.raises(InvalidArgument) as exc:
        wire.period(req, "period")
    assert field_of(exc) == "period"
    req.period.start.FromDatetime(NOW)
    with pytest.raises(InvalidArgument) as exc:
        wire.period(req, "period")
    assert field_of(exc) == "period.end"
    req.period.end.FromDatetime(NOW - timedelta(days=1))
    with pytest.raises(InvalidArgument) as exc:
        wire.period(req, "period")
    assert field_of(exc) == "period.end"


def test_booking_access_rules() -> None:
    check_booking_access(ppb.CheckAccessResponse(allowed=True, project_status=ppb.PROJECT_STATUS_ACTIVE))
    with pytest.raises(FailedPrecondition, match="ARCHIVED"):
        check_booking_access(
            ppb.CheckAccessResponse(allowed=False, project_status=ppb.PROJECT_STATUS_ARCHIVED)
        )
    with pytest.raises(PermissionDenied, match="not a member"):
        check_booking_access(
            ppb.CheckAccessResponse(
                allowed=False, reason="not a member", project_status=ppb.PROJECT_STATUS_ACTIVE
            )
        )
    billing = billing_from(ppb.ResolveBillingResponse(hourly_rate="99.5", currency="EUR", is_billable=True))
    assert str(billing.hourly_rate) == "99.50"
    with pytest.raises(RuntimeError):
        billing_from(ppb.ResolveBillingResponse(hourly_rate="NaN", currency="EUR"))


class FakeRpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str, metadata: tuple = ()) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(*metadata), details)


def test_dependency_statuses_become_domain_errors() -> None:
    down = error_from_status(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connect failed"), "projects service")
    assert isinstance(down, Unavailable) and "projects service" in down.message
    slow = error_from_status(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, ""), "projects service")
    assert isinstance(slow, Unavailable)
    violations = json.dumps([{"field": "task_id", "reason": "not in this project"}])
    bad = error_from_status(
        FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "task_id: not in this project",
            (("field-violations", violations),),
        ),
        "projects service",
    )
    assert isinstance(bad, InvalidArgument) and bad.violations[0].field == "task_id"
    missing = error_from_status(
        FakeRpcError(grpc.StatusCode.NOT_FOUND, "no such project"), "projects service"
    )
    assert isinstance(missing, NotFound) and missing.message == "no such project"
