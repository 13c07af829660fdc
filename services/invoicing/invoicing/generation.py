"""Generating an invoice: a short saga whose every step is safe to repeat.

1. Validate; look up the project and client (projects service).
2. Commit an invoice_requests row (idempotency key -> invoice id) BEFORE anything
   is claimed. The same key again finds this row: the same invoice id.
3. Ask tracking to claim the entries for that invoice id. The claim is
   idempotent per invoice id, so retries, concurrent duplicates and the
   reconciler all get the same set.
4. In one transaction: lock the request row, store the DRAFT with its lines,
   mark the request DONE, and write the InvoiceEvent to the outbox.

A crash between 3 and 4 leaves a PENDING request whose entries are claimed:
the reconciler (recovery.py) runs step 3 and 4 again for it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.invoicing.v1 import invoicing_pb2 as pb
from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.db import transaction
from tt_common.errors import FailedPrecondition, InvalidArgument
from tt_common.logging import get_logger
from tt_common.metrics import observe_outcome
from tt_common.money import parse_currency
from tt_common.validation import bounded_text, parse_optional_uuid, parse_uuid

from . import convert
from .config import InvoicingSettings
from .dependencies import Dependencies
from .lines import BillableEntry, Line, build_lines, fixed_fee_line, totals
from .metrics import GENERATION_SECONDS
from .models import Invoice, InvoiceLine, InvoiceRequest
from .repository import Repository

log = get_logger(__name__)

MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class GenerationRequest:
    idempotency_key: str
    project_id: uuid.UUID
    start: datetime
    end: datetime
    actor: uuid.UUID | None

    @property
    def fingerprint(self) -> str:
        """What the key promises: the same key must always mean the same request."""
        raw = f"{self.project_id}|{self.start.isoformat()}|{self.end.isoformat()}"
        return hashlib.sha256(raw.encode()).hexdigest()


def parse_request(req: pb.GenerateInvoiceRequest) -> GenerationRequest:
    key = bounded_text(req.idempotency_key, "idempotency_key", max_length=255)
    if not req.HasField("period") or not req.period.HasField("start") or not req.period.HasField("end"):
        raise InvalidArgument.field("period", "start and end are required")
    start = req.period.start.ToDatetime(tzinfo=UTC)
    end = req.period.end.ToDatetime(tzinfo=UTC)
    if end <= start:
        raise InvalidArgument.field("period.end", "must be after period.start")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidArgument.field("period", f"at most {MAX_PERIOD_DAYS} days")
    return GenerationRequest(
        idempotency_key=key,
        project_id=parse_uuid(req.project_id, "project_id"),
        start=start,
        end=end,
        actor=parse_optional_uuid(req.actor_user_id, "actor_user_id"),
    )


class InvoiceGenerator:
    def __init__(
        self, settings: InvoicingSettings, sessions: async_sessionmaker[AsyncSession], deps: Dependencies
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.deps = deps

    async def generate(self, request: GenerationRequest) -> tuple[Invoice, list[InvoiceLine]]:
        with observe_outcome(GENERATION_SECONDS):
            return await self._generate(request)

    async def _generate(self, request: GenerationRequest) -> tuple[Invoice, list[InvoiceLine]]:
        project = await self.deps.project(request.project_id)
        if project.billing_type == ppb.BILLING_TYPE_NON_BILLABLE:
            raise FailedPrecondition(
                "project_id: the project is NON_BILLABLE; it has nothing to invoice",
                error_code="nothing_to_invoice",
            )
        async with transaction(self.sessions) as session:
            repo = Repository(session)
            row = InvoiceRequest(
                idempotency_key=request.idempotency_key,
                request_hash=request.fingerprint,
                invoice_id=uuid.uuid4(),
                project_id=request.project_id,
                period_start=request.start,
                period_end=request.end,
                actor_user_id=request.actor,
                state="PENDING",
            )
            if await repo.register_request(row) is None:
                existing = await repo.request(request.idempotency_key)
                assert existing is not None
                if existing.request_hash != request.fingerprint:
                    raise InvalidArgument(
                        "idempotency_key: already used for a different request",
                        error_code="idempotency_key_reused",
                    )
                row = existing
        if row.state == "DONE":
            return await self._load(row.invoice_id)
        if row.state == "RELEASED":
            raise FailedPrecondition(
                "idempotency_key: this request failed earlier and its entries were released; use a new key",
                error_code="request_abandoned",
            )
        return await self.complete(row)

    async def complete(self, row: InvoiceRequest) -> tuple[Invoice, list[InvoiceLine]]:
        """Steps 3 and 4; also the reconciler's way to finish a crashed generation."""
        project = await self.deps.project(row.project_id)
        client = await self.deps.client(project.client_id)
        claim = await self.deps.claim(
            row.invoice_id, row.project_id, row.period_start, row.period_end, row.actor_user_id
        )
        if self.settings.failpoint == "after_claim":
            log.warning("failpoint after_claim: exiting between claim and save")
            os._exit(137)

        # A handful of distinct rates and tasks over up to 100k entries: parse each once.
        rates = {r: Decimal(r) for r in {e.hourly_rate for e in claim.entries}}
        tasks = {t: uuid.UUID(t) if t else None for t in {e.task_id for e in claim.entries}}
        entries = [
            BillableEntry(
                entry_id=e.entry_id,
                task_id=tasks[e.task_id],
                seconds=e.duration_seconds,
                hourly_rate=rates[e.hourly_rate],
                currency=e.currency,
            )
            for e in claim.entries
        ]
        if not entries:
            async with transaction(self.sessions) as session:
                await Repository(session).delete_request(row.idempotency_key)
            raise FailedPrecondition(
                "nothing to invoice: no uninvoiced billable stopped entries in the period",
                error_code="nothing_to_invoice",
            )
        currency = parse_currency(project.currency)
        if any(e.currency != currency for e in entries):
            await self.abandon(row, "entries are in a currency other than the project's")
            raise FailedPrecondition(
                "entries of this project and period are in several currencies; invoice them per currency",
                error_code="mixed_currencies",
            )

        lines: list[Line]
        if project.billing_type == ppb.BILLING_TYPE_FIXED:
            lines = await self._fixed_fee_lines(row, project, entries, currency)
        else:
            lines = build_lines(entries, currency, await self.deps.task_names(row.project_id))
        tax_rate = Decimal(client.tax_rate or "0")
        sums = totals(lines, tax_rate, currency)

        async with transaction(self.sessions) as session:
            repo = Repository(session)
            locked = await repo.request(row.idempotency_key, for_update=True)
            if locked is not None and locked.state == "DONE":
                # A concurrent duplicate (same key) saved it first.
                return await self._load_with(repo, row.invoice_id)
            invoice = Invoice(
                invoice_id=row.invoice_id,
                client_id=uuid.UUID(project.client_id),
                project_id=row.project_id,
                status="DRAFT",
                currency=currency,
                subtotal=sums.subtotal,
                tax_rate=tax_rate,
                tax=sums.tax,
                total=sums.total,
                payment_terms_days=client.payment_terms_days,
                period_start=row.period_start,
                period_end=row.period_end,
                idempotency_key=row.idempotency_key,
            )
            rows = [
                InvoiceLine(
                    line_id=uuid.uuid4(),
                    invoice_id=row.invoice_id,
                    position=i,
                    grouping_key=line.grouping_key,
                    task_id=line.task_id,
                    description=line.description,
                    seconds=line.seconds,
                    hourly_rate=line.hourly_rate,
                    amount=line.amount,
                    entry_ids=line.entry_ids,
                )
                for i, line in enumerate(lines)
            ]
            await repo.add_invoice(invoice, rows)
            await repo.set_request_state(row.idempotency_key, "DONE")
            await convert.emit(
                repo, self.settings.topic_invoices, "DRAFTED", invoice, rows, row.actor_user_id
            )
        log.info(
            "invoice drafted",
            invoice_id=str(invoice.invoice_id),
            entries=len(entries),
            total=str(invoice.total),
        )
        return invoice, rows

    async def _fixed_fee_lines(
        self, row: InvoiceRequest, project: ppb.Project, entries: list[BillableEntry], currency: str
    ) -> list[Line]:
        if not project.budget_amount:
            await self.abandon(row, "FIXED project without a price")
            raise FailedPrecondition(
                "project_id: a FIXED project needs its price in budget_amount",
                error_code="fixed_price_missing",
            )
        async with self.sessions() as session:
            earlier = await Repository(session).fixed_fee_invoice(row.project_id)
        if earlier is not None and earlier.invoice_id != row.invoice_id:
            await self.abandon(row, "fixed fee already invoiced")
            raise FailedPrecondition(
                f"project_id: the fixed fee was already invoiced on {earlier.number or 'a draft'}"
                f" ({earlier.invoice_id})",
                error_code="fixed_fee_already_invoiced",
            )
        return [fixed_fee_line(Decimal(project.budget_amount), project.name, entries, currency)]

    async def abandon(self, row: InvoiceRequest, reason: str) -> None:
        """Give the claimed entries back; the request cannot succeed."""
        await self.deps.release(row.invoice_id, row.actor_user_id)
        async with transaction(self.sessions) as session:
            await Repository(session).set_request_state(row.idempotency_key, "RELEASED", reason)

    async def _load(self, invoice_id: uuid.UUID) -> tuple[Invoice, list[InvoiceLine]]:
        async with self.sessions() as session:
            return await self._load_with(Repository(session), invoice_id)

    @staticmethod
    async def _load_with(repo: Repository, invoice_id: uuid.UUID) -> tuple[Invoice, list[InvoiceLine]]:
        return await repo.invoice(invoice_id), await repo.lines(invoice_id)
