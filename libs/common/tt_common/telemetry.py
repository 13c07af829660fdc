"""OpenTelemetry: tracer provider, propagation helpers, and every span/metric name.

Tracing is always on in-process (so trace ids reach the logs and Kafka
headers); spans are exported over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT
(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Without an exporter, spans are
not recorded (sampler `parentbased_always_off`): trace and span ids are still
made and propagated, but no attributes, events or timings are kept for
nobody to read. Other OTEL_* variables (OTEL_TRACES_SAMPLER to override
that choice) are read by the SDK itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_configured = False

# The sampler without an exporter: a span is recorded only when its parent was sampled.
# One instance, so `records_only_sampled_parents` can recognise it.
UNLESS_PARENT_SAMPLED = ParentBased(ALWAYS_OFF)


class SpanNames:
    """Span names live here, so dashboards and code agree."""

    KAFKA_PUBLISH = "kafka.publish {topic}"
    KAFKA_PROCESS = "kafka.process {topic}"
    OUTBOX_RELAY = "outbox.relay"


def setup_tracing(service_name: str) -> TracerProvider:
    """Install the global tracer provider once per process."""
    global _configured
    provider = trace.get_tracer_provider()
    if _configured and isinstance(provider, TracerProvider):
        return provider
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    exporting = bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    # None: the SDK's choice (OTEL_TRACES_SAMPLER, else parent-based always-on).
    sampler = None if exporting or os.environ.get("OTEL_TRACES_SAMPLER") else UNLESS_PARENT_SAMPLED
    provider = TracerProvider(resource=resource, sampler=sampler)
    if exporting:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def records_only_sampled_parents() -> bool:
    """True when the installed provider records a span only if its parent was sampled
    (no exporter, no OTEL_TRACES_SAMPLER): then a span without a sampled parent is
    known to record nothing before it is started."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, TracerProvider) and provider.sampler is UNLESS_PARENT_SAMPLED


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (W3C traceparent/tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def extract_headers(headers: Iterable[tuple[str, bytes]] | None):
    """A context built from Kafka headers, to parent the consumer's span."""
    carrier: Mapping[str, str] = {k: v.decode(errors="replace") for k, v in (headers or ()) if v is not None}
    return propagate.extract(carrier)


def context_from_carrier(carrier: Mapping[str, str]):
    return propagate.extract(carrier)
