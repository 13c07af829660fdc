"""The gateway's settings (env prefix GATEWAY_)."""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from tt_common.settings import BaseServiceSettings, KafkaSettings, RedisSettings

MIN_KEY_BYTES = 32  # HS256 keys shorter than the hash output weaken it (RFC 7518 section 3.2)


class GatewaySettings(BaseServiceSettings, KafkaSettings, RedisSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    service_name: str = "gateway"
    environment: Literal["dev", "test", "production"] = "dev"
    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=1, le=65535)
    workers: int = Field(
        default=1, ge=1, le=64, description="HTTP worker processes (1: the app runs in the main process)"
    )
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="Prometheus; off when unset")
    projects_target: str
    tracking_target: str
    reporting_target: str
    invoicing_target: str
    grpc_deadline_s: float = Field(default=5.0, gt=0)
    report_deadline_s: float = Field(default=20.0, gt=0)
    invoice_deadline_s: float = Field(default=60.0, gt=0, description="GenerateInvoice, SendInvoice (PDF)")
    readiness_timeout_s: float = Field(default=3.0, gt=0)

    # --- JWT: HS256 with rotatable keys, picked by the token's `kid` header ---------------
    jwt_keys: dict[str, str] = Field(
        default_factory=dict, description='JSON {"kid": "secret"}; every key listed verifies'
    )
    jwt_active_kid: str = Field(default="", description="the key that signs new tokens")
    jwt_issuer: str = "https://timetracking.dev/gateway"
    jwt_audience: str = "timetracking-api"
    access_token_ttl_s: int = Field(default=900, ge=30, le=900, description="at most 15 minutes")
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)

    # --- abuse limits ---------------------------------------------------------------------
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    rate_per_s: float = Field(default=100.0, gt=0, description="token bucket refill, per token")
    rate_burst: int = Field(default=200, ge=1)
    heavy_rate_per_s: float = Field(default=2.0, gt=0, description="reports and PDFs, per token")
    heavy_rate_burst: int = Field(default=20, ge=1)
    login_rate_per_s: float = Field(default=1.0, gt=0, description="POST /v1/auth/token, per client IP")
    login_rate_burst: int = Field(default=20, ge=1)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)
    idempotency_lock_s: int = Field(default=120, ge=1, description="in-flight marker lifetime")
    access_cache_ttl_s: float = Field(default=5.0, ge=0, description="project access decisions cached")
    pdf_url_ttl_s: int = Field(default=300, ge=10, le=3600)

    @model_validator(mode="after")
    def _keys(self) -> GatewaySettings:
        keys = dict(self.jwt_keys)
        if not keys:
            if self.environment == "production":
                raise ValueError("GATEWAY_JWT_KEYS is required outside dev and test")
            # Dev/test without configured keys: one random key for this process. Tokens stop
            # verifying when the process restarts, which is all a throwaway stack needs.
            keys = {"ephemeral": secrets.token_urlsafe(48)}
            object.__setattr__(self, "jwt_keys", keys)
            object.__setattr__(self, "jwt_active_kid", "ephemeral")
        active = self.jwt_active_kid or (next(iter(keys)) if len(keys) == 1 else "")
        if active not in keys:
            raise ValueError("GATEWAY_JWT_ACTIVE_KID must name one of GATEWAY_JWT_KEYS")
        short = [kid for kid, secret in keys.items() if len(secret.encode()) < MIN_KEY_BYTES]
        if short:
            raise ValueError(f"JWT keys must be at least {MIN_KEY_BYTES} bytes: {', '.join(short)}")
        object.__setattr__(self, "jwt_active_kid", active)
        return self
