"""grpc.aio server bootstrap: handlers wrapped with error mapping, tracing and metrics
(grpc_handlers.py), health, reflection, background workers, graceful shutdown.

A service's main.py builds a `GrpcServiceRunner`, adds its servicers and
background workers (outbox relay, consumers, schedulers) and calls `run()`.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import prometheus_client
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .grpc_handlers import WrappingServer
from .logging import get_logger
from .metrics import observe_gc_pauses
from .settings import ServiceSettings

log = get_logger(__name__)


Worker = Callable[[], Awaitable[None]]

WORKER_BACKOFF_S = (0.5, 30.0)  # first pause after a crash, and the most it doubles to
WORKER_HEALTHY_RUN_S = 60.0  # a worker that ran this long before crashing starts from the first pause


async def supervise(
    name: str,
    worker: Worker,
    stopping: asyncio.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `worker` until it returns or `stopping` is set, restarting it after a crash.

    The pause doubles while it keeps crashing (a crash loop does not spin), and starts
    over after a run of WORKER_HEALTHY_RUN_S: a relay whose producer died with a broker
    restart, hours after the last one, is back within a second, not after the longest pause.
    """
    first, most = WORKER_BACKOFF_S
    backoff = first
    while not stopping.is_set():
        started = clock()
        try:
            await worker()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            if clock() - started >= WORKER_HEALTHY_RUN_S:
                backoff = first
            log.exception("worker crashed; restarting", worker=name, backoff_s=backoff)
            await sleep(backoff)
            backoff = min(backoff * 2, most)


READINESS = "readiness"


class GrpcServiceRunner:
    """Runs one service's gRPC server and its background workers until SIGTERM."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        # No interceptors: every unary handler is wrapped once as it is registered (span,
        # metrics, error mapping: grpc_handlers.py), which costs a fraction of them per call.
        self.server = grpc.aio.server()
        self._registering = WrappingServer(self.server)
        self.health = health.aio.HealthServicer()
        self._service_names: list[str] = [reflection.SERVICE_NAME, health.SERVICE_NAME]
        self._workers: list[tuple[str, Worker]] = []
        self._on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self._stopping = asyncio.Event()
        self._checks: dict[str, Callable[[], Awaitable[None]]] = {}
        self.readiness_interval_s = 5.0

    def add_servicer(
        self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str
    ) -> None:
        add_to_server(servicer, self._registering)
        self._service_names.append(full_name)

    def add_worker(self, name: str, worker: Worker) -> None:
        """A long-running coroutine, restarted with backoff if it crashes."""
        self._workers.append((name, worker))

    def on_shutdown(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._on_shutdown.append(callback)

    def add_readiness_check(self, name: str, check: Callable[[], Awaitable[None]]) -> None:
        """A dependency check (raise when not ready), published as health service `name`.

        The aggregate is published as `readiness`; `""` stays SERVING while the
        process runs (liveness), so a database outage never restarts a pod.
        """
        self._checks[name] = check

    async def _watch_readiness(self) -> None:
        serving, not_serving = (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        while True:
            all_ok = True
            for name, check in self._checks.items():
                try:
                    await asyncio.wait_for(check(), timeout=3.0)
                    await self.health.set(name, serving)
                except Exception as exc:  # noqa: BLE001 - any failure means not ready
                    all_ok = False
                    log.warning("readiness check failed", check=name, error=str(exc) or type(exc).__name__)
                    await self.health.set(name, not_serving)
            await self.health.set(READINESS, serving if all_ok else not_serving)
            await asyncio.sleep(self.readiness_interval_s)

    async def _supervise(self, name: str, worker: Worker) -> None:
        await supervise(name, worker, self._stopping)

    async def serve(self) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._registering)
        # Reflection picks its asyncio servicer by the server's type; it streams, so nothing to wrap.
        reflection.enable_server_reflection(self._service_names, self.server)
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        self.server.add_insecure_port(address)
        if self.settings.metrics_port:
            # Before the gRPC port opens: a taken metrics port stops the process at once.
            prometheus_client.start_http_server(self.settings.metrics_port, addr=self.settings.grpc_host)
        await self.server.start()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)

        for name in ["", *self._service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.add_worker("readiness", self._watch_readiness)
        tasks = [asyncio.create_task(self._supervise(n, w), name=n) for n, w in self._workers]
        log.info(
            "grpc server started",
            address=address,
            metrics_port=self.settings.metrics_port,
            workers=[n for n, _ in self._workers],
        )

        await self._stopping.wait()
        log.info("shutting down", grace_s=self.settings.grpc_shutdown_grace_seconds)
        # Tell load balancers first, then drain in-flight calls, then stop workers.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.grpc_shutdown_grace_seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for callback in self._on_shutdown:
            await callback()
        log.info("stopped")


def tune_gc() -> None:
    """Fewer, cheaper collections for a long-running server.

    Everything imported at start-up is moved out of the collector's way
    (gc.freeze), so no collection walks it again: a year's timesheet went from
    p99 133 ms to 65-73 ms with this. The young generation is collected every
    GC_YOUNG_THRESHOLD allocations. Each gRPC call leaves a few objects in a
    reference cycle (grpc.aio's per-call method lookup: about five per call),
    which only a collection frees, and a young collection's pause grows with its
    threshold: at 50,000, tracking paused 20-45 ms every ~10 s under 1,000
    calls/s (the timers' p99 is 30 ms); at 5,000 the pauses are 2-3 ms, with the
    same total time in the collector and no change to the year's timesheet
    (docs/performance.md). Every pause is measured (python_gc_pause_seconds).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    observe_gc_pauses()


GC_YOUNG_THRESHOLD = 5_000


def run_service(
    settings_cls: type[ServiceSettings], serve: Callable[[Any], Coroutine[Any, Any, None]]
) -> None:
    """A service's `main()`: settings (fail fast), logging, tracing, then `serve` until SIGTERM."""
    from .logging import configure_logging
    from .settings import load_settings
    from .telemetry import setup_tracing, shutdown_tracing

    settings = load_settings(settings_cls)
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    setup_tracing(settings.service_name)
    tune_gc()
    try:
        # uvloop: a cheaper event loop for every socket wake-up (grpc.aio, psycopg,
        # Redis, Kafka); the gateway's uvicorn picks it up on its own.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings))
    finally:
        shutdown_tracing()
