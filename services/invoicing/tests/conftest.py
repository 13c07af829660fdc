"""Fixtures for invoicing's integration tests: stubs on the running stack and a
billable project with entries, created through the projects and tracking APIs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.support.infra import RunningStack
from timetracking.common.v1 import types_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from timetracking.invoicing.v1 import invoicing_pb2_grpc
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


@dataclass
class Stubs:
    projects: projects_pb2_grpc.ProjectsServiceStub
    tracking: tracking_pb2_grpc.TrackingServiceStub
    invoicing: invoicing_pb2_grpc.InvoicingServiceStub


@dataclass
class Billable:
    """A client, a project, a member and the entries they booked in [start, end)."""

    stubs: Stubs
    client_id: str
    project_id: str
    user_id: str
    start: datetime
    end: datetime
    tasks: dict[str, str] = field(default_factory=dict)
    entries: list[tpb.TimeEntry] = field(default_factory=list)

    @property
    def period(self) -> types_pb2.Period:
        return types_pb2.Period(start=ts(self.start), end=ts(self.end))

    async def book(self, offset_s: int, seconds: int, task: str | None = None) -> tpb.TimeEntry:
        start = self.start + timedelta(seconds=offset_s)
        entry = await self.stubs.tracking.CreateManualEntry(
            tpb.CreateManualEntryRequest(
                actor_user_id=self.user_id,
                user_id=self.user_id,
                project_id=self.project_id,
                task_id=self.tasks.get(task, "") if task else "",
                description=f"work on {task or 'misc'}",
                start_time=ts(start),
                end_time=ts(start + timedelta(seconds=seconds)),
            )
        )
        self.entries.append(entry)
        return entry

    def generate(self, key: str | None = None, period: types_pb2.Period | None = None):  # type: ignore[no-untyped-def]
        return self.stubs.invoicing.GenerateInvoice(
            ipb.GenerateInvoiceRequest(
                actor_user_id=self.user_id,
                project_id=self.project_id,
                period=period or self.period,
                idempotency_key=key or str(uuid.uuid4()),
            )
        )


@pytest.fixture(scope="session")
async def stubs(running_services: RunningStack) -> AsyncIterator[Stubs]:
    cfg = running_services.config
    async with (
        grpc.aio.insecure_channel(cfg.grpc_target("projects")) as p,
        grpc.aio.insecure_channel(cfg.grpc_target("tracking")) as t,
        grpc.aio.insecure_channel(cfg.grpc_target("invoicing")) as i,
    ):
        yield Stubs(
            projects_pb2_grpc.ProjectsServiceStub(p),
            tracking_pb2_grpc.TrackingServiceStub(t),
            invoicing_pb2_grpc.InvoicingServiceStub(i),
        )


async def make_billable(
    stubs: Stubs,
    *,
    currency: str = "EUR",
    rate: str = "99.99",
    tax_rate: str = "19",
    billing_type: int = ppb.BILLING_TYPE_HOURLY,
    budget_amount: str = "",
    tasks: tuple[str, ...] = ("Design", "Development"),
) -> Billable:
    client = await stubs.projects.CreateClient(
        ppb.CreateClientRequest(
            name=f"Client {uuid.uuid4().hex[:8]}",
            currency=currency,
            tax_rate=tax_rate,
            payment_terms_days=14,
            billing_address="1 Client Road\nSpringfield",
        )
    )
    project = await stubs.projects.CreateProject(
        ppb.CreateProjectRequest(
            client_id=client.client_id,
            name=f"Project {uuid.uuid4().hex[:8]}",
            billing_type=billing_type,
            default_hourly_rate=rate,
            budget_amount=budget_amount,
        )
    )
    user = await stubs.projects.CreateUser(
        ppb.CreateUserRequest(name="Biller", email=f"b-{uuid.uuid4().hex[:12]}@example.com", timezone="UTC")
    )
    await stubs.projects.AddProjectMember(
        ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
    )
    task_ids = {}
    for name in tasks:
        task = await stubs.projects.CreateTask(
            ppb.CreateTaskRequest(project_id=project.project_id, name=name)
        )
        task_ids[name] = task.task_id
    # A period in the past, aligned to the hour, far from other tests' entries (one user per world).
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    return Billable(
        stubs, client.client_id, project.project_id, user.user_id, end - timedelta(days=7), end, task_ids
    )
