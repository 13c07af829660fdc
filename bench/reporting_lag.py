"""Event-to-report lag of the reporting consumer under a steady load.

Produces EntryStopped events (each a new entry, for 50 users) at a steady rate
straight onto reporting's entries topic, stamping each with occurred_at = the
moment it is sent. Two lags per event:

- visible: occurred_at -> the moment a poller (every 20 ms) first sees the row
  in reporting's database, i.e. after the batch's transaction committed: what
  a report query would see (resolution ~20 ms);
- applied: occurred_at -> the row's applied_at (clock_timestamp() at the upsert,
  before the commit).

Ceiling, same run and broker: aiokafka alone, produce -> consume. The same
producer settings send the same events at the same rate to a fresh topic, and a
plain consumer in this process notes when each arrives (no database, no batch).

Prints p50/p90/p99/max and writes JSON to bench/results/.

    .venv/bin/python bench/reporting_lag.py                       # own stack (test profile), 500/s for 20 s
    .venv/bin/python bench/reporting_lag.py --rate 1000 --seconds 30
    .venv/bin/python bench/reporting_lag.py --existing dev        # against `make up`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from benchkit import machine_info, summary_ms, write_result
from reporting_stack import Target, stopped_event, target

from tt_common.kafka import ensure_topics, make_producer

USERS = 50


async def measure(t: Target, rate: int, seconds: float) -> dict:
    await ensure_topics(t.kafka, [t.topic_entries])
    producer = make_producer(t.kafka, "reporting-lag-bench")
    await producer.start()
    users = [str(uuid.uuid4()) for _ in range(USERS)]
    project = str(uuid.uuid4())
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    applied: dict[str, float] = {}
    base = datetime(2025, 1, 1, tzinfo=UTC)

    def new_event(i: int) -> tuple[str, bytes]:
        start = base + timedelta(minutes=i)
        return stopped_event(
            user_id=users[i % USERS], project_id=project, start=start, end=start + timedelta(minutes=30)
        )

    try:
        # Warm-up: one event through, so the consumer has joined its group before the clock starts.
        entry_id, value = new_event(0)
        await producer.send_and_wait(t.topic_entries, value, key=entry_id.encode())
        with psycopg.connect(t.database_url, autocommit=True) as db:
            deadline = time.monotonic() + 60
            while not db.execute("SELECT 1 FROM entries WHERE entry_id = %s", (entry_id,)).fetchone():
                if time.monotonic() > deadline:
                    raise SystemExit("reporting did not apply the warm-up event within 60 s")
                await asyncio.sleep(0.05)

        stop_polling = asyncio.Event()

        async def poll() -> None:
            async with await psycopg.AsyncConnection.connect(t.database_url, autocommit=True) as db:
                watermark = datetime.now(UTC) - timedelta(seconds=5)
                give_up = float("inf")
                while len(seen_at) < len(sent_at) or not stop_polling.is_set():
                    if stop_polling.is_set():
                        give_up = min(give_up, time.monotonic() + 60)
                        if time.monotonic() > give_up:
                            break
                    # Rows become visible at their batch's commit, later than their applied_at:
                    # look back 5 s behind the newest applied_at seen.
                    cursor = await db.execute(
                        "SELECT entry_id::text, applied_at, event_occurred_at FROM entries "
                        "WHERE project_id = %s AND applied_at > %s",
                        (project, watermark - timedelta(seconds=5)),
                    )
                    now = time.time()
                    for entry_id, applied_at, occurred in await cursor.fetchall():
                        if entry_id not in seen_at:
                            seen_at[entry_id] = now
                            applied[entry_id] = (applied_at - occurred).total_seconds()
                        watermark = max(watermark, applied_at)
                    await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        produced_in = await paced_send(producer, t.topic_entries, rate, seconds, new_event, sent_at)
        stop_polling.set()
        await poller
    finally:
        await producer.stop()

    visible = [seen_at[e] - sent_at[e] for e in sent_at if e in seen_at]
    return {
        "benchmark": "reporting_lag",
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(len(sent_at) / produced_in, 1),
        "events": len(sent_at),
        "missing": sum(1 for e in sent_at if e not in seen_at),
        "visible_lag": summary_ms(visible, scale=1000, digits=1),
        "applied_lag": summary_ms([applied[e] for e in sent_at if e in applied], scale=1000, digits=1),
    }


async def paced_send(
    producer: AIOKafkaProducer,
    topic: str,
    rate: int,
    seconds: float,
    new_event: Callable[[int], tuple[str, bytes]],
    sent_at: dict[str, float],
) -> float:
    """Send rate*seconds events at a steady rate (a burst of rate/100 every 10 ms); returns the time taken."""
    total = int(rate * seconds)
    per_tick = max(1, round(rate * 0.01))
    started = time.monotonic()
    pending = []
    for i in range(1, total + 1, per_tick):
        delay = started + (i - 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        for j in range(i, min(i + per_tick, total + 1)):
            key, value = new_event(j)
            sent_at[key] = time.time()
            pending.append(await producer.send(topic, value, key=key.encode()))
    await asyncio.gather(*pending)
    return time.monotonic() - started


async def raw_kafka_latency(bootstrap: str, rate: int, seconds: float) -> dict:
    """The ceiling: the same events at the same rate through aiokafka alone, produce -> consume."""
    topic = f"bench.raw.{uuid.uuid4().hex[:12]}"
    await ensure_topics(bootstrap, [topic])
    user, project = str(uuid.uuid4()), str(uuid.uuid4())
    base = datetime(2025, 1, 1, tzinfo=UTC)

    def new_event(i: int) -> tuple[str, bytes]:
        start = base + timedelta(minutes=i)
        return stopped_event(user_id=user, project_id=project, start=start, end=start + timedelta(minutes=30))

    sent_at: dict[str, float] = {}
    received_at: dict[str, float] = {}
    producer = make_producer(bootstrap, "raw-kafka-bench")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"raw-{topic}", auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    try:
        stop = asyncio.Event()

        async def consume() -> None:
            while not stop.is_set() or len(received_at) < len(sent_at):
                batches = await consumer.getmany(timeout_ms=20)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        received_at.setdefault((record.key or b"").decode(), now)
                if stop.is_set() and time.time() > give_up:
                    break

        give_up = float("inf")
        # Warm-up: the consumer has joined and been assigned before the clock starts.
        key, value = new_event(0)
        await producer.send_and_wait(topic, value, key=key.encode())
        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 60
        while key not in received_at:
            if time.monotonic() > deadline:
                raise SystemExit("the raw consumer did not get the warm-up event within 60 s")
            await asyncio.sleep(0.02)
        del received_at[key]  # count the measured events only
        produced_in = await paced_send(producer, topic, rate, seconds, new_event, sent_at)
        give_up = time.time() + 60
        stop.set()
        await task
    finally:
        await consumer.stop()
        await producer.stop()
    lags = [received_at[k] - sent_at[k] for k in sent_at if k in received_at]
    return {
        "what": "aiokafka produce -> consume, same producer settings, same rate, same broker",
        "achieved_rate_per_s": round(len(sent_at) / produced_in, 1),
        "events": len(sent_at),
        "missing": sum(1 for k in sent_at if k not in received_at),
        "lag": summary_ms(lags, scale=1000, digits=1),
    }


def print_result(result: dict) -> None:
    print(
        f"{result['events']} events at {result['achieved_rate_per_s']}/s "
        f"(target {result['target_rate_per_s']}/s), {result['missing']} missing"
    )
    for name in ("visible_lag", "applied_lag"):
        r = result[name]
        print(
            f"  {name}: p50 {r.get('p50_ms')} ms, p90 {r.get('p90_ms')} ms, "
            f"p99 {r.get('p99_ms')} ms, max {r.get('max_ms')} ms"
        )
    c = result.get("ceiling")
    if c:
        r = c["lag"]
        print(
            f"  ceiling, aiokafka produce->consume at {c['achieved_rate_per_s']}/s: "
            f"p50 {r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms, max {r.get('max_ms')} ms, "
            f"{c['missing']} missing"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=500, help="events per second (default 500)")
    parser.add_argument("--seconds", type=float, default=20, help="how long to produce (default 20)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the raw aiokafka ceiling")
    parser.add_argument("--existing", metavar="PROFILE", choices=["dev", "test"], help="use a running stack")
    args = parser.parse_args()
    with ExitStack() as cleanup:
        t = target(args.existing, cleanup)
        result = asyncio.run(measure(t, args.rate, args.seconds))
        if not args.no_ceiling:
            result["ceiling"] = asyncio.run(raw_kafka_latency(t.kafka, args.rate, args.seconds))
        result["machine"] = machine_info(t.database_url)
    print_result(result)
    print(f"written to {write_result('reporting_lag', result)}")
    return 0 if result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
