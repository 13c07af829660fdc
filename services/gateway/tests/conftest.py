"""The gateway's test fixtures live in gateway_testkit (importable by the tests too)."""

from gateway_testkit import http, projects_api, world  # noqa: F401
