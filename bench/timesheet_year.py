"""A year's timesheet for one user over gRPC: p50/p99 of GetTimesheet.

Writes one user (Europe/Berlin) and ~2,000 stopped entries spread over 2025
(about 5-6 a day, some across local midnight) straight onto reporting's
topics, waits until reporting has applied them all, then calls GetTimesheet
for 2025-01-01..2025-12-31 (365 local days, every entry in the response)
5 times to warm up and 50 times measured. Prints p50/p90/p99/max and writes
JSON to bench/results/.

Beside latency, reporting's CPU time per call (user + system from
/proc/<pid>/stat over the measured calls): steadier than latency on a shared
machine.

Ceiling, same run: the report's reads alone, the very statements reporting
runs (reporting.timesheet_statements: the user's zone, then the entries joined
to project and task names over the same index range, times as epoch
microseconds) prepared on one asyncpg connection straight at reporting's
database, warmed up and measured the same number of times; no local-day
splitting, totals or protobuf.

    .venv/bin/python bench/timesheet_year.py                  # own stack (test profile)
    .venv/bin/python bench/timesheet_year.py --existing dev   # against `make up`
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import grpc
from benchkit import cpu_seconds, machine_info, summary_ms, write_result
from reporting_stack import Target, stopped_event, target, user_event

from reporting import timesheet_statements
from reporting.timesheet import ENTRY_LOOKBACK
from timetracking.reporting.v1 import reporting_pb2 as pb
from timetracking.reporting.v1 import reporting_pb2_grpc
from tt_common.kafka import ensure_topics, make_producer

ZONE = "Europe/Berlin"


async def measure(t: Target, entries: int, calls: int) -> dict:
    await ensure_topics(t.kafka, [t.topic_entries, t.topic_directory])
    user, projects = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(8)]
    rng = random.Random(2025)
    producer = make_producer(t.kafka, "timesheet-year-bench")
    await producer.start()
    try:
        await producer.send_and_wait(t.topic_directory, user_event(user, ZONE), key=user.encode())
        year_start, step = datetime(2025, 1, 1, 6, tzinfo=UTC), timedelta(days=364) / entries
        sends = []
        for i in range(entries):
            start = year_start + step * i
            end = start + timedelta(minutes=rng.randrange(15, 240))  # some cross local midnight
            entry_id, value = stopped_event(
                user_id=user, project_id=rng.choice(projects), start=start, end=end
            )
            sends.append(await producer.send(t.topic_entries, value, key=entry_id.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()

    request = pb.TimesheetRequest(user_id=user, from_date="2025-01-01", to_date="2025-12-31")
    async with grpc.aio.insecure_channel(t.grpc) as channel:
        stub = reporting_pb2_grpc.ReportingServiceStub(channel)
        deadline = time.monotonic() + 120
        while True:
            sheet = await stub.GetTimesheet(request, timeout=10)
            if sheet.timezone_known and len(sheet.entries) >= entries:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(sheet.entries)} of {entries} entries applied after 120 s")
            await asyncio.sleep(0.5)
        for _ in range(5):
            await stub.GetTimesheet(request, timeout=10)
        latencies = []
        cpu_before = cpu_seconds(t.pids)
        for _ in range(calls):
            began = time.perf_counter()
            sheet = await stub.GetTimesheet(request, timeout=10)
            latencies.append(time.perf_counter() - began)
        cpu_used = cpu_seconds(t.pids) - cpu_before
    return {
        "benchmark": "timesheet_year",
        "entries": len(sheet.entries),
        "days": len(sheet.days),
        "total_hours": sheet.total_hours,
        "response_bytes": sheet.ByteSize(),
        "latency": summary_ms(latencies, scale=1000),
        # reporting's user + system CPU per call (/proc/<pid>/stat): steadier than latency
        # on a shared machine; includes the consumer's idle polling over the same window.
        "server_cpu_ms_per_call": round(cpu_used * 1000 / calls, 2) if t.pids else None,
        "ceiling": await sql_ceiling(t.database_url, user, calls),
    }


async def sql_ceiling(database_url: str, user: str, calls: int) -> dict:
    """The ceiling: GetTimesheet's two statements, as reporting runs them, and nothing else."""
    user_id = uuid.UUID(user)
    start, end = datetime(2024, 12, 31, 23, tzinfo=UTC), datetime(2025, 12, 31, 23, tzinfo=UTC)
    conn = await asyncpg.connect(database_url)
    try:

        async def reads() -> list:
            await conn.fetchrow(timesheet_statements.USER, user_id)
            return await conn.fetch(timesheet_statements.ENTRIES, user_id, start, end, ENTRY_LOOKBACK)

        for _ in range(5):
            rows = await reads()
        latencies = []
        for _ in range(calls):
            began = time.perf_counter()
            rows = await reads()
            latencies.append(time.perf_counter() - began)
    finally:
        await conn.close()
    return {
        "what": "GetTimesheet's statements (reporting.timesheet_statements) with asyncpg",
        "rows": len(rows),
        "latency": summary_ms(latencies, scale=1000),
    }


def print_result(result: dict) -> None:
    r = result["latency"]
    print(
        f"GetTimesheet for a year ({result['entries']} entries, {result['days']} days, "
        f"{result['response_bytes']} bytes), {r['count']} calls: p50 {r['p50_ms']} ms, "
        f"p90 {r['p90_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms; "
        f"reporting CPU {result.get('server_cpu_ms_per_call')} ms/call"
    )
    c = result["ceiling"]["latency"]
    print(f"  ceiling, the same statements alone: p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--existing", metavar="PROFILE", choices=["dev", "test"], help="use a running stack")
    args = parser.parse_args()
    with ExitStack() as cleanup:
        t = target(args.existing, cleanup)
        result = asyncio.run(measure(t, args.entries, args.calls))
        result["machine"] = machine_info(t.database_url)
    print_result(result)
    print(f"written to {write_result('timesheet_year', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
