"""The request's trace context when this process records no spans (no exporter configured).

FastAPI's own telemetry (http_api.TELEMETRY) makes one server span per request,
named after its route and described by a dozen attributes; that is what an
exporter receives. With nothing exported (the default without
OTEL_EXPORTER_OTLP_ENDPOINT) the span is a non-recording one and all that
description is work for nobody: a tenth of the gateway's CPU per request. This
middleware does what is still needed then: continue the caller's `traceparent`
(or start a trace), so log lines, gRPC calls and Kafka events carry the ids.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Receive, Scope, Send


class TraceContext:
    """Pure ASGI: a non-recording server span per request, parented by the caller's trace context."""

    def __init__(self, app: ASGIApp, exclude: Callable[[MutableMapping[str, Any]], bool]) -> None:
        self.app = app
        self.exclude = exclude
        self.tracer = trace.get_tracer(__name__)
        self.fields = {name.encode("latin-1") for name in propagate.get_global_textmap().fields}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exclude(scope):
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in self.fields
        }
        parent = propagate.extract(carrier) if carrier else None
        span = self.tracer.start_span("HTTP", context=parent, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
            span.end()
