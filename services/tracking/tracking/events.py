"""Entry events: the protobuf payloads tracking puts in its outbox.

Every event carries a fresh event id (consumers dedupe on it), the time it
occurred, who caused it, and the full entry snapshot with its version
(consumers apply "last version wins"). The Kafka key is the entry id, so one
entry's events stay in order on one partition.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from google.protobuf.message import Message

from timetracking.events.v1 import entries_pb2
from tt_common.timestamps import set_timestamp

from .domain import Entry
from .repository import OutboxRepository


def fill_snapshot(msg: entries_pb2.TimeEntrySnapshot, entry: Entry) -> None:
    """Write the entry into `msg` in place (no copy: a claim writes 100k of them)."""
    msg.entry_id = str(entry.entry_id)
    msg.user_id = str(entry.user_id)
    msg.project_id = str(entry.project_id)
    msg.task_id = str(entry.task_id) if entry.task_id else ""
    msg.description = entry.description
    msg.duration_seconds = entry.duration_seconds or 0
    msg.is_billable = entry.is_billable
    msg.hourly_rate = format(entry.hourly_rate, "f")
    msg.currency = entry.currency
    msg.tags.extend(entry.tags)
    msg.invoice_id = str(entry.invoice_id) if entry.invoice_id else ""
    msg.version = entry.version
    msg.capped = entry.capped
    set_timestamp(msg.start_time, entry.start_time)
    if entry.end_time is not None:
        set_timestamp(msg.end_time, entry.end_time)
    set_timestamp(msg.created_at, entry.created_at)
    set_timestamp(msg.updated_at, entry.updated_at)


def snapshot(entry: Entry) -> entries_pb2.TimeEntrySnapshot:
    msg = entries_pb2.TimeEntrySnapshot()
    fill_snapshot(msg, entry)
    return msg


def entry_event(
    entry: Entry, actor: uuid.UUID | None, occurred_at: datetime, kind: str, body: Message
) -> tuple[uuid.UUID, bytes]:
    """A fresh event id and the serialized EntryEvent carrying `body` as its `kind`."""
    event_id = uuid.uuid4()
    event = entries_pb2.EntryEvent(event_id=str(event_id), actor_user_id=str(actor) if actor else "")
    set_timestamp(event.occurred_at, occurred_at)
    getattr(event, kind).CopyFrom(body)
    return event_id, event.SerializeToString()


def stopped_event(entry: Entry, actor: uuid.UUID | None, at: datetime) -> tuple[uuid.UUID, bytes]:
    """EntryStopped for a timer that stopped (or was capped) at `at`."""
    return entry_event(
        entry, actor, at, "stopped", entries_pb2.EntryStopped(entry=snapshot(entry), capped=entry.capped)
    )


class EntryEvents:
    """Writes entry events to the outbox, in the caller's transaction."""

    def __init__(self, outbox: OutboxRepository, topic: str) -> None:
        self.outbox = outbox
        self.topic = topic

    async def _add(
        self, entry: Entry, actor: uuid.UUID | None, occurred_at: datetime, kind: str, body: Message
    ) -> None:
        event_id, payload = entry_event(entry, actor, occurred_at, kind, body)
        await self.outbox.add_event(
            topic=self.topic, key=str(entry.entry_id), payload=payload, event_id=event_id
        )

    async def stopped(self, entry: Entry, actor: uuid.UUID | None, at: datetime) -> None:
        event_id, payload = stopped_event(entry, actor, at)
        await self.outbox.add_event(
            topic=self.topic, key=str(entry.entry_id), payload=payload, event_id=event_id
        )

    async def edited(self, entry: Entry, actor: uuid.UUID | None, at: datetime) -> None:
        await self._add(entry, actor, at, "edited", entries_pb2.EntryEdited(entry=snapshot(entry)))

    async def deleted(self, entry: Entry, actor: uuid.UUID | None, at: datetime) -> None:
        await self._add(entry, actor, at, "deleted", entries_pb2.EntryDeleted(entry=snapshot(entry)))

    async def claimed(self, entries: list[Entry], actor: uuid.UUID | None, at: datetime) -> None:
        """One event per claimed entry, written in one statement (claims can hold 100k entries)."""
        await self._add_many(entries, actor, at, "claimed", "")

    async def released(
        self, entries: list[Entry], invoice_id: uuid.UUID, actor: uuid.UUID | None, at: datetime
    ) -> None:
        await self._add_many(entries, actor, at, "released", str(invoice_id))

    async def _add_many(
        self, entries: list[Entry], actor: uuid.UUID | None, occurred_at: datetime, kind: str, invoice_id: str
    ) -> None:
        """The bulk twin of `_add`: each event built in place, with no intermediate message."""
        actor_id = str(actor) if actor else ""
        rows = []
        for entry in entries:
            event_id = uuid.uuid4()
            event = entries_pb2.EntryEvent(event_id=str(event_id), actor_user_id=actor_id)
            set_timestamp(event.occurred_at, occurred_at)
            body = getattr(event, kind)
            fill_snapshot(body.entry, entry)
            if invoice_id:
                body.invoice_id = invoice_id
            rows.append((self.topic, str(entry.entry_id), event.SerializeToString(), event_id))
        await self.outbox.add_events(rows)
