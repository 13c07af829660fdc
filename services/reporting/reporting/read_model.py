"""Events to read-model rows: decoding and validation, no I/O.

Everything here raises `InvalidMessage` for a message that can never be
applied (bad UUID, missing snapshot, version <= 0, unknown kind, a rate that
is not a decimal...), so the consumer dead-letters it and the partition moves
on. The returned dicts are the column values the repository upserts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.events.v1 import directory_pb2, entries_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.kafka import InvalidMessage

ROLES = {ppb.ROLE_EMPLOYEE: "EMPLOYEE", ppb.ROLE_MANAGER: "MANAGER", ppb.ROLE_ADMIN: "ADMIN"}
STATUSES = {
    ppb.PROJECT_STATUS_ACTIVE: "ACTIVE",
    ppb.PROJECT_STATUS_COMPLETED: "COMPLETED",
    ppb.PROJECT_STATUS_ARCHIVED: "ARCHIVED",
}
BILLING_TYPES = {
    ppb.BILLING_TYPE_HOURLY: "HOURLY",
    ppb.BILLING_TYPE_FIXED: "FIXED",
    ppb.BILLING_TYPE_NON_BILLABLE: "NON_BILLABLE",
}
PROJECT_ROLES = {ppb.PROJECT_ROLE_MEMBER: "MEMBER", ppb.PROJECT_ROLE_MANAGER: "MANAGER"}


@dataclass(frozen=True)
class Change:
    """One row to upsert: which table, its column values, and when the event occurred."""

    table: str
    values: dict[str, Any]
    occurred_at: datetime | None


# --- primitives --------------------------------------------------------------------


def parse(message: Message, raw: bytes | None, what: str) -> Any:
    """The parsed message; DecodeError (dead-lettered as "undecodable") when it is not one."""
    try:
        message.ParseFromString(raw or b"")
    except DecodeError as exc:
        raise DecodeError(f"not a {what}: {exc}") from exc
    return message


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidMessage(f"{field} is not a UUID: {value!r}") from exc


def _optional_uuid(value: str, field: str) -> uuid.UUID | None:
    return _uuid(value, field) if value else None


def _decimal(
    value: str, field: str, *, optional: bool = False, integer_digits: int = 12, places: int = 4
) -> Decimal | None:
    """A finite, non-negative decimal that fits its column: at most `integer_digits` digits
    before the point and `places` after it (trailing zeros aside). A value PostgreSQL would
    refuse must be refused here, or it would fail its whole batch again and again."""
    if optional and not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidMessage(f"{field} is not a decimal: {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise InvalidMessage(f"{field} must be a finite, non-negative decimal: {value!r}")
    if number and number.adjusted() >= integer_digits:
        raise InvalidMessage(f"{field} has more than {integer_digits} integer digits: {value[:40]!r}")
    if number.as_tuple().exponent < -places and number != number.quantize(Decimal(1).scaleb(-places)):  # type: ignore[operator]
        raise InvalidMessage(f"{field} has more than {places} decimal places: {value[:40]!r}")
    return number


def text(value: str, field: str) -> str:
    """A text PostgreSQL can store: no NUL character (protobuf strings may carry one)."""
    if "\x00" in value:
        raise InvalidMessage(f"{field} contains a NUL character")
    return value


def _version(value: int, field: str = "version") -> int:
    if value <= 0:
        raise InvalidMessage(f"{field} must be positive, got {value}")
    return value


def _timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _enum(mapping: dict[Any, str], value: int, field: str) -> str:
    try:
        return mapping[value]
    except KeyError:
        raise InvalidMessage(f"{field} has an unknown value {value}") from None


def _occurred_at(event: directory_pb2.DirectoryEvent | entries_pb2.EntryEvent) -> datetime | None:
    return _timestamp(event.occurred_at) if event.HasField("occurred_at") else None


# --- entries -----------------------------------------------------------------------


def entry_change(event: entries_pb2.EntryEvent) -> Change:
    """The entry row an entry event leaves behind (a tombstone for a delete)."""
    _uuid(event.event_id, "event_id")
    kind = event.WhichOneof("kind")
    if kind is None:
        raise InvalidMessage("entry event without a kind (unknown or missing oneof)")
    body = getattr(event, kind)
    if not body.HasField("entry"):
        raise InvalidMessage(f"{kind} event without an entry snapshot")
    snap: entries_pb2.TimeEntrySnapshot = body.entry
    if not snap.HasField("start_time"):
        raise InvalidMessage("entry snapshot without start_time")
    start = _timestamp(snap.start_time)
    end = _timestamp(snap.end_time) if snap.HasField("end_time") else None
    if end is not None and end < start:
        raise InvalidMessage("entry snapshot ends before it starts")
    if snap.duration_seconds < 0:
        raise InvalidMessage("entry snapshot has a negative duration")
    if not snap.currency:
        raise InvalidMessage("entry snapshot without a currency")
    occurred_at = _occurred_at(event)
    return Change(
        "entries",
        {
            "entry_id": _uuid(snap.entry_id, "entry.entry_id"),
            "user_id": _uuid(snap.user_id, "entry.user_id"),
            "project_id": _uuid(snap.project_id, "entry.project_id"),
            "task_id": _optional_uuid(snap.task_id, "entry.task_id"),
            "description": text(snap.description, "entry.description"),
            "tags": [text(tag, "entry.tags") for tag in snap.tags],
            "start_time": start,
            "end_time": end,
            # tracking sets the duration on stop; derive it if an older producer did not
            "duration_seconds": snap.duration_seconds
            or (int((end - start).total_seconds()) if end is not None else 0),
            "is_billable": snap.is_billable,
            "hourly_rate": _decimal(snap.hourly_rate or "0", "entry.hourly_rate"),
            "currency": text(snap.currency, "entry.currency").upper(),
            "invoice_id": _optional_uuid(snap.invoice_id, "entry.invoice_id"),
            "version": _version(snap.version, "entry.version"),
            "deleted": kind == "deleted",
            "event_occurred_at": occurred_at or datetime.now(UTC),
        },
        occurred_at,
    )


# --- directory ---------------------------------------------------------------------


def _user(u: ppb.User) -> dict[str, Any]:
    try:
        ZoneInfo(u.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidMessage(f"user.timezone is not an IANA zone: {u.timezone!r}") from exc
    return {
        "user_id": _uuid(u.user_id, "user.user_id"),
        "name": text(u.name, "user.name"),
        "role": _enum(ROLES, u.role, "user.role"),
        "timezone": text(u.timezone, "user.timezone"),
        "active": u.active,
        "version": _version(u.version, "user.version"),
    }


def _client(c: ppb.Client) -> dict[str, Any]:
    return {
        "client_id": _uuid(c.client_id, "client.client_id"),
        "name": text(c.name, "client.name"),
        "currency": text(c.currency, "client.currency"),
        "archived": c.archived,
        "version": _version(c.version, "client.version"),
    }


def _project(p: ppb.Project) -> dict[str, Any]:
    return {
        "project_id": _uuid(p.project_id, "project.project_id"),
        "client_id": _uuid(p.client_id, "project.client_id"),
        "name": text(p.name, "project.name"),
        "status": _enum(STATUSES, p.status, "project.status"),
        "billing_type": _enum(BILLING_TYPES, p.billing_type, "project.billing_type"),
        "budget_hours": _decimal(
            p.budget_hours, "project.budget_hours", optional=True, integer_digits=10, places=2
        ),
        "budget_amount": _decimal(
            p.budget_amount, "project.budget_amount", optional=True, integer_digits=12, places=2
        ),
        "currency": text(p.currency, "project.currency"),
        "version": _version(p.version, "project.version"),
    }


def _task(t: ppb.Task) -> dict[str, Any]:
    return {
        "task_id": _uuid(t.task_id, "task.task_id"),
        "project_id": _uuid(t.project_id, "task.project_id"),
        "name": text(t.name, "task.name"),
        "archived": t.archived,
        "version": _version(t.version, "task.version"),
    }


def _member(m: ppb.ProjectMember, removed: bool) -> dict[str, Any]:
    return {
        "project_id": _uuid(m.project_id, "member.project_id"),
        "user_id": _uuid(m.user_id, "member.user_id"),
        "project_role": _enum(PROJECT_ROLES, m.project_role, "member.project_role"),
        "removed": removed,
        "version": _version(m.version, "member.version"),
    }


def directory_change(event: directory_pb2.DirectoryEvent) -> Change | None:
    """The directory row a change event leaves behind; None for what reporting ignores (rates)."""
    _uuid(event.event_id, "event_id")
    kind = event.WhichOneof("kind")
    occurred_at = _occurred_at(event)
    match kind:
        case "user_changed":
            return Change("users", _user(event.user_changed), occurred_at)
        case "client_changed":
            return Change("clients", _client(event.client_changed), occurred_at)
        case "project_changed":
            return Change("projects", _project(event.project_changed), occurred_at)
        case "task_changed":
            return Change("tasks", _task(event.task_changed), occurred_at)
        case "member_changed":
            return Change("project_members", _member(event.member_changed, False), occurred_at)
        case "member_removed":
            return Change("project_members", _member(event.member_removed, True), occurred_at)
        case "rate_changed" | "rate_removed":
            # Reports use the rate snapshot on each entry; current rates do not matter here.
            return None
        case _:
            raise InvalidMessage("directory event without a kind (unknown or missing oneof)")
