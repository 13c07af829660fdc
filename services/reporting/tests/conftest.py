"""Fixtures for reporting's integration tests: an isolated reporting process, a producer onto
its topics, the reporting gRPC stub, and direct access to its database for what no API shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import psycopg
import pytest
from reporting_testkit import EventWriter, Topics

from tests.support.infra import Infra, RunningStack, isolated_stack
from timetracking.reporting.v1 import reporting_pb2_grpc
from tt_common.kafka import ensure_topics, make_producer
from ttlocal.config import StackConfig


@pytest.fixture(scope="session")
def running_services(infra: Infra, test_stack_config: StackConfig) -> Iterator[RunningStack]:
    """Reporting's tests write synthetic events that no tracking ever produced: they get their
    own reporting process, database and topics, so the session's shared read model stays what
    tracking's events made it (the consistency check at the end of the session compares them)."""
    with isolated_stack(infra, test_stack_config, "reporting", port_shift=50, only=("reporting",)) as stack:
        yield stack


@pytest.fixture(scope="session")
def session_databases(running_services: RunningStack) -> dict[str, str]:
    return running_services.databases


@pytest.fixture(scope="session")
def topics(running_services: RunningStack) -> Topics:
    return Topics.from_env(running_services.env)


@pytest.fixture(scope="session")
async def writer(infra: Infra, topics: Topics) -> AsyncIterator[EventWriter]:
    await ensure_topics(infra.kafka_bootstrap, [topics.entries, topics.directory, topics.dead_letter])
    producer = make_producer(infra.kafka_bootstrap, "reporting-tests")
    await producer.start()
    try:
        yield EventWriter(producer, topics)
    finally:
        await producer.stop()


@pytest.fixture(scope="session")
async def reporting(running_services: RunningStack) -> AsyncIterator[reporting_pb2_grpc.ReportingServiceStub]:
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("reporting")) as channel:
        yield reporting_pb2_grpc.ReportingServiceStub(channel)


@pytest.fixture
def reporting_db(session_databases: dict[str, str]) -> Iterator[psycopg.Connection]:
    url = session_databases["reporting"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn
