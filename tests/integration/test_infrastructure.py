"""The real infrastructure answers as the services expect it to."""

from __future__ import annotations

import asyncio
import uuid

import boto3
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from botocore.client import Config
from botocore.exceptions import ClientError

from tests.support.infra import Infra


async def test_kafka_idempotent_producer_and_group_with_manual_commits(
    infra: Infra, unique_topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(unique_topic, f"message-{i}".encode(), key=f"k{i % 3}".encode())
        partitions = await producer.partitions_for(unique_topic)
    finally:
        await producer.stop()

    group = f"group-{uuid.uuid4().hex}"

    async def consume(limit: int, commit: bool) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            unique_topic,
            bootstrap_servers=infra.kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen: list[bytes] = []
        try:
            async with asyncio.timeout(60):
                while len(seen) < limit:
                    batch = await consumer.getmany(timeout_ms=500, max_records=limit - len(seen))
                    for records in batch.values():
                        seen.extend(r.value for r in records)
                    if commit and batch:
                        await consumer.commit()
        finally:
            await consumer.stop()
        return seen

    # Nothing committed: a second member of the same group sees everything again.
    first = await consume(20, commit=False)
    again = await consume(20, commit=True)
    assert sorted(first) == sorted(again) == sorted(f"message-{i}".encode() for i in range(20))

    # Committed: the group starts after the last committed offset.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        committed = 0
        for p in partitions:
            committed += await consumer.committed(TopicPartition(unique_topic, p)) or 0
        assert committed == 20
    finally:
        await consumer.stop()


def _s3(infra: Infra, secret: str | None = None):
    return boto3.client(
        "s3",
        endpoint_url=infra.s3_endpoint,
        aws_access_key_id=infra.s3_access_key,
        aws_secret_access_key=secret or infra.s3_secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_s3_put_get_and_auth_is_enforced(infra: Infra) -> None:
    s3 = _s3(infra)
    key = f"tests/{uuid.uuid4()}.pdf"
    body = b"%PDF-1.7 not really a pdf " + uuid.uuid4().bytes
    s3.put_object(Bucket=infra.s3_bucket, Key=key, Body=body, ContentType="application/pdf")
    got = s3.get_object(Bucket=infra.s3_bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/pdf"

    with pytest.raises(ClientError) as err:
        _s3(infra, secret="wrong-secret").get_object(Bucket=infra.s3_bucket, Key=key)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.delete_object(Bucket=infra.s3_bucket, Key=key)


def test_postgres_has_btree_gist_for_fresh_databases(infra: Infra, session_databases: dict[str, str]) -> None:
    import psycopg

    url = session_databases["tracking"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'btree_gist'").fetchone()
    assert row is not None


async def test_redis_answers(infra: Infra) -> None:
    from tt_common.redis import make_redis

    redis = make_redis(infra.redis_url)
    try:
        key = f"test:{uuid.uuid4()}"
        await redis.set(key, "v", px=10_000)
        assert await redis.get(key) == b"v"
    finally:
        await redis.aclose()
