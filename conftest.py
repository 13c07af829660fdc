"""Fixtures shared by every test tree (libs, services, tests/integration)."""

import pytest

pytest_plugins = ["tests.support.infra"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Anything that uses real infrastructure is an integration test (`-m "not integration"` skips it).

    Tests marked `session_end` run after every other test: they check what the whole session left.
    """
    for item in items:
        if "infra" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: item.get_closest_marker("session_end") is not None)  # stable: order kept
