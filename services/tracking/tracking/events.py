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

from .domain import Entry
from .repository import OutboxRepository


def snapshot(entry: Entry) -> entries_pb2.TimeEntrySnapshot:
    msg = entries_pb2.TimeEntrySnapshot(
        entry_id=str(entry.entry_id),
        user_id=str(entry.user_id),
        project_id=str(entry.project_id),
        task_id=str(entry.task_id) if entry.task_id else "",
        description=entry.description,
        duration_seconds=entry.duration_seconds or 0,
        is_billable=entry.is_billable,
        hourly_rate=format(entry.hourly_rate, "f"),
        currency=entry.currency,
        tags=list(entry.tags),
        invoice_id=str(entry.invoice_id) if entry.invoice_id else "",
        version=entry.version,
        capped=entry.capped,
    )
    msg.start_time.FromDatetime(entry.start_time)
    if entry.end_time is not None:
        msg.end_time.FromDatetime(entry.end_time)
    msg.created_at.FromDatetime(entry.created_at)
    msg.updated_at.FromDatetime(entry.updated_at)
    return msg


class EntryEvents:
    """Writes entry events to the outbox, in the caller's transaction."""

    def __init__(self, outbox: OutboxRepository, topic: str) -> None:
        self.outbox = outbox
        self.topic = topic

    async def _add(
        self, entry: Entry, actor: uuid.UUID | None, occurred_at: datetime, kind: str, body: Message
    ) -> None:
        event_id = uuid.uuid4()
        event = entries_pb2.EntryEvent(event_id=str(event_id), actor_user_id=str(actor) if actor else "")
        event.occurred_at.FromDatetime(occurred_at)
        getattr(event, kind).CopyFrom(body)
        await self.outbox.add_event(
            topic=self.topic, key=str(entry.entry_id), payload=event.SerializeToString(), event_id=event_id
        )

    async def stopped(self, entry: Entry, actor: uuid.UUID | None, at: datetime) -> None:
        body = entries_pb2.EntryStopped(entry=snapshot(entry), capped=entry.capped)
        await self._add(entry, actor, at, "stopped", body)

    async def edited(self, entry: Entry, actor: uuid.UUID | None, at: datetime) -> None:
        await self._add(entry, actor, at, "edited", entries_pb2.EntryEdited(entry=snapshot(entry)))

    async def deleted(self, entry: Entry, actor: uuid.UUID | None, at: datetime) -> None:
        await self._add(entry, actor, at, "deleted", entries_pb2.EntryDeleted(entry=snapshot(entry)))

    async def claimed(self, entries: list[Entry], actor: uuid.UUID | None, at: datetime) -> None:
        """One event per claimed entry, written in one statement (claims can hold 100k entries)."""
        await self._add_many(
            [(e, "claimed", entries_pb2.EntriesClaimed(entry=snapshot(e))) for e in entries], actor, at
        )

    async def released(
        self, entries: list[Entry], invoice_id: uuid.UUID, actor: uuid.UUID | None, at: datetime
    ) -> None:
        await self._add_many(
            [
                (e, "released", entries_pb2.EntriesReleased(entry=snapshot(e), invoice_id=str(invoice_id)))
                for e in entries
            ],
            actor,
            at,
        )

    async def _add_many(
        self, items: list[tuple[Entry, str, Message]], actor: uuid.UUID | None, occurred_at: datetime
    ) -> None:
        rows = []
        for entry, kind, body in items:
            event_id = uuid.uuid4()
            event = entries_pb2.EntryEvent(event_id=str(event_id), actor_user_id=str(actor) if actor else "")
            event.occurred_at.FromDatetime(occurred_at)
            getattr(event, kind).CopyFrom(body)
            rows.append((self.topic, str(entry.entry_id), event.SerializeToString(), event_id))
        await self.outbox.add_events(rows)
