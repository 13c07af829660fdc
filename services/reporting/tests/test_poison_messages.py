"""Malformed protobuf on every topic the reporting consumer reads (the only Kafka consumer
of the platform: entries, directory, system).

Each topic gets garbage bytes, a truncated message, valid protobuf of another type, an
empty value, a null value, a null key, a value of about a megabyte, and well-formed
messages whose values the database would refuse (a NUL character in a text, a decimal
too large for its column). Every one must reach the dead-letter topic with a dlq-reason
header naming its exact source offset; the consumer process must stay up (same pid) and
a valid event produced after the garbage, on the same partition, must still be applied.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import grpc
from aiokafka import AIOKafkaConsumer
from reporting_testkit import Topics, directory_event, entry_event, eventually, new_id, snapshot

from tests.support.infra import Infra, RunningStack
from timetracking.events.v1 import system_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.reporting.v1 import reporting_pb2 as pb
from tt_common.kafka import ensure_topics, make_producer
from ttlocal import proc

PARTITION = 0  # poison and the valid event after it share a partition, so order is given
OVERSIZED = 1_000_000  # under the broker's default max.message.bytes (1 MiB), with room for DLQ headers


def _user(user_id: str, **changes: object) -> bytes:
    user = ppb.User(user_id=user_id, name="Poison Probe", role=ppb.ROLE_EMPLOYEE, timezone="UTC", active=True)
    user.version = 1
    for name, value in changes.items():
        setattr(user, name, value)
    return directory_event("user_changed", user).SerializeToString()


def _project(budget_hours: str) -> bytes:
    project = ppb.Project(
        project_id=new_id(),
        client_id=new_id(),
        name="p",
        status=ppb.PROJECT_STATUS_ACTIVE,
        billing_type=ppb.BILLING_TYPE_HOURLY,
        budget_hours=budget_hours,
        currency="EUR",
        version=1,
    )
    return directory_event("project_changed", project).SerializeToString()


def _entry(**changes: str) -> bytes:
    start = datetime(2024, 3, 4, 9, tzinfo=UTC)
    snap = snapshot(
        entry_id=new_id(),
        user_id=new_id(),
        project_id=new_id(),
        start=start,
        end=start.replace(hour=10),
        version=1,
    )
    for name, value in changes.items():
        setattr(snap, name, value)
    return entry_event("stopped", snap).SerializeToString()


def _probe(note: str = "poison") -> bytes:
    probe = system_pb2.PipelineProbe(probe_id=new_id(), event_id=new_id(), note=note)
    probe.emitted_at.FromDatetime(datetime.now(UTC))
    return probe.SerializeToString()


def poison_for(topic: str, topics: Topics, system_topic: str) -> dict[str, tuple[bytes | None, bytes | None]]:
    """case -> (key, value); every value here can never be applied."""
    marker = uuid.uuid4().hex.encode()
    valid = {topics.entries: _entry(), topics.directory: _user(new_id()), system_topic: _probe()}[topic]
    other_type = {topics.entries: _probe(), topics.directory: _entry(), system_topic: _user(new_id())}[topic]
    cases: dict[str, tuple[bytes | None, bytes | None]] = {
        "garbage": (b"k", b"\xff\xfe\xfd garbage " + marker),
        "truncated": (b"k", valid[: len(valid) // 2]),
        "another type": (b"k", other_type),
        "empty value": (b"k", b""),
        "null value": (b"k", None),
        "null key": (None, b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff" + marker),
        "oversized": (b"k", b"\x00" * OVERSIZED),
    }
    if topic == topics.entries:
        cases["NUL in a text"] = (b"k", _entry(description="before\x00after"))
        cases["decimal too large"] = (b"k", _entry(hourly_rate="1E+200000"))
        cases["decimal too precise"] = (b"k", _entry(hourly_rate="1E-20000"))
    elif topic == topics.directory:
        cases["NUL in a text"] = (b"k", _user(new_id(), name="a\x00b"))
        cases["decimal too large"] = (b"k", _project(budget_hours="12345678901234"))
    else:
        cases["NUL in a text"] = (b"k", _probe(note="a\x00b"))
    return cases


async def dead_lettered(infra: Infra, topic: str, sources: set[str], within: float = 60.0) -> dict[str, str]:
    """dlq-source -> dlq-reason for the given sources, read from the dead-letter topic."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=infra.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=8 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    found: dict[str, str] = {}
    try:
        deadline = time.monotonic() + within
        while not sources <= found.keys() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batch.values() for r in records):
                headers = {k: v.decode() for k, v in record.headers}
                if headers.get("dlq-source") in sources:
                    found[headers["dlq-source"]] = headers["dlq-reason"]
    finally:
        await consumer.stop()
    return found


