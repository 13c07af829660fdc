"""The projects service's settings (env prefix PROJECTS_)."""

from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, ServiceSettings


class ProjectsSettings(ServiceSettings, DatabaseSettings, KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="PROJECTS_", extra="ignore", frozen=True)

    service_name: str = "projects"
    topic_directory: str = "timetracking.directory.v1"
