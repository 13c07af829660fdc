"""The whole stack as processes: health, readiness, and one path end to end."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.infra import RunningStack
from timetracking.projects.v1 import projects_pb2, projects_pb2_grpc

GRPC_SERVICES = {
    "projects": "timetracking.projects.v1.ProjectsService",
    "tracking": "timetracking.tracking.v1.TrackingService",
    "reporting": "timetracking.reporting.v1.ReportingService",
    "invoicing": "timetracking.invoicing.v1.InvoicingService",
}


@pytest.mark.parametrize("service", sorted(GRPC_SERVICES))
async def test_every_grpc_service_reports_serving(service: str, running_services: RunningStack) -> None:
    target = running_services.config.grpc_target(service)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", GRPC_SERVICES[service], "readiness", "postgresql"):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING, name


@pytest.fixture(scope="module")
async def admin_headers(running_services: RunningStack) -> dict[str, str]:
    """An ADMIN (created over projects gRPC) logged in through the gateway: probes are admin-only."""
    email, password = f"skeleton-{uuid.uuid4().hex[:10]}@example.com", "walking-skeleton-password"
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("projects")) as channel:
        await projects_pb2_grpc.ProjectsServiceStub(channel).CreateUser(
            projects_pb2.CreateUserRequest(
                name="Skeleton Admin", email=email, role=projects_pb2.ROLE_ADMIN, password=password
            ),
            timeout=10,
        )
    async with httpx.AsyncClient(base_url=running_services.gateway_url, timeout=10) as http:
        resp = await http.post(
            "/v1/auth/token", json={"grant_type": "password", "email": email, "password": password}
        )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def test_gateway_health_and_readiness_list_every_dependency(running_services: RunningStack) -> None:
    with httpx.Client(base_url=running_services.gateway_url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        expected = {"postgresql", "redis", "kafka", "projects", "tracking", "reporting", "invoicing"}
        assert set(checks) == expected
        assert all(v == "ok" for v in checks.values()), checks


async def test_probe_goes_gateway_grpc_outbox_kafka_reporting(
    running_services: RunningStack, admin_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(
        base_url=running_services.gateway_url, timeout=10, headers=admin_headers
    ) as http:
        created = await http.post("/v1/system/pipeline-probes", json={"note": "walking skeleton"})
        assert created.status_code == 202, created.text
        probe_id = created.json()["probe_id"]

        deadline = time.monotonic() + 60
        while True:
            got = await http.get(f"/v1/system/pipeline-probes/{probe_id}")
            if got.status_code == 200 or time.monotonic() > deadline:
                break
            assert got.status_code == 404, got.text
            assert got.headers["content-type"] == "application/problem+json"
            await asyncio.sleep(0.2)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["note"] == "walking skeleton"
        assert body["lag_seconds"] >= 0


def test_bad_input_gets_problem_json_naming_the_field(
    running_services: RunningStack, admin_headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=running_services.gateway_url, timeout=10, headers=admin_headers) as http:
        too_long = http.post("/v1/system/pipeline-probes", json={"note": "x" * 201})
        assert too_long.status_code == 422
        assert too_long.headers["content-type"] == "application/problem+json"
        assert too_long.json()["errors"][0]["field"] == "note"

        bad_id = http.get("/v1/system/pipeline-probes/not-a-uuid")
        assert bad_id.status_code == 422
        assert bad_id.json()["errors"] == [{"field": "probe_id", "reason": "must be a UUID"}]
