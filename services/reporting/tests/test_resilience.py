"""Poison messages, a consumer killed mid-batch, and the rebuild command, against the real stack.

Runs last among reporting's tests (it kills and restarts the reporting process).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from aiokafka import AIOKafkaConsumer
from reporting_testkit import EventWriter, Topics, entry_event, eventually, new_id, snapshot

from tests.support.infra import ROOT, Infra, RunningStack
from timetracking.reporting.v1 import reporting_pb2 as pb
from ttlocal import proc, services


async def dead_letters(infra: Infra, topic: str, values: list[bytes], within: float = 30.0) -> list:
    """The dead-lettered records whose value contains one of `values` (other tests share the topic)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list = []
    try:
        deadline = time.monotonic() + within
        while len(found) < len(values) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [
                r
                for records in batch.values()
                for r in records
                if r.value is not None and any(v in r.value for v in values)
            ]
    finally:
        await consumer.stop()
    return found


async def test_poison_goes_to_the_dead_letter_topic_and_later_events_apply(
    writer: EventWriter, topics: Topics, reporting, infra: Infra
) -> None:
    user = await writer.user(tz="Asia/Kolkata")
    garbage = b"\xff\xff\xff not protobuf " + new_id().encode()
    await writer.raw(topics.entries, garbage, key="poison", partition=1)
    bad_version = snapshot(
        entry_id=new_id(),
        user_id=user,
        project_id=new_id(),
        start=datetime(2024, 7, 1, 3, tzinfo=UTC),
        end=datetime(2024, 7, 1, 4, tzinfo=UTC),
        version=0,
    )
    await writer.entry("stopped", bad_version, partition=1)
    good = snapshot(
        entry_id=new_id(),
        user_id=user,
        project_id=new_id(),
        start=datetime(2024, 7, 1, 5, tzinfo=UTC),
        end=datetime(2024, 7, 1, 7, tzinfo=UTC),
        version=1,
    )
    await writer.entry("stopped", good, partition=1)

    request = pb.TimesheetRequest(user_id=user, from_date="2024-07-01", to_date="2024-07-01")
    sheet = await eventually(
        lambda: reporting.GetTimesheet(request), lambda s: s.total_seconds > 0, what="valid event"
    )
    assert sheet.total_seconds == 7200 and [e.entry_id for e in sheet.entries] == [good.entry_id]

    records = await dead_letters(infra, topics.dead_letter, [garbage, bad_version.entry_id.encode()])
    reasons = {r.value: dict(r.headers)["dlq-reason"].decode() for r in records}
    assert reasons[garbage].startswith("undecodable:")
    poisoned = [v for v, reason in reasons.items() if bad_version.entry_id.encode() in v]
    assert len(poisoned) == 1 and reasons[poisoned[0]] == "invalid: entry.version must be positive, got 0"
    assert all(dict(r.headers)["dlq-source"].decode().startswith(topics.entries) for r in records)


async def test_consumer_killed_mid_batch_counts_every_event_once(
    writer: EventWriter, reporting, running_services: RunningStack, reporting_db: psycopg.Connection
) -> None:
    """Events keep arriving while reporting is SIGKILLed mid-stream and restarted; the totals
    equal the sum of the final snapshots, nothing lost, nothing counted twice."""
    cfg = running_services.config
    client = await writer.client()
    project = await writer.project(client, "Crash")
    user = await writer.user(tz="Europe/London")
    rng = random.Random(7)
    base = datetime(2023, 1, 1, tzinfo=UTC)
    expected_seconds, events = 0, []
    for i in range(1500):
        start = base + timedelta(hours=2 * i)
        snap = snapshot(
            entry_id=new_id(),
            user_id=user,
            project_id=project,
            start=start,
            end=start + timedelta(seconds=rng.randrange(60, 7200)),
            version=1,
        )
        events.append(entry_event("stopped", snap))
        if i % 3 == 0:  # an edit: the second version replaces the first
            edited = snapshot(
                entry_id=snap.entry_id,
                user_id=user,
                project_id=project,
                start=start,
                end=start + timedelta(seconds=rng.randrange(60, 7200)),
                version=2,
            )
            events.append(entry_event("edited", edited))
            snap = edited
        expected_seconds += snap.duration_seconds

    async def produce() -> None:
        # About 3,000 events over ~6 s, so the kill lands while batches are being applied.
        for i in range(0, len(events), 50):
            chunk = events[i : i + 50]
            await asyncio.gather(
                *(
                    writer.producer.send(writer.topics.entries, e.SerializeToString(), key=_key(e))
                    for e in chunk
                )
            )
            await asyncio.sleep(0.1)
        await writer.producer.flush()

    def applied() -> int:
        row = reporting_db.execute(
            "SELECT count(*) FROM entries WHERE project_id = %s", (project,)
        ).fetchone()
        return int(row[0]) if row else 0

    producing = asyncio.create_task(produce())
    deadline = time.monotonic() + 30
    while applied() < 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(proc.kill, cfg, "reporting")
    killed_at = applied()
    assert 0 < killed_at < 1500, "the kill should land mid-stream"
    await asyncio.to_thread(services.start, cfg, running_services.env)
    await producing

    summary = await eventually(
        lambda: reporting.GetProjectSummary(pb.ProjectSummaryRequest(project_id=project)),
        lambda s: s.totals.total_seconds == expected_seconds,
        within=90,
        what=f"totals after the restart (killed with {killed_at} entries applied)",
    )
    assert summary.totals.total_seconds == expected_seconds
    assert applied() == 1500


def _key(event) -> bytes:
    return getattr(event, event.WhichOneof("kind")).entry.entry_id.encode()


def _rebuild(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reporting.rebuild", "--wait-seconds", "60"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_rebuild_from_the_topics_equals_the_live_read_model(
    running_services: RunningStack, reporting_db: psycopg.Connection
) -> None:
    env = running_services.env
    result = await asyncio.to_thread(_rebuild, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REBUILD EQUALS LIVE" in result.stdout

    # Corrupt one live row: the rebuild must notice, name the table and the column, and fail.
    row = reporting_db.execute(
        "SELECT entry_id FROM entries WHERE NOT deleted AND end_time IS NOT NULL LIMIT 1"
    ).fetchone()
    assert row is not None
    reporting_db.execute(
        "UPDATE entries SET duration_seconds = duration_seconds + 1 WHERE entry_id = %s", row
    )
    try:
        result = await asyncio.to_thread(_rebuild, env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "entries: " in result.stdout and "duration_seconds: live=" in result.stdout
        assert "REBUILD DIFFERS FROM LIVE" in result.stdout
    finally:
        reporting_db.execute(
            "UPDATE entries SET duration_seconds = duration_seconds - 1 WHERE entry_id = %s", row
        )
    # No scratch database left behind.
    left = reporting_db.execute(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'reporting_rebuild_%'"
    ).fetchone()
    assert left == (0,)
