"""Settings fail fast, naming each missing or bad variable with its prefix."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from tt_common.settings import DatabaseSettings, KafkaSettings, ServiceSettings, SettingsError, load_settings


class DemoSettings(ServiceSettings, DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", frozen=True)


def test_missing_and_invalid_values_exit_with_every_problem(monkeypatch, capsys) -> None:
    monkeypatch.delenv("DEMO_DATABASE_URL", raising=False)
    monkeypatch.setenv("DEMO_GRPC_PORT", "99999")
    with pytest.raises(SettingsError):
        load_settings(DemoSettings)
    err = capsys.readouterr().err
    assert "DEMO_DATABASE_URL" in err
    assert "DEMO_GRPC_PORT" in err


def test_values_come_from_the_prefixed_environment(monkeypatch) -> None:
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgresql+psycopg://u:p@h:1/db")
    monkeypatch.setenv("DEMO_GRPC_PORT", "50999")
    settings = load_settings(DemoSettings)
    assert settings.grpc_port == 50999
    assert settings.database_url.endswith("/db")


class DemoKafkaSettings(ServiceSettings, KafkaSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", frozen=True)


def test_the_kafka_message_limit_defaults_to_kafkas_and_refuses_a_tiny_one(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DEMO_GRPC_PORT", "50999")
    monkeypatch.setenv("DEMO_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.delenv("DEMO_KAFKA_MAX_MESSAGE_BYTES", raising=False)
    assert load_settings(DemoKafkaSettings).kafka_max_message_bytes == 1_048_576
    monkeypatch.setenv("DEMO_KAFKA_MAX_MESSAGE_BYTES", "8388608")
    assert load_settings(DemoKafkaSettings).kafka_max_message_bytes == 8 * 1024 * 1024
    monkeypatch.setenv("DEMO_KAFKA_MAX_MESSAGE_BYTES", "10")
    with pytest.raises(SettingsError):
        load_settings(DemoKafkaSettings)
    assert "DEMO_KAFKA_MAX_MESSAGE_BYTES" in capsys.readouterr().err
