"""gRPC clients: channels with tracing, keepalive and a default deadline per call."""

from __future__ import annotations

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

DEFAULT_DEADLINE_S = 5.0
MAX_MESSAGE_BYTES = 128 * 1024 * 1024


def channel(target: str) -> grpc.aio.Channel:
    """An insecure channel (loopback / in-cluster mTLS by mesh) that propagates trace context."""
    return grpc.aio.insecure_channel(
        target,
        interceptors=aio_client_interceptors(),
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.enable_retries", 0),
            # Reconnect within seconds after a dependency restarts (the default backoff grows to 120 s).
            ("grpc.max_reconnect_backoff_ms", 2000),
            # An invoice's claim returns every entry it bills (100k entries is ~25 MB).
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )


async def check_health(target: str, service: str = "", deadline_s: float = 2.0) -> bool:
    """True when `target` answers SERVING on the standard health service."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=deadline_s)
        except grpc.aio.AioRpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING
