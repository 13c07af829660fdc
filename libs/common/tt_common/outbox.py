"""Transactional outbox: events commit with the data they describe; a relay
publishes them to Kafka with an idempotent producer.

Each service declares its own `outbox` table with `outbox_table(metadata)` and
creates it in its own Alembic migration. `enqueue` is called by repositories
inside the edge's transaction. `OutboxRelay` runs as a background worker:
NOTIFY wakes it early, polling keeps it going when notifications are lost.
Kafka being down grows the table; nothing is lost.

A row carries its Kafka payload either as bytes (`payload`, built by the
service) or as a JSON `body` plus the name of an `encoder` the relay applies
when it publishes. The second form lets a repository write thousands of events
in one SQL statement (INSERT ... SELECT from the rows it just changed) without
building a protobuf per row in the request: the encoding moves off the request
path into the relay, and the event is still the same message, built from the
same committed snapshot.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from prometheus_client import Counter, Gauge
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .db import transaction
from .kafka import ensure_topics, make_producer, producer_unusable
from .logging import get_logger
from .metrics import MetricNames
from .telemetry import SpanNames, context_from_carrier, inject_headers

log = get_logger(__name__)
_tracer = trace.get_tracer(__name__)

NOTIFY_CHANNEL = "outbox"

# Turns an outbox row's JSON body into the Kafka payload; registered with the relay by name.
Encoder = Callable[[Any], bytes]

PUBLISHED = Counter(MetricNames.OUTBOX_PUBLISHED, "Outbox events published to Kafka", ["topic"])
PENDING = Gauge(MetricNames.OUTBOX_PENDING, "Outbox events not yet published")
OLDEST_PENDING_AGE = Gauge(
    MetricNames.OUTBOX_OLDEST_PENDING_AGE, "Age of the oldest unpublished outbox event (0 when none)"
)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("key", Text, nullable=True),
        # The payload as published, or null when the relay builds it from `body` with `encoder`.
        Column("payload", LargeBinary, nullable=True),
        Column("encoder", Text, nullable=True),
        Column("body", JSONB, nullable=True),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        CheckConstraint(
            "payload IS NOT NULL OR (encoder IS NOT NULL AND body IS NOT NULL)", name="payload_or_body"
        ),
    )


def trace_headers() -> dict[str, str]:
    """The current trace context as an outbox row's `headers` (the relay continues the trace)."""
    return {k: v.decode() for k, v in inject_headers()}


