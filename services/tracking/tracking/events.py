"""Entry events: the protobuf payloads tracking puts in its outbox.

Every event carries a fresh event id (consumers dedupe on it), the time it
occurred, who caused it, and the full entry snapshot with its version
(consumers apply "last version wins"). The Kafka key is the entry id, so one
entry's events stay in order on one partition. Single-entry events are built
here; claims and releases build theirs in SQL as JSON bodies, which the relay
encodes into the same message (`encode_entry_event`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from timetracking.events.v1 import entries_pb2
from tt_common.timestamps import set_timestamp

from .domain import Entry
from .repository import EntryEventSpec, OutboxRepository

# Claims and releases write their events as JSON bodies in SQL (one statement for
# 100k entries); the outbox relay turns each into this protobuf with `encode_entry_event`.
ENTRY_EVENT_ENCODER = "tracking.entry-event.v1"


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


def fill_snapshot_from_json(msg: entries_pb2.TimeEntrySnapshot, snap: dict[str, Any]) -> None:
    """`fill_snapshot` from `Entry.snapshot()`'s JSON form (as the claim's SQL builds it)."""
    msg.entry_id = snap["entry_id"]
    msg.user_id = snap["user_id"]
    msg.project_id = snap["project_id"]
    msg.task_id = snap["task_id"] or ""
    msg.description = snap["description"]
    msg.duration_seconds = snap["duration_seconds"] or 0
    msg.is_billable = snap["is_billable"]
    msg.hourly_rate = snap["hourly_rate"]
    msg.currency = snap["currency"]
    msg.tags.extend(snap["tags"])
    msg.invoice_id = snap["invoice_id"] or ""
    msg.version = snap["version"]
    msg.capped = snap["capped"]
    set_timestamp(msg.start_time, datetime.fromisoformat(snap["start_time"]))
    if snap["end_time"] is not None:
        set_timestamp(msg.end_time, datetime.fromisoformat(snap["end_time"]))
    set_timestamp(msg.created_at, datetime.fromisoformat(snap["created_at"]))
    set_timestamp(msg.updated_at, datetime.fromisoformat(snap["updated_at"]))


def encode_entry_event(body: dict[str, Any]) -> bytes:
    """The outbox relay's encoder for entry events written as JSON bodies (claims and releases).

    body: event_id, occurred_at (ISO 8601), actor_user_id (or null), kind (the
    EntryEvent oneof field), invoice_id (null, or the invoice a release left),
    entry (an `Entry.snapshot()`).
    """
    event = entries_pb2.EntryEvent(event_id=body["event_id"], actor_user_id=body["actor_user_id"] or "")
    set_timestamp(event.occurred_at, datetime.fromisoformat(body["occurred_at"]))
    kind = getattr(event, body["kind"])
    fill_snapshot_from_json(kind.entry, body["entry"])
    if body["invoice_id"]:
        kind.invoice_id = body["invoice_id"]
    return event.SerializeToString()


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

    @property
    def bulk(self) -> EntryEventSpec:
        """Where bulk moves (claims, releases) write their events, encoded later by the relay."""
        return EntryEventSpec(topic=self.topic, encoder=ENTRY_EVENT_ENCODER)

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
