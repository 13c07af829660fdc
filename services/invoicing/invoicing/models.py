"""Invoicing's tables.

- invoice_requests: one row per idempotency key, written BEFORE tracking is
  asked to claim entries. A PENDING row older than a minute is a generation
  that crashed between claim and save; the reconciler completes it.
- invoices / invoice_lines: what was billed; immutable once SENT.
- invoice_number_counters: one row per year; the SENT transaction increments
  it, so numbers are gapless (a rolled-back send returns its number).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tt_common.db import make_metadata
from tt_common.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = make_metadata()


class InvoiceRequest(Base):
    __tablename__ = "invoice_requests"

    idempotency_key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("state IN ('PENDING', 'DONE', 'RELEASED')", name="state_known"),
        Index("ix_invoice_requests_pending", "created_at", postgresql_where=text("state = 'PENDING'")),
    )


class Invoice(Base):
    __tablename__ = "invoices"

    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    number: Mapped[str | None] = mapped_column(Text, unique=True)
    client_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="DRAFT")
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    subtotal: Mapped[Decimal] = mapped_column(Numeric(16, 3), nullable=False)
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    tax: Mapped[Decimal] = mapped_column(Numeric(16, 3), nullable=False)
    total: Mapped[Decimal] = mapped_column(Numeric(16, 3), nullable=False)
    payment_terms_days: Mapped[int] = mapped_column(Integer, nullable=False)
    invoice_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(Text, nullable=False)
    paid_on: Mapped[date | None] = mapped_column(Date)
    payment_reference: Mapped[str | None] = mapped_column(Text)
    pdf_key: Mapped[str | None] = mapped_column(Text)
    pdf_stored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    entries_released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("status IN ('DRAFT', 'SENT', 'PAID', 'OVERDUE', 'VOID')", name="status_known"),
        # A sent invoice carries its number and dates; a draft has none yet.
        CheckConstraint("(status = 'DRAFT' OR status = 'VOID') = (number IS NULL)", name="number_iff_issued"),
        CheckConstraint("total = subtotal + tax", name="total_adds_up"),
        Index("ix_invoices_created", "created_at", "invoice_id"),
        Index("ix_invoices_project", "project_id", "created_at"),
        Index("ix_invoices_client", "client_id", "created_at"),
        Index("ix_invoices_due", "due_date", postgresql_where=text("status = 'SENT'")),
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    invoice_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invoices.invoice_id"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    grouping_key: Mapped[str] = mapped_column(Text, nullable=False)
    task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    description: Mapped[str] = mapped_column(Text, nullable=False)
    seconds: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hourly_rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 3), nullable=False)
    # uuid[] in the database, text in Python: 100k ids are stored and sent, never inspected.
    entry_ids: Mapped[list[str]] = mapped_column(ARRAY(UUID(as_uuid=False)), nullable=False)


class InvoiceNumberCounter(Base):
    __tablename__ = "invoice_number_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, nullable=False)


outbox = outbox_table(Base.metadata)
