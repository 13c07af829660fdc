"""aiokafka helpers: an idempotent producer, and a batch consumer that commits
offsets only after the database transaction that applied the batch commits.

Lessons from getsentry/arroyo: manual commits by a count/time policy, bounded
in-flight work, poison messages to a dead-letter topic with the reason in its
headers, retryable errors retried (never dead-lettered), handlers idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.structs import OffsetAndMetadata
from opentelemetry import trace
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .db import transaction
from .logging import get_logger
from .metrics import MetricNames
from .settings import KAFKA_DEFAULT_MAX_MESSAGE_BYTES
from .telemetry import SpanNames, extract_headers, inject_headers

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

log = get_logger(__name__)
_tracer = trace.get_tracer(__name__)

DEAD_LETTERED = Counter(
    MetricNames.KAFKA_DEAD_LETTERED, "Messages sent to a dead-letter topic", ["topic", "reason"]
)
CONSUMED = Counter(MetricNames.KAFKA_CONSUMED, "Messages applied by a consumer", ["topic"])
LAG = Gauge(
    MetricNames.KAFKA_CONSUMER_LAG,
    "Messages in a partition after this consumer's position (high watermark minus next offset)",
    ["topic", "partition"],
)


# Errors no retry with the same producer cures: OutOfOrderSequenceNumber (a broker restarted
# while a batch was in flight; aiokafka never resets that partition's sequence, so every later
# batch there fails alike), a fenced or closed producer. Its owner must replace the producer.
PRODUCER_UNUSABLE: tuple[type[Exception], ...] = (
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
    ProducerClosed,
)


def producer_unusable(producer: AIOKafkaProducer, exc: BaseException) -> bool:
    """Whether `producer` can never send again, after a send failed with `exc`.

    Besides PRODUCER_UNUSABLE: a producer whose sender task ended (aiokafka wraps an
    unexpected error there as a plain KafkaError, and every later send fails with it).
    """
    if isinstance(exc, PRODUCER_UNUSABLE):
        return True
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


# Room for what a dead letter adds to the record it carries (its dlq-* headers).
DEAD_LETTER_HEADROOM_BYTES = 64 * 1024


def dead_letter_limit(max_message_bytes: int) -> int:
    """The message limit of a dead-letter producer and topic: the record's, plus the headers' room."""
    return max_message_bytes + DEAD_LETTER_HEADROOM_BYTES


def make_producer(
    bootstrap_servers: str, client_id: str, *, max_message_bytes: int = KAFKA_DEFAULT_MAX_MESSAGE_BYTES
) -> AIOKafkaProducer:
    """Idempotent producer: acks=all, so a retried send never duplicates or reorders.

    A message over `max_message_bytes` is refused before it is sent (MessageSizeTooLargeError)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=15_000,
        max_request_size=max_message_bytes,
    )


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes,
    *,
    key: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> Any:
    """Send one message with the current trace context in its headers; wait for the ack."""
    with _tracer.start_as_current_span(
        SpanNames.KAFKA_PUBLISH.format(topic=topic), kind=trace.SpanKind.PRODUCER
    ):
        all_headers = [*(headers or []), *inject_headers()]
        return await producer.send_and_wait(
            topic, value, key=key.encode() if key else None, headers=all_headers
        )


class InvalidMessage(Exception):
    """The message can never be applied (undecodable, violates the schema): dead-letter it."""


@dataclass
class Delivery:
    """One decoded message, handed to the handler inside the batch's transaction."""

    record: ConsumerRecord
    payload: Any


Decoder = Callable[[ConsumerRecord], Any]
Handler = Callable[[AsyncSession, Delivery], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[Delivery]], Awaitable[None]]


