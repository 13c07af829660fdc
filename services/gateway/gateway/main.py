"""The gateway's entry point: uvicorn serving the FastAPI app, in one process or several.

GATEWAY_WORKERS=1 (the default, one process per pod; Kubernetes scales by
replicas): the app runs in this process. More: this process becomes a
supervisor (uvicorn's) that holds the listening socket and runs that many
worker processes, each a fresh interpreter building its own app (`worker_app`).
What is per process stays correct across workers:
- JWT keys: the workers read the same configured keys; dev/test without keys
  get one random key made here, before the workers start, so a token signed by
  one worker verifies in every other.
- Verified-token and API-token caches, access-decision caches: per worker;
  they only save work, every answer is the same in each.
- Rate limits: buckets stay in Redis; each worker leases its own tokens.
- Metrics: the workers count into prometheus_client's multiprocess files and
  this process serves their sum on GATEWAY_METRICS_PORT.
- Shutdown: SIGTERM/SIGINT here reach every worker, which drains its requests
  (10 s) before the supervisor exits; a worker whose supervisor dies, even by
  SIGKILL, is sent SIGTERM by the kernel, so none is orphaned holding the port.
"""

from __future__ import annotations

import atexit
import json
import os
from typing import TYPE_CHECKING, Any

import prometheus_client
import uvicorn

from tt_common.grpc_server import tune_gc
from tt_common.logging import configure_logging
from tt_common.metrics import multiprocess_metrics
from tt_common.process import die_with_parent
from tt_common.settings import load_settings
from tt_common.telemetry import setup_tracing, shutdown_tracing

from .config import GatewaySettings

if TYPE_CHECKING:
    from fastapi import FastAPI

SUPERVISOR_PID_ENV = "TT_GATEWAY_SUPERVISOR_PID"

_SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,  # structlog owns logging
    "access_log": False,  # one log call per request for nothing: metrics and traces cover it
    "loop": "uvloop",
    "http": "httptools",
    "timeout_graceful_shutdown": 10,
}


def _setup_process(settings: GatewaySettings) -> None:
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    setup_tracing(settings.service_name)
    tune_gc()


def worker_app() -> FastAPI:
    """The app of one worker process (GATEWAY_WORKERS > 1); uvicorn calls it in each worker."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV)
    if supervisor:
        die_with_parent(int(supervisor))
    settings = load_settings(GatewaySettings)
    _setup_process(settings)
    atexit.register(shutdown_tracing)
    from .http_api import create_app

    return create_app(settings)


def main() -> None:
    settings = load_settings(GatewaySettings)
    if settings.workers == 1:
        from .http_api import create_app  # not in a supervisor: its workers import the app themselves

        _setup_process(settings)
        if settings.metrics_port:
            # Not on the public port: scrapers reach it inside the cluster only.
            prometheus_client.start_http_server(settings.metrics_port, addr=settings.http_host)
        try:
            uvicorn.run(
                create_app(settings), host=settings.http_host, port=settings.http_port, **_SERVER_OPTIONS
            )
        finally:
            shutdown_tracing()
        return
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    # The workers start from the environment: the same keys (a dev key made once, here) and
    # this process's pid, whose death they must not outlive.
    os.environ["GATEWAY_JWT_KEYS"] = json.dumps(settings.jwt_keys)
    os.environ["GATEWAY_JWT_ACTIVE_KID"] = settings.jwt_active_kid
    os.environ[SUPERVISOR_PID_ENV] = str(os.getpid())
    with multiprocess_metrics(settings.metrics_port, settings.http_host):
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            workers=settings.workers,
            host=settings.http_host,
            port=settings.http_port,
            **_SERVER_OPTIONS,
        )


if __name__ == "__main__":
    main()