async def enqueue(
    session: AsyncSession,
    table: Table,
    *,
    topic: str,
    payload: bytes,
    key: str | None,
    event_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Add an event to the outbox in the caller's transaction (published after commit)."""
    event_id = event_id or uuid.uuid4()
    await session.execute(
        table.insert().values(
            event_id=event_id, topic=topic, key=key, payload=payload, headers=trace_headers()
        )
    )
    # Delivered at commit (and dropped on rollback): wakes the relay early.
    await notify_relay(session)
    return event_id


async def notify_relay(session: AsyncSession) -> None:
    """Wake the relay when the transaction commits (for rows inserted by a repository's own SQL)."""
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


class UnknownEncoder(RuntimeError):
    """An outbox row names an encoder this relay was not given: a deployment bug, never skipped."""


class OutboxRelay:
    """Publishes unpublished outbox rows in id order, then marks them published.

    Rows are locked with FOR UPDATE SKIP LOCKED, so several replicas can run;
    each row is marked only after Kafka acknowledged it (acks=all). A crash
    after the ack and before the mark republishes the row: consumers dedupe on
    the event id, which is why every event carries one. Rows written as a JSON
    body are encoded here by the named encoder; a row whose encoder is missing
    stops the relay (retried, logged) rather than being skipped or reordered.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        producer: AIOKafkaProducer,
        listen_dsn: str | None = None,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retention: timedelta = timedelta(days=7),
        publish_timeout_s: float = 30.0,
        encoders: Mapping[str, Encoder] | None = None,
    ) -> None:
        self.publish_timeout_s = publish_timeout_s
        self.encoders = dict(encoders or {})
        self.sessions = sessions
        self.table = table
        self.producer = producer
        self.listen_dsn = listen_dsn
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.retention = retention
        self._wakeup = asyncio.Event()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen()) if self.listen_dsn else None
        backoff = 0.5
        last_cleanup = 0.0
        try:
            while True:
                try:
                    published = await self.publish_batch()
                    backoff = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Kafka or PostgreSQL down: keep the rows, retry
                    if producer_unusable(self.producer, exc):
                        # Retrying with this producer would fail forever: end the run, rows kept;
                        # `run_relay`'s supervisor starts it again with a fresh producer.
                        log.warning("outbox relay's producer cannot send again; restarting", error=repr(exc))
                        raise
                    log.warning("outbox relay failed; retrying", error=str(exc), backoff_s=backoff)
                    # Kafka being down is when the backlog matters most: keep the gauges current.
                    await self.observe_backlog()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 15.0)
                    continue
                await self.observe_backlog()
                loop_time = asyncio.get_running_loop().time()
                if loop_time - last_cleanup > 600:
                    await self._cleanup()
                    last_cleanup = loop_time
                if published < self.batch_size:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), self.poll_interval_s)
                    except TimeoutError:
                        pass
        finally:
            if listener:
                listener.cancel()

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows were published."""
        t = self.table
        async with transaction(self.sessions) as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.topic, t.c.key, t.c.payload, t.c.encoder, t.c.body, t.c.headers)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            # Bounded: a broker that vanishes mid-batch must not hold the row locks forever.
            async with asyncio.timeout(self.publish_timeout_s):
                await self._send(rows)
            await session.execute(
                update(t).where(t.c.id.in_([r.id for r in rows])).values(published_at=func.now())
            )
        for topic, count in collections.Counter(row.topic for row in rows).items():
            PUBLISHED.labels(topic).inc(count)
        return len(rows)

    async def _send(self, rows: Sequence[Any]) -> None:
        """Send a batch: one producer span per run of rows from one origin (topic and request).

        Each event continues the trace of the request that wrote it: its Kafka
        headers carry the context of a producer span parented on that request, so
        the consumer's span joins the same trace. Consecutive rows written by one
        request (a claim writes 100k) share that span and their headers, instead
        of paying a span, an extract and an inject per row.
        """
        with _tracer.start_as_current_span(SpanNames.OUTBOX_RELAY) as span:
            span.set_attribute("outbox.batch_size", len(rows))
            futures = []
            # Runs of consecutive rows, not groups: the batch is sent in id order (one key's
            # events stay in order).
            for (topic, carrier), run in groupby(rows, key=lambda r: (r.topic, r.headers or {})):
                group = list(run)
                ctx = context_from_carrier(carrier)
                with _tracer.start_as_current_span(
                    SpanNames.KAFKA_PUBLISH.format(topic=topic), context=ctx, kind=trace.SpanKind.PRODUCER
                ) as publish:
                    publish.set_attribute("messaging.batch.message_count", len(group))
                    headers = inject_headers()
                    for row in group:
                        key = row.key.encode() if row.key else None
                        futures.append(
                            await self.producer.send(topic, self.payload(row), key=key, headers=headers)
                        )
            # send() only enqueues; the acks (acks=all) arrive through these futures.
            await asyncio.gather(*futures)

    def payload(self, row: Any) -> bytes:
        """The bytes to publish for an outbox row: stored, or encoded now from its body."""
        if row.payload is not None:
            return bytes(row.payload)
        try:
            encode = self.encoders[row.encoder]
        except KeyError:
            raise UnknownEncoder(f"outbox row {row.id}: no encoder named {row.encoder!r}") from None
        return encode(row.body)

    async def observe_backlog(self) -> None:
        """Set the backlog gauges: one query, over the partial index of unpublished rows."""
        t = self.table
        try:
            async with self.sessions() as session:
                count, age = (
                    await session.execute(
                        select(
                            func.count(),
                            # The database's clock, like created_at's default: no skew with ours.
                            func.coalesce(func.extract("epoch", func.now() - func.min(t.c.created_at)), 0),
                        ).where(t.c.published_at.is_(None))
                    )
                ).one()
        except Exception as exc:  # noqa: BLE001 - best effort; the relay itself reports failures
            log.debug("outbox backlog not observed", error=str(exc))
            return
        PENDING.set(count)
        OLDEST_PENDING_AGE.set(max(float(age), 0.0))

    async def pending(self) -> int:
        async with self.sessions() as session:
            return (
                await session.execute(select(func.count()).where(self.table.c.published_at.is_(None)))
            ).scalar_one()

    async def _cleanup(self) -> None:
        cutoff = datetime.now(UTC) - self.retention
        try:
            async with transaction(self.sessions) as session:
                await session.execute(
                    delete(self.table).where(
                        self.table.c.published_at.is_not(None), self.table.c.published_at < cutoff
                    )
                )
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort
            log.warning("outbox cleanup failed", error=str(exc))

    async def _listen(self) -> None:
        """Wake the relay on NOTIFY; reconnect forever (polling covers the gaps)."""
        import psycopg

        assert self.listen_dsn is not None
        dsn = self.listen_dsn.replace("postgresql+psycopg://", "postgresql://")
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    async for _ in conn.notifies():
                        self._wakeup.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.info("outbox listener reconnecting", error=str(exc))
                await asyncio.sleep(2.0)


async def run_relay(
    settings: Any,
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    *,
    topics: list[str],
    client_id: str,
    encoders: Mapping[str, Encoder] | None = None,
) -> None:
    """A service's relay worker: make sure its topics exist, then publish until cancelled.

    `settings` provides kafka_bootstrap_servers, kafka_max_message_bytes (the largest event
    it publishes; its topics are created to accept it) and database_url (for LISTEN);
    `encoders` are the service's encoders for rows written as JSON bodies.
    A fresh producer per attempt: one whose start failed (Kafka down) is not reusable,
    nor is one that can never send again (`producer_unusable`: the relay ends its run);
    the runner's supervisor restarts this worker with backoff.
    """
    limit = settings.kafka_max_message_bytes
    await ensure_topics(settings.kafka_bootstrap_servers, topics, max_message_bytes=limit)
    producer = make_producer(settings.kafka_bootstrap_servers, client_id, max_message_bytes=limit)
    await producer.start()
    try:
        await OutboxRelay(
            sessions=sessions,
            table=table,
            producer=producer,
            listen_dsn=settings.database_url,
            encoders=encoders,
        ).run()
    finally:
        await producer.stop()
