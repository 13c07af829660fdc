"""One trace from the HTTP request, through gRPC into tracking, through the Kafka event
into reporting's consumer.

The five services are restarted exporting over OTLP/gRPC to a receiver this test runs
on loopback; afterwards they are restarted as they were.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
from gateway_testkit import PASSWORD, iso, login
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support.infra import RunningStack
from timetracking.projects.v1 import projects_pb2 as ppb
from timetracking.projects.v1 import projects_pb2_grpc


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects every exported span as (service, span name, trace id, attributes)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str, dict[str, str]]] = []

    async def Export(self, request, context):
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attrs.get("service.name", "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    span_attrs = {a.key: a.value.string_value for a in span.attributes}
                    self.spans.append((service, span.name, span.trace_id.hex(), span_attrs))
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def traced_stack(running_services: RunningStack) -> AsyncIterator[tuple[RunningStack, Receiver]]:
    from ttlocal import services

    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    cfg = running_services.config
    traced_env = {
        **running_services.env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    await asyncio.to_thread(services.stop, cfg)
    try:
        await asyncio.to_thread(services.start, cfg, traced_env)
        yield running_services, receiver
    finally:
        await asyncio.to_thread(services.stop, cfg)
        await asyncio.to_thread(services.start, cfg, running_services.env)
        await server.stop(grace=None)


async def test_one_trace_links_gateway_tracking_and_reporting_consumer(traced_stack) -> None:
    stack, receiver = traced_stack
    email = f"trace-{time.time_ns()}@example.com"
    async with grpc.aio.insecure_channel(stack.config.grpc_target("projects")) as channel:
        api = projects_pb2_grpc.ProjectsServiceStub(channel)
        user = await api.CreateUser(ppb.CreateUserRequest(name="Tracy", email=email, password=PASSWORD))
        client = await api.CreateClient(
            ppb.CreateClientRequest(name=f"Trace {time.time_ns()}", currency="EUR")
        )
        project = await api.CreateProject(ppb.CreateProjectRequest(client_id=client.client_id, name="Traced"))
        await api.AddProjectMember(
            ppb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
        )

    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        token = (await login(http, email)).json()["access_token"]
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
        created = await http.post(
            "/v1/time-entries",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "project_id": project.project_id,
                "description": "traced",
                "start_time": iso(start),
                "end_time": iso(start + timedelta(hours=1)),
            },
        )
        assert created.status_code == 201, created.text

    def gateway_trace() -> str | None:
        for service, _, trace_id, attrs in receiver.spans:
            if service == "gateway" and attrs.get("http.route") == "/v1/time-entries":
                return trace_id
        return None

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trace_id = gateway_trace()
        in_trace = {(s, n) for s, n, t, _ in receiver.spans if t == trace_id}
        if trace_id and any(s == "reporting" and n.startswith("kafka.process") for s, n in in_trace):
            break
        await asyncio.sleep(0.5)
    trace_id = gateway_trace()
    assert trace_id, f"no gateway span among {sorted({(s, n) for s, n, _, _ in receiver.spans})[:30]}"
    in_trace = {(s, n) for s, n, t, _ in receiver.spans if t == trace_id}
    assert any(s == "tracking" and "CreateManualEntry" in n for s, n in in_trace), in_trace
    assert any(s == "tracking" and n.startswith("kafka.publish") for s, n in in_trace), in_trace
    assert any(s == "reporting" and n.startswith("kafka.process") for s, n in in_trace), in_trace
