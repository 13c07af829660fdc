"""The gateway's entry point: uvicorn serving the FastAPI app."""

from __future__ import annotations

import prometheus_client
import uvicorn

from tt_common.grpc_server import tune_gc
from tt_common.logging import configure_logging
from tt_common.settings import load_settings
from tt_common.telemetry import setup_tracing, shutdown_tracing

from .config import GatewaySettings
from .http_api import create_app


def main() -> None:
    settings = load_settings(GatewaySettings)
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    setup_tracing(settings.service_name)
    tune_gc()
    if settings.metrics_port:
        # Not on the public port: scrapers reach it inside the cluster only.
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.http_host)
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,  # structlog owns logging
            access_log=False,  # one log call per request for nothing: metrics and traces cover it
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=10,
        )
    finally:
        shutdown_tracing()


if __name__ == "__main__":
    main()
