"""Projects with their tasks, members and project-user rates.

Read: members of the project and ADMINs. Manage (change the project, its tasks,
members and rates): the project's MANAGERs and ADMINs. Creating a project: ADMIN.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.errors import NotFound

from ..access import Purpose
from ..auth import CurrentPrincipal, Principal
from ..etags import IfMatch, check_current, etag, expected_version
from ..idempotency import IdempotencyHandle
from ..schemas.common import Cursor, Limit, Page
from ..schemas.directory import (
    BILLING,
    PROJECT_ROLES,
    STATUSES,
    MemberCreate,
    MemberOut,
    MemberUpdate,
    ProjectCreate,
    ProjectOut,
    ProjectStatus,
    ProjectUpdate,
    RateOut,
    RateSet,
    TaskCreate,
    TaskOut,
    TaskUpdate,
)
from ..state import Gateway, GatewayDep
from . import COMMON, problems
from .users import require_admin

router = APIRouter(prefix="/v1", tags=["projects"])

READ_ERRORS = {**COMMON, **problems(404)}
WRITE_ERRORS = {**COMMON, **problems(403, 404, 409, 412)}


def _json(body: str, version: int, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers={"ETag": etag(version)})


# --- projects ------------------------------------------------------------------------------
@router.post(
    "/projects", status_code=201, response_model=ProjectOut, responses={**COMMON, **problems(403, 409)}
)
async def create_project(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: ProjectCreate
) -> Response:
    require_admin(principal, "project creation")

    async def work() -> ProjectOut:
        req = ppb.CreateProjectRequest(
            client_id=str(body.client_id),
            name=body.name,
            billing_type=BILLING[body.billing_type],
            budget_hours=body.budget_hours or "",
            budget_amount=body.budget_amount or "",
            currency=body.currency or "",
            default_hourly_rate=body.default_hourly_rate or "",
        )
        return ProjectOut.from_pb(await gw.clients.write(gw.clients.projects.CreateProject, req))

    return await idem.run(body, work, status_code=201)


@router.get("/projects", response_model=Page[ProjectOut], responses=COMMON)
async def list_projects(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    client_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[list[ProjectStatus] | None, Query(max_length=3)] = None,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[ProjectOut]:
    """An ADMIN sees every project; anyone else the projects they are a member of."""
    req = ppb.ListProjectsRequest(
        page_size=limit,
        page_token=cursor,
        client_id=str(client_id) if client_id else "",
        statuses=[STATUSES[s] for s in status or []],
        member_user_id="" if principal.is_admin else principal.user_id,
    )
    resp = await gw.clients.read(gw.clients.projects.ListProjects, req)
    return Page[ProjectOut](
        data=[ProjectOut.from_pb(p) for p in resp.projects], next_cursor=resp.next_page_token or None
    )


async def _project(gw: Gateway, principal: Principal, project_id: uuid.UUID, need: Purpose) -> ppb.Project:
    await gw.access.require_project(principal, str(project_id), need)
    return await gw.clients.read(
        gw.clients.projects.GetProject, ppb.GetProjectRequest(project_id=str(project_id))
    )


@router.get("/projects/{project_id}", response_model=ProjectOut, responses=READ_ERRORS)
async def get_project(gw: GatewayDep, principal: CurrentPrincipal, project_id: uuid.UUID) -> Response:
    project = await _project(gw, principal, project_id, Purpose.READ)
    return _json(ProjectOut.from_pb(project).model_dump_json(), project.version)


@router.patch("/projects/{project_id}", response_model=ProjectOut, responses=WRITE_ERRORS)
async def update_project(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    project_id: uuid.UUID,
    body: ProjectUpdate,
    if_match: IfMatch = None,
) -> Response:
    expected = expected_version(if_match, required=False)
    current = await _project(gw, principal, project_id, Purpose.MANAGE)
    check_current(expected, current.version)
    req = ppb.UpdateProjectRequest(project_id=str(project_id), expected_version=expected or current.version)
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            continue
        if field == "status":
            req.status = STATUSES[value]
        elif field == "billing_type":
            req.billing_type = BILLING[value]
        else:
            setattr(req, field, value)
    project = await gw.clients.write(gw.clients.projects.UpdateProject, req)
    gw.access.forget(str(project_id))
    return _json(ProjectOut.from_pb(project).model_dump_json(), project.version)


# --- tasks ---------------------------------------------------------------------------------
@router.get(
    "/projects/{project_id}/tasks", response_model=Page[TaskOut], responses=READ_ERRORS, tags=["tasks"]
)
async def list_tasks(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    project_id: uuid.UUID,
    archived: Annotated[bool | None, Query()] = None,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[TaskOut]:
    await gw.access.require_project(principal, str(project_id), Purpose.READ)
    req = ppb.ListTasksRequest(project_id=str(project_id), page_size=limit, page_token=cursor)
    if archived is not None:
        req.archived = archived
    resp = await gw.clients.read(gw.clients.projects.ListTasks, req)
    return Page[TaskOut](
        data=[TaskOut.from_pb(t) for t in resp.tasks], next_cursor=resp.next_page_token or None
    )


@router.post(
    "/projects/{project_id}/tasks",
    status_code=201,
    response_model=TaskOut,
    responses=WRITE_ERRORS,
    tags=["tasks"],
)
async def create_task(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    idem: IdempotencyHandle,
    project_id: uuid.UUID,
    body: TaskCreate,
) -> Response:
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)

    async def work() -> TaskOut:
        req = ppb.CreateTaskRequest(
            project_id=str(project_id), name=body.name, estimated_hours=body.estimated_hours or ""
        )
        if body.is_billable is not None:
            req.is_billable = body.is_billable
        return TaskOut.from_pb(await gw.clients.write(gw.clients.projects.CreateTask, req))

    return await idem.run(body, work, status_code=201)


async def _task(gw: Gateway, principal: Principal, task_id: uuid.UUID, need: Purpose) -> ppb.Task:
    task = await gw.clients.read(gw.clients.projects.GetTask, ppb.GetTaskRequest(task_id=str(task_id)))
    try:
        await gw.access.require_project(principal, task.project_id, need)
    except NotFound:
        raise NotFound("task not found") from None
    return task


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=READ_ERRORS, tags=["tasks"])
async def get_task(gw: GatewayDep, principal: CurrentPrincipal, task_id: uuid.UUID) -> Response:
    task = await _task(gw, principal, task_id, Purpose.READ)
    return _json(TaskOut.from_pb(task).model_dump_json(), task.version)


@router.patch("/tasks/{task_id}", response_model=TaskOut, responses=WRITE_ERRORS, tags=["tasks"])
async def update_task(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    task_id: uuid.UUID,
    body: TaskUpdate,
    if_match: IfMatch = None,
) -> Response:
    expected = expected_version(if_match, required=False)
    current = await _task(gw, principal, task_id, Purpose.MANAGE)
    check_current(expected, current.version)
    req = ppb.UpdateTaskRequest(
        task_id=str(task_id),
        expected_version=expected or current.version,
        clear_is_billable=body.clear_is_billable,
    )
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is not None and field != "clear_is_billable":
            setattr(req, field, value)
    task = await gw.clients.write(gw.clients.projects.UpdateTask, req)
    return _json(TaskOut.from_pb(task).model_dump_json(), task.version)


# --- members -------------------------------------------------------------------------------
@router.get(
    "/projects/{project_id}/members", response_model=Page[MemberOut], responses=READ_ERRORS, tags=["members"]
)
async def list_members(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    project_id: uuid.UUID,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[MemberOut]:
    await gw.access.require_project(principal, str(project_id), Purpose.READ)
    resp = await gw.clients.read(
        gw.clients.projects.ListProjectMembers,
        ppb.ListProjectMembersRequest(project_id=str(project_id), page_size=limit, page_token=cursor),
    )
    return Page[MemberOut](
        data=[MemberOut.from_pb(m) for m in resp.members], next_cursor=resp.next_page_token or None
    )


@router.post(
    "/projects/{project_id}/members",
    status_code=201,
    response_model=MemberOut,
    responses=WRITE_ERRORS,
    tags=["members"],
)
async def add_member(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    idem: IdempotencyHandle,
    project_id: uuid.UUID,
    body: MemberCreate,
) -> Response:
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)

    async def work() -> MemberOut:
        req = ppb.AddProjectMemberRequest(
            project_id=str(project_id),
            user_id=str(body.user_id),
            project_role=PROJECT_ROLES[body.project_role],
        )
        member = await gw.clients.write(gw.clients.projects.AddProjectMember, req)
        gw.access.forget(str(project_id))
        return MemberOut.from_pb(member)

    return await idem.run(body, work, status_code=201)


@router.patch(
    "/projects/{project_id}/members/{user_id}",
    response_model=MemberOut,
    responses=WRITE_ERRORS,
    tags=["members"],
)
async def update_member(
    gw: GatewayDep, principal: CurrentPrincipal, project_id: uuid.UUID, user_id: uuid.UUID, body: MemberUpdate
) -> MemberOut:
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)
    member = await gw.clients.write(
        gw.clients.projects.UpdateProjectMember,
        ppb.UpdateProjectMemberRequest(
            project_id=str(project_id), user_id=str(user_id), project_role=PROJECT_ROLES[body.project_role]
        ),
    )
    gw.access.forget(str(project_id))
    return MemberOut.from_pb(member)


@router.delete(
    "/projects/{project_id}/members/{user_id}",
    status_code=204,
    response_class=Response,
    responses=WRITE_ERRORS,
    tags=["members"],
)
async def remove_member(
    gw: GatewayDep, principal: CurrentPrincipal, project_id: uuid.UUID, user_id: uuid.UUID
) -> Response:
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)
    await gw.clients.write(
        gw.clients.projects.RemoveProjectMember,
        ppb.RemoveProjectMemberRequest(project_id=str(project_id), user_id=str(user_id)),
    )
    gw.access.forget(str(project_id))
    return Response(status_code=204)


# --- rates ---------------------------------------------------------------------------------
@router.get(
    "/projects/{project_id}/rates", response_model=list[RateOut], responses=WRITE_ERRORS, tags=["rates"]
)
async def list_rates(gw: GatewayDep, principal: CurrentPrincipal, project_id: uuid.UUID) -> list[RateOut]:
    """Project-specific hourly rates: visible to the project's managers and admins."""
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)
    resp = await gw.clients.read(
        gw.clients.projects.ListProjectUserRates, ppb.ListProjectUserRatesRequest(project_id=str(project_id))
    )
    return [RateOut.from_pb(r) for r in resp.rates]


