"""Tracking's settings (env prefix TRACKING_)."""

from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, RedisSettings, ServiceSettings


class TrackingSettings(ServiceSettings, DatabaseSettings, KafkaSettings, RedisSettings):
    model_config = SettingsConfigDict(env_prefix="TRACKING_", extra="ignore", frozen=True)

    service_name: str = "tracking"
    projects_target: str
    topic_entries: str = "timetracking.entries.v1"
    topic_system: str = "timetracking.system.v1"
