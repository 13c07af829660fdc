"""Helpers for tracking's integration tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc
from timetracking.tracking.v1 import tracking_pb2 as tpb
from timetracking.tracking.v1 import tracking_pb2_grpc


@dataclass
class World:
    """One client, one ACTIVE hourly project with a task, and a member with a project rate."""

    projects: projects_pb2_grpc.ProjectsServiceStub
    client_id: str
    project_id: str
    task_id: str
    user_id: str
    rate: str = "120.00"

    async def new_member(self, rate: str | None = None) -> str:
        user = await self.projects.CreateUser(
            ppb.CreateUserRequest(
                name="Member",
                email=f"m-{uuid.uuid4().hex[:12]}@example.com",
                role=ppb.ROLE_EMPLOYEE,
                default_hourly_rate="80.00",
                timezone="Europe/Berlin",
            )
        )
        await self.projects.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=self.project_id, user_id=user.user_id)
        )
        if rate:
            await self.projects.SetProjectUserRate(
                ppb.SetProjectUserRateRequest(
                    project_id=self.project_id, user_id=user.user_id, hourly_rate=rate
                )
            )
        return user.user_id

    async def new_project(self, billing_type: int = ppb.BILLING_TYPE_HOURLY, rate: str = "95.00") -> str:
        project = await self.projects.CreateProject(
            ppb.CreateProjectRequest(
                client_id=self.client_id,
                name=f"Project {uuid.uuid4().hex[:8]}",
                billing_type=billing_type,
                default_hourly_rate=rate,
            )
        )
        return project.project_id


def ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt)
    return t


def hours_ago(h: float) -> datetime:
    """A whole second in the past (what PostgreSQL and the API round-trip exactly)."""
    return (datetime.now(UTC) - timedelta(hours=h)).replace(microsecond=0)


def backdate_running_timer(db: psycopg.Connection, entry_id: str, by: timedelta) -> None:
    """Pretend a timer started earlier than it did (a test cannot wait an hour)."""
    db.execute(
        "UPDATE time_entries SET start_time = start_time - %s WHERE entry_id = %s AND end_time IS NULL",
        (by, entry_id),
    )


async def manual(
    tracking: tracking_pb2_grpc.TrackingServiceStub,
    w: World,
    start: datetime,
    end: datetime,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
    tags: list[str] | None = None,
) -> tpb.TimeEntry:
    return await tracking.CreateManualEntry(
        tpb.CreateManualEntryRequest(
            actor_user_id=user_id or w.user_id,
            user_id=user_id or w.user_id,
            project_id=project_id or w.project_id,
            task_id=w.task_id,
            description="work",
            start_time=ts(start),
            end_time=ts(end),
            tags=tags or [],
        )
    )


def field_violations(err: grpc.aio.AioRpcError) -> list[dict]:
    md = dict(err.trailing_metadata() or ())
    return json.loads(md.get("field-violations", "[]"))


def count_rows(db: psycopg.Connection, sql: str, *args: object) -> int:
    row = db.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])
