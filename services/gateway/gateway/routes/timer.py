"""The caller's timer: see it, start it, stop it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import APIRouter
from fastapi.responses import Response

from timetracking.tracking.v1 import tracking_pb2 as tpb
from tt_common.errors import NotFound

from ..auth import CurrentPrincipal, Principal
from ..etags import etag
from ..idempotency import IdempotencyHandle
from ..schemas.entries import EntryOut, TimerStart, TimerState, TimerStop, TimerStopped
from ..state import Gateway, GatewayDep
from . import COMMON, problems

router = APIRouter(prefix="/v1/timer", tags=["timer"])


@asynccontextmanager
async def booking(gw: Gateway, principal: Principal, project_id: str) -> AsyncIterator[None]:
    """Tracking's answers about booking on a project, without telling outsiders it exists.

    "Not a member" (PERMISSION_DENIED) becomes 404; so does "project not ACTIVE"
    (FAILED_PRECONDITION) for someone who cannot read the project at all.
    """
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            raise NotFound("project not found") from None
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "project" in (exc.details() or ""):
            if not (await gw.access.project(principal, project_id)).read:
                raise NotFound("project not found") from None
        raise


def entry_headers(entry: EntryOut | tpb.TimeEntry) -> dict[str, str]:
    """An entry's version as its ETag, and where it lives."""
    return {"ETag": etag(entry.version), "Location": f"/v1/time-entries/{entry.entry_id}"}


def entry_response(entry: tpb.TimeEntry, status: int = 200) -> Response:
    return Response(
        EntryOut.from_pb(entry).model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers=entry_headers(entry),
    )


@router.get("", response_model=TimerState, responses=COMMON, summary="The running timer, if any")
async def get_timer(gw: GatewayDep, principal: CurrentPrincipal) -> TimerState:
    resp = await gw.clients.read(
        gw.clients.tracking.GetRunningTimer, tpb.GetRunningTimerRequest(user_id=principal.user_id)
    )
    if not resp.HasField("entry"):
        return TimerState(running=False)
    return TimerState(running=True, entry=EntryOut.from_pb(resp.entry))


@router.post(
    "/start",
    status_code=201,
    response_model=EntryOut,
    responses={**COMMON, **problems(404, 409)},
    summary="Start a timer now (409 timer_already_running names the running entry)",
)
async def start_timer(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: TimerStart
) -> Response:
    async def work() -> EntryOut:
        req = tpb.StartTimerRequest(
            actor_user_id=principal.user_id,
            user_id=principal.user_id,
            project_id=str(body.project_id),
            task_id=str(body.task_id) if body.task_id else "",
            description=body.description,
            tags=body.tags,
        )
        async with booking(gw, principal, str(body.project_id)):
            return EntryOut.from_pb(await gw.clients.write(gw.clients.tracking.StartTimer, req))

    return await idem.run(
        body,
        work,
        status_code=201,
        headers=entry_headers,
    )


@router.post(
    "/stop",
    response_model=TimerStopped,
    responses={**COMMON, **problems(409)},
    summary="Stop the running timer (under 60 s it is discarded; 409 no_timer_running when none runs)",
)
async def stop_timer(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: TimerStop | None = None
) -> Response:
    body = body or TimerStop()

    async def work() -> TimerStopped:
        resp = await gw.clients.write(
            gw.clients.tracking.StopTimer,
            tpb.StopTimerRequest(
                actor_user_id=principal.user_id,
                user_id=principal.user_id,
                entry_id=str(body.entry_id) if body.entry_id else "",
            ),
        )
        return TimerStopped(entry=EntryOut.from_pb(resp.entry), discarded=resp.discarded, capped=resp.capped)

    return await idem.run(body, work)
