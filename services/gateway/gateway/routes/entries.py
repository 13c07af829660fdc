"""Time entries: CRUD with filters and cursor pagination, ETag/If-Match, and the audit trail.

Entries are always the caller's own when created (user, rate, billable flag and
invoice are never settable). Visible: your own; a project MANAGER's project's
entries; an ADMIN's all. Anything else is 404.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import grpc
from fastapi import APIRouter, Query
from fastapi.responses import Response

from timetracking.common.v1 import types_pb2
from timetracking.tracking.v1 import tracking_pb2 as tpb
from tt_common.errors import InvalidArgument, NotFound

from ..access import may_see_entry, visible_or_404
from ..auth import CurrentPrincipal, Principal
from ..etags import IfMatch, check_current, expected_version
from ..idempotency import IdempotencyHandle
from ..schemas.common import EARLIEST, LATEST, Cursor, Limit, Page, Tag, Timestamp_, ts
from ..schemas.entries import AuditRecordOut, EntryCreate, EntryOut, EntryUpdate
from ..state import Gateway, GatewayDep
from . import COMMON, problems
from .timer import booking, entry_headers, entry_response

router = APIRouter(prefix="/v1/time-entries", tags=["time entries"])


async def visible_entry(gw: Gateway, principal: Principal, entry_id: uuid.UUID) -> tpb.TimeEntry:
    entry = await gw.clients.read(gw.clients.tracking.GetEntry, tpb.GetEntryRequest(entry_id=str(entry_id)))
    await _check_visible(gw, principal, entry.user_id, entry.project_id)
    return entry


async def _check_visible(gw: Gateway, principal: Principal, user_id: str, project_id: str) -> None:
    if principal.is_admin or user_id == principal.user_id:
        return
    rights = await gw.access.project(principal, project_id)
    visible_or_404(may_see_entry(principal, user_id, rights), "entry")


@router.get("", response_model=Page[EntryOut], responses={**COMMON, **problems(404)})
async def list_entries(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    project_id: Annotated[uuid.UUID | None, Query()] = None,
    user_id: Annotated[
        uuid.UUID | None, Query(description="others' entries: ADMIN, or a MANAGER with project_id")
    ] = None,
    task_id: Annotated[uuid.UUID | None, Query()] = None,
    start_from: Annotated[Timestamp_ | None, Query(description="entries starting at or after")] = None,
    start_before: Annotated[Timestamp_ | None, Query(description="entries starting before")] = None,
    billable: Annotated[bool | None, Query()] = None,
    invoiced: Annotated[bool | None, Query()] = None,
    running: Annotated[bool | None, Query()] = None,
    tag: Annotated[list[Tag] | None, Query(max_length=20, description="entries carrying every tag")] = None,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[EntryOut]:
    """Newest first. Without filters: the caller's own entries."""
    wanted_user = str(user_id) if user_id else None
    if not principal.is_admin:
        manages = False
        if project_id is not None:
            rights = await gw.access.project(principal, str(project_id))
            visible_or_404(rights.read, "project")
            manages = rights.manage
        if not manages:
            visible_or_404(wanted_user in (None, principal.user_id), "user")
            wanted_user = principal.user_id
    req = tpb.ListEntriesRequest(
        page_size=limit,
        page_token=cursor,
        user_id=wanted_user or "",
        project_id=str(project_id) if project_id else "",
        task_id=str(task_id) if task_id else "",
        tags=tag or [],
    )
    if start_from or start_before:
        period = types_pb2.Period()
        period.start.CopyFrom(ts(start_from or EARLIEST))
        period.end.CopyFrom(ts(start_before or LATEST))
        req.period.CopyFrom(period)
    for name, value in (("billable", billable), ("invoiced", invoiced), ("running", running)):
        if value is not None:
            setattr(req, name, value)
    resp = await gw.clients.read(gw.clients.tracking.ListEntries, req)
    return Page[EntryOut](
        data=[EntryOut.from_pb(e) for e in resp.entries], next_cursor=resp.next_page_token or None
    )


@router.post("", status_code=201, response_model=EntryOut, responses={**COMMON, **problems(404, 409)})
async def create_entry(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: EntryCreate
) -> Response:
    """A finished entry for the caller (end > start, at most 24 h, no overlap with your other entries)."""

    async def work() -> EntryOut:
        req = tpb.CreateManualEntryRequest(
            actor_user_id=principal.user_id,
            user_id=principal.user_id,
            project_id=str(body.project_id),
            task_id=str(body.task_id) if body.task_id else "",
            description=body.description,
            start_time=ts(body.start_time),
            end_time=ts(body.end_time),
            tags=body.tags,
        )
        async with booking(gw, principal, str(body.project_id)):
            return EntryOut.from_pb(await gw.clients.write(gw.clients.tracking.CreateManualEntry, req))

    return await idem.run(
        body,
        work,
        status_code=201,
        headers=entry_headers,
    )


