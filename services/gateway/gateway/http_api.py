"""The REST API under /v1 (FastAPI), plus health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import BaseModel, Field

from timetracking.reporting.v1 import reporting_pb2
from timetracking.tracking.v1 import tracking_pb2
from tt_common.redis import make_redis

from . import problems
from .clients import ServiceClients
from .config import GatewaySettings
from .health import ReadinessProbe


class PipelineProbeIn(BaseModel):
    note: str = Field(default="", max_length=200, description="Free text to recognise the probe by")


class PipelineProbeOut(BaseModel):
    probe_id: str
    emitted_at: datetime
    received_at: datetime | None = None
    lag_seconds: float | None = None
    note: str = ""


class ReadinessOut(BaseModel):
    status: str
    checks: dict[str, str]


router = APIRouter(prefix="/v1")


def _clients(request: Request) -> ServiceClients:
    return request.app.state.clients


@router.post("/system/pipeline-probes", status_code=202, response_model=PipelineProbeOut, tags=["system"])
async def emit_pipeline_probe(body: PipelineProbeIn, request: Request) -> PipelineProbeOut:
    """Send a probe event through tracking's outbox, Kafka and reporting; poll GET to see it arrive."""
    clients = _clients(request)
    resp = await clients.tracking.EmitPipelineProbe(
        tracking_pb2.EmitPipelineProbeRequest(note=body.note), timeout=clients.deadline_s
    )
    return PipelineProbeOut(probe_id=resp.probe_id, emitted_at=resp.emitted_at.ToDatetime(), note=body.note)


@router.get("/system/pipeline-probes/{probe_id}", response_model=PipelineProbeOut, tags=["system"])
async def get_pipeline_probe(probe_id: str, request: Request) -> PipelineProbeOut:
    """A probe as reporting recorded it: 404 until it has arrived."""
    clients = _clients(request)
    status = await clients.reporting.GetPipelineProbe(
        reporting_pb2.GetPipelineProbeRequest(probe_id=probe_id), timeout=clients.deadline_s
    )
    return PipelineProbeOut(
        probe_id=status.probe_id,
        emitted_at=status.emitted_at.ToDatetime(),
        received_at=status.received_at.ToDatetime(),
        lag_seconds=status.lag_seconds,
        note=status.note,
    )


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.clients = ServiceClients.connect(settings)
        app.state.redis = make_redis(settings.redis_url)
        app.state.readiness = ReadinessProbe(settings, app.state.redis)
        yield
        await app.state.clients.close()
        await app.state.redis.aclose()

    app = FastAPI(
        title="Time tracking platform API",
        version="1.0.0",
        description="Time entries, timers, reports and invoices for agencies and consultancies.",
        lifespan=lifespan,
    )
    problems.install(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=ReadinessOut)
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: PostgreSQL, Redis, Kafka and every service answer."""
        ok, checks = await request.app.state.readiness.check()
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503
        )

    app.include_router(router)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz")
    return app
