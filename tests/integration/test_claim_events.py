"""Claim and release events, written by tracking's SQL as JSON bodies and encoded by its outbox
relay, reach reporting through Kafka and are applied there: every claimed entry shows the invoice
with tracking's version, every released one shows none again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tests.support.infra import RunningStack
from timetracking.common.v1 import types_pb2
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc

N = 40


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


@pytest.fixture
async def stubs(
    running_services: RunningStack,
) -> AsyncIterator[tuple[projects_pb2_grpc.ProjectsServiceStub, tracking_pb2_grpc.TrackingServiceStub]]:
    cfg = running_services.config
    async with (
        grpc.aio.insecure_channel(cfg.grpc_target("projects")) as p,
        grpc.aio.insecure_channel(cfg.grpc_target("tracking")) as t,
    ):
        yield projects_pb2_grpc.ProjectsServiceStub(p), tracking_pb2_grpc.TrackingServiceStub(t)


def reporting_rows(url: str, entry_ids: list[str]) -> dict[str, tuple[str | None, int]]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT entry_id::text, invoice_id::text, version FROM entries WHERE entry_id = ANY(%s::uuid[])",
            (entry_ids,),
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


async def until(check, what: str, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def test_claimed_and_released_entries_reach_reporting(stubs, session_databases) -> None:
    projects, tracking = stubs
    client = await projects.CreateClient(
        ppb.CreateClientRequest(name=f"Claims {uuid.uuid4().hex[:8]}", currency="EUR")
    )
    project = await projects.CreateProject(
        ppb.CreateProjectRequest(client_id=client.client_id, name="Claims", default_hourly_rate="90")
    )
    user = await projects.CreateUser(
        ppb.CreateUserRequest(name="Claimer", email=f"claims-{uuid.uuid4().hex[:10]}@example.com")
    )
    await projects.AddProjectMember(
        ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
    )
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    entry_ids = []
    for i in range(N):
        start = base + timedelta(minutes=20 * i)
        created = await tracking.CreateManualEntry(
            tpb.CreateManualEntryRequest(
                actor_user_id=user.user_id,
                user_id=user.user_id,
                project_id=project.project_id,
                start_time=ts(start),
                end_time=ts(start + timedelta(minutes=15, seconds=i)),
            )
        )
        entry_ids.append(created.entry_id)
    url = session_databases["reporting"]
    await until(lambda: len(reporting_rows(url, entry_ids)) == N, "the created entries in reporting")

    invoice_id = str(uuid.uuid4())
    claimed = await tracking.ClaimUninvoicedEntries(
        tpb.ClaimUninvoicedEntriesRequest(
            invoice_id=invoice_id,
            project_id=project.project_id,
            period=types_pb2.Period(start=ts(base), end=ts(base + timedelta(days=1))),
        )
    )
    versions = {e.entry_id: e.version for e in claimed.entries}
    assert sorted(versions) == sorted(entry_ids)
    await until(
        lambda: reporting_rows(url, entry_ids) == {e: (invoice_id, versions[e]) for e in entry_ids},
        "every claim applied in reporting",
    )

    released = await tracking.ReleaseEntries(tpb.ReleaseEntriesRequest(invoice_id=invoice_id))
    assert sorted(released.entry_ids) == sorted(entry_ids)
    await until(
        lambda: reporting_rows(url, entry_ids) == {e: (None, versions[e] + 1) for e in entry_ids},
        "every release applied in reporting",
    )
