"""The server's tracing wrapper: every call runs in a server span with the caller's trace
id; only a call whose caller was sampled is recorded (without an exporter), and that one
exactly as OpenTelemetry's own interceptor records it."""

from __future__ import annotations

import asyncio
import secrets

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tt_common.errors import NotFound
from tt_common.grpc_handlers import WrappingServer
from tt_common.telemetry import records_only_sampled_parents, setup_tracing

METHOD = "/grpc.health.v1.Health/Check"


class SpanEcho(health_pb2_grpc.HealthServicer):
    """Remembers the span current in the handler; the service name "missing" raises."""

    def __init__(self) -> None:
        self.spans: list[trace.Span] = []

    async def Check(self, request, context):
        self.spans.append(trace.get_current_span())
        if request.service == "missing":
            raise NotFound("no such thing")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
def exported(monkeypatch) -> InMemorySpanExporter:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    provider = setup_tracing("test")
    assert records_only_sampled_parents()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
async def served(exported):
    echo = SpanEcho()
    # As the runner registers handlers: span, metrics and error mapping wrapped around each.
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(echo, WrappingServer(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield echo, health_pb2_grpc.HealthStub(channel)
    await server.stop(None)


async def finished_spans(exporter: InMemorySpanExporter, at_least: int, within_s: float = 5.0) -> tuple:
    """The spans exported so far, once there are `at_least`: the server ends its span while its
    handler unwinds, which may be just after the caller already has the status."""
    async with asyncio.timeout(within_s):
        while len(spans := exporter.get_finished_spans()) < at_least:
            await asyncio.sleep(0.01)
    return spans


def traceparent(trace_id: int, span_id: int, sampled: bool) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"),)


async def test_a_call_without_a_caller_gets_its_own_trace_and_records_nothing(served, exported) -> None:
    echo, stub = served
    await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    first, second = (s.get_span_context() for s in echo.spans)
    assert first.is_valid and second.is_valid
    assert first.trace_id != second.trace_id
    assert not first.trace_flags.sampled
    assert not any(s.is_recording() for s in echo.spans)
    assert exported.get_finished_spans() == ()


async def test_an_unsampled_caller_is_continued_without_recording(served, exported) -> None:
    echo, stub = served
    trace_id, span_id = secrets.randbits(128), secrets.randbits(64)
    unsampled = traceparent(trace_id, span_id, False)
    await stub.Check(health_pb2.HealthCheckRequest(), metadata=unsampled, timeout=5)
    (span,) = echo.spans
    ctx = span.get_span_context()
    assert (ctx.trace_id, ctx.is_remote, ctx.trace_flags.sampled) == (trace_id, False, False)
    assert ctx.span_id != span_id  # the server's own span, child of the caller's
    assert not span.is_recording()
    assert exported.get_finished_spans() == ()


async def test_a_sampled_caller_is_recorded_as_opentelemetry_records_it(served, exported) -> None:
    echo, stub = served
    trace_id, span_id = secrets.randbits(128), secrets.randbits(64)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Check(
            health_pb2.HealthCheckRequest(service="missing"),
            metadata=traceparent(trace_id, span_id, True),
            timeout=5,
        )
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    (span,) = echo.spans
    (finished,) = await finished_spans(exported, 1)
    assert span.get_span_context() == finished.context  # the handler ran in the recorded span
    assert finished.context.trace_flags.sampled
    assert finished.name == METHOD
    assert finished.kind == trace.SpanKind.SERVER
    assert finished.context.trace_id == trace_id
    assert finished.parent is not None and finished.parent.span_id == span_id
    assert finished.attributes["rpc.service"] == "grpc.health.v1.Health"
    assert finished.attributes["rpc.method"] == "Check"
    assert finished.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
