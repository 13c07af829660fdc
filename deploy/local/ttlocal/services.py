"""The five services as local processes, after their databases are migrated."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from functools import partial

from . import proc
from .config import DATABASE_SERVICES, StackConfig
from .python_env import venv_python


def migrate(
    cfg: StackConfig, databases: dict[str, str] | None = None, only: tuple[str, ...] = DATABASE_SERVICES
) -> None:
    """`alembic upgrade head` for every service database, or `only` some (URLs overridable for tests)."""
    for service in only:
        url = (databases or {}).get(service) or cfg.database_url(service)
        result = subprocess.run(
            [
                str(venv_python(cfg)),
                "-m",
                "alembic",
                "-c",
                f"services/{service}/alembic.ini",
                "-x",
                f"url={url}",
                "upgrade",
                "head",
            ],
            cwd=cfg.root,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise proc.StartupError(f"migrations of {service} failed:\n{result.stderr[-3000:]}")
    proc.log("databases migrated")


def _gateway_ready(cfg: StackConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{cfg.gateway_url}/readyz", timeout=5) as resp:
            return resp.status == 200 and json.load(resp)["status"] == "ok"
    except OSError:
        return False


def start(cfg: StackConfig, env_overrides: dict[str, str] | None = None) -> None:
    """Start the stack's services (all five unless cfg.services says fewer); wait until they serve."""
    for service in cfg.services:
        port = cfg.port(service)
        if proc.running_pid(cfg, service):
            proc.log(f"{service} already running on 127.0.0.1:{port}")
            continue
        taken = [p for p in (port, cfg.ports.get(f"{service}_metrics")) if p and proc.port_open(p)]
        if taken:
            raise proc.StartupError(
                f"port {taken[0]} for {service} is taken by a process this stack did not start"
            )
        env = {**cfg.service_env(service), **(env_overrides or {})}
        proc.spawn(cfg, service, [str(venv_python(cfg)), "-m", service], env=env, cwd=cfg.root)
    for service in cfg.services:
        # 120 s: a gateway with workers listens once a worker has imported the app, which on a
        # busy shared machine takes a minute.
        proc.wait_until(partial(proc.port_open, cfg.port(service)), service, 120, cfg=cfg, name=service)
    if "gateway" in cfg.services:
        proc.wait_until(lambda: _gateway_ready(cfg), "gateway /readyz", 90, cfg=cfg, name="gateway")
    proc.log("services ready")


def stop(cfg: StackConfig) -> None:
    # The gateway first, so no new work arrives while the services drain.
    for service in reversed(cfg.services):
        if proc.stop(cfg, service, timeout=30):
            proc.log(f"{service} stopped")


def seed_demo(cfg: StackConfig) -> str:
    """The demo organisation (idempotent); returns what the seed printed (the demo logins)."""
    result = subprocess.run(
        [
            str(venv_python(cfg)),
            "-m",
            "projects.seed",
            "demo",
            "--credentials-file",
            str(cfg.state_dir / "demo-credentials.txt"),
        ],
        cwd=cfg.root,
        capture_output=True,
        text=True,
        env={**os.environ, "PROJECTS_DATABASE_URL": cfg.database_url("projects")},
    )
    if result.returncode != 0:
        raise proc.StartupError(f"seeding the demo organisation failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip()
