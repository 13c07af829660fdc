"""Invoices and their lifecycle."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from timetracking.invoicing.v1 import invoicing_pb2 as ipb

from .common import Input, Timestamp_, dt, or_none

InvoiceStatus = Literal["DRAFT", "SENT", "PAID", "OVERDUE", "VOID"]
STATUSES: dict[str, ipb.InvoiceStatus] = {
    "DRAFT": ipb.INVOICE_STATUS_DRAFT,
    "SENT": ipb.INVOICE_STATUS_SENT,
    "PAID": ipb.INVOICE_STATUS_PAID,
    "OVERDUE": ipb.INVOICE_STATUS_OVERDUE,
    "VOID": ipb.INVOICE_STATUS_VOID,
}


def _status_name(value: int) -> InvoiceStatus:
    for name, number in STATUSES.items():
        if number == value:
            return name  # type: ignore[return-value]
    return "DRAFT"


class InvoiceLineOut(BaseModel):
    line_id: str
    task_id: str | None
    description: str
    hours: str
    seconds: int
    hourly_rate: str | None
    amount: str
    entry_ids: list[str]


class InvoiceOut(BaseModel):
    invoice_id: str
    number: str | None = Field(description="assigned when SENT")
    client_id: str
    project_id: str
    status: InvoiceStatus
    currency: str
    subtotal: str
    tax_rate: str
    tax: str
    total: str
    invoice_date: str | None
    due_date: str | None
    period_start: datetime
    period_end: datetime
    lines: list[InvoiceLineOut] = Field(description="empty in lists")
    paid_on: str | None
    payment_reference: str | None
    pdf_available: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_pb(cls, i: ipb.Invoice) -> InvoiceOut:
        return cls(
            invoice_id=i.invoice_id,
            number=or_none(i.number),
            client_id=i.client_id,
            project_id=i.project_id,
            status=_status_name(i.status),
            currency=i.currency,
            subtotal=i.subtotal,
            tax_rate=i.tax_rate,
            tax=i.tax,
            total=i.total,
            invoice_date=or_none(i.invoice_date),
            due_date=or_none(i.due_date),
            period_start=dt(i.period.start),
            period_end=dt(i.period.end),
            lines=[
                InvoiceLineOut(
                    line_id=line.line_id,
                    task_id=or_none(line.task_id),
                    description=line.description,
                    hours=line.hours,
                    seconds=line.seconds,
                    hourly_rate=or_none(line.hourly_rate),
                    amount=line.amount,
                    entry_ids=list(line.entry_ids),
                )
                for line in i.lines
            ],
            paid_on=or_none(i.paid_on),
            payment_reference=or_none(i.payment_reference),
            pdf_available=i.pdf_available,
            version=i.version,
            created_at=dt(i.created_at),
            updated_at=dt(i.updated_at),
        )


class InvoiceCreate(Input):
    """Bill the project's uninvoiced, billable, stopped entries that start in [period_start, period_end)."""

    project_id: uuid.UUID
    period_start: Timestamp_
    period_end: Timestamp_

    @model_validator(mode="after")
    def _ordered(self) -> InvoiceCreate:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


class MarkPaid(Input):
    paid_on: date = Field(description="YYYY-MM-DD, not in the future")
    payment_reference: Annotated[str, StringConstraints(max_length=200)] = ""

    @model_validator(mode="after")
    def _range(self) -> MarkPaid:
        if not date(1970, 1, 1) <= self.paid_on < date(2100, 1, 1):
            raise ValueError("paid_on must be between 1970 and 2100")
        return self
