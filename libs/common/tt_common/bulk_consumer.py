"""A batch consumer that applies a whole batch with ONE handler call (bulk SQL).

`BatchConsumer` calls its handler once per record, each in a savepoint: simple,
and right when a record's handling may itself turn out to be poison. A read
model that only upserts snapshots can do better: validate every record first
(pure code; a bad one goes to the dead-letter topic), then hand all valid ones
to a handler that writes them in a few multi-row statements. Same guarantees
as BatchConsumer: one transaction per batch, offsets committed only after it
commits, poison dead-lettered with the reason in headers, any other error
rolls the batch back and retries it from the same offsets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

from .db import transaction
from .kafka import CONSUMED, BatchConsumer, Delivery, InvalidMessage
from .telemetry import SpanNames, extract_headers

_tracer = trace.get_tracer(__name__)

BatchHandler = Callable[[AsyncSession, list[Delivery]], Awaitable[None]]


async def _no_per_record_handler(session: AsyncSession, delivery: Delivery) -> None:  # pragma: no cover
    raise NotImplementedError("BulkBatchConsumer applies whole batches")


class BulkBatchConsumer(BatchConsumer):
    """`decode` parses AND validates (raise InvalidMessage for poison); `handle_batch`
    applies every valid delivery of a batch, in order, inside the batch's transaction."""

    def __init__(self, *, handle_batch: BatchHandler, **kwargs: Any) -> None:
        super().__init__(handle=_no_per_record_handler, **kwargs)
        self.handle_batch = handle_batch

    def _decode(self, record: ConsumerRecord) -> tuple[Delivery | None, str | None]:
        ctx = extract_headers(record.headers)
        with _tracer.start_as_current_span(
            SpanNames.KAFKA_PROCESS.format(topic=record.topic), context=ctx, kind=trace.SpanKind.CONSUMER
        ):
            try:
                return Delivery(record, self.decode(record)), None
            except InvalidMessage as exc:
                return None, f"invalid: {exc}"[:500]
            except Exception as exc:  # noqa: BLE001 - any decode failure is poison
                return None, f"undecodable: {exc.__class__.__name__}: {exc}"[:500]

    async def _apply(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        valid: list[Delivery] = []
        dead: list[tuple[ConsumerRecord, str]] = []
        for records in batch.values():
            for record in records:
                delivery, reason = self._decode(record)
                if delivery is not None:
                    valid.append(delivery)
                else:
                    dead.append((record, reason or "invalid"))
        if valid:
            async with transaction(self.sessions) as session:
                await self.handle_batch(session, valid)
        # The database transaction has committed: dead-letter, then commit offsets.
        for record, reason in dead:
            await self._dead_letter(record, reason)
        await self._commit(batch)
        for delivery in valid:
            CONSUMED.labels(delivery.record.topic).inc()
        self.batches_committed += 1
