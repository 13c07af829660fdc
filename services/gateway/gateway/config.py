"""The gateway's settings (env prefix GATEWAY_)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tt_common.settings import BaseServiceSettings, KafkaSettings, RedisSettings


class GatewaySettings(BaseServiceSettings, KafkaSettings, RedisSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=1, le=65535)
    projects_target: str
    tracking_target: str
    reporting_target: str
    invoicing_target: str
    grpc_deadline_s: float = Field(default=5.0, gt=0)
    readiness_timeout_s: float = Field(default=3.0, gt=0)
