"""Reporting's Kafka consumer: decode by topic, validate, apply in the batch's transaction.

Decoding parses AND validates (pure code): poison raises InvalidMessage and goes
to the dead-letter topic before anything is written. A batch's valid records
are then applied together in a few multi-row upserts (BatchConsumer's handle_batch).
Entry and directory snapshots are applied "last version wins" (repository.py),
so duplicates and replays are no-ops without an inbox; pipeline probes, which
have no version, are deduplicated on their event id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from timetracking.events.v1 import directory_pb2, entries_pb2, system_pb2
from tt_common.inbox import first_delivery
from tt_common.kafka import Delivery, InvalidMessage
from tt_common.metrics import MetricNames

from . import read_model
from .config import ReportingSettings
from .models import READ_MODEL_TABLES, processed_events
from .repository import STREAM_ORDERED, ProbeRepository, ReadModelRepository

EVENT_APPLY_LAG = Histogram(
    MetricNames.REPORTING_EVENT_APPLY_LAG,
    "From an event's occurred_at to reporting applying it",
    ["table"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


@dataclass(frozen=True)
class Probe:
    event_id: uuid.UUID
    probe_id: uuid.UUID
    emitted_at: datetime
    note: str


def decoder_for(settings: ReportingSettings) -> Callable[[ConsumerRecord], object]:
    """Parse and validate by topic: a Change (entry or directory row), None (ignored), or a Probe.

    Raises InvalidMessage for poison, so it is dead-lettered before any write.
    """

    def decode(record: ConsumerRecord) -> object:
        if record.topic == settings.topic_entries:
            return read_model.entry_change(
                read_model.parse(entries_pb2.EntryEvent(), record.value, "EntryEvent")
            )
        if record.topic == settings.topic_directory:
            event = read_model.parse(directory_pb2.DirectoryEvent(), record.value, "DirectoryEvent")
            return read_model.directory_change(event)
        if record.topic == settings.topic_system:
            return _probe(read_model.parse(system_pb2.PipelineProbe(), record.value, "PipelineProbe"))
        raise InvalidMessage(f"no decoder for topic {record.topic}")

    return decode


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidMessage(f"{field} is not a UUID: {value!r}") from exc


def _probe(payload: system_pb2.PipelineProbe) -> Probe:
    if not payload.HasField("emitted_at"):
        raise InvalidMessage("emitted_at is missing")
    return Probe(
        _uuid(payload.event_id, "event_id"),
        _uuid(payload.probe_id, "probe_id"),
        payload.emitted_at.ToDatetime(tzinfo=UTC),
        read_model.text(payload.note, "note"),
    )


async def handle_batch(session: AsyncSession, deliveries: list[Delivery]) -> None:
    """Apply a batch of validated deliveries in a few multi-row upserts (one per table).

    Within the batch, only the snapshot that would win anyway is written: the
    highest version per row (the last one in stream order for memberships), so
    the result equals applying the records one by one.
    """
    winners: dict[str, dict[tuple, read_model.Change]] = {}
    for delivery in deliveries:
        payload = delivery.payload
        if isinstance(payload, read_model.Change):
            rows = winners.setdefault(payload.table, {})
            key = tuple(payload.values[k] for k in READ_MODEL_TABLES[payload.table])
            current = rows.get(key)
            if (
                current is None
                or payload.table in STREAM_ORDERED
                or (payload.values["version"] > current.values["version"])
            ):
                rows[key] = payload
        elif isinstance(payload, Probe):
            if await first_delivery(session, processed_events, payload.event_id, delivery.record.topic):
                await ProbeRepository(session).record(payload.probe_id, payload.emitted_at, payload.note)
    repo = ReadModelRepository(session)
    for table, rows in winners.items():
        await repo.upsert_many(table, [change.values for change in rows.values()])
    now = time.time()
    for table, rows in winners.items():
        for change in rows.values():
            if change.occurred_at is not None:
                EVENT_APPLY_LAG.labels(table).observe(max(now - change.occurred_at.timestamp(), 0.0))
