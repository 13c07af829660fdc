"""Trace context survives a trip through Kafka headers."""

from __future__ import annotations

from opentelemetry import trace

from tt_common.telemetry import extract_headers, inject_headers, setup_tracing


def test_trace_context_round_trips_through_headers() -> None:
    setup_tracing("test")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("producer") as span:
        headers = inject_headers()
        sent = span.get_span_context()
    assert any(k == "traceparent" for k, _ in headers)
    ctx = extract_headers(headers)
    with tracer.start_as_current_span("consumer", context=ctx) as child:
        assert child.get_span_context().trace_id == sent.trace_id
