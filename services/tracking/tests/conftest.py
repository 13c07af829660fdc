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

from tests.support.infra import RunningStack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2_grpc


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
