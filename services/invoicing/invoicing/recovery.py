"""Background work that keeps invoicing's promises after crashes and outages.

- A generation left PENDING (crash between claim and save) is completed: the
  claim is idempotent per invoice id, so asking again returns the same entries.
  If it cannot complete (the request is invalid now), its entries are released.
- A SENT invoice whose PDF was never stored gets it rendered and stored.
- A VOID invoice whose entries were never released gets them released.
- SENT invoices past their due date become OVERDUE.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tt_common.errors import DomainError, Unavailable
from tt_common.logging import get_logger

from .config import InvoicingSettings
from .generation import InvoiceGenerator
from .lifecycle import Lifecycle
from .repository import Repository

log = get_logger(__name__)


class Reconciler:
    def __init__(
        self,
        settings: InvoicingSettings,
        sessions: async_sessionmaker[AsyncSession],
        generator: InvoiceGenerator,
        lifecycle: Lifecycle,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.generator = generator
        self.lifecycle = lifecycle

    async def run(self) -> None:
        while True:
            await self.reconcile_once()
            await asyncio.sleep(self.settings.reconcile_interval_s)

    async def reconcile_once(self) -> dict[str, int]:
        done = {"completed": 0, "released": 0, "pdfs": 0, "voids": 0}
        async with self.sessions() as session:
            repo = Repository(session)
            pending = await repo.stale_pending(self.settings.pending_grace_s)
            missing = await repo.missing_pdfs(self.settings.pdf_grace_s)
            voids = await repo.unreleased_voids()
        for row in pending:
            try:
                await self.generator.complete(row)
                done["completed"] += 1
                log.info("recovered a crashed invoice generation", invoice_id=str(row.invoice_id))
            except Unavailable as exc:
                log.warning(
                    "recovery postponed: dependency down", invoice_id=str(row.invoice_id), error=str(exc)
                )
            except DomainError as exc:
                # The request can never complete (nothing left, project changed...): free its entries.
                log.warning("crashed generation abandoned", invoice_id=str(row.invoice_id), error=exc.message)
                try:
                    await self.generator.abandon(row, exc.message)
                    done["released"] += 1
                except DomainError as release_error:
                    log.warning(
                        "release postponed", invoice_id=str(row.invoice_id), error=release_error.message
                    )
        for invoice in missing:
            async with self.sessions() as session:
                lines = await Repository(session).lines(invoice.invoice_id)
            await self.lifecycle.store_pdf(invoice, lines)
            done["pdfs"] += invoice.pdf_stored_at is not None
        for invoice in voids:
            await self.lifecycle.release_entries(invoice, None)
            done["voids"] += invoice.entries_released_at is not None
        return done

    async def run_overdue(self) -> None:
        while True:
            marked = await self.lifecycle.mark_overdue()
            if marked:
                log.info("invoices marked OVERDUE", count=marked)
            await asyncio.sleep(self.settings.overdue_interval_s)
