"""Invoices: generate, list, read, send, mark paid, void, and download the PDF.

Invoices belong to the project's MANAGERs and to ADMINs; to everyone else they do
not exist (404).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse, Response

from timetracking.common.v1 import types_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as ipb
from tt_common.errors import InvalidArgument, NotFound

from ..access import may_see_invoice, visible_or_404
from ..auth import CurrentPrincipal, Principal, heavy_quota
from ..etags import IfMatch, check_current, etag, expected_version
from ..idempotency import IdempotencyHandle
from ..schemas.common import Cursor, Limit, Page, ts
from ..schemas.invoices import STATUSES, InvoiceCreate, InvoiceOut, InvoiceStatus, MarkPaid
from ..state import Gateway, GatewayDep
from . import COMMON, problems

router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


def invoice_response(invoice: ipb.Invoice, status: int = 200) -> Response:
    return Response(
        InvoiceOut.from_pb(invoice).model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers={"ETag": etag(invoice.version)},
    )


async def visible_invoice(gw: Gateway, principal: Principal, invoice_id: uuid.UUID) -> ipb.Invoice:
    invoice = await gw.clients.read(
        gw.clients.invoicing.GetInvoice, ipb.GetInvoiceRequest(invoice_id=str(invoice_id))
    )
    if not principal.is_admin:
        rights = await gw.access.project(principal, invoice.project_id)
        visible_or_404(may_see_invoice(principal, rights), "invoice")
    return invoice


@router.post(
    "",
    status_code=201,
    response_model=InvoiceOut,
    responses={**COMMON, **problems(403, 404, 409)},
    summary="Generate a DRAFT invoice from the project's uninvoiced billable entries in the period",
)
async def generate_invoice(
    gw: GatewayDep, principal: CurrentPrincipal, idem: IdempotencyHandle, body: InvoiceCreate
) -> Response:
    rights = await gw.access.project(principal, str(body.project_id))
    visible_or_404(principal.is_admin or rights.manage, "project")

    # Invoicing is idempotent per key on its own: our key (scoped to the caller) goes along,
    # so even a retry that outlives the gateway's replay store never bills twice.
    key = (
        hashlib.sha256(f"{principal.user_id}:{idem.key}".encode()).hexdigest()
        if idem.key
        else uuid.uuid4().hex
    )

    async def work() -> InvoiceOut:
        period = types_pb2.Period(start=ts(body.period_start), end=ts(body.period_end))
        invoice = await gw.clients.write(
            gw.clients.invoicing.GenerateInvoice,
            ipb.GenerateInvoiceRequest(
                actor_user_id=principal.user_id,
                project_id=str(body.project_id),
                period=period,
                idempotency_key=key,
            ),
            deadline_s=gw.settings.invoice_deadline_s,
        )
        return InvoiceOut.from_pb(invoice)

    return await idem.run(
        body,
        work,
        status_code=201,
        headers=lambda i: {"ETag": etag(i.version), "Location": f"/v1/invoices/{i.invoice_id}"},
    )


@router.get("", response_model=Page[InvoiceOut], responses={**COMMON, **problems(404)})
async def list_invoices(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    project_id: Annotated[uuid.UUID | None, Query(description="required unless you are an ADMIN")] = None,
    client_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[list[InvoiceStatus] | None, Query(max_length=5)] = None,
    limit: Annotated[Limit, Query()] = 50,
    cursor: Annotated[Cursor, Query()] = "",
) -> Page[InvoiceOut]:
    if not principal.is_admin:
        if project_id is None:
            raise InvalidArgument.field("project_id", "required unless you are an admin")
        rights = await gw.access.project(principal, str(project_id))
        visible_or_404(rights.manage, "project")
    resp = await gw.clients.read(
        gw.clients.invoicing.ListInvoices,
        ipb.ListInvoicesRequest(
            page_size=limit,
            page_token=cursor,
            project_id=str(project_id) if project_id else "",
            client_id=str(client_id) if client_id else "",
            statuses=[STATUSES[s] for s in status or []],
        ),
    )
    return Page[InvoiceOut](
        data=[InvoiceOut.from_pb(i) for i in resp.invoices], next_cursor=resp.next_page_token or None
    )


@router.get("/{invoice_id}", response_model=InvoiceOut, responses={**COMMON, **problems(404)})
async def get_invoice(gw: GatewayDep, principal: CurrentPrincipal, invoice_id: uuid.UUID) -> Response:
    return invoice_response(await visible_invoice(gw, principal, invoice_id))


async def _transition(
    gw: Gateway,
    principal: Principal,
    idem: IdempotencyHandle,
    invoice_id: uuid.UUID,
    if_match: str | None,
    method: str,
    body: MarkPaid | None = None,
) -> Response:
    expected = expected_version(if_match, required=False)
    current = await visible_invoice(gw, principal, invoice_id)
    check_current(expected, current.version)

    async def work() -> InvoiceOut:
        if body is not None:
            req: ipb.MarkInvoicePaidRequest | ipb.TransitionRequest = ipb.MarkInvoicePaidRequest(
                actor_user_id=principal.user_id,
                invoice_id=str(invoice_id),
                expected_version=expected,
                paid_on=body.paid_on.isoformat(),
                payment_reference=body.payment_reference,
            )
        else:
            req = ipb.TransitionRequest(
                actor_user_id=principal.user_id, invoice_id=str(invoice_id), expected_version=expected
            )
        call = getattr(gw.clients.invoicing, method)
        return InvoiceOut.from_pb(
            await gw.clients.write(call, req, deadline_s=gw.settings.invoice_deadline_s)
        )

    return await idem.run(body, work, headers=lambda i: {"ETag": etag(i.version)})


TRANSITION_ERRORS = {**COMMON, **problems(404, 409, 412)}


@router.post(
    "/{invoice_id}/send",
    response_model=InvoiceOut,
    responses=TRANSITION_ERRORS,
    summary="DRAFT -> SENT: number assigned, PDF rendered",
)
async def send_invoice(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    idem: IdempotencyHandle,
    invoice_id: uuid.UUID,
    if_match: IfMatch = None,
) -> Response:
    return await _transition(gw, principal, idem, invoice_id, if_match, "SendInvoice")


@router.post(
    "/{invoice_id}/mark-paid",
    response_model=InvoiceOut,
    responses=TRANSITION_ERRORS,
    summary="SENT/OVERDUE -> PAID",
)
async def mark_invoice_paid(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    idem: IdempotencyHandle,
    invoice_id: uuid.UUID,
    body: MarkPaid,
    if_match: IfMatch = None,
) -> Response:
    return await _transition(gw, principal, idem, invoice_id, if_match, "MarkInvoicePaid", body)


@router.post(
    "/{invoice_id}/void",
    response_model=InvoiceOut,
    responses=TRANSITION_ERRORS,
    summary="DRAFT -> VOID: its entries can be invoiced again",
)
async def void_invoice(
    gw: GatewayDep,
    principal: CurrentPrincipal,
    idem: IdempotencyHandle,
    invoice_id: uuid.UUID,
    if_match: IfMatch = None,
) -> Response:
    return await _transition(gw, principal, idem, invoice_id, if_match, "VoidInvoice")


@router.get(
    "/{invoice_id}/pdf",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "redirect to a short-lived presigned URL of the PDF"},
        **COMMON,
        **problems(404, 409),
    },
    dependencies=[Depends(heavy_quota)],
    summary="Download the PDF (SENT, PAID, OVERDUE): a redirect to a presigned URL",
)
async def invoice_pdf(gw: GatewayDep, principal: CurrentPrincipal, invoice_id: uuid.UUID) -> RedirectResponse:
    await visible_invoice(gw, principal, invoice_id)
    try:
        resp = await gw.clients.read(
            gw.clients.invoicing.GetInvoicePdfUrl,
            ipb.GetInvoicePdfUrlRequest(
                invoice_id=str(invoice_id), expires_in_seconds=gw.settings.pdf_url_ttl_s
            ),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise NotFound("the invoice has no PDF yet") from None
        raise
    return RedirectResponse(resp.url, status_code=303, headers={"Cache-Control": "no-store"})
