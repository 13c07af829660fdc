"""Reporting's Kafka consumer: decode, dedupe on event id, apply in the batch's transaction."""

from __future__ import annotations

import uuid
from datetime import UTC

from aiokafka import ConsumerRecord
from google.protobuf.message import DecodeError
from sqlalchemy.ext.asyncio import AsyncSession

from timetracking.events.v1 import system_pb2
from tt_common.inbox import first_delivery
from tt_common.kafka import Delivery, InvalidMessage

from .config import ReportingSettings
from .models import processed_events
from .repository import ProbeRepository


def decoder_for(settings: ReportingSettings):
    def decode(record: ConsumerRecord) -> object:
        if record.topic == settings.topic_system:
            probe = system_pb2.PipelineProbe()
            try:
                probe.ParseFromString(record.value or b"")
            except DecodeError as exc:
                raise InvalidMessage(f"not a PipelineProbe: {exc}") from exc
            return probe
        raise InvalidMessage(f"no decoder for topic {record.topic}")

    return decode


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidMessage(f"{field} is not a UUID: {value!r}") from exc


async def handle(session: AsyncSession, delivery: Delivery) -> None:
    payload = delivery.payload
    if isinstance(payload, system_pb2.PipelineProbe):
        event_id = _uuid(payload.event_id, "event_id")
        probe_id = _uuid(payload.probe_id, "probe_id")
        if not payload.HasField("emitted_at"):
            raise InvalidMessage("emitted_at is missing")
        if await first_delivery(session, processed_events, event_id, delivery.record.topic):
            await ProbeRepository(session).record(
                probe_id, payload.emitted_at.ToDatetime(tzinfo=UTC), payload.note
            )
