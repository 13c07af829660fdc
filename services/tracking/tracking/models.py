"""Tracking's tables. The invariants live in the database, not in racy SELECTs:

- at most one running timer per user: partial unique index on user_id where end_time is null;
- no overlapping entries per user (a running timer included): EXCLUDE USING gist over
  tstzrange(start_time, coalesce(end_time, 'infinity')) with btree_gist, '[)' bounds so
  back-to-back entries are fine;
- end > start and at most 24 h: CHECK constraints.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tt_common.db import make_metadata
from tt_common.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = make_metadata()


class TimeEntry(Base):
    __tablename__ = "time_entries"

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    is_billable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # Snapshots taken when the entry is created; later rate changes never touch them.
    hourly_rate: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    capped: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("end_time IS NULL OR end_time > start_time", name="end_after_start"),
        CheckConstraint(
            "end_time IS NULL OR end_time - start_time <= interval '24 hours'", name="at_most_24h"
        ),
        Index(
            "uq_time_entries_one_running_timer",
            "user_id",
            unique=True,
            postgresql_where=text("end_time IS NULL"),
        ),
        ExcludeConstraint(
            ("user_id", "="),
            (text("tstzrange(start_time, COALESCE(end_time, 'infinity'::timestamptz), '[)')"), "&&"),
            name="ex_time_entries_no_overlap",
            using="gist",
        ),
        Index("ix_time_entries_user_start", "user_id", "start_time"),
        Index("ix_time_entries_project_start", "project_id", "start_time"),
        # ListEntries filters on tags with @> (contains all of).
        Index("ix_time_entries_tags", "tags", postgresql_using="gin"),
        # No index covers invoice_id, and pages keep room for a second version of each row,
        # so a claim or a release is a heap-only update: no index entries, no exclusion
        # check (migration 0004). An invoice's entries are found through its claim's
        # project and period (`repository.on_invoice`).
        {"postgresql_with": {"fillfactor": 50}},
    )


class EntryAudit(Base):
    """Who changed which entry, when, before and after: written in the same transaction."""

    __tablename__ = "entry_audit"

    audit_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class InvoiceClaim(Base):
    """One row per invoice id that ever claimed (or released) entries.

    It makes ClaimUninvoicedEntries idempotent per invoice id (the primary key
    serialises two concurrent calls with the same id), and remembers released
    invoices so that a late claim by a voided draft is refused.
    """

    __tablename__ = "invoice_claims"

    invoice_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Unknown (null) when a release arrived for an invoice that never claimed anything.
    project_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


outbox = outbox_table(Base.metadata)
