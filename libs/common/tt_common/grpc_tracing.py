"""The gRPC server's tracing interceptor: OpenTelemetry's, without its per-call cost when
the call cannot be recorded.

Without an exporter the tracer provider samples `parentbased_always_off`
(telemetry.py): a call is recorded only when its caller's span was sampled.
Every other call still gets a server span with trace and span ids (for the
logs, the outbox's Kafka headers and onward calls), but a non-recording one,
so OpenTelemetry's interceptor spends most of its per-call work (attributes,
peer parsing, a wrapped servicer context, two context managers) on a span that
keeps nothing. Here such a call gets the same span from the same SDK call
(`Tracer.start_span` with the remote parent: same ids, flags and trace state),
made current around the handler, and nothing else. A call whose parent is
sampled, and every call under any other sampler, goes through OpenTelemetry's
own interceptor unchanged, as do streaming calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .grpc_wrappers import Handler, MethodWrappers
from .telemetry import records_only_sampled_parents

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]


def _returning(handler: Handler | None) -> Continuation:
    async def continuation(_: grpc.HandlerCallDetails) -> Handler | None:
        return handler

    return continuation


class ServerTracingInterceptor(grpc.aio.ServerInterceptor):
    """OpenTelemetry's aio server interceptor, with a cheap path for calls that are not recorded."""

    def __init__(self) -> None:
        self._otel = aio_server_interceptor()
        self._tracer = trace.get_tracer(__name__)
        # Decided once: the provider is installed before the server is built (run_service).
        self._cheap = records_only_sampled_parents()
        self._wrapped = MethodWrappers()

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Any:
        if not self._cheap or not is_instrumentation_enabled():
            return await self._otel.intercept_service(continuation, details)
        handler = await continuation(details)
        if handler is None or not handler.unary_unary:
            return await self._otel.intercept_service(_returning(handler), details)
        wrapped = self._wrapped.lookup(details.method, handler)
        if wrapped is None:
            # OpenTelemetry's wrapper reads only the method name from `details`.
            otel = await self._otel.intercept_service(_returning(handler), details)
            wrapped = self._wrapped.store(
                details.method, handler, self._cheap_handler(handler, otel, details.method)
            )
        return wrapped

    def _cheap_handler(self, handler: Handler, otel: Handler, name: str) -> Handler:
        inner, recorded = handler.unary_unary, otel.unary_unary
        tracer = self._tracer
        extract, attach, detach = propagate.extract, otel_context.attach, otel_context.detach
        server = trace.SpanKind.SERVER

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            metadata = context.invocation_metadata()
            # As OpenTelemetry does: the caller's context, from the metadata when there is any.
            parent = extract({md.key: md.value for md in metadata}) if metadata else None
            caller = trace.get_current_span(parent).get_span_context()
            if caller.is_valid and caller.trace_flags.sampled:
                return await recorded(request, context)
            span = tracer.start_span(name, context=parent, kind=server)
            token = attach(trace.set_span_in_context(span, parent))
            try:
                return await inner(request, context)
            finally:
                detach(token)

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
