"""Reporting's read model, built from events only (never from tracking's tables).

Every row carries the version of the snapshot it was built from; writes are
"last version wins" upserts (repository.py), so duplicates and replays are
no-ops. Deleted entries stay as tombstones: an older event arriving after the
delete must still find the newer version and do nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ARRAY, BigInteger, Boolean, DateTime, Index, Numeric, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tt_common.db import make_metadata
from tt_common.inbox import processed_events_table


class Base(DeclarativeBase):
    metadata = make_metadata()


def _applied_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class PipelineProbe(Base):
    """A probe that went gateway -> tracking outbox -> Kafka -> here."""

    __tablename__ = "pipeline_probes"

    probe_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    emitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    note: Mapped[str] = mapped_column(Text, nullable=False, server_default="")


class ReportEntry(Base):
    """The last applied snapshot of one time entry."""

    __tablename__ = "entries"

    entry_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    task_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # null: timer running
    duration_seconds: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    is_billable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    hourly_rate: Mapped[Decimal] = mapped_column(Numeric, nullable=False)
    currency: Mapped[str] = mapped_column(Text, nullable=False)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    event_occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    applied_at: Mapped[datetime] = _applied_at()

    __table_args__ = (
        Index("ix_entries_user_id_start_time", "user_id", "start_time"),
        Index("ix_entries_project_id_start_time", "project_id", "start_time"),
    )


class ReportUser(Base):
    """Local copy of a directory user: name, role and time zone."""

    __tablename__ = "users"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)  # EMPLOYEE | MANAGER | ADMIN
    timezone: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    applied_at: Mapped[datetime] = _applied_at()


class ReportClient(Base):
    __tablename__ = "clients"

    client_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    currency: Mapped[str] = mapped_column(Text, nullable=False)
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    applied_at: Mapped[datetime] = _applied_at()


class ReportProject(Base):
    """Local copy of a project with its budgets."""

    __tablename__ = "projects"

    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)  # ACTIVE | COMPLETED | ARCHIVED
    billing_type: Mapped[str] = mapped_column(Text, nullable=False)  # HOURLY | FIXED | NON_BILLABLE
    budget_hours: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    budget_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    applied_at: Mapped[datetime] = _applied_at()


class ReportTask(Base):
    __tablename__ = "tasks"

    task_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    applied_at: Mapped[datetime] = _applied_at()


class ReportProjectMember(Base):
    """Who is on which project in which role; removed members stay, flagged."""

    __tablename__ = "project_members"

    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, index=True)
    project_role: Mapped[str] = mapped_column(Text, nullable=False)  # MEMBER | MANAGER
    removed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    applied_at: Mapped[datetime] = _applied_at()


processed_events = processed_events_table(Base.metadata)

# The read-model tables the rebuild command compares, with their primary keys.
READ_MODEL_TABLES: dict[str, tuple[str, ...]] = {
    "entries": ("entry_id",),
    "users": ("user_id",),
    "clients": ("client_id",),
    "projects": ("project_id",),
    "tasks": ("task_id",),
    "project_members": ("project_id", "user_id"),
}
