"""The gRPC server counts every call with its final status code; GC pauses are timed."""

from __future__ import annotations

import asyncio
import gc
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from tt_common.errors import InvalidArgument, NotFound
from tt_common.grpc_handlers import WrappingServer
from tt_common.metrics import MetricNames, observe_gc_pauses, split_method

SERVICE, METHOD = "grpc.health.v1.Health", "Check"
STALL_S = 2.0


class ScriptedHealth(health_pb2_grpc.HealthServicer):
    """Answers by the requested service name: "" is fine, the rest raise."""

    async def Check(self, request, context):
        if request.service == "stall":
            # Fails, and leaves its loop a stall that runs as soon as the handler yields.
            asyncio.get_running_loop().call_soon(time.sleep, STALL_S)
            raise RuntimeError("boom")
        if request.service == "missing":
            raise NotFound("no such thing")
        if request.service == "bad":
            raise InvalidArgument.field("service", "bad")
        if request.service == "boom":
            raise RuntimeError("boom")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def address():
    # As the runner registers handlers: span, metrics and error mapping wrapped around each.
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(ScriptedHealth(), WrappingServer(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def channel(address):
    async with grpc.aio.insecure_channel(address) as channel:
        yield channel


def handled(code: str) -> float:
    labels = {"grpc_service": SERVICE, "grpc_method": METHOD, "grpc_code": code}
    return REGISTRY.get_sample_value(MetricNames.GRPC_SERVER_HANDLED, labels) or 0.0


def timed() -> float:
    labels = {"grpc_service": SERVICE, "grpc_method": METHOD}
    return REGISTRY.get_sample_value(f"{MetricNames.GRPC_SERVER_HANDLING_SECONDS}_count", labels) or 0.0


async def test_calls_are_counted_by_their_final_status_code_and_timed(channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    codes = ("OK", "NOT_FOUND", "INVALID_ARGUMENT", "INTERNAL")
    before = {code: handled(code) for code in codes}
    count_before = timed()

    await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    for name in ("missing", "bad", "boom"):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)

    moved = {code: handled(code) - before[code] for code in codes}
    assert moved == {"OK": 2, "NOT_FOUND": 1, "INVALID_ARGUMENT": 1, "INTERNAL": 1}
    assert timed() - count_before == 5


async def test_a_failed_call_is_counted_before_its_client_sees_the_status(address) -> None:
    # grpc.aio's `context.abort` sends the status before it raises, so a count taken after it
    # could come after the client has the error (CI once read INTERNAL uncounted). Here the
    # server's loop stalls as soon as the handler yields; the client, on its own thread and a
    # blocking channel, reads the count the moment its call ends, while that stall still runs.
    def call_and_count() -> tuple[grpc.StatusCode, float, float]:
        with grpc.insecure_channel(address) as sync_channel:
            stub = health_pb2_grpc.HealthStub(sync_channel)
            before, started = handled("INTERNAL"), time.perf_counter()
            with pytest.raises(grpc.RpcError) as exc:
                stub.Check(health_pb2.HealthCheckRequest(service="stall"), timeout=5)
            return exc.value.code(), handled("INTERNAL") - before, time.perf_counter() - started

    code, counted, waited = await asyncio.to_thread(call_and_count)
    assert code == grpc.StatusCode.INTERNAL
    assert waited < STALL_S, "the status came only after the stall: this run proves nothing"
    assert counted == 1


async def test_unknown_methods_create_no_label_sets(channel) -> None:
    call = channel.unary_unary("/grpc.health.v1.Health/NoSuchMethod")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call(b"", timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
    labels = {"grpc_service": SERVICE, "grpc_method": "NoSuchMethod", "grpc_code": "UNIMPLEMENTED"}
    assert REGISTRY.get_sample_value(MetricNames.GRPC_SERVER_HANDLED, labels) is None


def test_split_method() -> None:
    assert split_method("/timetracking.projects.v1.ProjectsService/GetUser") == (
        "timetracking.projects.v1.ProjectsService",
        "GetUser",
    )
    assert split_method("garbage") == ("unknown", "garbage")


def _gc_pauses(generation: str) -> float:
    count = REGISTRY.get_sample_value(MetricNames.GC_PAUSE_SECONDS + "_count", {"generation": generation})
    return count or 0.0


def test_every_garbage_collection_is_timed_once_by_generation() -> None:
    observe_gc_pauses()
    observe_gc_pauses()  # installed once: a second call must not count twice
    full, young = _gc_pauses("2"), _gc_pauses("0")
    gc.collect()
    gc.collect(0)
    assert _gc_pauses("2") == full + 1
    assert _gc_pauses("0") == young + 1
    slowest = REGISTRY.get_sample_value(MetricNames.GC_PAUSE_SECONDS + "_sum", {"generation": "2"})
    assert slowest is not None and slowest > 0
