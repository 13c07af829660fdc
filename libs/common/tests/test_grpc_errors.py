"""Domain errors become the right gRPC status, once, in the wrapper every handler is registered with."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tt_common.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tt_common.grpc_handlers import WrappingServer


class RaisingHealth(health_pb2_grpc.HealthServicer):
    """A real servicer whose handler raises whatever the test asks for."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    async def Check(self, request, context):
        assert self.error is not None
        raise self.error


@pytest.fixture
async def server_and_stub():
    servicer = RaisingHealth()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, WrappingServer(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield servicer, health_pb2_grpc.HealthStub(channel)
    await channel.close()
    await server.stop(None)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("entry x not found"), grpc.StatusCode.NOT_FOUND),
        (Conflict("stale version"), grpc.StatusCode.ABORTED),
        (FailedPrecondition("invoice is SENT"), grpc.StatusCode.FAILED_PRECONDITION),
        (Unavailable("projects down"), grpc.StatusCode.UNAVAILABLE),
        (RuntimeError("boom"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_errors_map_to_status_codes(server_and_stub, error: Exception, code: grpc.StatusCode) -> None:
    servicer, stub = server_and_stub
    servicer.error = error
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert exc.value.code() == code
    if code == grpc.StatusCode.INTERNAL:
        assert "boom" not in (exc.value.details() or "")  # internals never leak


async def test_invalid_argument_carries_the_field_and_reason(server_and_stub) -> None:
    servicer, stub = server_and_stub
    servicer.error = InvalidArgument.field("end_time", "must be after start_time")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    metadata = dict(exc.value.trailing_metadata() or ())
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert metadata["error-code"] == "invalid_argument"
    assert json.loads(metadata["field-violations"]) == [
        {"field": "end_time", "reason": "must be after start_time"}
    ]


async def test_a_database_that_does_not_answer_is_unavailable_through_either_driver(server_and_stub) -> None:
    import socket

    from sqlalchemy import text

    from tt_common.db import DriverPool, create_engine

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://nobody:nothing@127.0.0.1:{port}/none"
    failures: list[Exception] = []
    pool = DriverPool(url, size=1)
    try:
        await pool.fetchval("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises is what the interceptor sees
        failures.append(exc)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        failures.append(exc)
    finally:
        await engine.dispose()
    assert len(failures) == 2

    servicer, stub = server_and_stub
    for failure in failures:
        servicer.error = failure
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, repr(failure)
        assert dict(exc.value.trailing_metadata())["error-code"] == "unavailable"


async def test_a_handler_that_aborts_itself_keeps_its_status_and_logs_no_error() -> None:
    from grpc_health.v1 import health
    from structlog.testing import capture_logs

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), WrappingServer(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as exc:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="not-registered"), timeout=5
                )
    finally:
        await server.stop(None)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert logs == []  # not mistaken for an unhandled error (and aborted twice)


async def test_streaming_handlers_are_registered_as_they_are() -> None:
    """Only unary handlers are wrapped: the health service's Watch still streams."""
    from grpc_health.v1 import health

    servicer = health.aio.HealthServicer()
    await servicer.set("svc", health_pb2.HealthCheckResponse.SERVING)
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, WrappingServer(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="svc"))
            first = await asyncio.wait_for(watch.read(), timeout=5)
            watch.cancel()
    finally:
        await server.stop(None)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
