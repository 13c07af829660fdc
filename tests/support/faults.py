"""Helpers of the fault scenarios (tests/integration/test_faults_*.py): gRPC stubs on the session's
stack, direct database access for the final consistency checks, bounded polling, and a small world
of projects and members created through the projects API.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.support.infra import ROOT, RunningStack
from timetracking.invoicing.v1 import invoicing_pb2_grpc
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.reporting.v1 import reporting_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2_grpc

T = TypeVar("T")


async def start_component(profile: str, component: str) -> None:
    """Start a killed infrastructure component (`ttlocal.<component>.start`) again.

    From a fresh interpreter, not from the test process: this one runs gRPC's threads, and
    PostgreSQL is spawned as another user, which rules out vfork; a fork() with gRPC busy in other
    threads can crash the child before it execs (gRPC skips its fork handlers).
    """
    code = (
        f"from ttlocal import {component} as c; from ttlocal.config import StackConfig; "
        f"c.start(StackConfig.load({profile!r}))"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "deploy" / "local")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await child.communicate()
    assert child.returncode == 0, f"{component} did not start again:\n{output.decode()[-3000:]}"


@dataclass
class Stubs:
    projects: projects_pb2_grpc.ProjectsServiceStub
    tracking: tracking_pb2_grpc.TrackingServiceStub
    reporting: reporting_pb2_grpc.ReportingServiceStub
    invoicing: invoicing_pb2_grpc.InvoicingServiceStub


@pytest.fixture(scope="module")
async def stubs(running_services: RunningStack) -> AsyncIterator[Stubs]:
    cfg = running_services.config
    async with (
        grpc.aio.insecure_channel(cfg.grpc_target("projects")) as p,
        grpc.aio.insecure_channel(cfg.grpc_target("tracking")) as t,
        grpc.aio.insecure_channel(cfg.grpc_target("reporting")) as r,
        grpc.aio.insecure_channel(cfg.grpc_target("invoicing")) as i,
    ):
        yield Stubs(
            projects_pb2_grpc.ProjectsServiceStub(p),
            tracking_pb2_grpc.TrackingServiceStub(t),
            reporting_pb2_grpc.ReportingServiceStub(r),
            invoicing_pb2_grpc.InvoicingServiceStub(i),
        )


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection to a service's database (a SQLAlchemy URL)."""
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def scalar(db: psycopg.Connection, sql: str, *args: object) -> int:
    row = db.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0] or 0)


async def until(check: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, within: float, what: str) -> T:
    """Poll `check` until `ok`; fail after `within` seconds with the last value seen."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if ok(last):  # type: ignore[arg-type]
                return last  # type: ignore[return-value]
        except grpc.aio.AioRpcError as exc:  # a service restarting answers UNAVAILABLE for a while
            last = exc.code()
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: not reached within {within:.0f}s (last: {last})")


async def new_project(
    stubs: Stubs, members: int, rate: str = "90.00", *, password: str = ""
) -> tuple[str, list[str]]:
    """An HOURLY project with `members` fresh members (who may log in with `password` if given)."""
    client = await stubs.projects.CreateClient(
        ppb.CreateClientRequest(
            name=f"Faults {uuid.uuid4().hex[:8]}", currency="EUR", tax_rate="19", payment_terms_days=14
        )
    )
    project = await stubs.projects.CreateProject(
        ppb.CreateProjectRequest(
            client_id=client.client_id,
            name=f"Faults {uuid.uuid4().hex[:8]}",
            billing_type=ppb.BILLING_TYPE_HOURLY,
            default_hourly_rate=rate,
        )
    )

    async def member() -> str:
        user = await stubs.projects.CreateUser(
            ppb.CreateUserRequest(
                name="Fault Member",
                email=f"f-{uuid.uuid4().hex[:12]}@example.com",
                timezone="UTC",
                password=password,
            )
        )
        await stubs.projects.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
        )
        return user.user_id

    users = list(await asyncio.gather(*(member() for _ in range(members))))
    return project.project_id, users
