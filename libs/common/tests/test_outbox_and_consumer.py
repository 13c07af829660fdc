"""Outbox relay and batch consumer against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, OutOfOrderSequenceNumber
from opentelemetry import trace
from prometheus_client import REGISTRY
from sqlalchemy import Column, MetaData, Table, Text, select, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tt_common.db import create_engine, make_metadata, session_factory, transaction
from tt_common.inbox import first_delivery, processed_events_table
from tt_common.kafka import BatchConsumer, Delivery, InvalidMessage, ensure_topics, make_producer
from tt_common.metrics import MetricNames
from tt_common.outbox import OutboxRelay, UnknownEncoder, enqueue, notify_relay, outbox_table, trace_headers
from tt_common.telemetry import setup_tracing

metadata: MetaData = make_metadata()
outbox = outbox_table(metadata)
processed = processed_events_table(metadata)
applied = Table("applied", metadata, Column("event_id", UUID(as_uuid=True)), Column("body", Text))


@pytest.fixture
async def sessions(infra) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    db = f"common_{uuid.uuid4().hex[:10]}"
    admin = infra.database_url("postgres", driver="postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    engine = create_engine(infra.database_url(db))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


async def drain(infra, topic: str, expected: int, within_s: float = 60) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(within_s):
            while len(records) < expected:
                for batch in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(batch)
        # Give stragglers (duplicates) a chance to show up.
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_outbox_publishes_committed_events_once_in_order_and_never_rolled_back_ones(
    infra, sessions, unique_topic
) -> None:
    setup_tracing("test")
    with trace.get_tracer("test").start_as_current_span("request that changed entries") as span:
        request_trace_id = format(span.get_span_context().trace_id, "032x")
        async with transaction(sessions) as s:
            for i in range(30):
                await enqueue(s, outbox, topic=unique_topic, key=f"entry-{i % 3}", payload=f"{i}".encode())
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as s:
            await enqueue(s, outbox, topic=unique_topic, key="entry-0", payload=b"rolled back")
            raise RuntimeError("the business transaction failed")

    producer = make_producer(infra.kafka_bootstrap, "test-relay")
    await producer.start()
    try:
        relay = OutboxRelay(sessions=sessions, table=outbox, producer=producer, batch_size=7)
        await relay.observe_backlog()
        assert REGISTRY.get_sample_value(MetricNames.OUTBOX_PENDING) == 30
        assert (REGISTRY.get_sample_value(MetricNames.OUTBOX_OLDEST_PENDING_AGE) or 0) > 0
        while await relay.publish_batch():
            pass
        assert await relay.pending() == 0
        await relay.observe_backlog()
        assert REGISTRY.get_sample_value(MetricNames.OUTBOX_PENDING) == 0
        assert REGISTRY.get_sample_value(MetricNames.OUTBOX_OLDEST_PENDING_AGE) == 0
    finally:
        await producer.stop()

    records = await drain(infra, unique_topic, 30)
    values = [r.value.decode() for r in records]
    assert sorted(values, key=int) == [str(i) for i in range(30)]
    assert "rolled back" not in values
    for key in ("entry-0", "entry-1", "entry-2"):
        per_key = [int(r.value) for r in sorted(records, key=lambda r: r.offset) if r.key == key.encode()]
        assert per_key == sorted(per_key)  # one entry's events stay in order
    # Each event continues the trace of the request that wrote it, across the relay.
    assert all(request_trace_id in dict(r.headers)["traceparent"].decode() for r in records)


async def test_relay_encodes_json_bodies_with_the_named_encoder_in_outbox_order(
    infra, sessions, unique_topic
) -> None:
    """Rows written by SQL as JSON bodies are published as their encoder's bytes, in id order among
    the ready-made payloads; a row naming an unknown encoder stops the relay and stays unpublished."""
    headers = json.dumps(trace_headers())
    async with transaction(sessions) as s:
        for i in range(12):
            if i % 3:
                await enqueue(s, outbox, topic=unique_topic, key="entry-0", payload=f"bytes {i}".encode())
            else:
                # As a repository's INSERT ... SELECT writes them.
                await s.execute(
                    text(
                        "INSERT INTO outbox (event_id, topic, key, encoder, body, headers)"
                        " VALUES (gen_random_uuid(), :topic, 'entry-0', 'test.upper',"
                        " jsonb_build_object('text', CAST(:text AS text)), CAST(:headers AS jsonb))"
                    ),
                    {"topic": unique_topic, "text": f"body {i}", "headers": headers},
                )
        await notify_relay(s)
    # Neither a payload nor a body: the database refuses the row.
    with pytest.raises(IntegrityError, match="ck_outbox_payload_or_body"):
        async with transaction(sessions) as s:
            await s.execute(
                text(
                    "INSERT INTO outbox (event_id, topic, key, encoder)"
                    " VALUES (gen_random_uuid(), 't', 'k', 'x')"
                )
            )

    producer = make_producer(infra.kafka_bootstrap, "test-relay-encoded")
    await producer.start()
    try:
        relay = OutboxRelay(
            sessions=sessions,
            table=outbox,
            producer=producer,
            batch_size=5,
            encoders={"test.upper": lambda body: body["text"].upper().encode()},
        )
        while await relay.publish_batch():
            pass
        assert await relay.pending() == 0

        async with transaction(sessions) as s:
            await s.execute(
                text(
                    "INSERT INTO outbox (event_id, topic, key, encoder, body)"
                    " VALUES (gen_random_uuid(), :topic, 'entry-1', 'test.unknown', '{}'::jsonb)"
                ),
                {"topic": unique_topic},
            )
        with pytest.raises(UnknownEncoder, match=r"test\.unknown"):
            await relay.publish_batch()
        assert await relay.pending() == 1  # kept, not skipped: a deployment with the encoder publishes it
    finally:
        await producer.stop()

    records = sorted(await drain(infra, unique_topic, 12), key=lambda r: r.offset)
    expected = [f"BODY {i}" if i % 3 == 0 else f"bytes {i}" for i in range(12)]
    assert [r.value.decode() for r in records] == expected


def _decode(record) -> dict:
    return json.loads(record.value)  # a ValueError here is "undecodable"


async def test_consumer_dedupes_dead_letters_poison_and_commits_after_the_transaction(
    infra, sessions, unique_topic
) -> None:
    dlq = f"{unique_topic}.dlq"
    failures = {"left": 2}

    async def handle(session: AsyncSession, delivery: Delivery) -> None:
        body = delivery.payload
        if body.get("body") == "flaky" and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database hiccup")  # retryable: the batch is retried, not dead-lettered
        if "event_id" not in body:
            raise InvalidMessage("event_id missing")
        event_id = uuid.UUID(body["event_id"])
        if await first_delivery(session, processed, event_id, delivery.record.topic):
            await session.execute(applied.insert().values(event_id=event_id, body=body["body"]))

    ids = [str(uuid.uuid4()) for _ in range(10)]
    messages = [json.dumps({"event_id": i, "body": f"event {n}"}).encode() for n, i in enumerate(ids)]
    messages.append(messages[3])  # a duplicate delivery
    messages.append(b"\x00 not json")  # undecodable
    messages.append(json.dumps({"body": "no id"}).encode())  # invalid
    messages.append(json.dumps({"event_id": str(uuid.uuid4()), "body": "flaky"}).encode())
    producer = make_producer(infra.kafka_bootstrap, "test-feed")
    await producer.start()
    try:
        for m in messages:
            sent = await producer.send_and_wait(unique_topic, m, key=b"same-partition")
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex}"
    consumer = BatchConsumer(
        bootstrap_servers=infra.kafka_bootstrap,
        group_id=group,
        topics=[unique_topic],
        sessions=sessions,
        decode=_decode,
        handle=handle,
        dead_letter_topic=dlq,
        max_batch=4,
    )
    tp = TopicPartition(unique_topic, sent.partition)
    check = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await check.start()
    task = asyncio.create_task(consumer.run())
    try:
        # Offsets are committed only after the batch's transaction: wait for the last one.
        lag = {"topic": unique_topic, "partition": str(tp.partition)}
        async with asyncio.timeout(60):
            while await check.committed(tp) != len(messages):
                await asyncio.sleep(0.2)
            # Reported right after the commit: caught up, nothing left in the partition.
            while REGISTRY.get_sample_value(MetricNames.KAFKA_CONSUMER_LAG, lag) != 0:
                await asyncio.sleep(0.05)
        dead = await drain(infra, dlq, 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await check.stop()

    async with sessions() as s:
        bodies = sorted((await s.execute(select(applied.c.body))).scalars())
    assert bodies == sorted([f"event {n}" for n in range(10)] + ["flaky"])  # duplicate applied once
    reasons = sorted(dict(r.headers)["dlq-reason"].decode().split(":")[0] for r in dead)
    assert reasons == ["invalid", "undecodable"]
    assert failures["left"] == 0  # the retryable failure was retried, not dead-lettered


async def test_a_relay_whose_producer_cannot_send_again_ends_its_run_and_a_fresh_one_delivers(
    infra, sessions, unique_topic
) -> None:
    """A producer whose sender died fails every send alike (after a broker restart aiokafka's
    idempotent producer can die of OutOfOrderSequenceNumber): retrying with it stalled delivery
    for good. The relay ends its run instead, rows kept, and the next run's producer sends them."""
    async with transaction(sessions) as s:
        for i in range(5):
            await enqueue(s, outbox, topic=unique_topic, key="entry-0", payload=f"{i}".encode())
    dead = make_producer(infra.kafka_bootstrap, "test-relay-dead")
    await dead.start()
    try:
        # The state a dying sender leaves behind (aiokafka's Sender._fail_all does exactly this):
        # every send from now on raises the error that killed it.
        dead._message_accumulator.fail_all(OutOfOrderSequenceNumber())
        relay = OutboxRelay(sessions=sessions, table=outbox, producer=dead, poll_interval_s=0.1)
        with pytest.raises(OutOfOrderSequenceNumber):
            async with asyncio.timeout(10):  # it used to retry with backoff, forever
                await relay.run()
        assert await relay.pending() == 5
    finally:
        await dead.stop()

    fresh = make_producer(infra.kafka_bootstrap, "test-relay-fresh")
    await fresh.start()
    try:
        relay = OutboxRelay(sessions=sessions, table=outbox, producer=fresh)
        assert await relay.publish_batch() == 5
    finally:
        await fresh.stop()
    records = await drain(infra, unique_topic, 5)
    assert sorted(int(r.value) for r in records) == list(range(5))


