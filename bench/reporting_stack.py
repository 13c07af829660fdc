"""What the reporting benchmarks share: a stack to run against, and the events they write.

Own stack (the default): the local runner's test profile infrastructure (move
it with TT_TEST_PORT_OFFSET / TT_TEST_STATE_DIR), a fresh reporting database
migrated by Alembic, uuid-named topics, and ONLY the reporting service as a
process (nothing else is needed: the benchmarks write events straight to its
topics). Everything it started is stopped again, the database dropped.

`--existing dev|test`: a stack already running (`make up`), its default topics
and its reporting database. bench/run_all.py passes its whole own stack instead
(`target_for`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import (  # noqa: E402
    OwnStack,
    bench_topics,
    free_port,
    fresh_databases,
    service_pids,
    start_infra,
)

from timetracking.events.v1 import directory_pb2, entries_pb2  # noqa: E402
from timetracking.projects.v1 import projects_pb2 as ppb  # noqa: E402
from ttlocal import proc  # noqa: E402
from ttlocal.config import StackConfig  # noqa: E402
from ttlocal.python_env import venv_python  # noqa: E402

PROCESS = "reporting-bench"


@dataclass
class Target:
    """Where the benchmark sends events and asks for reports."""

    kafka: str
    grpc: str
    database_url: str  # postgresql:// (psycopg)
    topic_entries: str
    topic_directory: str
    pids: tuple[int, ...] = ()  # the reporting process(es), for CPU per operation; () if unknown


def target(existing: str | None, cleanup: ExitStack) -> Target:
    cfg = StackConfig.load(existing or "test")
    if existing:
        return Target(
            cfg.kafka_bootstrap,
            cfg.grpc_target("reporting"),
            cfg.database_url("reporting").replace("postgresql+psycopg", "postgresql"),
            os.environ.get("REPORTING_TOPIC_ENTRIES", "timetracking.entries.v1"),
            os.environ.get("REPORTING_TOPIC_DIRECTORY", "timetracking.directory.v1"),
            tuple(service_pids(cfg, ["reporting"]).values()),
        )
    return _own_stack(cfg, cleanup)


def target_for(own: OwnStack) -> Target:
    """The reporting service of a full stack started by benchkit.start_own_stack."""
    return Target(
        own.cfg.kafka_bootstrap,
        own.cfg.grpc_target("reporting"),
        own.psycopg_url("reporting"),
        own.topics["entries"],
        own.topics["directory"],
        tuple(service_pids(own.cfg, ["reporting"]).values()),
    )


def _own_stack(cfg: StackConfig, cleanup: ExitStack) -> Target:
    start_infra(cfg, cleanup, ["postgres", "redis", "kafka"])
    suffix = uuid.uuid4().hex[:8]
    url = fresh_databases(cfg, cleanup, suffix, ["reporting"])["reporting"]
    subprocess.run(
        [
            str(venv_python(cfg)),
            "-m",
            "alembic",
            "-c",
            "services/reporting/alembic.ini",
            "-x",
            f"url={url}",
            "upgrade",
            "head",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    port = free_port()
    topics = bench_topics(suffix)
    env = {
        **cfg.service_env("reporting"),
        "REPORTING_DATABASE_URL": url,
        "REPORTING_GRPC_PORT": str(port),
        "REPORTING_LOG_LEVEL": "WARNING",
        "REPORTING_TOPIC_ENTRIES": topics["entries"],
        "REPORTING_TOPIC_DIRECTORY": topics["directory"],
        "REPORTING_TOPIC_SYSTEM": topics["system"],
        "REPORTING_TOPIC_DEAD_LETTER": topics["dead_letter"],
        "REPORTING_CONSUMER_GROUP": f"reporting-bench{suffix}",
    }
    proc.spawn(cfg, PROCESS, [str(venv_python(cfg)), "-m", "reporting"], env=env, cwd=ROOT)
    cleanup.callback(proc.stop, cfg, PROCESS)
    proc.wait_until(lambda: proc.port_open(port), "reporting", 60, cfg=cfg, name=PROCESS)
    return Target(
        cfg.kafka_bootstrap,
        f"127.0.0.1:{port}",
        url.replace("postgresql+psycopg", "postgresql"),
        env["REPORTING_TOPIC_ENTRIES"],
        env["REPORTING_TOPIC_DIRECTORY"],
        tuple(pid for pid in [proc.running_pid(cfg, PROCESS)] if pid),
    )


# --- events ---------------------------------------------------------------------------


def user_event(user_id: str, timezone: str) -> bytes:
    event = directory_pb2.DirectoryEvent(event_id=str(uuid.uuid4()))
    event.occurred_at.FromDatetime(datetime.now(UTC))
    event.user_changed.CopyFrom(
        ppb.User(
            user_id=user_id,
            name="Bench User",
            role=ppb.ROLE_EMPLOYEE,
            timezone=timezone,
            active=True,
            version=1,
        )
    )
    return event.SerializeToString()


def stopped_event(
    *, user_id: str, project_id: str, start: datetime, end: datetime, occurred_at: datetime | None = None
) -> tuple[str, bytes]:
    """(entry id, EntryStopped) for a new entry."""
    entry_id = str(uuid.uuid4())
    snap = entries_pb2.TimeEntrySnapshot(
        entry_id=entry_id,
        user_id=user_id,
        project_id=project_id,
        description="benchmark",
        duration_seconds=int((end - start).total_seconds()),
        is_billable=True,
        hourly_rate="100.00",
        currency="EUR",
        version=1,
    )
    snap.start_time.FromDatetime(start)
    snap.end_time.FromDatetime(end)
    event = entries_pb2.EntryEvent(event_id=str(uuid.uuid4()), stopped=entries_pb2.EntryStopped(entry=snap))
    event.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    return entry_id, event.SerializeToString()
