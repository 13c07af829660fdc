"""Login, refresh and logout; the caller's own user and personal API tokens."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from timetracking.projects.v1 import projects_pb2 as ppb

from ..auth import CurrentPrincipal
from ..schemas.auth import (
    ApiTokenCreated,
    ApiTokenIn,
    ApiTokenOut,
    PasswordGrant,
    RevokeIn,
    TokenOut,
    TokenRequest,
)
from ..schemas.common import Cursor, Limit, Page
from ..schemas.directory import UserOut
from ..state import GatewayDep
from . import COMMON, problems

router = APIRouter(prefix="/v1", tags=["auth"])


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses=problems(400, 401, 413, 422, 429, 503, 504),
    summary="Log in (password) or refresh (refresh_token)",
)
async def issue_token(gw: GatewayDep, request: Request, body: Annotated[TokenRequest, Body()]) -> TokenOut:
    """Log in with `grant_type: password`, or refresh with `grant_type: refresh_token`.

    Refresh tokens are single use: the response carries the next one. Presenting a
    used refresh token again revokes every token of that login.
    """
    await gw.limiter.take(gw.quotas.login, f"ip:{_client_ip(request)}")
    if isinstance(body, PasswordGrant):
        issued = await gw.auth.login(body.email, body.password)
    else:
        issued = await gw.auth.refresh_tokens(body.refresh_token)
    return TokenOut(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        refresh_expires_in=issued.refresh_expires_in,
    )


@router.post(
    "/auth/revoke",
    status_code=204,
    response_class=Response,
    responses=problems(400, 413, 422, 429, 503),
    summary="Log out: revoke a refresh token and every token rotated from it",
)
async def revoke_token(gw: GatewayDep, request: Request, body: RevokeIn) -> Response:
    await gw.limiter.take(gw.quotas.login, f"ip:{_client_ip(request)}")
    await gw.auth.refresh.revoke(body.refresh_token)
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, responses=COMMON, summary="The caller's own user")
async def me(gw: GatewayDep, principal: CurrentPrincipal) -> UserOut:
    user = await gw.clients.read(gw.clients.projects.GetUser, ppb.GetUserRequest(user_id=principal.user_id))
    return UserOut.from_pb(user)


@router.get("/me/api-tokens", response_model=Page[ApiTokenOut], responses=COMMON)
async def list_api_tokens(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[ApiTokenOut]:
    resp = await gw.clients.read(
        gw.clients.projects.ListApiTokens,
        ppb.ListApiTokensRequest(user_id=principal.user_id, page_size=limit, page_token=cursor),
    )
    return Page[ApiTokenOut](
        data=[ApiTokenOut.from_pb(t) for t in resp.tokens], next_cursor=resp.next_page_token or None
    )


@router.post(
    "/me/api-tokens",
    status_code=201,
    response_model=ApiTokenCreated,
    responses={**COMMON, **problems(409)},
    summary="Create a personal API token (the secret is shown once)",
)
async def create_api_token(gw: GatewayDep, principal: CurrentPrincipal, body: ApiTokenIn) -> ApiTokenCreated:
    """Not idempotent on purpose: replaying would mean keeping the secret, which is never stored."""
    resp = await gw.clients.write(
        gw.clients.projects.CreateApiToken,
        ppb.CreateApiTokenRequest(user_id=principal.user_id, name=body.name),
    )
    return ApiTokenCreated(**ApiTokenOut.from_pb(resp.token).model_dump(), secret=resp.secret)


@router.delete(
    "/me/api-tokens/{token_id}",
    status_code=204,
    response_class=Response,
    responses={**COMMON, **problems(404)},
)
async def revoke_api_token(gw: GatewayDep, principal: CurrentPrincipal, token_id: uuid.UUID) -> Response:
    await gw.clients.write(
        gw.clients.projects.RevokeApiToken,
        ppb.RevokeApiTokenRequest(user_id=principal.user_id, token_id=str(token_id)),
    )
    gw.auth.forget_api_tokens()
    return Response(status_code=204)
