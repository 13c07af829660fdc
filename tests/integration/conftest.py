"""Fixtures of the integration tests: gRPC stubs of the session's stack (tests/support/faults.py)."""

from tests.support.faults import stubs  # noqa: F401
