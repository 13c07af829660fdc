"""Operator endpoints (ADMIN): the pipeline probe through tracking, Kafka and reporting."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from timetracking.reporting.v1 import reporting_pb2
from timetracking.tracking.v1 import tracking_pb2

from ..access import visible_or_404
from ..auth import CurrentPrincipal
from ..schemas.common import Input, dt
from ..state import GatewayDep
from . import COMMON, problems
from .users import require_admin

router = APIRouter(prefix="/v1/system", tags=["system"])


class PipelineProbeIn(Input):
    note: str = Field(default="", max_length=200, description="Free text to recognise the probe by")


class PipelineProbeOut(BaseModel):
    probe_id: str
    emitted_at: datetime
    received_at: datetime | None = None
    lag_seconds: float | None = None
    note: str = ""


@router.post(
    "/pipeline-probes",
    status_code=202,
    response_model=PipelineProbeOut,
    responses={**COMMON, **problems(403)},
)
async def emit_pipeline_probe(
    gw: GatewayDep, principal: CurrentPrincipal, body: PipelineProbeIn
) -> PipelineProbeOut:
    """Send a probe event through tracking's outbox, Kafka and reporting; poll GET to see it arrive."""
    require_admin(principal, "operator endpoints")
    resp = await gw.clients.write(
        gw.clients.tracking.EmitPipelineProbe, tracking_pb2.EmitPipelineProbeRequest(note=body.note)
    )
    return PipelineProbeOut(probe_id=resp.probe_id, emitted_at=dt(resp.emitted_at), note=body.note)


@router.get(
    "/pipeline-probes/{probe_id}", response_model=PipelineProbeOut, responses={**COMMON, **problems(404)}
)
async def get_pipeline_probe(gw: GatewayDep, principal: CurrentPrincipal, probe_id: str) -> PipelineProbeOut:
    """A probe as reporting recorded it: 404 until it has arrived."""
    visible_or_404(principal.is_admin, "probe")
    status = await gw.clients.read(
        gw.clients.reporting.GetPipelineProbe, reporting_pb2.GetPipelineProbeRequest(probe_id=probe_id)
    )
    return PipelineProbeOut(
        probe_id=status.probe_id,
        emitted_at=dt(status.emitted_at),
        received_at=dt(status.received_at),
        lag_seconds=status.lag_seconds,
        note=status.note,
    )
