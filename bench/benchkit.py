"""What every benchmark script shares: an isolated stack, percentiles, results on disk."""

from __future__ import annotations

import json
import sys
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from ttlocal import cli as stack  # noqa: E402
from ttlocal import proc, services  # noqa: E402
from ttlocal.config import DATABASE_SERVICES, SERVICES, StackConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def own_databases(
    cfg: StackConfig, cleanup: ExitStack, only: tuple[str, ...] = DATABASE_SERVICES
) -> dict[str, str]:
    """Infrastructure and fresh, migrated databases (`only` some services'); all gone again on exit.

    Returns the database URLs. Uses the profile's ports (move them with
    TT_TEST_PORT_OFFSET) and stops only what it started.
    """
    import psycopg

    names = [n for n, _ in stack.INFRA]
    already = {n for n in names if proc.running_pid(cfg, n)}
    stack.infra_up(cfg)

    def stop_infra() -> None:
        for name, component in reversed(stack.INFRA):
            if name not in already:
                component.stop(cfg)

    cleanup.callback(stop_infra)
    suffix = uuid.uuid4().hex[:8]
    dbs = {s: f"{s}_bench{suffix}" for s in only}
    admin = cfg.database_url("postgres", "postgres").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        for db in dbs.values():
            conn.execute(f'CREATE DATABASE "{db}"')

    def drop_dbs() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            for db in dbs.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    cleanup.callback(drop_dbs)
    urls = {s: cfg.database_url(s, db) for s, db in dbs.items()}
    services.migrate(cfg, urls, only)
    return urls


def start_own_stack(
    cfg: StackConfig, cleanup: ExitStack, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """Infrastructure, fresh databases and the five services; all stopped again on exit.

    Returns the database URLs. Uses the profile's ports (move them with
    TT_TEST_PORT_OFFSET) and stops only what it started.
    """
    urls = own_databases(cfg, cleanup)
    env = {f"{s.upper()}_DATABASE_URL": url for s, url in urls.items()}
    env |= {f"{s.upper()}_LOG_LEVEL": "WARNING" for s in SERVICES}
    env |= extra_env or {}
    services.stop(cfg)
    cleanup.callback(services.stop, cfg)
    services.start(cfg, env)
    return urls


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path.relative_to(ROOT)
