"""PostgreSQL 15 from the machine's binaries, run as the postgres user on a project-local data dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import proc
from .config import DATABASE_SERVICES, StackConfig

PG_USER = "postgres"


def bin_dir() -> Path:
    override = os.environ.get("TT_PG_BINDIR")
    if override:
        return Path(override)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if not candidates:
        raise proc.StartupError(
            "PostgreSQL binaries not found under /usr/lib/postgresql (apt: postgresql-15)"
        )
    return candidates[0].parent


def install(cfg: StackConfig) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")) and not os.environ.get("TT_PG_BINDIR"):
        apt_install(["postgresql-15", "postgresql-contrib-15"])


def apt_install(packages: list[str]) -> None:
    """Install Debian packages without letting their maintainer scripts start system services."""
    proc.log(f"apt-get install {' '.join(packages)}")
    policy = Path("/usr/sbin/policy-rc.d")
    created = False
    if not policy.exists():
        # 101 = "action not allowed": the package installs, its daemon stays stopped.
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        created = True
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not any(Path("/var/lib/apt/lists").glob("*_Packages")):
            proc.run(["apt-get", "update", "-qq"], env=env)
        result = proc.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env, check=False
        )
        if result.returncode != 0:
            proc.run(["apt-get", "update", "-qq"], env=env)
            proc.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)
    finally:
        if created:
            policy.unlink(missing_ok=True)


def _socket_dir(cfg: StackConfig) -> Path:
    return cfg.pg_data_dir.parent / "run"


def _psql(cfg: StackConfig, sql: str, database: str = "postgres") -> str:
    result = proc.run(
        [
            str(bin_dir() / "psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(_socket_dir(cfg)),
            "-p",
            str(cfg.port("pg")),
            "-U",
            PG_USER,
            "-d",
            database,
            "-c",
            sql,
        ],
        user=PG_USER,
    )
    return result.stdout.strip()


def ready(cfg: StackConfig) -> bool:
    result = proc.run(
        [str(bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(cfg.port("pg"))], check=False
    )
    return result.returncode == 0


def _prepare_data_dir(cfg: StackConfig) -> None:
    data = cfg.pg_data_dir
    if (data / "PG_VERSION").exists():
        return
    proc.log(f"initdb {data}")
    for d in (data, _socket_dir(cfg)):
        d.mkdir(parents=True, exist_ok=True)
        shutil.chown(d, PG_USER, PG_USER)
    data.chmod(0o700)
    proc.run(
        [
            str(bin_dir() / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        user=PG_USER,
    )


def start(cfg: StackConfig) -> None:
    if proc.running_pid(cfg, "postgres") and ready(cfg):
        proc.log(f"postgresql already running on 127.0.0.1:{cfg.port('pg')}")
        ensure_databases(cfg)
        return
    if proc.port_open(cfg.port("pg")):
        raise proc.StartupError(
            f"port {cfg.port('pg')} is taken by a process this stack did not start; "
            f"set TT_{'' if cfg.profile == 'dev' else cfg.profile.upper() + '_'}PG_PORT"
        )
    _prepare_data_dir(cfg)
    sock = _socket_dir(cfg)
    sock.mkdir(parents=True, exist_ok=True)
    shutil.chown(sock, PG_USER, PG_USER)
    args = [
        str(bin_dir() / "postgres"),
        "-D",
        str(cfg.pg_data_dir),
        "-p",
        str(cfg.port("pg")),
        "-k",
        str(sock),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=256MB",
        "-c",
        "log_min_messages=warning",
    ]
    if cfg.profile == "test":
        # Throwaway data: trade crash safety of the OS (not of PostgreSQL) for speed. Not
        # synchronous_commit=off: that acknowledges commits a PostgreSQL crash then loses, and the
        # fault tests SIGKILL the postmaster and check that every acknowledged write survived.
        args += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    # The log file is opened by root before dropping privileges, so postgres can write to it.
    proc.spawn(cfg, "postgres", args, user=PG_USER)
    proc.wait_until(lambda: ready(cfg), "postgresql", 60, cfg=cfg, name="postgres")
    proc.log(f"postgresql ready on 127.0.0.1:{cfg.port('pg')}")
    ensure_databases(cfg)


def ensure_databases(cfg: StackConfig) -> None:
    """The application role and one database per service (idempotent)."""
    role = cfg.pg_user
    exists = _psql(cfg, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
    if not exists:
        _psql(cfg, f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{cfg.pg_password}'")
    # DROP DATABASE ... WITH (FORCE) of a test or benchmark database must also end an autovacuum
    # worker busy in it (after a bulk load); those run without a role, so only pg_signal_backend may.
    _psql(cfg, f"GRANT pg_signal_backend TO {role}")
    # btree_gist in template1, so every database (the test suite's fresh ones too) has it.
    _psql(cfg, "CREATE EXTENSION IF NOT EXISTS btree_gist", database="template1")
    for service in DATABASE_SERVICES:
        db = cfg.database_name(service)
        if not _psql(cfg, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
            _psql(cfg, f"CREATE DATABASE {db} OWNER {role}")


def kill(cfg: StackConfig) -> int:
    """SIGKILL the postmaster (a crash of the whole cluster) and wait until its backends are gone.

    Backends notice the postmaster's death and exit on their own; until the last one has, a new
    postmaster cannot attach to the shared memory, so `start` would fail. Returns the killed pid.
    """
    import time

    pid = proc.running_pid(cfg, "postgres")
    children = _children(pid) if pid is not None else set()
    killed = proc.kill(cfg, "postgres")
    deadline = time.monotonic() + 30
    while alive := {c for c in children if proc.pid_alive(c)}:
        if time.monotonic() > deadline:
            raise proc.StartupError(f"postgresql backends {sorted(alive)} outlived their postmaster by 30s")
        time.sleep(0.05)
    return killed


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def stop(cfg: StackConfig) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown: active transactions roll back, data is flushed.
    import signal

    if proc.stop(cfg, "postgres", timeout=60, sig=signal.SIGINT):
        proc.log("postgresql stopped")
