"""Helpers and fixtures of the gateway's tests: the real stack, users who log in over
HTTP, and a small world of objects (client, project, task, entries, invoice) owned by
some users and out of reach of others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest

from tests.support.infra import RunningStack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc

PASSWORD = "correct horse battery staple"


@dataclass
class Caller:
    user_id: str
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture(scope="session")
async def projects_api(
    running_services: RunningStack,
) -> AsyncIterator[projects_pb2_grpc.ProjectsServiceStub]:
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("projects")) as channel:
        yield projects_pb2_grpc.ProjectsServiceStub(channel)


@pytest.fixture(scope="session")
async def http(running_services: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running_services.gateway_url, timeout=30) as client:
        yield client


async def login(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """POST /v1/auth/token, waiting out the per-IP login quota if a test burst hits it."""
    for _ in range(30):
        resp = await http.post(
            "/v1/auth/token", json={"grant_type": "password", "email": email, "password": password}
        )
        if resp.status_code != 429:
            return resp
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
    return resp


async def new_caller(
    projects_api: projects_pb2_grpc.ProjectsServiceStub, http: httpx.AsyncClient, role: str = "EMPLOYEE"
) -> Caller:
    email = f"gw-{role.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    user = await projects_api.CreateUser(
        ppb.CreateUserRequest(
            name=f"Test {role.title()}",
            email=email,
            role=getattr(ppb, f"ROLE_{role}"),
            password=PASSWORD,
            timezone="Europe/Berlin",
        )
    )
    resp = await login(http, email)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return Caller(user.user_id, email, role, body["access_token"], body["refresh_token"])


@dataclass
class World:
    """Objects owned by `owner` (an employee on `project`) and managed by `manager`;
    `outsider` is an ordinary employee with a project of their own, and reaches none of them."""

    admin: Caller
    manager: Caller
    owner: Caller
    outsider: Caller
    client_id: str
    project_id: str
    task_id: str
    other_project_id: str
    entry_id: str
    deleted_entry_id: str
    invoice_id: str
    api_token_id: str
    probe_id: str
    extra: dict[str, str] = field(default_factory=dict)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


async def make_project(
    http: httpx.AsyncClient, admin: Caller, client_id: str, name: str, members: dict[str, str]
) -> str:
    resp = await http.post(
        "/v1/projects",
        headers=admin.headers,
        json={"client_id": client_id, "name": name, "billing_type": "HOURLY", "default_hourly_rate": "100"},
    )
    assert resp.status_code == 201, resp.text
    project_id = resp.json()["project_id"]
    for user_id, role in members.items():
        added = await http.post(
            f"/v1/projects/{project_id}/members",
            headers=admin.headers,
            json={"user_id": user_id, "project_role": role},
        )
        assert added.status_code == 201, added.text
    return project_id


@pytest.fixture(scope="session")
async def world(projects_api: projects_pb2_grpc.ProjectsServiceStub, http: httpx.AsyncClient) -> World:
    admin = await new_caller(projects_api, http, "ADMIN")
    manager = await new_caller(projects_api, http, "MANAGER")
    owner = await new_caller(projects_api, http, "EMPLOYEE")
    outsider = await new_caller(projects_api, http, "EMPLOYEE")

    client = await http.post(
        "/v1/clients", headers=admin.headers, json={"name": f"Acme {uuid.uuid4().hex[:6]}", "currency": "EUR"}
    )
    assert client.status_code == 201, client.text
    client_id = client.json()["client_id"]
    project_id = await make_project(
        http, admin, client_id, "Website", {manager.user_id: "MANAGER", owner.user_id: "MEMBER"}
    )
    other_project_id = await make_project(http, admin, client_id, "Intranet", {outsider.user_id: "MEMBER"})
    task = await http.post(
        f"/v1/projects/{project_id}/tasks", headers=manager.headers, json={"name": "Design"}
    )
    assert task.status_code == 201, task.text

    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    entry_ids = []
    for i in range(3):
        created = await http.post(
            "/v1/time-entries",
            headers=owner.headers,
            json={
                "project_id": project_id,
                "task_id": task.json()["task_id"],
                "description": f"work {i}",
                "start_time": iso(base + timedelta(hours=2 * i)),
                "end_time": iso(base + timedelta(hours=2 * i + 1)),
            },
        )
        assert created.status_code == 201, created.text
        entry_ids.append(created.json()["entry_id"])
    deleted = await http.delete(f"/v1/time-entries/{entry_ids[2]}", headers=owner.headers)
    assert deleted.status_code == 204, deleted.text

    invoice = await http.post(
        "/v1/invoices",
        headers=manager.headers,
        json={
            "project_id": project_id,
            "period_start": iso(base),
            "period_end": iso(base + timedelta(hours=3)),
        },
    )
    assert invoice.status_code == 201, invoice.text
    # A fresh entry that is not on the invoice (so it stays editable).
    kept = await http.post(
        "/v1/time-entries",
        headers=owner.headers,
        json={
            "project_id": project_id,
            "start_time": iso(base + timedelta(hours=10)),
            "end_time": iso(base + timedelta(hours=11)),
        },
    )
    assert kept.status_code == 201, kept.text

    token = await http.post("/v1/me/api-tokens", headers=owner.headers, json={"name": "laptop"})
    assert token.status_code == 201, token.text
    probe = await http.post("/v1/system/pipeline-probes", headers=admin.headers, json={"note": "world"})
    assert probe.status_code == 202, probe.text
    return World(
        admin=admin,
        manager=manager,
        owner=owner,
        outsider=outsider,
        client_id=client_id,
        project_id=project_id,
        task_id=task.json()["task_id"],
        other_project_id=other_project_id,
        entry_id=kept.json()["entry_id"],
        deleted_entry_id=entry_ids[2],
        invoice_id=invoice.json()["invoice_id"],
        api_token_id=token.json()["token_id"],
        probe_id=probe.json()["probe_id"],
        extra={"invoiced_entry_id": entry_ids[0], "api_token_secret": token.json()["secret"]},
    )
