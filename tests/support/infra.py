"""Session fixtures that give tests REAL infrastructure.

On a machine with a working Docker engine (checked with a real ping, not by
looking for the binary) the infrastructure comes from testcontainers. Without
one, as on CI here, the project's local runner starts the `test` profile
(separate ports, state and databases from `make up`), and stops at the end of
the session exactly what it started.

Each session gets fresh databases, created and migrated by Alembic, and
uuid-named Kafka topics where a test needs isolation.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from ttlocal import cli as stack  # noqa: E402
from ttlocal import proc  # noqa: E402
from ttlocal.config import DATABASE_SERVICES, SERVICES, StackConfig  # noqa: E402


@dataclass
class Infra:
    """Endpoints of the real infrastructure this session uses."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    redis_url: str
    kafka_bootstrap: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str
    source: str  # "local-runner" or "testcontainers"
    _cleanup: list = field(default_factory=list, repr=False)

    def database_url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.pg_user}:{self.pg_password}@{self.pg_host}:{self.pg_port}/{database}"


def docker_available() -> bool:
    """A real ping of a Docker engine; `which docker` is not enough (the CLI exists here)."""
    if os.environ.get("TT_TESTS_USE_DOCKER", "auto") == "never":
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no"
        return False


def _from_testcontainers() -> Infra:  # pragma: no cover - needs a Docker engine
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    pg = PostgresContainer("postgres:15", username="timetracking", password="timetracking", dbname="postgres")
    redis = RedisContainer("redis:7")
    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    minio = MinioContainer(
        "minio/minio:latest", access_key="timetracking", secret_key="timetracking-local-secret"
    )
    containers = [pg, redis, kafka, minio]
    for c in containers:
        c.start()
    minio.get_client().make_bucket("invoices")
    return Infra(
        pg_host=pg.get_container_host_ip(),
        pg_port=int(pg.get_exposed_port(5432)),
        pg_user="timetracking",
        pg_password="timetracking",
        redis_url=f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
        kafka_bootstrap=kafka.get_bootstrap_server(),
        s3_endpoint=f"http://{minio.get_container_host_ip()}:{minio.get_exposed_port(9000)}",
        s3_access_key="timetracking",
        s3_secret_key="timetracking-local-secret",
        s3_bucket="invoices",
        source="testcontainers",
        _cleanup=[c.stop for c in containers],
    )


def _from_local_runner(cfg: StackConfig) -> Infra:
    names = [n for n, _ in stack.INFRA]
    already = {n for n in names if proc.running_pid(cfg, n)}

    def stop_what_we_started() -> None:
        for name, component in reversed(stack.INFRA):
            if name not in already:
                component.stop(cfg)

    try:
        stack.infra_up(cfg)
    except BaseException:
        stop_what_we_started()  # a half-started stack must not outlive the session
        raise

    return Infra(
        pg_host="127.0.0.1",
        pg_port=cfg.port("pg"),
        pg_user=cfg.pg_user,
        pg_password=cfg.pg_password,
        redis_url=cfg.redis_url,
        kafka_bootstrap=cfg.kafka_bootstrap,
        s3_endpoint=cfg.s3_endpoint,
        s3_access_key=cfg.s3_access_key,
        s3_secret_key=cfg.s3_secret_key,
        s3_bucket=cfg.s3_bucket,
        source="local-runner",
        _cleanup=[stop_what_we_started],
    )


@pytest.fixture(scope="session")
def test_stack_config() -> StackConfig:
    return StackConfig.load("test")


@pytest.fixture(scope="session")
def infra(test_stack_config: StackConfig) -> Iterator[Infra]:
    env = _from_testcontainers() if docker_available() else _from_local_runner(test_stack_config)
    print(
        f"\ninfrastructure from {env.source}: postgres {env.pg_host}:{env.pg_port}, "
        f"redis {env.redis_url}, kafka {env.kafka_bootstrap}, s3 {env.s3_endpoint}"
    )
    try:
        yield env
    finally:
        for cleanup in reversed(env._cleanup):
            cleanup()


def _admin(infra: Infra):
    import psycopg

    return psycopg.connect(infra.database_url("postgres", driver="postgresql"), autocommit=True)


@contextmanager
def fresh_databases(
    infra: Infra, cfg: StackConfig, label: str, only: tuple[str, ...] = DATABASE_SERVICES
) -> Iterator[dict[str, str]]:
    """New databases (`only` some services'), migrated by Alembic; dropped on exit."""
    from ttlocal import services

    suffix = uuid.uuid4().hex[:8]
    names = {s: f"{s}_{label}{suffix}" for s in only}
    with _admin(infra) as conn:
        for db in names.values():
            conn.execute(f'CREATE DATABASE "{db}"')
    try:
        urls = {s: infra.database_url(db) for s, db in names.items()}
        services.migrate(cfg, urls, only)
        yield urls
    finally:
        with _admin(infra) as conn:
            for db in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture(scope="session")
