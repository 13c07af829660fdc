"""The local runner's commands: up, infra, down, status, logs, migrate, env."""

from __future__ import annotations

import argparse
import sys
import time

from . import kafka, postgres, proc, python_env, redis, seaweed, services, tools
from .config import DATABASE_SERVICES, SERVICES, StackConfig

INFRA = (("postgres", postgres), ("redis", redis), ("kafka", kafka), ("seaweed", seaweed))


def infra_up(cfg: StackConfig) -> None:
    cfg.ensure_dirs()
    for _, component in INFRA:
        component.install(cfg)
    for _, component in INFRA:
        component.start(cfg)


def up(cfg: StackConfig) -> None:
    started = time.monotonic()
    python_env.install(cfg)
    infra_up(cfg)
    services.migrate(cfg)
    demo = services.seed_demo(cfg)
    services.start(cfg)
    proc.log(f"stack '{cfg.profile}' is up in {time.monotonic() - started:.0f}s")
    print(f"\n{demo}")
    url = cfg.gateway_url
    print(f"\nGateway: {url}\n  API docs: {url}/docs\n  readiness: {url}/readyz")


def down(cfg: StackConfig) -> None:
    services.stop(cfg)
    for _, component in reversed(INFRA):
        component.stop(cfg)
    proc.log(f"stack '{cfg.profile}' is down")


def status(cfg: StackConfig) -> int:
    rows = []
    for name in [n for n, _ in INFRA] + list(SERVICES):
        pid = proc.running_pid(cfg, name)
        port = cfg.port({"postgres": "pg", "seaweed": "s3"}.get(name, name))
        rows.append((name, str(pid or "-"), f"127.0.0.1:{port}", "running" if pid else "stopped"))
    for row in rows:
        print(f"{row[0]:<10} pid {row[1]:<8} {row[2]:<18} {row[3]}")
    return 0 if all(r[3] == "running" for r in rows) else 3


def logs(cfg: StackConfig, names: list[str]) -> None:
    targets = names or [n for n, _ in INFRA] + list(SERVICES)
    for name in targets:
        print(proc.tail(cfg.log_file(name), 40))


def env(cfg: StackConfig) -> None:
    """Print the endpoints as shell exports (for tests and ad-hoc scripts)."""
    values = {
        "TT_DATABASE_ADMIN_URL": cfg.database_url("projects", "postgres"),
        "TT_REDIS_URL": cfg.redis_url,
        "TT_KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
        "TT_S3_ENDPOINT": cfg.s3_endpoint,
        "TT_S3_ACCESS_KEY": cfg.s3_access_key,
        "TT_S3_SECRET_KEY": cfg.s3_secret_key,
        "TT_GATEWAY_URL": cfg.gateway_url,
        # The services' own variables, for commands that read their databases (python -m consistency).
        **{f"{s.upper()}_DATABASE_URL": cfg.database_url(s) for s in DATABASE_SERVICES},
    }
    for k, v in values.items():
        print(f"export {k}={v}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__)
    parser.add_argument("--profile", default="dev", choices=["dev", "test"])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="install what is missing, start infrastructure and services")
    sub.add_parser("infra", help="install what is missing and start only the infrastructure")
    sub.add_parser("install", help="install what is missing, start nothing")
    sub.add_parser("down", help="stop everything this profile started (by pid file)")
    sub.add_parser("status", help="what runs, with pids and ports")
    sub.add_parser("migrate", help="run every service's Alembic migrations")
    sub.add_parser("env", help="print endpoints as shell exports")
    lg = sub.add_parser("logs", help="tail the logs")
    lg.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    cfg = StackConfig.load(args.profile)
    try:
        match args.command:
            case "up":
                up(cfg)
            case "infra":
                python_env.install(cfg)
                infra_up(cfg)
            case "install":
                python_env.install(cfg)
                for _, component in INFRA:
                    component.install(cfg)
                tools.install(cfg)
            case "down":
                down(cfg)
            case "status":
                return status(cfg)
            case "migrate":
                services.migrate(cfg)
            case "env":
                env(cfg)
            case "logs":
                logs(cfg, args.names)
    except proc.StartupError as exc:
        print(f"\n[ttlocal] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0
