"""Clients (the customers invoices go to): ADMIN only; to anyone else they do not exist."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from timetracking.projects.v1 import projects_pb2 as ppb

from ..access import visible_or_404
from ..auth import CurrentPrincipal
from ..etags import IfMatch, check_current, etag, expected_version
from ..idempotency import IdempotencyHandle
from ..schemas.common import Cursor, Limit, Page
from ..schemas.directory import ClientCreate, ClientOut, ClientUpdate
from ..state import GatewayDep
from . import COMMON, problems
from .users import require_admin

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def _json(out: ClientOut, status: int = 200) -> Response:
    return Response(
        out.model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={"ETag": etag(out.version)},
    )


@router.post("", status_code=201, response_model=ClientOut, responses={**COMMON, **problems(403, 409)})
async def create_client(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: ClientCreate
) -> Response:
    require_admin(principal, "client management")

    async def work() -> ClientOut:
        req = ppb.CreateClientRequest(
            name=body.name,
            currency=body.currency,
            billing_address=body.billing_address,
            tax_rate=body.tax_rate,
            payment_terms_days=body.payment_terms_days,
        )
        return ClientOut.from_pb(await gw.clients.write(gw.clients.projects.CreateClient, req))

    return await idem.run(body, work, status_code=201)


@router.get("", response_model=Page[ClientOut], responses={**COMMON, **problems(403)})
async def list_clients(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    archived: Annotated[bool | None, Query()] = None,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[ClientOut]:
    require_admin(principal, "client management")
    req = ppb.ListClientsRequest(page_size=limit, page_token=cursor)
    if archived is not None:
        req.archived = archived
    resp = await gw.clients.read(gw.clients.projects.ListClients, req)
    return Page[ClientOut](
        data=[ClientOut.from_pb(c) for c in resp.clients], next_cursor=resp.next_page_token or None
    )


@router.get("/{client_id}", response_model=ClientOut, responses={**COMMON, **problems(404)})
async def get_client(gw: GatewayDep, principal: CurrentPrincipal, client_id: uuid.UUID) -> Response:
    visible_or_404(principal.is_admin, "client")
    client = await gw.clients.read(
        gw.clients.projects.GetClient, ppb.GetClientRequest(client_id=str(client_id))
    )
    return _json(ClientOut.from_pb(client))


@router.patch("/{client_id}", response_model=ClientOut, responses={**COMMON, **problems(404, 409, 412)})
async def update_client(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    client_id: uuid.UUID,
    body: ClientUpdate,
    if_match: IfMatch = None,
) -> Response:
    visible_or_404(principal.is_admin, "client")
    expected = expected_version(if_match, required=False)
    current = await gw.clients.read(
        gw.clients.projects.GetClient, ppb.GetClientRequest(client_id=str(client_id))
    )
    check_current(expected, current.version)
    req = ppb.UpdateClientRequest(client_id=str(client_id), expected_version=expected or current.version)
    for field, value in body.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(req, field, value)
    client = await gw.clients.write(gw.clients.projects.UpdateClient, req)
    return _json(ClientOut.from_pb(client))
