"""Alembic migrations and models stay in step, and migrations run both ways."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.infra import ROOT

SERVICES = ("projects", "tracking", "reporting", "invoicing")


def alembic(service: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", f"services/{service}/alembic.ini", "-x", f"url={url}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_models_match_migrations(service: str, session_databases: dict[str, str]) -> None:
    result = alembic(service, session_databases[service], "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_downgrade_to_base_and_upgrade_again(service: str, infra, session_databases: dict[str, str]) -> None:
    import psycopg

    db = f"{service}_migrations_roundtrip"
    admin = infra.database_url("postgres", driver="postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        url = infra.database_url(db)
        for step in (("upgrade", "head"), ("downgrade", "base"), ("upgrade", "head")):
            result = alembic(service, url, *step)
            assert result.returncode == 0, f"{step}: {result.stderr}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