class BatchConsumer:
    """Consume topics in batches; apply each batch in one transaction; then commit offsets.

    Two ways to apply a batch, one of which is given:
    - `handle`: once per record, each in a savepoint, for handlers that may
      themselves find a record to be poison;
    - `handle_batch`: once per batch with every valid delivery, for read models
      that write in a few multi-row statements; `decode` then validates fully.

    A record whose decode (or per-record handling) raises InvalidMessage, or that
    cannot be decoded at all, goes to `dead_letter_topic` with the reason in
    headers, and the partition moves on. Any other exception rolls the batch back
    and retries it from the same offsets after a backoff, so nothing is skipped
    while a dependency is down.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: list[str],
        sessions: async_sessionmaker[AsyncSession],
        decode: Decoder,
        dead_letter_topic: str,
        handle: Handler | None = None,
        handle_batch: BatchHandler | None = None,
        max_batch: int = 500,
        max_wait_ms: int = 500,
        client_id: str | None = None,
        max_message_bytes: int = KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.topics = topics
        self.sessions = sessions
        if (handle is None) == (handle_batch is None):
            raise TypeError("BatchConsumer needs exactly one of handle or handle_batch")
        self.decode = decode
        self.handle = handle
        self.handle_batch = handle_batch
        self.dead_letter_topic = dead_letter_topic
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id or group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=max_batch,
        )
        # A dead letter carries the record it replaces, plus the reason in its headers.
        self.producer = make_producer(
            bootstrap_servers, f"{group_id}-dlq", max_message_bytes=dead_letter_limit(max_message_bytes)
        )
        self.batches_committed = 0
        self._lag_reported: set[TopicPartition] = set()

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        try:
            backoff = 0.2
            while True:
                batch = await self.consumer.getmany(timeout_ms=self.max_wait_ms, max_records=self.max_batch)
                if not batch:
                    continue
                try:
                    await self._apply(batch)
                    backoff = 0.2
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if producer_unusable(self.producer, exc):
                        # A dead-letter producer that cannot send again: this consumer ends with its
                        # offsets uncommitted, and its worker's supervisor starts a fresh one.
                        raise
                    log.exception("batch failed; will retry from the same offsets", backoff_s=backoff)
                    for tp, records in batch.items():
                        self.consumer.seek(tp, records[0].offset)
                    # A consumer stuck on a failing batch falls behind: the gauge must say so.
                    self._record_lag({tp: records[0].offset for tp, records in batch.items()})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def _apply(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [record for part in batch.values() for record in part]
        dead: list[tuple[ConsumerRecord, str]] = []
        applied: list[ConsumerRecord] = []
        if self.handle_batch is not None:
            valid: list[Delivery] = []
            for record in records:
                with self._span(record):
                    delivery, reason = self._decode(record)
                if delivery is None:
                    dead.append((record, reason or "invalid"))
                else:
                    valid.append(delivery)
            if valid:
                async with transaction(self.sessions) as session:
                    await self.handle_batch(session, valid)
            applied = [d.record for d in valid]
        else:
            async with transaction(self.sessions) as session:
                for record in records:
                    reason = await self._apply_one(session, record)
                    if reason is None:
                        applied.append(record)
                    else:
                        dead.append((record, reason))
        # The database transaction has committed: dead-letter, then commit offsets.
        for record, reason in dead:
            await self._dead_letter(record, reason)
        await self._commit(batch)
        for record in applied:
            CONSUMED.labels(record.topic).inc()
        self.batches_committed += 1

    async def _commit(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Commit the offsets after the batch; then report each partition's lag."""
        positions = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        await self.consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in positions.items()})
        self._record_lag(positions)

    def _record_lag(self, positions: dict[TopicPartition, int]) -> None:
        """Lag = high watermark (from the latest fetch, no extra request) minus the next offset.

        Partitions handed to another consumer in a rebalance drop out of the
        gauge, so summing over replicas never counts a partition twice.
        """
        assigned = self.consumer.assignment()
        for tp, position in positions.items():
            highwater = self.consumer.highwater(tp) if tp in assigned else None
            if highwater is not None:
                LAG.labels(tp.topic, str(tp.partition)).set(max(highwater - position, 0))
                self._lag_reported.add(tp)
        for tp in self._lag_reported - assigned:
            with contextlib.suppress(KeyError):  # another consumer in this process removed it
                LAG.remove(tp.topic, str(tp.partition))
        self._lag_reported &= assigned

    @staticmethod
    def _span(record: ConsumerRecord) -> contextlib.AbstractContextManager[trace.Span]:
        """The consumer span of one record, continuing the producer's trace from its headers."""
        return _tracer.start_as_current_span(
            SpanNames.KAFKA_PROCESS.format(topic=record.topic),
            context=extract_headers(record.headers),
            kind=trace.SpanKind.CONSUMER,
        )

    def _decode(self, record: ConsumerRecord) -> tuple[Delivery | None, str | None]:
        """The delivery, or None with the dead-letter reason."""
        try:
            return Delivery(record, self.decode(record)), None
        except InvalidMessage as exc:
            return None, f"invalid: {exc}"[:500]
        except Exception as exc:  # noqa: BLE001 - any decode failure is poison
            return None, f"undecodable: {exc.__class__.__name__}: {exc}"[:500]

    async def _apply_one(self, session: AsyncSession, record: ConsumerRecord) -> str | None:
        assert self.handle is not None
        with self._span(record):
            delivery, reason = self._decode(record)
            if delivery is None:
                return reason
            try:
                # A savepoint, so a poison message's partial writes vanish alone.
                async with session.begin_nested():
                    await self.handle(session, delivery)
            except InvalidMessage as exc:
                return f"invalid: {exc}"[:500]
            return None

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        DEAD_LETTERED.labels(record.topic, reason.split(":", 1)[0]).inc()
        log.warning(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
        )
        headers = [
            *(record.headers or ()),
            ("dlq-reason", reason.encode()),
            ("dlq-source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ("dlq-at", str(time.time()).encode()),
        ]
        await self.producer.send_and_wait(
            self.dead_letter_topic, record.value, key=record.key, headers=headers
        )


async def ensure_topics(
    bootstrap_servers: str,
    topics: list[str],
    *,
    partitions: int = 3,
    max_message_bytes: int | None = None,
) -> None:
    """Create missing topics (single-node defaults locally; real clusters set their own).

    `max_message_bytes` above Kafka's default sets a new topic's `max.message.bytes` (else it
    follows the broker's), and raises it on a topic that exists with less: a consumer that
    started first may have created the topic at the broker's default. A limit is never lowered."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        raised = max_message_bytes is not None and max_message_bytes > KAFKA_DEFAULT_MAX_MESSAGE_BYTES
        configs = {"max.message.bytes": str(max_message_bytes)} if raised else {}
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name=t, num_partitions=partitions, replication_factor=1, topic_configs=configs)
                    for t in missing
                ]
            )
            created = []
            for result in response.to_object()["topic_errors"]:
                topic, error_code = result["topic"], result["error_code"]
                if error_code == 0:
                    created.append(topic)
                elif error_code == TopicAlreadyExistsError.errno:
                    existing.add(topic)  # another process created it since the listing
                else:
                    log.warning("kafka topic not created", topic=topic, error=result.get("error_message"))
            if created:
                log.info("kafka topics created", topics=created)
        if raised:
            assert max_message_bytes is not None
            await _raise_message_limits(admin, [t for t in topics if t in existing], max_message_bytes)
    finally:
        await admin.close()


# DescribeConfigs' config_source for a value set on the topic itself (KIP-226; version 1 on).
_TOPIC_OVERRIDE = 1


async def _raise_message_limits(admin: AIOKafkaAdminClient, topics: list[str], limit: int) -> None:
    """Raise `max.message.bytes` to `limit` on those of `topics` that accept less.

    AlterConfigs (aiokafka has no incremental form) replaces a topic's overrides as a whole, so
    the overrides the topic has (retention, say) are sent again with the new limit; a change an
    operator makes between the two requests is lost. Nothing here stops the service: a topic
    whose overrides cannot all be read (a sensitive one, or a broker older than Kafka 1.1), a
    cluster that refuses the change, or one that cannot be asked, is logged and left as it is.
    Its relay then holds an event over the topic's limit in the outbox, as it does when the
    producer's own limit is too low."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    if not topics:
        return
    alter: dict[str, tuple[int, ConfigResource]] = {}
    refused: set[str] = set()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
        for response in described:
            for resource in response.to_object()["resources"]:
                topic = resource["resource_name"]
                if resource["error_code"]:
                    log.warning("kafka topic limit not read", topic=topic, error=resource["error_message"])
                    continue
                entries = resource["config_entries"]
                accepted = next(
                    int(e["config_value"]) for e in entries if e["config_names"] == "max.message.bytes"
                )
                if accepted >= limit:
                    continue
                if response.API_VERSION == 0:  # no config_source: overrides cannot be told apart
                    log.warning("kafka topic limit not raised: the broker is too old", topic=topic)
                    continue
                overrides = [e for e in entries if e["config_source"] == _TOPIC_OVERRIDE]
                if any(e["is_sensitive"] for e in overrides):  # their values are not returned
                    log.warning("kafka topic limit not raised: it has a sensitive override", topic=topic)
                    continue
                configs = {e["config_names"]: e["config_value"] for e in overrides}
                configs["max.message.bytes"] = str(limit)
                alter[topic] = accepted, ConfigResource(ConfigResourceType.TOPIC, topic, configs)
        if not alter:
            return
        for response in await admin.alter_configs([resource for _, resource in alter.values()]):
            for resource in response.to_object()["resources"]:
                if resource["error_code"]:
                    refused.add(resource["resource_name"])
                    log.warning(
                        "kafka topic limit not raised: raise its max.message.bytes",
                        topic=resource["resource_name"],
                        limit=limit,
                        error=resource["error_message"],
                    )
    except KafkaError as exc:
        log.warning("kafka topic limits not raised", topics=topics, limit=limit, error=repr(exc))
        return
    for topic, (accepted, _) in alter.items():
        if topic not in refused:
            log.info("kafka topic limit raised", topic=topic, accepted=accepted, limit=limit)
