"""Invoicing's gRPC edge."""

from __future__ import annotations

from typing import TypeAlias

import grpc
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.invoicing.v1 import invoicing_pb2 as pb
from timetracking.invoicing.v1 import invoicing_pb2_grpc
from tt_common.errors import InvalidArgument
from tt_common.pagination import page_size
from tt_common.validation import parse_optional_uuid, parse_uuid

from . import convert
from .generation import InvoiceGenerator, parse_request
from .lifecycle import Lifecycle
from .models import Invoice
from .repository import Repository

Ctx: TypeAlias = grpc.aio.ServicerContext


class InvoicingApi(invoicing_pb2_grpc.InvoicingServiceServicer):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], generator: InvoiceGenerator, lifecycle: Lifecycle
    ) -> None:
        self.sessions = sessions
        self.generator = generator
        self.lifecycle = lifecycle

    async def GenerateInvoice(self, request: pb.GenerateInvoiceRequest, context: Ctx) -> pb.Invoice:
        invoice, lines = await self.generator.generate(parse_request(request))
        return convert.invoice(invoice, lines)

    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: Ctx) -> pb.Invoice:
        invoice_id = parse_uuid(request.invoice_id, "invoice_id")
        async with self.sessions() as session:
            repo = Repository(session)
            return convert.invoice(await repo.invoice(invoice_id), await repo.lines(invoice_id))

    async def ListInvoices(self, request: pb.ListInvoicesRequest, context: Ctx) -> pb.ListInvoicesResponse:
        stmt = select(Invoice)
        if client_id := parse_optional_uuid(request.client_id, "client_id"):
            stmt = stmt.where(Invoice.client_id == client_id)
        if project_id := parse_optional_uuid(request.project_id, "project_id"):
            stmt = stmt.where(Invoice.project_id == project_id)
        if request.statuses:
            unknown = [s for s in request.statuses if s not in convert.STATUS_NAMES]
            if unknown:
                raise InvalidArgument.field("statuses", f"unknown status {unknown[0]}")
            stmt = stmt.where(Invoice.status.in_([convert.STATUS_NAMES[s] for s in request.statuses]))
        if request.HasField("period"):
            if request.period.HasField("start"):
                stmt = stmt.where(Invoice.period_end > request.period.start.ToDatetime())
            if request.period.HasField("end"):
                stmt = stmt.where(Invoice.period_start < request.period.end.ToDatetime())
        async with self.sessions() as session:
            rows, token = await Repository(session).page(
                stmt, page_size(request.page_size), request.page_token
            )
        return pb.ListInvoicesResponse(invoices=[convert.invoice(i) for i in rows], next_page_token=token)

    async def SendInvoice(self, request: pb.TransitionRequest, context: Ctx) -> pb.Invoice:
        invoice = await self.lifecycle.send(
            parse_uuid(request.invoice_id, "invoice_id"),
            request.expected_version,
            parse_optional_uuid(request.actor_user_id, "actor_user_id"),
        )
        return await self._reload(invoice)

    async def MarkInvoicePaid(self, request: pb.MarkInvoicePaidRequest, context: Ctx) -> pb.Invoice:
        invoice = await self.lifecycle.mark_paid(
            parse_uuid(request.invoice_id, "invoice_id"),
            request.expected_version,
            request.paid_on,
            request.payment_reference,
            parse_optional_uuid(request.actor_user_id, "actor_user_id"),
        )
        return await self._reload(invoice)

    async def VoidInvoice(self, request: pb.TransitionRequest, context: Ctx) -> pb.Invoice:
        invoice = await self.lifecycle.void(
            parse_uuid(request.invoice_id, "invoice_id"),
            request.expected_version,
            parse_optional_uuid(request.actor_user_id, "actor_user_id"),
        )
        return await self._reload(invoice)

    async def GetInvoicePdfUrl(
        self, request: pb.GetInvoicePdfUrlRequest, context: Ctx
    ) -> pb.GetInvoicePdfUrlResponse:
        url, expires = await self.lifecycle.pdf_url(
            parse_uuid(request.invoice_id, "invoice_id"), request.expires_in_seconds
        )
        return pb.GetInvoicePdfUrlResponse(url=url, expires_at=convert.ts(expires))

    async def _reload(self, invoice: Invoice) -> pb.Invoice:
        async with self.sessions() as session:
            repo = Repository(session)
            return convert.invoice(
                await repo.invoice(invoice.invoice_id), await repo.lines(invoice.invoice_id)
            )