async def test_a_relay_whose_producer_sender_ended_ends_its_run_too(infra, sessions, unique_topic) -> None:
    """aiokafka wraps an unexpected error in its sender task as a plain KafkaError and the task
    ends: nothing sends again. The relay tells by the task, whatever the error it saw."""
    async with transaction(sessions) as s:
        await enqueue(s, outbox, topic=unique_topic, key="entry-0", payload=b"0")
    producer = make_producer(infra.kafka_bootstrap, "test-relay-ended")
    await producer.start()
    try:
        producer._sender.sender_task.cancel()  # the task ends; sends are queued and never go out
        relay = OutboxRelay(sessions=sessions, table=outbox, producer=producer, publish_timeout_s=1.0)
        running = asyncio.create_task(relay.run())
        done, _ = await asyncio.wait({running}, timeout=20)  # it used to retry with backoff, forever
        if not done:
            running.cancel()
        assert running in done
        assert isinstance(running.exception(), TimeoutError)  # the send it gave up on, re-raised
        assert await relay.pending() == 1
    finally:
        await producer.stop()


async def test_an_event_over_the_message_limit_waits_in_the_outbox_until_the_limit_is_raised(
    infra, sessions, unique_topic
) -> None:
    """Nothing is skipped or reordered: the relay keeps the oversize row, and the rows behind it,
    until the producer's limit (KAFKA_MAX_MESSAGE_BYTES) lets it through; the topic was created
    to accept it."""
    big = b"x" * 1_500_000  # over Kafka's default 1 MiB
    await ensure_topics(
        infra.kafka_bootstrap, [unique_topic], partitions=1, max_message_bytes=4 * 1024 * 1024
    )
    async with transaction(sessions) as s:
        for payload in (b"before", big, b"after"):
            await enqueue(s, outbox, topic=unique_topic, key="entry-1", payload=payload)

    default = make_producer(infra.kafka_bootstrap, "test-relay-default-limit")
    await default.start()
    try:
        relay = OutboxRelay(sessions=sessions, table=outbox, producer=default)
        with pytest.raises(MessageSizeTooLargeError):
            await relay.publish_batch()
        assert await relay.pending() == 3  # the batch is not marked: all three wait
    finally:
        await default.stop()

    raised = make_producer(
        infra.kafka_bootstrap, "test-relay-raised-limit", max_message_bytes=4 * 1024 * 1024
    )
    await raised.start()
    try:
        relay = OutboxRelay(sessions=sessions, table=outbox, producer=raised)
        while await relay.publish_batch():
            pass
        assert await relay.pending() == 0
    finally:
        await raised.stop()

    records = sorted(await drain(infra, unique_topic, 3), key=lambda r: r.offset)
    # "before" may have reached Kafka with the refused batch too: a duplicate, never a loss.
    values = [r.value for r in records]
    assert values[-2:] == [big, b"after"]
    assert set(values) == {b"before", big, b"after"}


