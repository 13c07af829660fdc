"""Reporting's settings (env prefix REPORTING_)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, ServiceSettings


class ReportingSettings(ServiceSettings, DatabaseSettings, KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore", frozen=True)

    service_name: str = "reporting"
    consumer_group: str = "reporting"
    topic_entries: str = "timetracking.entries.v1"
    topic_directory: str = "timetracking.directory.v1"
    topic_system: str = "timetracking.system.v1"
    topic_dead_letter: str = "timetracking.reporting.dlq.v1"
    # Bounded in-flight work: at most this many records are fetched and applied per transaction.
    consumer_max_batch: int = Field(default=500, ge=1, le=10_000)
    consumer_max_wait_ms: int = Field(default=100, ge=1, le=5_000)
