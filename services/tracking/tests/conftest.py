"""Fixtures for tracking's integration tests: stubs on the running stack, a fresh
user and project per test (created through the projects gRPC API), and direct
database access for what an API cannot do (backdating a timer, counting rows).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import psycopg
import pytest
from tracking_testkit import World

from tests.support.infra import Infra, RunningStack, isolated_stack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2_grpc
from ttlocal.config import StackConfig


@pytest.fixture(scope="session")
def running_services(infra: Infra, test_stack_config: StackConfig) -> Iterator[RunningStack]:
    """Tracking's tests play invoicing (claims and releases under invented invoice ids) and write
    rows behind the service (constraint checks, backdated timers): they get their own projects
    and tracking processes, databases and topics, so the session's shared databases stay what
    the services made them (the consistency check at the end of the session compares them)."""
    with isolated_stack(
        infra, test_stack_config, "tracking", port_shift=60, only=("projects", "tracking")
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def session_databases(running_services: RunningStack) -> dict[str, str]:
    return running_services.databases


@pytest.fixture(scope="session")
async def tracking(running_services: RunningStack) -> AsyncIterator[tracking_pb2_grpc.TrackingServiceStub]:
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("tracking")) as channel:
        yield tracking_pb2_grpc.TrackingServiceStub(channel)


@pytest.fixture(scope="session")
async def projects(running_services: RunningStack) -> AsyncIterator[projects_pb2_grpc.ProjectsServiceStub]:
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("projects")) as channel:
        yield projects_pb2_grpc.ProjectsServiceStub(channel)


@pytest.fixture
def db(session_databases: dict[str, str]) -> Iterator[psycopg.Connection]:
    url = session_databases["tracking"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def world(projects: projects_pb2_grpc.ProjectsServiceStub) -> World:
    client = await projects.CreateClient(
        ppb.CreateClientRequest(name=f"Client {uuid.uuid4().hex[:8]}", currency="EUR", payment_terms_days=14)
    )
    w = World(projects, client.client_id, "", "", "")
    w.project_id = await w.new_project()
    task = await projects.CreateTask(ppb.CreateTaskRequest(project_id=w.project_id, name="Development"))
    w.task_id = task.task_id
    w.user_id = await w.new_member(rate=w.rate)
    return w