async def topic_configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, tuple[str, int]]:
    """The topic's configs: value and source (1: set on the topic)."""
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (resource,) = response.to_object()["resources"]
    return {e["config_names"]: (e["config_value"], e["config_source"]) for e in resource["config_entries"]}


async def message_limit(admin: AIOKafkaAdminClient, topic: str, *, becomes: int | None = None) -> int:
    """The topic's max.message.bytes; with `becomes`, once it shows that value (the broker applies
    a change shortly after the controller accepts it)."""
    async with asyncio.timeout(10):
        while True:
            accepted = int((await topic_configs(admin, topic))["max.message.bytes"][0])
            if becomes is None or accepted == becomes:
                return accepted
            await asyncio.sleep(0.1)


async def test_a_topic_its_consumer_created_first_is_raised_to_the_producers_limit(
    infra, unique_topic
) -> None:
    """Reporting may create the topics it reads before their producer starts, at the broker's
    default limit; the producer's ensure_topics raises it to its KAFKA_MAX_MESSAGE_BYTES, keeps
    the topic's other overrides, and never lowers it."""
    limit = 2 * 1024 * 1024
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        kept = {"retention.ms": "3600000", "segment.ms": "7200000"}  # neither is a default
        await admin.create_topics([NewTopic(unique_topic, 1, 1, topic_configs=kept)])
        await ensure_topics(infra.kafka_bootstrap, [unique_topic], partitions=1)  # as reporting does
        assert await message_limit(admin, unique_topic) < limit

        await ensure_topics(infra.kafka_bootstrap, [unique_topic], partitions=1, max_message_bytes=limit)
        assert await message_limit(admin, unique_topic, becomes=limit) == limit
        configs = await topic_configs(admin, unique_topic)
        assert {name: configs[name] for name in kept} == {name: (value, 1) for name, value in kept.items()}

        await ensure_topics(
            infra.kafka_bootstrap, [unique_topic], partitions=1, max_message_bytes=limit - 1024
        )
        await ensure_topics(infra.kafka_bootstrap, [unique_topic], partitions=1)
        await asyncio.sleep(1)  # a lowering, had one been sent, would show by now
        assert await message_limit(admin, unique_topic) == limit
    finally:
        await admin.close()

    big = b"x" * 1_500_000  # over the broker's default, under the raised limit
    producer = make_producer(infra.kafka_bootstrap, "test-raised-topic", max_message_bytes=limit)
    await producer.start()
    try:
        await producer.send_and_wait(unique_topic, big)
    finally:
        await producer.stop()
    assert [r.value for r in await drain(infra, unique_topic, 1)] == [big]


async def test_a_topic_created_by_its_consumer_at_the_same_moment_is_raised_too(infra) -> None:
    """All services start together (make up, a Helm install): reporting and the producer both find
    the topics missing and both ask to create them; whichever the controller serves first, the
    topics end with the producer's limit."""
    limit = 2 * 1024 * 1024
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        for _ in range(4):
            topics = [f"test.{uuid.uuid4().hex}" for _ in range(3)]
            await asyncio.gather(
                ensure_topics(infra.kafka_bootstrap, topics, partitions=1),
                ensure_topics(infra.kafka_bootstrap, topics, partitions=1, max_message_bytes=limit),
            )
            for topic in topics:
                assert await message_limit(admin, topic, becomes=limit) == limit
    finally:
        await admin.close()