def session_databases(infra: Infra, test_stack_config: StackConfig) -> Iterator[dict[str, str]]:
    """A fresh database per service for this session, migrated by Alembic; dropped afterwards."""
    with fresh_databases(infra, test_stack_config, "t") as urls:
        yield urls


@pytest.fixture
def unique_topic() -> str:
    return f"test.{uuid.uuid4().hex}"


def service_overrides(infra: Infra, databases: dict[str, str], topic_suffix: str) -> dict[str, str]:
    """Environment pointing every service at this session's infrastructure and databases."""
    env: dict[str, str] = {}
    for service in ("projects", "tracking", "reporting", "invoicing", "gateway"):
        p = service.upper()
        env[f"{p}_REDIS_URL"] = infra.redis_url
        env[f"{p}_KAFKA_BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap
        env[f"{p}_S3_ENDPOINT_URL"] = infra.s3_endpoint
        env[f"{p}_TOPIC_ENTRIES"] = f"timetracking.entries.{topic_suffix}"
        env[f"{p}_TOPIC_SYSTEM"] = f"timetracking.system.{topic_suffix}"
        env[f"{p}_TOPIC_DIRECTORY"] = f"timetracking.directory.{topic_suffix}"
        env[f"{p}_TOPIC_INVOICES"] = f"timetracking.invoices.{topic_suffix}"
        env[f"{p}_TOPIC_DEAD_LETTER"] = f"timetracking.dlq.{topic_suffix}"
        env[f"{p}_CONSUMER_GROUP"] = f"{service}-{topic_suffix}"
        if service in databases:
            env[f"{p}_DATABASE_URL"] = databases[service]
    # Background schedules fast enough for a test to watch them work.
    env["INVOICING_RECONCILE_INTERVAL_S"] = "1"
    env["INVOICING_PENDING_GRACE_S"] = "3"
    env["INVOICING_OVERDUE_INTERVAL_S"] = "1"
    return env


@dataclass
class RunningStack:
    gateway_url: str
    config: StackConfig
    env: dict[str, str]
    databases: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def running_services(
    infra: Infra, session_databases: dict[str, str], test_stack_config: StackConfig
) -> Iterator[RunningStack]:
    """The five services as real processes on the test profile's ports."""
    from ttlocal import services

    cfg = test_stack_config
    env = service_overrides(infra, session_databases, uuid.uuid4().hex[:8])
    services.stop(cfg)  # leftovers of an interrupted run hold the ports
    try:
        # Inside the try: when one service fails to start, the others it started are stopped too.
        services.start(cfg, env)
        yield RunningStack(cfg.gateway_url, cfg, env, session_databases)
    finally:
        services.stop(cfg)


@contextmanager
def isolated_stack(
    infra: Infra, session_cfg: StackConfig, label: str, port_shift: int, only: tuple[str, ...] = SERVICES
) -> Iterator[RunningStack]:
    """A second set of service processes (`only` some), on their own databases and topics.

    For tests that write what the product never would — synthetic events, corrupted rows —
    so that the session's shared databases stay what the services made them, which the
    consistency check at the end of the session verifies.

    The services listen `port_shift` (1-99) above the session's ports: inside the gap the
    runner leaves between port offsets (steps of 100), so no other stack is hit. Isolated
    stacks alive at the same time need different shifts.
    """
    from ttlocal import services

    assert 0 < port_shift < 100, "a shift of 100 or more reaches the next offset's ports"
    ports = dict(session_cfg.ports)
    for name in SERVICES:
        for key in (name, f"{name}_metrics"):
            ports[key] = session_cfg.ports[key] + port_shift
    cfg = dataclasses.replace(
        session_cfg, ports=ports, services=only, services_state_dir=session_cfg.state_dir / "isolated" / label
    )
    with fresh_databases(infra, session_cfg, label, tuple(s for s in DATABASE_SERVICES if s in only)) as dbs:
        env = service_overrides(infra, dbs, f"{label}-{uuid.uuid4().hex[:8]}")
        services.stop(cfg)  # leftovers of an interrupted run hold the ports
        try:
            services.start(cfg, env)
            yield RunningStack(cfg.gateway_url, cfg, env, dbs)
        finally:
            services.stop(cfg)
