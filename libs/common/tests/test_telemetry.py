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


def test_without_an_exporter_spans_carry_ids_but_record_nothing(monkeypatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    import tt_common.telemetry as telemetry

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(telemetry, "_configured", False)
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)
    provider = setup_tracing("test")
    assert isinstance(provider, TracerProvider)
    with provider.get_tracer("test").start_as_current_span("unexported") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid
        assert any(k == "traceparent" for k, _ in inject_headers())
