"""HTTP metrics: requests by method, route template and status, and their latency.

The route label is the matched path template (`/v1/time-entries/{entry_id}`),
never the raw path, so ids and scanners cannot create new series; unmatched
paths count as `unmatched`. Exposed on GATEWAY_METRICS_PORT, not on the public port.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

from tt_common.metrics import LATENCY_BUCKETS, MetricNames

REQUESTS = Counter(
    MetricNames.HTTP_SERVER_REQUESTS.removesuffix("_total"),
    "HTTP requests answered by the gateway",
    ["method", "route", "code"],
)
LATENCY = Histogram(
    MetricNames.HTTP_SERVER_REQUEST_SECONDS,
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

MAX_CACHED_SERIES = 2000


class HttpMetrics:
    """A pure ASGI middleware (no per-request task switching like BaseHTTPMiddleware)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # (method, route, code) -> the labelled children: `labels()` takes a lock and builds
        # a key each time, per request, for the same few dozen series.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            key = (scope.get("method", "GET"), template, status["code"])
            series = self._series.get(key)
            if series is None:
                series = (REQUESTS.labels(key[0], template, str(key[2])), LATENCY.labels(key[0], template))
                if len(self._series) < MAX_CACHED_SERIES:
                    self._series[key] = series
            series[0].inc()
            series[1].observe(time.perf_counter() - started)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif not recorded and (
                (message["type"] == "http.response.body" and not message.get("more_body"))
                or message["type"] == "http.response.pathsend"  # a file, where the server sends it
            ):
                # Counted before the last part leaves: a client that has its answer finds it counted.
                record()
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if not recorded:  # no complete answer was sent: an error, or a client gone before it
                record()
