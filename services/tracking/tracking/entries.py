"""Manual entries and edits: create, update (optimistic concurrency), delete.

The overlap rule is enforced by the EXCLUDE constraint; the SELECT before a
write only finds the other entry so that the error can name it. Invoiced
entries are read-only. Every change is audited in the same transaction, and
changes to stopped entries are published through the outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tt_common.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound

from .directory import Directory
from .domain import Billing, Entry, EntryChanges, EntryOverlaps, check_span, check_start, duration_of
from .events import EntryEvents, stopped_event
from .repository import Repositories
from .timer_statements import TimerStatements


@dataclass(frozen=True)
class ManualEntry:
    actor: uuid.UUID | None
    user_id: uuid.UUID
    project_id: uuid.UUID
    task_id: uuid.UUID | None
    description: str
    start_time: datetime
    end_time: datetime
    tags: tuple[str, ...]


def describe(entry: Entry) -> str:
    end = entry.end_time.isoformat() if entry.end_time else "still running"
    return f"entry {entry.entry_id} ({entry.start_time.isoformat()} to {end})"


async def _refuse_overlap(
    repos: Repositories,
    user_id: uuid.UUID,
    start: datetime,
    end: datetime | None,
    excluding: uuid.UUID | None,
) -> None:
    other = await repos.entries.first_overlapping(user_id, start, end, excluding=excluding)
    if other is not None:
        raise EntryOverlaps(describe(other))


def new_manual_entry(cmd: ManualEntry, billing: Billing, now: datetime) -> Entry:
    """The stopped entry a manual booking creates, exactly as it will be stored."""
    return Entry.new(cmd, billing, start_time=cmd.start_time, end_time=cmd.end_time, now=now)


async def create_manual_entry_fast(
    statements: TimerStatements, cmd: ManualEntry, billing: Billing, now: datetime
) -> Entry | None:
    """The common path: one statement writes the entry, its audit record and its event.

    None when the entry overlaps another: `create_manual_entry` then names that
    entry (or books this one, if the other went meanwhile).
    """
    entry = new_manual_entry(cmd, billing, now)
    try:
        await statements.insert_stopped(entry, cmd.actor, "created", stopped_event(entry, cmd.actor, now))
    except EntryOverlaps:
        return None
    return entry


async def create_manual_entry(
    repos: Repositories, events: EntryEvents, cmd: ManualEntry, billing: Billing, now: datetime
) -> Entry:
    """A stopped entry booked after the fact (the request was validated by the edge)."""
    await _refuse_overlap(repos, cmd.user_id, cmd.start_time, cmd.end_time, None)
    entry = await repos.entries.insert(new_manual_entry(cmd, billing, now).row())
    await repos.audit.record(entry.entry_id, cmd.actor, "created", None, entry)
    # A new stopped entry reaches consumers the way a stopped timer does.
    await events.stopped(entry, cmd.actor, now)
    return entry


async def _editable(repos: Repositories, entry_id: uuid.UUID, expected_version: int) -> Entry:
    current = await repos.entries.get(entry_id)
    if current is None:
        raise NotFound(f"entry {entry_id} does not exist")
    if current.invoice_id is not None:
        raise FailedPrecondition(
            f"entry {entry_id} is on invoice {current.invoice_id}; invoiced entries are read-only",
            error_code="entry_invoiced",
        )
    if expected_version and current.version != expected_version:
        raise Conflict(
            f"entry {entry_id} changed meanwhile: version {current.version}, expected {expected_version}"
        )
    return current


async def update_entry(
    repos: Repositories,
    events: EntryEvents,
    directory: Directory,
    *,
    entry_id: uuid.UUID,
    expected_version: int,
    changes: EntryChanges,
    actor: uuid.UUID | None,
    now: datetime,
    max_skew: timedelta,
) -> Entry:
    current = await _editable(repos, entry_id, expected_version)
    start = changes.start_time or current.start_time
    end = changes.end_time or current.end_time
    if current.running and changes.end_time is not None:
        raise InvalidArgument.field("end_time", "the timer is running; stop it with StopTimer")
    if end is None:
        check_start(start, now, max_skew)
    else:
        check_span(start, end, now, max_skew)
    user_id = changes.user_id or current.user_id
    project_id = changes.project_id or current.project_id
    task_id = None if changes.clear_task else (changes.task_id or current.task_id)
    if current.running and user_id != current.user_id:
        raise InvalidArgument.field("user_id", "a running timer cannot move to another user; stop it first")

    values: dict[str, Any] = {}
    if changes.needs_billing:
        # Who, where or what changed: access and the rate snapshot follow.
        billing = await directory.billing_for_booking(user_id, project_id, task_id)
        values |= {
            "user_id": user_id,
            "project_id": project_id,
            "task_id": task_id,
            "is_billable": billing.is_billable,
            "hourly_rate": billing.hourly_rate,
            "currency": billing.currency,
        }
    if changes.description is not None:
        values["description"] = changes.description
    if changes.tags is not None:
        values["tags"] = list(changes.tags)
    if start != current.start_time or end != current.end_time or user_id != current.user_id:
        await _refuse_overlap(repos, user_id, start, end, current.entry_id)
        values |= {"start_time": start, "end_time": end}
        values["duration_seconds"] = duration_of(start, end) if end else None

    updated = await repos.entries.update(entry_id, current.version, values, now)
    if updated is None:
        raise Conflict(f"entry {entry_id} changed meanwhile; re-read it and retry")
    await repos.audit.record(entry_id, actor, "updated", current, updated)
    if not updated.running:
        await events.edited(updated, actor, now)
    return updated


async def delete_entry(
    repos: Repositories,
    events: EntryEvents,
    *,
    entry_id: uuid.UUID,
    expected_version: int,
    actor: uuid.UUID | None,
    now: datetime,
) -> Entry:
    current = await _editable(repos, entry_id, expected_version)
    if not await repos.entries.delete(entry_id, current.version):
        raise Conflict(f"entry {entry_id} changed meanwhile; re-read it and retry")
    await repos.audit.record(entry_id, actor, "deleted", current, None)
    gone = current.with_changes(version=current.version + 1, updated_at=now)
    if not current.running:
        await events.deleted(gone, actor, now)
    return gone
