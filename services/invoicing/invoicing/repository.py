"""All of invoicing's SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Select, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tt_common.errors import NotFound
from tt_common.outbox import enqueue
from tt_common.pagination import keyset_page

from .models import Invoice, InvoiceLine, InvoiceNumberCounter, InvoiceRequest, outbox


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- generation requests ---------------------------------------------------------
    async def register_request(self, row: InvoiceRequest) -> InvoiceRequest | None:
        """The new request, or None when the key is taken (the caller reads the existing one)."""
        values = {
            c.key: getattr(row, c.key)
            for c in InvoiceRequest.__table__.columns
            if getattr(row, c.key) is not None
        }
        result = await self.session.execute(
            insert(InvoiceRequest)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(InvoiceRequest.idempotency_key)
        )
        return row if result.first() else None

    async def request(self, key: str, *, for_update: bool = False) -> InvoiceRequest | None:
        stmt = select(InvoiceRequest).where(InvoiceRequest.idempotency_key == key)
        if for_update:
            stmt = stmt.with_for_update()
        return (
            await self.session.execute(stmt.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def stale_pending(self, older_than_s: float, limit: int = 20) -> Sequence[InvoiceRequest]:
        return (
            (
                await self.session.execute(
                    select(InvoiceRequest)
                    .where(
                        InvoiceRequest.state == "PENDING",
                        InvoiceRequest.created_at
                        < text("now() - make_interval(secs => :age)").bindparams(age=older_than_s),
                    )
                    .order_by(InvoiceRequest.created_at)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )

    async def delete_request(self, key: str) -> None:
        await self.session.execute(delete(InvoiceRequest).where(InvoiceRequest.idempotency_key == key))

    async def set_request_state(self, key: str, state: str, error: str | None = None) -> None:
        await self.session.execute(
            update(InvoiceRequest)
            .where(InvoiceRequest.idempotency_key == key)
            .values(
                state=state, last_error=error, updated_at=text("now()"), attempts=InvoiceRequest.attempts + 1
            )
        )

    # --- invoices -----------------------------------------------------------------------
    async def add_invoice(self, invoice: Invoice, lines: list[InvoiceLine]) -> None:
        self.session.add(invoice)
        await self.session.flush()
        self.session.add_all(lines)
        await self.session.flush()
        await self.session.refresh(invoice)

    async def invoice(self, invoice_id: uuid.UUID, *, for_update: bool = False) -> Invoice:
        obj = await self.session.get(
            Invoice, invoice_id, with_for_update=for_update, populate_existing=for_update
        )
        if obj is None:
            raise NotFound("invoice not found")
        return obj

    async def lines(self, invoice_id: uuid.UUID) -> list[InvoiceLine]:
        return list(
            (
                await self.session.execute(
                    select(InvoiceLine)
                    .where(InvoiceLine.invoice_id == invoice_id)
                    .order_by(InvoiceLine.position)
                )
            ).scalars()
        )

    async def fixed_fee_invoice(self, project_id: uuid.UUID) -> Invoice | None:
        """A live (not VOID) invoice of the project that billed its fixed fee."""
        return (
            await self.session.execute(
                select(Invoice)
                .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.invoice_id)
                .where(
                    Invoice.project_id == project_id,
                    Invoice.status != "VOID",
                    InvoiceLine.grouping_key == "fixed-fee",
                )
                .limit(1)
            )
        ).scalar_one_or_none()

    async def next_number(self, year: int) -> int:
        """Gapless: the counter row stays locked until the sending transaction ends."""
        result = await self.session.execute(
            insert(InvoiceNumberCounter)
            .values(year=year, last_number=1)
            .on_conflict_do_update(
                index_elements=["year"], set_={"last_number": InvoiceNumberCounter.last_number + 1}
            )
            .returning(InvoiceNumberCounter.last_number)
        )
        return int(result.scalar_one())

    async def overdue_candidates(self, today: date, limit: int = 100) -> Sequence[Invoice]:
        return (
            (
                await self.session.execute(
                    select(Invoice)
                    .where(Invoice.status == "SENT", Invoice.due_date < today)
                    .order_by(Invoice.due_date)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )

    async def missing_pdfs(self, older_than_s: float, limit: int = 10) -> Sequence[Invoice]:
        """Sent invoices without a stored PDF, left alone while their sender may still be rendering."""
        return (
            (
                await self.session.execute(
                    select(Invoice)
                    .where(
                        Invoice.number.is_not(None),
                        Invoice.pdf_stored_at.is_(None),
                        Invoice.updated_at
                        < text("now() - make_interval(secs => :age)").bindparams(age=older_than_s),
                    )
                    .order_by(Invoice.updated_at)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )

    async def unreleased_voids(self, limit: int = 20) -> Sequence[Invoice]:
        return (
            (
                await self.session.execute(
                    select(Invoice)
                    .where(Invoice.status == "VOID", Invoice.entries_released_at.is_(None))
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )

    async def page(self, stmt: Select[Any], size: int, token: str) -> tuple[list[Invoice], str]:
        return await keyset_page(self.session, stmt, Invoice.created_at, Invoice.invoice_id, size, token)

    async def publish(self, *, topic: str, key: str, payload: bytes, event_id: uuid.UUID) -> None:
        await enqueue(self.session, outbox, topic=topic, key=key, payload=payload, event_id=event_id)
