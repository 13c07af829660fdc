"""Users: ADMINs create and manage them; everyone sees their own."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.errors import PermissionDenied

from ..access import may_see_user, visible_or_404
from ..auth import CurrentPrincipal, Principal
from ..etags import IfMatch, check_current, etag, expected_version
from ..idempotency import IdempotencyHandle
from ..schemas.common import Cursor, Limit, Page
from ..schemas.directory import ROLES, RoleName, UserCreate, UserOut, UserUpdate
from ..state import GatewayDep
from . import COMMON, problems

router = APIRouter(prefix="/v1/users", tags=["users"])


def require_admin(principal: Principal, what: str = "this") -> None:
    if not principal.is_admin:
        raise PermissionDenied(f"only admins may do {what}", error_code="admin_only")


@router.post(
    "",
    status_code=201,
    response_model=UserOut,
    responses={**COMMON, **problems(403, 409)},
    summary="Create a user (ADMIN)",
)
async def create_user(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: UserCreate
) -> Response:
    require_admin(principal, "user management")

    async def work() -> UserOut:
        req = ppb.CreateUserRequest(
            name=body.name,
            email=body.email,
            role=ROLES[body.role],
            default_hourly_rate=body.default_hourly_rate or "",
            timezone=body.timezone,
            password=body.password or "",
        )
        return UserOut.from_pb(await gw.clients.write(gw.clients.projects.CreateUser, req))

    return await idem.run(body, work, status_code=201)


@router.get(
    "", response_model=Page[UserOut], responses={**COMMON, **problems(403)}, summary="List users (ADMIN)"
)
async def list_users(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    role: Annotated[RoleName | None, Query()] = None,
    active: Annotated[bool | None, Query()] = None,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[UserOut]:
    require_admin(principal, "user management")
    req = ppb.ListUsersRequest(page_size=limit, page_token=cursor)
    if role is not None:
        req.role = ROLES[role]
    if active is not None:
        req.active = active
    resp = await gw.clients.read(gw.clients.projects.ListUsers, req)
    return Page[UserOut](
        data=[UserOut.from_pb(u) for u in resp.users], next_cursor=resp.next_page_token or None
    )


async def _visible_user(gw: GatewayDep, principal: Principal, user_id: uuid.UUID) -> ppb.User:
    visible_or_404(may_see_user(principal, str(user_id)), "user")
    return await gw.clients.read(gw.clients.projects.GetUser, ppb.GetUserRequest(user_id=str(user_id)))


@router.get("/{user_id}", response_model=UserOut, responses={**COMMON, **problems(404)})
async def get_user(gw: GatewayDep, principal: CurrentPrincipal, user_id: uuid.UUID) -> Response:
    user = await _visible_user(gw, principal, user_id)
    out = UserOut.from_pb(user)
    return Response(
        out.model_dump_json(), media_type="application/json", headers={"ETag": etag(user.version)}
    )


@router.patch(
    "/{user_id}",
    response_model=UserOut,
    responses={**COMMON, **problems(403, 404, 409, 412)},
    summary="Change a user (ADMIN); If-Match optional",
)
async def update_user(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    user_id: uuid.UUID,
    body: UserUpdate,
    if_match: IfMatch = None,
) -> Response:
    expected = expected_version(if_match, required=False)
    current = await _visible_user(gw, principal, user_id)
    require_admin(principal, "user management")
    check_current(expected, current.version)
    req = ppb.UpdateUserRequest(user_id=str(user_id), expected_version=expected or current.version)
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is None and field != "default_hourly_rate":
            continue
        if field == "role":
            req.role = ROLES[value]
        elif field == "default_hourly_rate":
            req.default_hourly_rate = value or ""
        else:
            setattr(req, field, value)
    user = await gw.clients.write(gw.clients.projects.UpdateUser, req)
    out = UserOut.from_pb(user)
    return Response(
        out.model_dump_json(), media_type="application/json", headers={"ETag": etag(user.version)}
    )
