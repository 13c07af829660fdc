"""The consistency checker on a large, consistent data set: wall time, CPU time and peak memory.

    .venv/bin/python bench/consistency_check.py [--entries 1000000]

Creates three scratch databases (tracking, reporting, invoicing) on the test
profile's PostgreSQL (started if needed, stopped again if this script started
it), migrates them, bulk-loads `--entries` identical entries into tracking and
reporting's read model and one invoice per 1,000 entries billing every tenth
entry (setup, not measured; tracking's overlap constraint is dropped first to
load fast), then runs `python -m consistency --json` as a child process. The
ceiling beside it is the same two sorted entry streams fetched with psycopg and
nothing compared. Peak memory is the child's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack

import psycopg
from benchkit import ROOT, own_databases, write_result

from ttlocal.config import StackConfig

LOAD = {
    "tracking": """
        ALTER TABLE time_entries DROP CONSTRAINT ex_time_entries_no_overlap;
        INSERT INTO time_entries (entry_id, user_id, project_id, description, start_time, end_time,
                                  duration_seconds, is_billable, hourly_rate, currency, invoice_id, version)
        SELECT md5('e' || i)::uuid, md5('u' || i %% 1000)::uuid, md5('p' || i %% 100)::uuid, 'bench',
               timestamptz '2024-01-01' + (i / 1000) * interval '2 hours',
               timestamptz '2024-01-01' + (i / 1000) * interval '2 hours' + interval '1 hour',
               3600, true, 100.00, 'EUR',
               CASE WHEN i %% 10 = 0 THEN md5('inv' || i / 1000)::uuid END,
               CASE WHEN i %% 10 = 0 THEN 2 ELSE 1 END
        FROM generate_series(0, %(n)s - 1) AS i""",
    "reporting": """
        INSERT INTO entries (entry_id, user_id, project_id, description, start_time, end_time,
                             duration_seconds, is_billable, hourly_rate, currency, invoice_id, version,
                             event_occurred_at)
        SELECT md5('e' || i)::uuid, md5('u' || i %% 1000)::uuid, md5('p' || i %% 100)::uuid, 'bench',
               timestamptz '2024-01-01' + (i / 1000) * interval '2 hours',
               timestamptz '2024-01-01' + (i / 1000) * interval '2 hours' + interval '1 hour',
               3600, true, 100.00, 'EUR',
               CASE WHEN i %% 10 = 0 THEN md5('inv' || i / 1000)::uuid END,
               CASE WHEN i %% 10 = 0 THEN 2 ELSE 1 END, now()
        FROM generate_series(0, %(n)s - 1) AS i""",
    "invoicing": """
        INSERT INTO invoices (invoice_id, client_id, project_id, status, currency, subtotal, tax_rate,
                              tax, total, payment_terms_days, period_start, period_end, idempotency_key)
        SELECT md5('inv' || k)::uuid, md5('c')::uuid, md5('p')::uuid, 'DRAFT', 'EUR', 10000.00, 0,
               0, 10000.00, 14, timestamptz '2024-01-01', timestamptz '2024-02-01', 'bench-' || k
        FROM generate_series(0, %(n)s / 1000 - 1) AS k;
        INSERT INTO invoice_lines (line_id, invoice_id, position, grouping_key, description, seconds,
                                   hourly_rate, amount, entry_ids)
        SELECT md5('l' || k)::uuid, md5('inv' || k)::uuid, 1, 'bench', 'bench', 360000, 100.00, 10000.00,
               ARRAY(SELECT md5('e' || i)::uuid FROM generate_series(k * 1000, k * 1000 + 999, 10) AS i)
        FROM generate_series(0, %(n)s / 1000 - 1) AS k""",
}


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def ceiling(urls: dict[str, str]) -> float:
    """Fetch both sorted entry streams, compare nothing."""
    started = time.perf_counter()
    for name, table in (("tracking", "time_entries"), ("reporting", "entries")):
        with psycopg.connect(libpq(urls[name])) as conn, conn.cursor(name="ceiling") as cur:
            cur.itersize = 5000
            cur.execute(f"SELECT * FROM {table} ORDER BY entry_id")  # noqa: S608 - constant names
            for _ in cur:
                pass
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.entries < 1000 or args.entries % 1000:
        parser.error("--entries: a multiple of 1000")
    cfg = StackConfig.load("test")
    with ExitStack() as cleanup:
        urls = own_databases(cfg, cleanup, tuple(LOAD))
        started = time.perf_counter()
        for name, sql in LOAD.items():
            with psycopg.connect(libpq(urls[name]), autocommit=True) as conn:
                for statement in sql.split(";"):
                    conn.execute(statement, {"n": args.entries})
                conn.execute("VACUUM ANALYZE")
        print(f"loaded {args.entries} entries in {time.perf_counter() - started:.1f} s (setup)")

        env = {**os.environ, **{f"{s.upper()}_DATABASE_URL": u for s, u in urls.items()}}
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            started = time.perf_counter()
            child = subprocess.Popen(
                [sys.executable, "-m", "consistency", "--json"], cwd=ROOT, env=env, stdout=out, stderr=err
            )
            _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time and peak memory
            wall = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if os.waitstatus_to_exitcode(status) != 0:
            print(stdout[-3000:], stderr[-3000:], file=sys.stderr)
            return 1
        report = json.loads(stdout)
        fetch_only = ceiling(urls)
        result = {
            "entries": args.entries,
            "invoices": args.entries // 1000,
            "claimed_entries": report["counts"]["claimed_entries"],
            "differences": report["difference_count"],
            "wall_seconds": round(wall, 2),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "ceiling_fetch_only_seconds": round(fetch_only, 2),
            "ratio_to_ceiling": round(wall / fetch_only, 2),
        }
        for key, value in result.items():
            print(f"{key:28} {value}")
        print(f"written to {write_result('consistency_check', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
