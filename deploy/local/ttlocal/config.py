"""Where the local stack lives and which ports it uses.

Two profiles exist so that `make test` never disturbs a stack started by
`make up`: `dev` (the default) and `test`. Each has its own state directory,
its own ports and its own databases. Every port can be overridden from the
environment: `TT_<NAME>_PORT` for the dev profile, `TT_TEST_<NAME>_PORT` for
the test profile (for example `TT_PG_PORT=25432 make up`); `TT_PORT_OFFSET` /
`TT_TEST_PORT_OFFSET` move a whole profile at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]

# Non-standard defaults so a system PostgreSQL, Redis or Kafka never clashes.
DEFAULT_PORTS: dict[str, int] = {
    "pg": 15432,
    "redis": 16379,
    "kafka": 19092,
    "kafka_controller": 19093,
    "s3": 18333,
    "seaweed_master": 19533,
    "seaweed_master_grpc": 19534,
    "seaweed_volume": 18081,
    "seaweed_volume_grpc": 18082,
    "seaweed_filer": 18888,
    "seaweed_filer_grpc": 18889,
    "seaweed_s3_grpc": 18334,
    "seaweed_webdav": 18335,
    "seaweed_admin": 18336,
    # weed mini's maintenance worker dials the admin gRPC port as admin HTTP + 10000,
    # whatever -admin.port.grpc says, so keep the two exactly 10000 apart.
    "seaweed_admin_grpc": 28336,
    # Below Linux's ephemeral range (32768-60999): a listen port inside it can be taken as the
    # source port of any outgoing connection (to PostgreSQL, Kafka, ...) and then fails to bind.
    "projects": 22151,
    "tracking": 22152,
    "reporting": 22153,
    "invoicing": 22154,
    "gateway": 8180,
    # Prometheus /metrics of the gRPC services (<SVC>_METRICS_PORT).
    "projects_metrics": 19151,
    "tracking_metrics": 19152,
    "reporting_metrics": 19153,
    "invoicing_metrics": 19154,
    "gateway_metrics": 19155,
}

PROFILE_OFFSETS = {"dev": 0, "test": 100}

LOCAL_GATEWAY_WORKERS = 2

SERVICES = ("projects", "tracking", "reporting", "invoicing", "gateway")
# Services that serve gRPC (and Prometheus metrics on their own port).
GRPC_SERVICES = ("projects", "tracking", "reporting", "invoicing")
# Services that own a PostgreSQL database (the gateway keeps its state in Redis).
DATABASE_SERVICES = ("projects", "tracking", "reporting", "invoicing")


def _env_prefix(profile: str) -> str:
    return "TT_" if profile == "dev" else f"TT_{profile.upper()}_"


@dataclass
class StackConfig:
    """Everything the runner needs to know about one profile's stack."""

    profile: str = "dev"
    root: Path = REPO_ROOT
    ports: dict[str, int] = field(default_factory=dict)
    s3_access_key: str = "timetracking"
    s3_secret_key: str = "timetracking-local-secret"
    s3_bucket: str = "invoices"
    pg_user: str = "timetracking"
    pg_password: str = "timetracking"
    # Which services this stack runs, and where their pid and log files live when not in the
    # profile's state directory: tests start a second, isolated set of service processes beside
    # the session's, on the same infrastructure (whose pid files stay where they are).
    services: tuple[str, ...] = SERVICES
    services_state_dir: Path | None = None

    @classmethod
    def load(cls, profile: str = "dev") -> StackConfig:
        if profile not in PROFILE_OFFSETS:
            raise SystemExit(f"unknown profile {profile!r}; expected one of {sorted(PROFILE_OFFSETS)}")
        prefix = _env_prefix(profile)
        # One knob to move a whole profile (e.g. a second checkout's tests on the same machine).
        offset = int(os.environ.get(f"{prefix}PORT_OFFSET", PROFILE_OFFSETS[profile]))
        ports = {}
        for name, default in DEFAULT_PORTS.items():
            raw = os.environ.get(f"{prefix}{name.upper()}_PORT")
            ports[name] = int(raw) if raw else default + offset
        cfg = cls(profile=profile, ports=ports)
        cfg.s3_access_key = os.environ.get(f"{prefix}S3_ACCESS_KEY", cfg.s3_access_key)
        cfg.s3_secret_key = os.environ.get(f"{prefix}S3_SECRET_KEY", cfg.s3_secret_key)
        return cfg

    # --- directories -----------------------------------------------------
    @property
    def state_dir(self) -> Path:
        override = os.environ.get(f"{_env_prefix(self.profile)}STATE_DIR")
        return Path(override) if override else self.root / ".local" / self.profile

    @property
    def cache_dir(self) -> Path:
        """Downloads shared by every profile (Kafka jars)."""
        return self.root / ".local" / "cache"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    def data_dir(self, name: str) -> Path:
        return self.state_dir / "data" / name

    def _dir_of(self, name: str) -> Path:
        if self.services_state_dir is not None and name in SERVICES:
            return self.services_state_dir
        return self.state_dir

    def pid_file(self, name: str) -> Path:
        return self._dir_of(name) / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self._dir_of(name) / "logs" / f"{name}.log"

    @property
    def pg_data_dir(self) -> Path:
        """PostgreSQL's data dir, which must be reachable by the postgres user.

        A checkout under a directory the postgres user cannot traverse (say
        /root) gets its data dir under /var/tmp instead, keyed by the checkout.
        """
        preferred = self.data_dir("postgres")
        if _traversable_by_others(self.state_dir):
            return preferred
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/var/tmp/timetracking") / f"{key}-{self.profile}" / "postgres"

    @property
    def jwt_dev_secret(self) -> str:
        """The local stack's JWT key: random per state directory, kept across restarts."""
        path = self.state_dir / "jwt-dev-key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    # --- endpoints ---------------------------------------------------------
    def port(self, name: str) -> int:
        return self.ports[name]

    def database_name(self, service: str) -> str:
        return f"{service}_{self.profile}"

    def database_url(self, service: str, database: str | None = None) -> str:
        db = database or self.database_name(service)
        return f"postgresql+psycopg://{self.pg_user}:{self.pg_password}@127.0.0.1:{self.port('pg')}/{db}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port('redis')}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.port('kafka')}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port('s3')}"

    def grpc_target(self, service: str) -> str:
        return f"127.0.0.1:{self.port(service)}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port('gateway')}"

    def service_env(self, service: str) -> dict[str, str]:
        """Environment for one service process, in its settings' env prefix."""
        p = service.upper()
        env = {
            f"{p}_REDIS_URL": self.redis_url,
            f"{p}_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            f"{p}_GRPC_PORT": str(self.port(service)),
            f"{p}_LOG_FORMAT": "console",
            "OTEL_SERVICE_NAME": service,
        }
        if service in DATABASE_SERVICES:
            env[f"{p}_DATABASE_URL"] = self.database_url(service)
        env[f"{p}_METRICS_PORT"] = str(self.port(f"{service}_metrics"))
        for other in ("projects", "tracking", "reporting", "invoicing"):
            env[f"{p}_{other.upper()}_TARGET"] = self.grpc_target(other)
        if service == "gateway":
            env["GATEWAY_HTTP_PORT"] = str(self.port("gateway"))
            env.pop("GATEWAY_GRPC_PORT")
            env["GATEWAY_ENVIRONMENT"] = "dev" if self.profile == "dev" else "test"
            env["GATEWAY_JWT_KEYS"] = json.dumps({"local-1": self.jwt_dev_secret})
            env["GATEWAY_JWT_ACTIVE_KID"] = "local-1"
            # `make up`: two HTTP worker processes (one tops out near one core; docs/decisions.md).
            # Test stacks start and stop often on shared machines: one process, unless a test
            # (or the benchmark) asks for more.
            workers = LOCAL_GATEWAY_WORKERS if self.profile == "dev" else 1
            env["GATEWAY_WORKERS"] = os.environ.get("GATEWAY_WORKERS", str(workers))
        if service in ("invoicing", "gateway"):
            env[f"{p}_S3_ENDPOINT_URL"] = self.s3_endpoint
            env[f"{p}_S3_ACCESS_KEY"] = self.s3_access_key
            env[f"{p}_S3_SECRET_KEY"] = self.s3_secret_key
            env[f"{p}_S3_BUCKET"] = self.s3_bucket
        return env

    def ensure_dirs(self) -> None:
        for d in (self.state_dir, self.log_dir, self.pid_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.services_state_dir is not None:
            for sub in ("pids", "logs"):
                (self.services_state_dir / sub).mkdir(parents=True, exist_ok=True)


def _traversable_by_others(path: Path) -> bool:
    """True when every existing ancestor of `path` lets the postgres user in."""
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return True
    p = path
    while not p.exists():
        p = p.parent
    for ancestor in [p, *p.parents]:
        st = ancestor.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & 0o001:
            return False
    return True
