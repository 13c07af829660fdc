"""What every unary gRPC handler of a service runs in: its server span, its metrics, and the
one place where exceptions become gRPC statuses; wrapped once, when the handler is registered.

grpc.aio's server interceptors would do the same per call, and their machinery
(a chain of coroutines per interceptor, call details built for each) cost more
than the work they wrap: on grpc.aio with empty handlers, the three
interceptors this replaces took the CPU per call from 0.28 to 0.43 ms
(bench/trivial_grpc.py under the timers' load, docs/performance.md). Here a
service's generated `add_*_to_server` function registers its handlers on a
`WrappingServer`, which wraps each unary-unary handler before the real server
sees it; a call then runs two plain functions around the handler.

Streaming handlers (the health service's Watch, reflection; grpc's own, with
their own statuses) are registered as they are, neither measured nor traced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from .db import database_unavailable
from .errors import DomainError
from .grpc_tracing import Behavior, traced
from .logging import get_logger
from .metrics import call_metrics, final_code

log = get_logger(__name__)


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, str, list[tuple[str, str]]]:
    if isinstance(exc, DomainError):
        return exc.code, exc.message, exc.metadata()
    if database_unavailable(exc):
        return (
            grpc.StatusCode.UNAVAILABLE,
            "database unavailable, retry later",
            [("error-code", "unavailable")],
        )
    return grpc.StatusCode.INTERNAL, "internal error", [("error-code", "internal")]


def _logged_status(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str, list[tuple[str, str]]]:
    """The status `exc` maps to, logged when it is not a domain error."""
    status = _status_for(exc)
    if status[0] == grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in rpc", method=method)
    elif not isinstance(exc, DomainError):
        log.warning("dependency failure in rpc", method=method, error=str(exc))
    return status


def guarded(behavior: Behavior, method: str) -> Behavior:
    """`behavior` with its exceptions mapped to statuses, counted and timed by final status."""
    latency, count = call_metrics(method)

    def finished(started: float, code: grpc.StatusCode) -> None:
        latency.observe(time.perf_counter() - started)
        count(code)

    # A call is counted before this wrapper sends its status: `context.abort` sends it before it
    # raises, so a count in a `finally` could come after the client had the error. (A handler
    # that aborts by itself has sent its status before the wrapper sees the AbortError.)
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            response = await behavior(request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError) as exc:
            # AbortError: the handler aborted with its own status (grpc's health service does);
            # aborting again would turn it into UNKNOWN.
            finished(started, final_code(context, exc))
            raise
        except Exception as exc:  # noqa: BLE001 - mapped, and logged when unexpected
            code, message, metadata = _logged_status(exc, method)
            finished(started, code)
            await context.abort(code, message, trailing_metadata=tuple(metadata))
        finished(started, final_code(context, None))
        return response

    return call


def wrap_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A unary-unary `handler` of `method` ("/package.Service/Method") in its span, measured and
    with errors mapped; any other handler as it is."""
    if handler is None or not handler.unary_unary:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        traced(guarded(handler.unary_unary, method), method),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _WrappedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose unary-unary handlers come out wrapped (each wrapped once)."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None  # an unknown method: UNIMPLEMENTED, and no label set in the metrics
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, wrap_handler(method, handler))
        return known[1]


class WrappingServer:
    """The server as a generated `add_*_to_server(servicer, server)` function sees it: every
    handler it registers is wrapped (`wrap_handler`) on its way to the real server."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self.server.add_generic_rpc_handlers(tuple(_WrappedGenericHandler(h) for h in generic_rpc_handlers))

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self.server.add_registered_method_handlers(
            service_name,
            {name: wrap_handler(f"/{service_name}/{name}", h) for name, h in method_handlers.items()},
        )
