"""Invoice rows to wire messages, and the invoice events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from timetracking.common.v1 import types_pb2
from timetracking.events.v1 import invoices_pb2
from timetracking.invoicing.v1 import invoicing_pb2 as pb
from tt_common.money import format_decimal, round_money

from .models import Invoice, InvoiceLine
from .repository import Repository

STATUSES = {
    "DRAFT": pb.INVOICE_STATUS_DRAFT,
    "SENT": pb.INVOICE_STATUS_SENT,
    "PAID": pb.INVOICE_STATUS_PAID,
    "OVERDUE": pb.INVOICE_STATUS_OVERDUE,
    "VOID": pb.INVOICE_STATUS_VOID,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def invoice(
    inv: Invoice, lines: list[InvoiceLine] | None = None, *, with_entry_ids: bool = True
) -> pb.Invoice:
    out = pb.Invoice(
        invoice_id=str(inv.invoice_id),
        number=inv.number or "",
        client_id=str(inv.client_id),
        project_id=str(inv.project_id),
        status=STATUSES[inv.status],
        currency=inv.currency,
        subtotal=_money(inv.subtotal, inv.currency),
        tax_rate=format_decimal(inv.tax_rate),
        tax=_money(inv.tax, inv.currency),
        total=_money(inv.total, inv.currency),
        invoice_date=inv.invoice_date.isoformat() if inv.invoice_date else "",
        due_date=inv.due_date.isoformat() if inv.due_date else "",
        period=types_pb2.Period(start=ts(inv.period_start), end=ts(inv.period_end)),
        paid_on=inv.paid_on.isoformat() if inv.paid_on else "",
        payment_reference=inv.payment_reference or "",
        pdf_available=inv.pdf_stored_at is not None,
        version=inv.version,
        created_at=ts(inv.created_at),
        updated_at=ts(inv.updated_at),
        idempotency_key=inv.idempotency_key,
    )
    for line in lines or []:
        out.lines.append(
            pb.InvoiceLine(
                line_id=str(line.line_id),
                task_id=str(line.task_id) if line.task_id else "",
                description=line.description,
                hours=format_decimal(line_hours(line.seconds)),
                seconds=line.seconds,
                hourly_rate=format_decimal(line.hourly_rate),
                amount=_money(line.amount, inv.currency),
                entry_ids=line.entry_ids if with_entry_ids else (),
            )
        )
    return out


def _money(amount: Decimal, currency: str) -> str:
    """In the currency's minor unit (the column keeps 3 places for currencies like KWD)."""
    return format_decimal(round_money(amount, currency))


def line_hours(seconds: int) -> Decimal:
    return (Decimal(seconds) / Decimal(3600)).quantize(Decimal("0.01"))


async def emit(
    repo: Repository,
    topic: str,
    transition: str,
    inv: Invoice,
    lines: list[InvoiceLine],
    actor: uuid.UUID | None,
) -> None:
    """An InvoiceEvent in the transition's transaction (published by the relay).

    Its lines carry no entry ids: an invoice of 100k entries would make a 3.8 MB message,
    over Kafka's message size limit, and a row the relay can never publish holds back every
    later event. Which entries an invoice bills travels as tracking's events (one per entry,
    claimed or released), and GetInvoice answers it.
    """
    event_id = uuid.uuid4()
    event = invoices_pb2.InvoiceEvent(
        event_id=str(event_id),
        actor_user_id=str(actor) if actor else "",
        transition=transition,
        invoice=invoice(inv, lines, with_entry_ids=False),
    )
    event.occurred_at.FromDatetime(datetime.now(UTC))
    await repo.publish(
        topic=topic, key=str(inv.invoice_id), payload=event.SerializeToString(), event_id=event_id
    )
