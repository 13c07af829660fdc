"""Server spans for unary gRPC calls: OpenTelemetry's, without its per-call cost when the call
cannot be recorded.

Without an exporter the tracer provider samples `parentbased_always_off`
(telemetry.py): a call is recorded only when its caller's span was sampled.
Every other call still gets a server span with trace and span ids (for the
logs, the outbox's Kafka headers and onward calls), but a non-recording one,
so OpenTelemetry's server interceptor would spend most of its per-call work
(attributes, peer parsing, a wrapped servicer context, two context managers)
on a span that keeps nothing. Here such a call gets the same span from the
same SDK call (`Tracer.start_span` with the remote parent: same ids, flags and
trace state), made current around the handler, and nothing else. A call whose
parent is sampled, and every call under any other sampler, runs under
OpenTelemetry's own server wrapper, unchanged.

`traced` wraps a handler function once, when the server registers it
(grpc_handlers.py), not per call as an interceptor would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .telemetry import records_only_sampled_parents

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class _CallDetails(NamedTuple):
    """What OpenTelemetry's server wrapper reads of a call: its method (grpc.HandlerCallDetails)."""

    method: str
    invocation_metadata: tuple[Any, ...] = ()


def _recorded(behavior: Behavior, method: str) -> Behavior:
    """`behavior` under OpenTelemetry's own aio server wrapper, built on its first call."""
    otel = aio_server_interceptor()
    wrapped: Behavior | None = None
    handler = grpc.unary_unary_rpc_method_handler(behavior)

    async def continuation(_: Any) -> grpc.RpcMethodHandler:
        return handler

    async def recorded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        nonlocal wrapped
        if wrapped is not None:
            return await wrapped(request, context)
        otel_behavior = (await otel.intercept_service(continuation, _CallDetails(method))).unary_unary
        if otel_behavior is not behavior:  # not kept while instrumentation is suppressed
            wrapped = otel_behavior
        return await otel_behavior(request, context)

    return recorded


def traced(behavior: Behavior, method: str) -> Behavior:
    """`behavior` (a unary handler function of `method`) running in the call's server span."""
    recorded = _recorded(behavior, method)
    # Decided once: the provider is installed before any server is built (run_service).
    if not records_only_sampled_parents():
        return recorded
    tracer = trace.get_tracer(__name__)
    extract, attach, detach = propagate.extract, otel_context.attach, otel_context.detach
    server = trace.SpanKind.SERVER

    async def cheap(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if not is_instrumentation_enabled():
            return await behavior(request, context)
        metadata = context.invocation_metadata()
        # As OpenTelemetry does: the caller's context, from the metadata when there is any.
        parent = extract({md.key: md.value for md in metadata}) if metadata else None
        caller = trace.get_current_span(parent).get_span_context()
        if caller.is_valid and caller.trace_flags.sampled:
            return await recorded(request, context)
        span = tracer.start_span(method, context=parent, kind=server)
        token = attach(trace.set_span_in_context(span, parent))
        try:
            return await behavior(request, context)
        finally:
            detach(token)

    return cheap
