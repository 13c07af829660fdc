"""Settings: one pydantic-settings class per service, each with its env prefix.

A service subclasses `ServiceSettings` and sets `model_config` with its prefix
(`TRACKING_`...). `load_settings` fails fast, naming every missing or bad
variable, before anything else starts. Standard `OTEL_*` variables are read by
the OpenTelemetry SDK itself and pass straight through.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# Kafka's own default for a message (the producer's max.request.size): 1 MiB.
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


class BaseServiceSettings(BaseSettings):
    """Settings every process has (the gateway included)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "service"
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "json"


class ServiceSettings(BaseServiceSettings):
    """Settings every gRPC service has. Subclasses add their own."""

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(ge=1, le=65535)
    grpc_shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Prometheus /metrics; off when unset"
    )


class DatabaseSettings(BaseSettings):
    database_url: str = Field(description="postgresql+psycopg://user:pass@host:port/db")
    database_pool_size: int = Field(default=20, ge=1)
    database_statement_timeout_ms: int = Field(default=15_000, ge=0)


class KafkaSettings(BaseSettings):
    kafka_bootstrap_servers: str
    kafka_client_id: str | None = None
    kafka_max_message_bytes: int = Field(
        default=KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        description="the largest event the producer sends; topics this service creates accept it",
    )


class RedisSettings(BaseSettings):
    redis_url: str


S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised (and exits the process) when configuration is missing or invalid."""


def load_settings(cls: type[S]) -> S:
    """Build settings from the environment or exit with a message per bad field."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration for {cls.__name__}:"]
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {prefix}{name}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SettingsError(2) from exc