@router.get("/{entry_id}", response_model=EntryOut, responses={**COMMON, **problems(404)})
async def get_entry(gw: GatewayDep, principal: CurrentPrincipal, entry_id: uuid.UUID) -> Response:
    return entry_response(await visible_entry(gw, principal, entry_id))


@router.patch(
    "/{entry_id}",
    response_model=EntryOut,
    responses={**COMMON, **problems(404, 409, 412, 428)},
    summary="Change an entry (If-Match required)",
)
async def update_entry(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    entry_id: uuid.UUID,
    body: EntryUpdate,
    if_match: IfMatch = None,
) -> Response:
    expected = expected_version(if_match, required=True)
    entry = await visible_entry(gw, principal, entry_id)
    check_current(expected, entry.version)
    sent = body.model_fields_set
    req = tpb.UpdateEntryRequest(
        actor_user_id=principal.user_id, entry_id=str(entry_id), expected_version=expected
    )
    target_project = entry.project_id
    if "project_id" in sent:
        if body.project_id is None:
            raise InvalidArgument.field("project_id", "an entry needs a project")
        target_project = str(body.project_id)
        if entry.user_id != principal.user_id and not principal.is_admin:
            # A manager moves someone's entry only into another project they manage.
            rights = await gw.access.project(principal, target_project)
            visible_or_404(rights.manage, "project")
        req.project_id = target_project
    if "task_id" in sent:
        req.task_id = str(body.task_id) if body.task_id else ""
    if "description" in sent:
        req.description = body.description or ""
    if body.start_time is not None:
        req.start_time.CopyFrom(ts(body.start_time))
    if body.end_time is not None:
        req.end_time.CopyFrom(ts(body.end_time))
    if body.tags is not None:
        req.tags.CopyFrom(tpb.TagList(tags=body.tags))
    async with booking(gw, principal, target_project):
        updated = await gw.clients.write(gw.clients.tracking.UpdateEntry, req)
    return entry_response(updated)


@router.delete(
    "/{entry_id}",
    status_code=204,
    response_class=Response,
    responses={**COMMON, **problems(404, 409, 412)},
    summary="Delete an entry (If-Match optional)",
)
async def delete_entry(
    gw: GatewayDep, principal: CurrentPrincipal, entry_id: uuid.UUID, if_match: IfMatch = None
) -> Response:
    expected = expected_version(if_match, required=False)
    entry = await visible_entry(gw, principal, entry_id)
    check_current(expected, entry.version)
    await gw.clients.write(
        gw.clients.tracking.DeleteEntry,
        tpb.DeleteEntryRequest(
            actor_user_id=principal.user_id,
            entry_id=str(entry_id),
            expected_version=expected or entry.version,
        ),
    )
    return Response(status_code=204)


@router.get(
    "/{entry_id}/audit",
    response_model=Page[AuditRecordOut],
    responses={**COMMON, **problems(404)},
    summary="Who changed the entry, when, before and after (oldest first; deleted entries too)",
)
async def entry_audit(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    entry_id: uuid.UUID,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[AuditRecordOut]:
    try:
        await visible_entry(gw, principal, entry_id)
        known = True
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        known = False
    resp = await gw.clients.read(
        gw.clients.tracking.ListEntryAudit,
        tpb.ListEntryAuditRequest(entry_id=str(entry_id), page_size=limit, page_token=cursor),
    )
    if not known:
        # A deleted entry: whose it was is in its first audit snapshot.
        first = await gw.clients.read(
            gw.clients.tracking.ListEntryAudit, tpb.ListEntryAuditRequest(entry_id=str(entry_id), page_size=1)
        )
        if not first.records:
            raise NotFound("entry not found")
        snap = json.loads(first.records[0].after_json or first.records[0].before_json or "{}")
        await _check_visible(gw, principal, str(snap.get("user_id", "")), str(snap.get("project_id", "")))
    return Page[AuditRecordOut](
        data=[AuditRecordOut.from_pb(r) for r in resp.records], next_cursor=resp.next_page_token or None
    )
