"""Invoice status transitions, each a compare-and-set on status and version.

    DRAFT -> SENT -> PAID        SENT -> OVERDUE -> PAID        DRAFT -> VOID

SENT assigns the gapless number in the same transaction, then the PDF is
rendered and stored (a sent invoice never changes, so rendering again later
gives the same document; recovery.py renders any that a crash left missing).
VOID commits first and releases the entries after; recovery.py retries a
release that failed, so a voided draft never keeps entries.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tt_common.db import transaction
from tt_common.errors import Conflict, FailedPrecondition, InvalidArgument
from tt_common.logging import get_logger
from tt_common.metrics import observe_outcome
from tt_common.validation import bounded_text

from . import convert
from .config import InvoicingSettings
from .dependencies import Dependencies
from .metrics import PDF_BYTES, PDF_RENDER_SECONDS
from .models import Invoice, InvoiceLine
from .pdf import PdfRenderer, invoice_context
from .repository import Repository
from .storage import PdfStore, pdf_key

log = get_logger(__name__)

ALLOWED = {
    "SEND": {"DRAFT"},
    "PAY": {"SENT", "OVERDUE"},
    "VOID": {"DRAFT"},
    "OVERDUE": {"SENT"},
}


def guard(invoice: Invoice, action: str, expected_version: int) -> None:
    if invoice.status not in ALLOWED[action]:
        allowed = " or ".join(sorted(ALLOWED[action]))
        raise FailedPrecondition(
            f"invoice is {invoice.status}; {action.lower()} needs {allowed}", error_code="illegal_transition"
        )
    if expected_version and expected_version != invoice.version:
        raise Conflict(
            f"invoice changed (version {invoice.version}, you sent {expected_version}); reload and retry"
        )


def today() -> date:
    return datetime.now(UTC).date()


class Lifecycle:
    def __init__(
        self,
        settings: InvoicingSettings,
        sessions: async_sessionmaker[AsyncSession],
        deps: Dependencies,
        renderer: PdfRenderer,
        store: PdfStore,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.deps = deps
        self.renderer = renderer
        self.store = store

    async def send(self, invoice_id: uuid.UUID, expected_version: int, actor: uuid.UUID | None) -> Invoice:
        async with transaction(self.sessions) as session:
            repo = Repository(session)
            invoice = await repo.invoice(invoice_id, for_update=True)
            guard(invoice, "SEND", expected_version)
            issued = today()
            number = await repo.next_number(issued.year)
            invoice.number = f"INV-{issued.year}-{number:06d}"
            invoice.status = "SENT"
            invoice.invoice_date = issued
            invoice.due_date = issued + timedelta(days=invoice.payment_terms_days)
            invoice.pdf_key = pdf_key(invoice.invoice_id)
            await self._bump(session, invoice)
            lines = await repo.lines(invoice_id)
            await convert.emit(repo, self.settings.topic_invoices, "SENT", invoice, lines, actor)
        await self.store_pdf(invoice, lines)
        return invoice

    async def store_pdf(self, invoice: Invoice, lines: list[InvoiceLine]) -> None:
        """Render and upload; on failure the invoice stays SENT and recovery retries."""
        try:
            project = await self.deps.project(invoice.project_id)
            client = await self.deps.client(str(invoice.client_id))
            context = invoice_context(
                invoice, lines, client=client, project_name=project.name, seller=self._seller()
            )
            with observe_outcome(PDF_RENDER_SECONDS):
                content = await self.renderer.render(context)
            PDF_BYTES.observe(len(content))
            assert invoice.pdf_key and invoice.number
            await self.store.put(invoice.pdf_key, content, number=invoice.number)
        except Exception as exc:  # noqa: BLE001 - the send has committed; recovery renders later
            log.warning("pdf not stored yet", invoice_id=str(invoice.invoice_id), error=str(exc))
            return
        async with transaction(self.sessions) as session:
            stored = await Repository(session).invoice(invoice.invoice_id, for_update=True)
            stored.pdf_stored_at = datetime.now(UTC)
        invoice.pdf_stored_at = stored.pdf_stored_at

    async def mark_paid(
        self,
        invoice_id: uuid.UUID,
        expected_version: int,
        paid_on: str,
        reference: str,
        actor: uuid.UUID | None,
    ) -> Invoice:
        try:
            paid = date.fromisoformat(paid_on) if paid_on else today()
        except ValueError:
            raise InvalidArgument.field("paid_on", "must be a date YYYY-MM-DD") from None
        if paid > today():
            raise InvalidArgument.field("paid_on", "must not be in the future")
        ref = bounded_text(reference, "payment_reference", max_length=200, required=False)
        async with transaction(self.sessions) as session:
            repo = Repository(session)
            invoice = await repo.invoice(invoice_id, for_update=True)
            guard(invoice, "PAY", expected_version)
            if invoice.invoice_date and paid < invoice.invoice_date:
                raise InvalidArgument.field("paid_on", "must not be before the invoice date")
            invoice.status = "PAID"
            invoice.paid_on = paid
            invoice.payment_reference = ref or None
            await self._bump(session, invoice)
            await convert.emit(
                repo, self.settings.topic_invoices, "PAID", invoice, await repo.lines(invoice_id), actor
            )
        return invoice

    async def void(self, invoice_id: uuid.UUID, expected_version: int, actor: uuid.UUID | None) -> Invoice:
        async with transaction(self.sessions) as session:
            repo = Repository(session)
            invoice = await repo.invoice(invoice_id, for_update=True)
            guard(invoice, "VOID", expected_version)
            invoice.status = "VOID"
            await self._bump(session, invoice)
            await convert.emit(
                repo, self.settings.topic_invoices, "VOIDED", invoice, await repo.lines(invoice_id), actor
            )
        await self.release_entries(invoice, actor)
        return invoice

    async def release_entries(self, invoice: Invoice, actor: uuid.UUID | None) -> None:
        try:
            await self.deps.release(invoice.invoice_id, actor)
        except Exception as exc:  # noqa: BLE001 - the void has committed; recovery retries
            log.warning("entries not released yet", invoice_id=str(invoice.invoice_id), error=str(exc))
            return
        async with transaction(self.sessions) as session:
            stored = await Repository(session).invoice(invoice.invoice_id, for_update=True)
            stored.entries_released_at = datetime.now(UTC)
        invoice.entries_released_at = stored.entries_released_at

    async def mark_overdue(self) -> int:
        """SENT invoices past their due date become OVERDUE; returns how many."""
        async with transaction(self.sessions) as session:
            repo = Repository(session)
            due = await repo.overdue_candidates(today())
            for invoice in due:
                invoice.status = "OVERDUE"
                await self._bump(session, invoice)
                lines = await repo.lines(invoice.invoice_id)
                await convert.emit(repo, self.settings.topic_invoices, "OVERDUE", invoice, lines, None)
        return len(due)

    async def pdf_url(self, invoice_id: uuid.UUID, expires_in: int) -> tuple[str, datetime]:
        if expires_in < 0 or expires_in > 3600:
            raise InvalidArgument.field("expires_in_seconds", "between 1 and 3600 (0 = 300)")
        expires_in = expires_in or 300
        async with self.sessions() as session:
            invoice = await Repository(session).invoice(invoice_id)
        if invoice.pdf_key is None:
            raise FailedPrecondition(
                f"invoice is {invoice.status}; a PDF exists once it is SENT", error_code="no_pdf"
            )
        if invoice.pdf_stored_at is None:
            raise FailedPrecondition(
                "the PDF is still being rendered; retry shortly", error_code="pdf_pending"
            )
        return self.store.presigned_url(invoice.pdf_key, expires_in), datetime.now(UTC) + timedelta(
            seconds=expires_in
        )

    def _seller(self) -> dict[str, str]:
        s = self.settings
        return {
            "name": s.seller_name,
            "address": s.seller_address,
            "tax_id": s.seller_tax_id,
            "bank_details": s.seller_bank_details,
        }

    @staticmethod
    async def _bump(session: AsyncSession, invoice: Invoice) -> None:
        invoice.version += 1
        invoice.updated_at = datetime.now(UTC)
        await session.flush()