@router.put(
    "/projects/{project_id}/rates/{user_id}", response_model=RateOut, responses=WRITE_ERRORS, tags=["rates"]
)
async def set_rate(
    gw: GatewayDep, principal: CurrentPrincipal, project_id: uuid.UUID, user_id: uuid.UUID, body: RateSet
) -> RateOut:
    """Set (or replace) a member's hourly rate on this project; PUT is idempotent by nature."""
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)
    rate = await gw.clients.write(
        gw.clients.projects.SetProjectUserRate,
        ppb.SetProjectUserRateRequest(
            project_id=str(project_id), user_id=str(user_id), hourly_rate=body.hourly_rate
        ),
    )
    return RateOut.from_pb(rate)


@router.delete(
    "/projects/{project_id}/rates/{user_id}",
    status_code=204,
    response_class=Response,
    responses=WRITE_ERRORS,
    tags=["rates"],
)
async def delete_rate(
    gw: GatewayDep, principal: CurrentPrincipal, project_id: uuid.UUID, user_id: uuid.UUID
) -> Response:
    await gw.access.require_project(principal, str(project_id), Purpose.MANAGE)
    await gw.clients.write(
        gw.clients.projects.DeleteProjectUserRate,
        ppb.DeleteProjectUserRateRequest(project_id=str(project_id), user_id=str(user_id)),
    )
    return Response(status_code=204)
