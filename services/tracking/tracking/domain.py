"""Time entries as the domain sees them, and the pure rules about them (no I/O).

Times are timezone-aware UTC datetimes with microsecond precision (what
PostgreSQL stores). Money is Decimal, never float.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from tt_common.errors import AlreadyExists, FieldViolation, InvalidArgument

MAX_ENTRY_LENGTH = timedelta(hours=24)
MIN_TIMER_LENGTH = timedelta(seconds=60)
# Anything before this is a malformed timestamp (a zero value, a unit mix-up), not a real entry.
EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
MAX_DESCRIPTION_LENGTH = 2000


class Booking(Protocol):
    """What a caller books time on and how they describe it (a timer start, a manual entry)."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def project_id(self) -> uuid.UUID: ...
    @property
    def task_id(self) -> uuid.UUID | None: ...
    @property
    def description(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Billing:
    """Rate, currency and billable flag, resolved by the projects service and then frozen."""

    hourly_rate: Decimal
    currency: str
    is_billable: bool


@dataclass(frozen=True)
class Entry:
    entry_id: uuid.UUID
    user_id: uuid.UUID
    project_id: uuid.UUID
    task_id: uuid.UUID | None
    description: str
    start_time: datetime
    end_time: datetime | None
    duration_seconds: int | None
    is_billable: bool
    hourly_rate: Decimal
    currency: str
    tags: tuple[str, ...]
    invoice_id: uuid.UUID | None
    capped: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def running(self) -> bool:
        return self.end_time is None

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls.from_mapping(row._mapping)

    @classmethod
    def from_mapping(cls, m: Any) -> Entry:
        """From anything indexed by column name (a SQLAlchemy row mapping, an asyncpg record)."""
        return cls(**{f: m[f] for f in ENTRY_FIELDS if f != "tags"}, tags=tuple(m["tags"] or ()))

    @classmethod
    def new(
        cls,
        booking: Booking,
        billing: Billing,
        *,
        start_time: datetime,
        end_time: datetime | None,
        now: datetime,
    ) -> Entry:
        """A new entry (a running timer when `end_time` is None), exactly as it will be stored."""
        return cls(
            entry_id=uuid.uuid4(),
            user_id=booking.user_id,
            project_id=booking.project_id,
            task_id=booking.task_id,
            description=booking.description,
            start_time=start_time,
            end_time=end_time,
            duration_seconds=duration_of(start_time, end_time) if end_time else None,
            is_billable=billing.is_billable,
            hourly_rate=billing.hourly_rate,
            currency=billing.currency,
            tags=booking.tags,
            invoice_id=None,
            capped=False,
            version=1,
            created_at=now,
            updated_at=now,
        )

    def row(self) -> dict[str, Any]:
        """The entry as column values for an INSERT."""
        return {f: getattr(self, f) for f in ENTRY_FIELDS} | {"tags": list(self.tags)}

    def with_changes(self, **changes: Any) -> Entry:
        return replace(self, **changes)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe picture of the entry, as the audit log stores it."""

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        def opt(u: uuid.UUID | None) -> str | None:
            return str(u) if u else None

        return {
            "entry_id": str(self.entry_id),
            "user_id": str(self.user_id),
            "project_id": str(self.project_id),
            "task_id": opt(self.task_id),
            "description": self.description,
            "start_time": iso(self.start_time),
            "end_time": iso(self.end_time),
            "duration_seconds": self.duration_seconds,
            "is_billable": self.is_billable,
            "hourly_rate": format(self.hourly_rate, "f"),
            "currency": self.currency,
            "tags": list(self.tags),
            "invoice_id": opt(self.invoice_id),
            "capped": self.capped,
            "version": self.version,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


ENTRY_FIELDS = tuple(f for f in Entry.__dataclass_fields__)


class TimerAlreadyRunning(AlreadyExists):
    """Starting while a timer runs: the error names the running entry."""

    error_code = "timer_already_running"

    def __init__(self, running_entry_id: uuid.UUID) -> None:
        super().__init__(f"a timer is already running: entry {running_entry_id}")
        self.running_entry_id = running_entry_id

    def metadata(self) -> list[tuple[str, str]]:
        return [*super().metadata(), ("running-entry-id", str(self.running_entry_id))]


class EntryOverlaps(InvalidArgument):
    """The entry would overlap another entry of the same user (a running timer included)."""

    error_code = "entry_overlaps"

    def __init__(self, other: str) -> None:
        reason = f"overlaps {other} of the same user"
        super().__init__(
            f"start_time/end_time: {reason}",
            [FieldViolation("start_time", reason), FieldViolation("end_time", reason)],
        )


# --- rules -------------------------------------------------------------------------


def normalize_tags(raw: list[str] | tuple[str, ...], field_name: str = "tags") -> tuple[str, ...]:
    """Trimmed, de-duplicated case-insensitively (first spelling kept), bounded in count and length."""
    tags: list[str] = []
    seen: set[str] = set()
    for i, value in enumerate(raw):
        tag = value.strip()
        if not tag:
            raise InvalidArgument.field(f"{field_name}[{i}]", "must not be empty")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidArgument.field(f"{field_name}[{i}]", f"at most {MAX_TAG_LENGTH} characters")
        if any(ord(c) < 32 for c in tag):
            raise InvalidArgument.field(f"{field_name}[{i}]", "must not contain control characters")
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidArgument.field(field_name, f"at most {MAX_TAGS} distinct tags")
    return tuple(tags)


def check_start(start: datetime, now: datetime, max_skew: timedelta) -> None:
    if start < EARLIEST_START:
        raise InvalidArgument.field("start_time", f"must not be before {EARLIEST_START.date()}")
    if start > now + max_skew:
        raise InvalidArgument.field("start_time", "must not be in the future")


def check_span(start: datetime, end: datetime, now: datetime, max_skew: timedelta) -> None:
    """A stopped entry: end > start, at most 24 h, not ending in the future (beyond the skew allowance)."""
    check_start(start, now, max_skew)
    if end <= start:
        raise InvalidArgument.field("end_time", "must be after start_time")
    if end - start > MAX_ENTRY_LENGTH:
        raise InvalidArgument.field("end_time", "must be at most 24 hours after start_time")
    if end > now + max_skew:
        raise InvalidArgument.field("end_time", "must not be in the future")


@dataclass(frozen=True)
class StopOutcome:
    end_time: datetime
    duration_seconds: int
    capped: bool = False
    discarded: bool = False


def stop_outcome(start: datetime, now: datetime) -> StopOutcome:
    """What stopping a timer that started at `start` means at server time `now`."""
    elapsed = now - start
    if elapsed < MIN_TIMER_LENGTH:
        # Accidental (or a clock step backwards): discarded, never billed.
        return StopOutcome(now, max(int(elapsed.total_seconds()), 0), discarded=True)
    if elapsed > MAX_ENTRY_LENGTH:
        return StopOutcome(start + MAX_ENTRY_LENGTH, int(MAX_ENTRY_LENGTH.total_seconds()), capped=True)
    return StopOutcome(now, duration_of(start, now))


def duration_of(start: datetime, end: datetime) -> int:
    """Whole seconds, rounded down: what a user sees on a stopwatch."""
    return int((end - start).total_seconds())


@dataclass(frozen=True)
class EntryChanges:
    """An UpdateEntry request, validated field by field; None = unchanged."""

    user_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    clear_task: bool = False
    description: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    tags: tuple[str, ...] | None = None

    @property
    def needs_billing(self) -> bool:
        """Changing who, where or what re-resolves access, rate and billable flag."""
        return self.user_id is not None or self.project_id is not None or self.task_changed

    @property
    def task_changed(self) -> bool:
        return self.task_id is not None or self.clear_task
