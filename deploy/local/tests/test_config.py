"""The runner's profiles never share a port, and every port can be moved."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttlocal.config import DEFAULT_PORTS, SERVICES, StackConfig


def test_dev_and_test_profiles_share_no_port_state_or_database(monkeypatch) -> None:
    for name in DEFAULT_PORTS:
        monkeypatch.delenv(f"TT_{name.upper()}_PORT", raising=False)
        monkeypatch.delenv(f"TT_TEST_{name.upper()}_PORT", raising=False)
    dev, test = StackConfig.load("dev"), StackConfig.load("test")
    assert len(set(dev.ports.values())) == len(dev.ports)  # no clash inside a profile
    assert not set(dev.ports.values()) & set(test.ports.values())
    assert dev.state_dir != test.state_dir
    assert dev.database_name("tracking") != test.database_name("tracking")
    standard = {5432, 6379, 9092, 9093, 9000, 8333, 8080}
    assert not standard & set(dev.ports.values())


def test_ports_are_configurable_per_profile(monkeypatch) -> None:
    monkeypatch.setenv("TT_PG_PORT", "25432")
    monkeypatch.setenv("TT_TEST_GATEWAY_PORT", "28999")
    assert StackConfig.load("dev").port("pg") == 25432
    assert StackConfig.load("test").port("gateway") == 28999
    assert StackConfig.load("test").port("pg") != 25432


def test_every_service_gets_its_own_prefixed_settings() -> None:
    cfg = StackConfig.load("dev")
    for service in SERVICES:
        env = cfg.service_env(service)
        prefix = service.upper() + "_"
        assert all(k.startswith(prefix) or k.startswith("OTEL_") for k in env)
    assert cfg.service_env("tracking")["TRACKING_PROJECTS_TARGET"] == cfg.grpc_target("projects")
    assert "GATEWAY_HTTP_PORT" in cfg.service_env("gateway")


def test_a_moved_profile_clashes_with_neither_dev_nor_test(monkeypatch) -> None:
    """Offsets 200..1000 are safe for a second checkout's tests (documented in the README)."""
    for name in DEFAULT_PORTS:
        monkeypatch.delenv(f"TT_{name.upper()}_PORT", raising=False)
        monkeypatch.delenv(f"TT_TEST_{name.upper()}_PORT", raising=False)
    # The defaults, even when this very run was started with a moved profile.
    monkeypatch.delenv("TT_PORT_OFFSET", raising=False)
    monkeypatch.delenv("TT_TEST_PORT_OFFSET", raising=False)
    taken = set(StackConfig.load("dev").ports.values()) | set(StackConfig.load("test").ports.values())
    for offset in range(200, 1001, 100):
        monkeypatch.setenv("TT_TEST_PORT_OFFSET", str(offset))
        moved = StackConfig.load("test").ports.values()
        assert not taken & set(moved), offset


def test_every_service_gets_its_own_metrics_port() -> None:
    cfg = StackConfig.load("dev")
    ports = {s: cfg.service_env(s).get(f"{s.upper()}_METRICS_PORT") for s in SERVICES}
    assert all(ports.values()) and len(set(ports.values())) == len(ports)
    assert ports["gateway"] == str(cfg.port("gateway_metrics"))
    assert ports["invoicing"] == str(cfg.port("invoicing_metrics"))
