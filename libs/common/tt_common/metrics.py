"""Prometheus metrics: every metric name, and what the gRPC servers measure per call.

Each service process exposes the default prometheus_client registry on
`<SVC>_METRICS_PORT` (started by GrpcServiceRunner); a server with several
worker processes (the gateway with GATEWAY_WORKERS > 1) serves their sum from
its supervisor (`multiprocess_metrics`). Metrics carry no service label: one
process (or supervisor) is one service, and the scraper adds job and instance.
Metric objects live next to the code that records them (outbox.py, kafka.py,
invoicing); their names live here, so dashboards, alerts and code agree.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from prometheus_client import Counter, Histogram


class MetricNames:
    """Metric names as exposed (counters with their `_total` suffix)."""

    HTTP_SERVER_REQUESTS = "http_server_requests_total"
    HTTP_SERVER_REQUEST_SECONDS = "http_server_request_duration_seconds"
    GRPC_SERVER_HANDLED = "grpc_server_handled_total"
    GRPC_SERVER_HANDLING_SECONDS = "grpc_server_handling_seconds"
    OUTBOX_PUBLISHED = "outbox_events_published_total"
    OUTBOX_PENDING = "outbox_events_pending"
    OUTBOX_OLDEST_PENDING_AGE = "outbox_oldest_pending_age_seconds"
    KAFKA_CONSUMED = "kafka_messages_consumed_total"
    KAFKA_DEAD_LETTERED = "kafka_messages_dead_lettered_total"
    KAFKA_CONSUMER_LAG = "kafka_consumer_lag_messages"
    INVOICE_GENERATION_SECONDS = "invoice_generation_seconds"
    INVOICE_PDF_RENDER_SECONDS = "invoice_pdf_render_seconds"
    INVOICE_PDF_BYTES = "invoice_pdf_bytes"
    REPORTING_EVENT_APPLY_LAG = "reporting_event_apply_lag_seconds"
    GC_PAUSE_SECONDS = "python_gc_pause_seconds"


# 1 ms .. 10 s: a cached lookup at the low end, a 10,000-entry invoice at the high end.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# 0.5 ms .. 250 ms: a young collection at the low end, a full one of a big heap at the top.
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

GC_PAUSE_SECONDS = Histogram(
    MetricNames.GC_PAUSE_SECONDS,
    "Time a garbage collection stopped the process, by generation (0 young .. 2 full)",
    ["generation"],
    buckets=GC_PAUSE_BUCKETS,
)


def observe_gc_pauses() -> None:
    """Time every garbage collection of this process into GC_PAUSE_SECONDS (installed once).

    A collection stops every request of the process: its pauses belong next to the
    request latencies (a young collection of 50,000 objects took 20-45 ms here).
    """
    if any(getattr(callback, "times_gc_pauses", False) for callback in gc.callbacks):
        return
    by_generation = [GC_PAUSE_SECONDS.labels(str(generation)) for generation in range(3)]
    started = 0.0

    def on_collection(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started)

    on_collection.times_gc_pauses = True  # type: ignore[attr-defined]
    gc.callbacks.append(on_collection)


GRPC_HANDLED = Counter(
    MetricNames.GRPC_SERVER_HANDLED,
    "gRPC calls completed on the server, by final status code",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_HANDLING_SECONDS = Histogram(
    MetricNames.GRPC_SERVER_HANDLING_SECONDS,
    "Time the server took for a gRPC call, whatever its outcome",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)


@contextmanager
def observe_outcome(histogram: Histogram) -> Iterator[None]:
    """Time the block into `histogram`, labelled `outcome` "ok", or "error" when it raises."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        histogram.labels(outcome).observe(time.perf_counter() - started)


def split_method(full_method: str) -> tuple[str, str]:
    """'/timetracking.projects.v1.ProjectsService/GetUser' -> (service, method)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def final_code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    """The status the client receives from a handler that returned, aborted by itself or was
    cancelled (the error mapping counts the status it sends without asking).

    `context.abort` and `set_code` record the code on the context (it stays None on a plain
    success); an exception that escapes without an abort becomes UNKNOWN in grpc; a cancelled
    call is CANCELLED.
    """
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN


def call_metrics(full_method: str) -> tuple[Any, Callable[[grpc.StatusCode], None]]:
    """A unary method's latency histogram and its count by final status (grpc_handlers.py).

    Looked up once per method, not per call (`labels()` hashes and locks on every
    use). Only registered methods get a label set: an unknown method name (a
    scanner, a typo) answers UNIMPLEMENTED without one, which keeps cardinality
    bounded.
    """
    service, method = split_method(full_method)
    latency = GRPC_HANDLING_SECONDS.labels(service, method)
    handled: dict[grpc.StatusCode, Any] = {}

    def count(code: grpc.StatusCode) -> None:
        child = handled.get(code)
        if child is None:
            child = handled[code] = GRPC_HANDLED.labels(service, method, code.name)
        child.inc()

    return latency, count


MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_metrics(port: int | None, addr: str) -> Iterator[None]:
    """Metrics of a server that runs in several worker processes, served by their supervisor.

    prometheus_client's multiprocess mode: each worker (a fresh interpreter started after
    this) finds PROMETHEUS_MULTIPROC_DIR in its environment and keeps its counters and
    histograms in files there; the supervisor serves their sum on `port`, so one scrape
    sees the whole server, as with one process. The directory is private to this run and
    removed at exit (a dead worker's counts stay in the sum until then, as counters must).
    Process metrics (CPU, memory) of the workers are not exported in this mode.
    """
    import os
    import shutil
    import tempfile

    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    directory = tempfile.mkdtemp(prefix="metrics-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    try:
        if port:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            start_http_server(port, addr=addr, registry=registry)
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)
