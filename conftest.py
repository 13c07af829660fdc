"""Fixtures shared by every test tree (libs, services, tests/integration)."""

import pytest

pytest_plugins = ["tests.support.infra"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Anything that uses real infrastructure is an integration test (`-m "not integration"` skips it)."""
    for item in items:
        if "infra" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
