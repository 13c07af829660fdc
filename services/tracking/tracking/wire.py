"""Requests in, messages out: validation that names the field, and proto <-> domain conversion.

Everything here is pure; a request that fails here has touched nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.common.v1 import types_pb2
from timetracking.tracking.v1 import tracking_pb2
from tt_common.errors import InvalidArgument
from tt_common.money import format_decimal
from tt_common.timestamps import timestamp as to_timestamp
from tt_common.validation import bounded_text, parse_optional_uuid, parse_uuid

from .domain import MAX_DESCRIPTION_LENGTH, Entry, EntryChanges, check_span, check_start, normalize_tags
from .entries import ManualEntry
from .repository import AuditRecord, ClaimedRow, EntryFilter
from .timers import StartTimer


def timestamp(msg: Timestamp, field: str) -> datetime:
    """A set, well-formed Timestamp as an aware UTC datetime (microseconds, as PostgreSQL stores)."""
    if not 0 <= msg.nanos < 1_000_000_000:
        raise InvalidArgument.field(field, "is not a valid timestamp (nanos out of range)")
    try:
        return msg.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument.field(field, "is not a valid timestamp") from None


def required_timestamp(parent: object, field: str) -> datetime:
    if not parent.HasField(field):  # type: ignore[attr-defined]
        raise InvalidArgument.field(field, "is required")
    return timestamp(getattr(parent, field), field)


def actor(value: str) -> uuid.UUID | None:
    return parse_optional_uuid(value, "actor_user_id")


def description(value: str) -> str:
    return bounded_text(value, "description", max_length=MAX_DESCRIPTION_LENGTH, required=False)


def period(parent: object, field: str) -> tuple[datetime, datetime]:
    if not parent.HasField(field):  # type: ignore[attr-defined]
        raise InvalidArgument.field(field, "is required")
    p: types_pb2.Period = getattr(parent, field)
    for part in ("start", "end"):
        if not p.HasField(part):
            raise InvalidArgument.field(f"{field}.{part}", "is required")
    start, end = timestamp(p.start, f"{field}.start"), timestamp(p.end, f"{field}.end")
    if end <= start:
        raise InvalidArgument.field(f"{field}.end", f"must be after {field}.start")
    return start, end


def start_timer(req: tracking_pb2.StartTimerRequest) -> StartTimer:
    return StartTimer(
        actor=actor(req.actor_user_id),
        user_id=parse_uuid(req.user_id, "user_id"),
        project_id=parse_uuid(req.project_id, "project_id"),
        task_id=parse_optional_uuid(req.task_id, "task_id"),
        description=description(req.description),
        tags=normalize_tags(list(req.tags)),
    )


def manual_entry(
    req: tracking_pb2.CreateManualEntryRequest, now: datetime, max_skew: timedelta
) -> ManualEntry:
    cmd = ManualEntry(
        actor=actor(req.actor_user_id),
        user_id=parse_uuid(req.user_id, "user_id"),
        project_id=parse_uuid(req.project_id, "project_id"),
        task_id=parse_optional_uuid(req.task_id, "task_id"),
        description=description(req.description),
        start_time=required_timestamp(req, "start_time"),
        end_time=required_timestamp(req, "end_time"),
        tags=normalize_tags(list(req.tags)),
    )
    check_span(cmd.start_time, cmd.end_time, now, max_skew)
    return cmd


def entry_changes(req: tracking_pb2.UpdateEntryRequest, now: datetime, max_skew: timedelta) -> EntryChanges:
    task_id = None
    clear_task = False
    if req.HasField("task_id"):
        task_id = parse_optional_uuid(req.task_id, "task_id")
        clear_task = task_id is None
    changes = EntryChanges(
        user_id=parse_uuid(req.user_id, "user_id") if req.HasField("user_id") else None,
        project_id=parse_uuid(req.project_id, "project_id") if req.HasField("project_id") else None,
        task_id=task_id,
        clear_task=clear_task,
        description=description(req.description) if req.HasField("description") else None,
        start_time=timestamp(req.start_time, "start_time") if req.HasField("start_time") else None,
        end_time=timestamp(req.end_time, "end_time") if req.HasField("end_time") else None,
        tags=normalize_tags(list(req.tags.tags)) if req.HasField("tags") else None,
    )
    if changes.start_time is not None:
        check_start(changes.start_time, now, max_skew)
    if changes.start_time is not None and changes.end_time is not None:
        check_span(changes.start_time, changes.end_time, now, max_skew)
    return changes


def expected_version(value: int, *, required: bool) -> int:
    if value < 0 or (required and value == 0):
        raise InvalidArgument.field("expected_version", "must be the version you read (1 or more)")
    return value


def entry_filter(req: tracking_pb2.ListEntriesRequest) -> EntryFilter:
    start = end = None
    if req.HasField("period"):
        if req.period.HasField("start"):
            start = timestamp(req.period.start, "period.start")
        if req.period.HasField("end"):
            end = timestamp(req.period.end, "period.end")
        if start is not None and end is not None and end <= start:
            raise InvalidArgument.field("period.end", "must be after period.start")
    return EntryFilter(
        user_id=parse_optional_uuid(req.user_id, "user_id"),
        project_id=parse_optional_uuid(req.project_id, "project_id"),
        task_id=parse_optional_uuid(req.task_id, "task_id"),
        invoice_id=parse_optional_uuid(req.invoice_id, "invoice_id"),
        period_start=start,
        period_end=end,
        billable=req.billable if req.HasField("billable") else None,
        invoiced=req.invoiced if req.HasField("invoiced") else None,
        running=req.running if req.HasField("running") else None,
        tags=normalize_tags(list(req.tags)),
    )


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    return to_timestamp(value)


def entry_message(entry: Entry) -> tracking_pb2.TimeEntry:
    return tracking_pb2.TimeEntry(
        entry_id=str(entry.entry_id),
        user_id=str(entry.user_id),
        project_id=str(entry.project_id),
        task_id=str(entry.task_id) if entry.task_id else "",
        description=entry.description,
        start_time=_ts(entry.start_time),
        end_time=_ts(entry.end_time),
        duration_seconds=entry.duration_seconds or 0,
        is_billable=entry.is_billable,
        hourly_rate=format_decimal(entry.hourly_rate),
        currency=entry.currency,
        tags=list(entry.tags),
        invoice_id=str(entry.invoice_id) if entry.invoice_id else "",
        capped=entry.capped,
        version=entry.version,
        created_at=_ts(entry.created_at),
        updated_at=_ts(entry.updated_at),
        running=entry.running,
    )


def claim_response(
    rows: list[ClaimedRow], invoice_id: uuid.UUID, replayed: bool
) -> tracking_pb2.ClaimUninvoicedEntriesResponse:
    """The lean answer: each entry added in place (a claim may hold 100k)."""
    out = tracking_pb2.ClaimUninvoicedEntriesResponse(replayed=replayed)
    add = out.entries.add
    invoice = str(invoice_id)
    for row in rows:
        add(
            entry_id=row.entry_id,
            task_id=row.task_id or "",
            duration_seconds=row.duration_seconds or 0,
            hourly_rate=row.hourly_rate,
            currency=row.currency,
            invoice_id=invoice,
            version=row.version,
        )
    return out


def audit_message(record: AuditRecord) -> tracking_pb2.AuditRecord:
    return tracking_pb2.AuditRecord(
        audit_id=record.audit_id,
        entry_id=str(record.entry_id),
        actor_user_id=str(record.actor_user_id) if record.actor_user_id else "",
        action=record.action,
        before_json=json.dumps(record.before) if record.before is not None else "",
        after_json=json.dumps(record.after) if record.after is not None else "",
        at=_ts(record.at),
    )
