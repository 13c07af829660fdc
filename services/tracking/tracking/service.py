"""Tracking's domain rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from timetracking.events.v1 import system_pb2
from tt_common.errors import InvalidArgument

from .repository import OutboxRepository

MAX_PROBE_NOTE = 200


@dataclass(frozen=True)
class EmittedProbe:
    probe_id: uuid.UUID
    emitted_at: datetime


async def emit_pipeline_probe(outbox: OutboxRepository, *, topic: str, note: str) -> EmittedProbe:
    """Queue a PipelineProbe event; it reaches Kafka through the outbox relay."""
    if len(note) > MAX_PROBE_NOTE:
        raise InvalidArgument.field("note", f"at most {MAX_PROBE_NOTE} characters")
    probe_id, event_id = uuid.uuid4(), uuid.uuid4()
    emitted_at = datetime.now(UTC)
    event = system_pb2.PipelineProbe(probe_id=str(probe_id), event_id=str(event_id), note=note)
    event.emitted_at.FromDatetime(emitted_at)
    await outbox.add_event(
        topic=topic, key=str(probe_id), payload=event.SerializeToString(), event_id=event_id
    )
    return EmittedProbe(probe_id, emitted_at)
