"""No lost event: timers stopped while the Kafka broker is down reach Kafka once it is back."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from tracking_testkit import World, backdate_running_timer, count_rows

from tests.support.infra import RunningStack
from timetracking.events.v1 import entries_pb2
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "deploy" / "local"))

from ttlocal import kafka as local_kafka

N = 12


async def test_stops_while_kafka_is_down_are_all_delivered_after_it_returns(
    tracking: tracking_pb2_grpc.TrackingServiceStub, world: World, db, running_services: RunningStack
) -> None:
    cfg = running_services.config
    topic = running_services.env["TRACKING_TOPIC_ENTRIES"]
    users = [await world.new_member() for _ in range(N)]
    stopped: set[str] = set()

    await asyncio.to_thread(local_kafka.stop, cfg)
    try:
        for user in users:
            entry = await tracking.StartTimer(
                tpb.StartTimerRequest(user_id=user, project_id=world.project_id)
            )
            backdate_running_timer(db, entry.entry_id, timedelta(minutes=30))
            result = await tracking.StopTimer(tpb.StopTimerRequest(user_id=user), timeout=10)
            assert not result.discarded
            stopped.add(result.entry.entry_id)
        await asyncio.sleep(1.5)  # the relay tries (and fails) meanwhile
        pending = count_rows(
            db, "SELECT count(*) FROM outbox WHERE key = ANY(%s) AND published_at IS NULL", list(stopped)
        )
        assert pending == N  # the outbox grows; nothing is lost
    finally:
        await asyncio.to_thread(local_kafka.start, cfg)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=cfg.kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    events: dict[str, set[str]] = {}  # entry id -> event ids seen
    deliveries = 0
    try:
        deadline = time.monotonic() + 90
        settle_until = None
        while time.monotonic() < deadline and (settle_until is None or time.monotonic() < settle_until):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    # The topic is shared with other tests (some write poison on purpose): ours by key.
                    if record.key is None or record.key.decode(errors="replace") not in stopped:
                        continue
                    event = entries_pb2.EntryEvent.FromString(record.value)
                    if event.WhichOneof("kind") != "stopped" or event.stopped.entry.entry_id not in stopped:
                        continue
                    assert record.key == event.stopped.entry.entry_id.encode()
                    events.setdefault(event.stopped.entry.entry_id, set()).add(event.event_id)
                    deliveries += 1
            if len(events) == N and settle_until is None:
                settle_until = time.monotonic() + 2  # linger briefly to catch duplicates
    finally:
        await consumer.stop()
    assert set(events) == stopped, f"{len(events)} of {N} arrived"
    # Exactly one EntryStopped per stopped timer; a redelivery would carry the same event id.
    assert all(len(ids) == 1 for ids in events.values())
    print(f"{N} EntryStopped events, {deliveries} deliveries")