async def test_poison_on_every_topic_is_dead_lettered_and_the_consumer_carries_on(
    running_services: RunningStack, infra: Infra, topics: Topics, reporting
) -> None:
    system_topic = running_services.env["REPORTING_TOPIC_SYSTEM"]
    await ensure_topics(
        infra.kafka_bootstrap, [topics.entries, topics.directory, system_topic, topics.dead_letter]
    )
    pid = proc.running_pid(running_services.config, "reporting")
    assert pid is not None

    producer = make_producer(infra.kafka_bootstrap, "reporting-poison-tests")
    producer._max_request_size = 2 * 1024 * 1024  # the oversized value plus its record overhead
    await producer.start()
    sent: dict[str, str] = {}  # dlq-source -> case
    try:
        for topic in (topics.entries, topics.directory, system_topic):
            for case, (key, value) in poison_for(topic, topics, system_topic).items():
                meta = await producer.send_and_wait(topic, value, key=key, partition=PARTITION)
                sent[f"{topic}/{meta.partition}/{meta.offset}"] = f"{topic}: {case}"
        # Valid events after the garbage, on the same partition of each topic.
        user_id, probe_id = new_id(), new_id()
        await producer.send_and_wait(
            topics.directory, _user(user_id, timezone="Asia/Tokyo"), partition=PARTITION
        )
        start = datetime(2024, 3, 4, 9, tzinfo=UTC)
        good = snapshot(
            entry_id=new_id(),
            user_id=user_id,
            project_id=new_id(),
            start=start,
            end=start.replace(hour=11),
            version=1,
        )
        await producer.send_and_wait(
            topics.entries, entry_event("stopped", good).SerializeToString(), partition=PARTITION
        )
        probe = system_pb2.PipelineProbe(probe_id=probe_id, event_id=new_id(), note="after the poison")
        probe.emitted_at.FromDatetime(datetime.now(UTC))
        await producer.send_and_wait(system_topic, probe.SerializeToString(), partition=PARTITION)
    finally:
        await producer.stop()

    request = pb.TimesheetRequest(user_id=user_id, from_date="2024-03-04", to_date="2024-03-04")
    sheet = await eventually(
        lambda: reporting.GetTimesheet(request),
        lambda s: s.total_seconds == 7200 and s.timezone == "Asia/Tokyo",
        within=60,
        what="the valid entry and user after the poison",
    )
    assert [e.entry_id for e in sheet.entries] == [good.entry_id]

    async def probe_status() -> pb.PipelineProbeStatus | None:
        try:
            return await reporting.GetPipelineProbe(pb.GetPipelineProbeRequest(probe_id=probe_id))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
            return None

    status = await eventually(probe_status, lambda s: s is not None, within=60, what="the probe")
    assert status is not None and status.note == "after the poison"

    reasons = await dead_lettered(infra, topics.dead_letter, set(sent))
    missing = {sent[s] for s in set(sent) - reasons.keys()}
    assert not missing, f"not dead-lettered: {sorted(missing)}"
    assert all(reason.startswith(("undecodable:", "invalid:")) for reason in reasons.values()), reasons
    assert proc.running_pid(running_services.config, "reporting") == pid  # never restarted, never crashed
