"""The invoicing service's settings (env prefix INVOICING_)."""

from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, ServiceSettings


class InvoicingSettings(ServiceSettings, DatabaseSettings, KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="INVOICING_", extra="ignore", frozen=True)

    service_name: str = "invoicing"
