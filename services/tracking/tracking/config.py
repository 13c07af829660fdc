"""Tracking's settings (env prefix TRACKING_)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, RedisSettings, ServiceSettings


class TrackingSettings(ServiceSettings, DatabaseSettings, KafkaSettings, RedisSettings):
    model_config = SettingsConfigDict(env_prefix="TRACKING_", extra="ignore", frozen=True)

    service_name: str = "tracking"
    projects_target: str
    topic_entries: str = "timetracking.entries.v1"
    topic_system: str = "timetracking.system.v1"

    # Deadline of each call to the projects service (access and billing).
    projects_deadline_s: float = Field(default=2.0, gt=0)
    # How long a granted (user, project, task) booking with its rate is reused; 0 = ask every time.
    projects_cache_ttl_s: float = Field(default=5.0, ge=0)
    # How far in the future an entry may end (client clocks run a little fast).
    max_clock_skew_s: float = Field(default=120.0, ge=0)
    # The per-user timer lock in Redis: its TTL, and how long a start waits for it.
    timer_lock_ttl_ms: int = Field(default=5_000, ge=100)
    timer_lock_wait_s: float = Field(default=3.0, ge=0)
    # After Redis failed, starts skip it for this long (the database serialises them meanwhile).
    redis_retry_after_s: float = Field(default=5.0, ge=0)
    # The sweeper that stops forgotten timers at the 24 h cap.
    sweeper_interval_s: float = Field(default=30.0, gt=0)
    sweeper_batch_size: int = Field(default=200, ge=1)
