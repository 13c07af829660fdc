"""Rebuild the read model from Kafka into a scratch database and compare it with the live one.

    python -m reporting.rebuild [--database NAME] [--keep] [--wait-seconds 60]

Reads the same REPORTING_* settings as the service. It creates a scratch
database on the live database's server, migrates it with Alembic, replays the
entries and directory topics from offset 0 up to their current end (manual
partition assignment: no consumer group, nothing committed) through the
service's own decoder and handler, waits until the live consumer group has
committed at least as far, then compares the two read models table by table.

Rows the live consumer changed after the rebuild started are left out of the
comparison (newer events, not a difference). Exit status 0 when the models
are equal, 1 when they differ, 2 on errors. The scratch database is dropped
unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from tt_common.db import session_factory, transaction
from tt_common.kafka import Delivery
from tt_common.settings import load_settings

from . import consumers
from .config import ReportingSettings
from .models import READ_MODEL_TABLES, Base

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
# Bookkeeping, not state: when a row was applied, and when its event occurred.
IGNORED_COLUMNS = {"applied_at", "event_occurred_at"}
MAX_SHOWN = 20


class RebuildSettings(ReportingSettings):
    grpc_port: int = 0  # a command, not a server


@dataclass
class Comparison:
    differences: dict[str, list[str]] = field(default_factory=dict)
    compared: dict[str, int] = field(default_factory=dict)
    skipped_newer: dict[str, int] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not any(self.differences.values())


@dataclass
class ReplayStats:
    applied: int = 0
    invalid: int = 0
    end_offsets: dict[TopicPartition, int] = field(default_factory=dict)


# --- scratch database -----------------------------------------------------------------


def _admin_engine(live_url: str):
    return create_sync_engine(make_url(live_url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def create_scratch(live_url: str, name: str) -> str:
    engine = _admin_engine(live_url)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(live_url).set(database=name).render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "-x", f"url={url}", "upgrade", "head"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrating {name} failed:\n{result.stderr[-2000:]}")
    return url


def drop_scratch(live_url: str, name: str) -> None:
    engine = _admin_engine(live_url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


# --- replay -----------------------------------------------------------------------------


async def partitions_of(settings: ReportingSettings, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist (a topic nobody wrote to yet has none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in sorted(t["partitions"], key=lambda p: p["partition"])
    ]


async def replay(settings: ReportingSettings, sessions: async_sessionmaker[AsyncSession]) -> ReplayStats:
    """Apply every event of the entries and directory topics up to their current end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    partitions = await partitions_of(settings, [settings.topic_entries, settings.topic_directory])
    await consumer.start()
    decode, stats = consumers.decoder_for(settings), ReplayStats()
    try:
        if not partitions:
            return stats
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        pending = {tp for tp in partitions if end[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=1000)
            valid: list[Delivery] = []
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    try:
                        valid.append(Delivery(record, decode(record)))
                    except Exception:  # noqa: BLE001 - poison: the live consumer dead-letters it too
                        stats.invalid += 1
            if valid:
                async with transaction(sessions) as session:
                    await consumers.handle_batch(session, valid)
                stats.applied += len(valid)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        stats.end_offsets = dict(end)
        return stats
    finally:
        await consumer.stop()


async def wait_for_live_group(
    settings: ReportingSettings, end: dict[TopicPartition, int], timeout_s: float
) -> bool:
    """True once the live consumer group has committed at least up to `end` on every partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            committed = await admin.list_consumer_group_offsets(settings.consumer_group)
            behind = [tp for tp, offset in end.items() if offset > 0 and committed.get(tp, None) is None]
            behind += [tp for tp, o in committed.items() if tp in end and o.offset < end[tp]]
            if not behind:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


# --- compare ----------------------------------------------------------------------------


async def compare(live_url: str, scratch_url: str, started_at: datetime) -> Comparison:
    result = Comparison()
    live, scratch = create_async_engine(live_url), create_async_engine(scratch_url)
    try:
        for name, keys in READ_MODEL_TABLES.items():
            table = Base.metadata.tables[name]
            columns = [c for c in table.columns if c.name not in IGNORED_COLUMNS]
            stmt = select(*columns, table.c.applied_at).order_by(*(table.c[k] for k in keys))
            async with live.connect() as conn:
                live_rows = {tuple(r[k] for k in keys): r for r in (await conn.execute(stmt)).mappings()}
            async with scratch.connect() as conn:
                rebuilt = {tuple(r[k] for k in keys): r for r in (await conn.execute(stmt)).mappings()}
            diffs: list[str] = []
            newer = 0
            for key in sorted(set(live_rows) | set(rebuilt), key=str):
                a, b = live_rows.get(key), rebuilt.get(key)
                if a is not None and a["applied_at"] >= started_at:
                    newer += 1  # the live consumer applied a newer event after we took the end offsets
                elif a is None:
                    diffs.append(f"{key}: only in the rebuilt model")
                elif b is None:
                    diffs.append(f"{key}: only in the live model")
                else:
                    changed = [c.name for c in columns if a[c.name] != b[c.name]]
                    if changed:
                        detail = ", ".join(f"{c}: live={a[c]!r} rebuilt={b[c]!r}" for c in changed)
                        diffs.append(f"{key}: {detail}")
            result.differences[name] = diffs
            result.compared[name] = len(live_rows) - newer
            result.skipped_newer[name] = newer
    finally:
        await live.dispose()
        await scratch.dispose()
    return result


def report(comparison: Comparison, stats: ReplayStats) -> None:
    print(f"replayed {stats.applied} events ({stats.invalid} invalid, skipped: live dead-letters them)")
    for name, diffs in comparison.differences.items():
        skipped = comparison.skipped_newer[name]
        note = f", {skipped} changed during the rebuild (not compared)" if skipped else ""
        status = "equal" if not diffs else f"{len(diffs)} DIFFERENCES"
        print(f"  {name}: {comparison.compared[name]} rows compared, {status}{note}")
        for line in diffs[:MAX_SHOWN]:
            print(f"    {line}")
        if len(diffs) > MAX_SHOWN:
            print(f"    ... and {len(diffs) - MAX_SHOWN} more")
    print("REBUILD EQUALS LIVE" if comparison.equal else "REBUILD DIFFERS FROM LIVE")


async def run(settings: ReportingSettings, scratch_url: str, wait_seconds: float) -> Comparison:
    started_at = datetime.now(UTC)
    engine = create_async_engine(scratch_url)
    try:
        stats = await replay(settings, session_factory(engine))
    finally:
        await engine.dispose()
    if not await wait_for_live_group(settings, stats.end_offsets, wait_seconds):
        print(f"warning: the live group {settings.consumer_group!r} has not caught up after {wait_seconds}s")
    comparison = await compare(settings.database_url, scratch_url, started_at)
    report(comparison, stats)
    return comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reporting.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="scratch database name (default: reporting_rebuild_<random>)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument(
        "--wait-seconds", type=float, default=60.0, help="how long to wait for the live group"
    )
    args = parser.parse_args(argv)
    settings = load_settings(RebuildSettings)
    name = args.database or f"reporting_rebuild_{uuid.uuid4().hex[:8]}"
    try:
        scratch_url = create_scratch(settings.database_url, name)
    except Exception as exc:  # noqa: BLE001 - a CLI reports and exits
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        comparison = asyncio.run(run(settings, scratch_url, args.wait_seconds))
    finally:
        if args.keep:
            print(f"kept scratch database {name}")
        else:
            drop_scratch(settings.database_url, name)
    return 0 if comparison.equal else 1


if __name__ == "__main__":
    sys.exit(main())
