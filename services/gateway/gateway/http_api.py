"""The REST API under /v1 (FastAPI): wiring of routers, errors, limits and tracing."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel

from tt_common.redis import make_redis
from tt_common.telemetry import records_only_sampled_parents

from . import problems
from .clients import ServiceClients
from .config import GatewaySettings
from .limits import BodySizeLimit
from .metrics import HttpMetrics
from .routes import auth, clients, entries, invoices, projects, reports, system, timer, users
from .state import Gateway
from .tracecontext import TraceContext

DESCRIPTION = """
Time entries, timers, reports and invoices for agencies and consultancies.

**Authentication**: `POST /v1/auth/token` with `{"grant_type": "password", "email", "password"}`
returns a JWT access token (15 minutes) and a single-use refresh token; send
`Authorization: Bearer <access_token>`. Personal API tokens (`tt_...`, from
`POST /v1/me/api-tokens`) work in the same header.

**Errors** are `application/problem+json` (RFC 9457) with a stable `code` and, for
invalid input, the offending fields in `errors`.

**Idempotency**: POSTs that create or transition something accept an `Idempotency-Key`
header; retries with the same key replay the first response for 24 hours.

**Concurrency**: objects carry an `ETag` (their version); send it as `If-Match` to edit.

**Rate limits**: per token; `429` with `Retry-After` when exceeded (reports and PDFs have
a tighter quota).
"""


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in ("/healthz", "/readyz")


# FastAPI's own OpenTelemetry support: one server span per request (named after the route,
# with `http.route`, continuing the caller's `traceparent`), on the global tracer provider.
# Not opentelemetry-instrumentation-fastapi: that one matches every request against the
# whole route table a second time to name its span, a fifth of the gateway's CPU per request.
# Sub-spans for dependencies and serialization are off (they tell nothing here, and cost);
# HTTP metrics are Prometheus's (metrics.py), logs structlog's. When this process records no
# spans (no exporter), TraceContext carries the trace ids instead, without describing spans.
TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "operation_spans": False,
    "metrics": False,
    "logs": False,
    "exclude": _untraced,
}

UNRECORDED: TelemetryConfig = {**TELEMETRY, "tracing": False}


# The order of the API's sections in /docs.
OPENAPI_TAGS = [
    {"name": name}
    for name in (
        "health",
        "auth",
        "users",
        "clients",
        "projects",
        "tasks",
        "members",
        "rates",
        "timer",
        "time entries",
        "reports",
        "invoices",
        "system",
    )
]


class ReadinessOut(BaseModel):
    status: str
    checks: dict[str, str]


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gw = Gateway.build(
            settings, ServiceClients.connect(settings), make_redis(settings.redis_url)
        )
        yield
        await app.state.gw.close()

    app = FastAPI(
        title="Time tracking platform API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=UNRECORDED if records_only_sampled_parents() else TELEMETRY,
        openapi_tags=OPENAPI_TAGS,
    )
    problems.install(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadinessOut,
        responses={503: {"model": ReadinessOut, "description": "a dependency is not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: PostgreSQL, Redis, Kafka and every service answer."""
        ok, checks = await request.app.state.gw.readiness.check()
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    # Routing tries routes in the order they were added (the route table is ~60 routes, and a
    # request pays a regex match for each one before its own), so the hot paths (the timer and
    # entries, most of the traffic) come first; no two routers' paths overlap, so the order
    # changes no answer. The documentation keeps its reading order through OPENAPI_TAGS.
    for module in (timer, entries, auth, users, clients, projects, reports, invoices, system):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetrics)
    if records_only_sampled_parents():
        app.add_middleware(TraceContext, exclude=_untraced)
    return app
