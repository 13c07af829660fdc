"""The projects service's tables: the directory of users, clients, projects,
tasks, memberships and project-user rates.

Invariants the database holds by itself: one account per email regardless of
case; a rate only for a member (foreign key to project_members); a task's
name unique within its project; enumerations checked.
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
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tt_common.db import make_metadata
from tt_common.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = make_metadata()


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _version() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default="1")


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    email: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    default_hourly_rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    timezone: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    password_hash: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = _version()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        Index("uq_users_email_ci", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('EMPLOYEE', 'MANAGER', 'ADMIN')", name="role_known"),
        CheckConstraint("default_hourly_rate IS NULL OR default_hourly_rate >= 0", name="rate_not_negative"),
        Index("ix_users_created", "created_at", "user_id"),
    )


class Client(Base):
    __tablename__ = "clients"

    client_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    billing_address: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, server_default="0")
    payment_terms_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="30")
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    version: Mapped[int] = _version()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("tax_rate >= 0 AND tax_rate <= 100", name="tax_rate_percent"),
        CheckConstraint("payment_terms_days >= 0 AND payment_terms_days <= 365", name="payment_terms_range"),
        Index("ix_clients_created", "created_at", "client_id"),
    )


class Project(Base):
    __tablename__ = "projects"

    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.client_id"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="ACTIVE")
    billing_type: Mapped[str] = mapped_column(String(16), nullable=False)
    budget_hours: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    budget_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    default_hourly_rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    version: Mapped[int] = _version()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("status IN ('ACTIVE', 'COMPLETED', 'ARCHIVED')", name="status_known"),
        CheckConstraint("billing_type IN ('HOURLY', 'FIXED', 'NON_BILLABLE')", name="billing_type_known"),
        CheckConstraint("budget_hours IS NULL OR budget_hours >= 0", name="budget_hours_not_negative"),
        CheckConstraint("budget_amount IS NULL OR budget_amount >= 0", name="budget_amount_not_negative"),
        CheckConstraint("default_hourly_rate IS NULL OR default_hourly_rate >= 0", name="rate_not_negative"),
        Index("uq_projects_client_name_ci", "client_id", func.lower(text("name")), unique=True),
        Index("ix_projects_created", "created_at", "project_id"),
    )


class Task(Base):
    __tablename__ = "tasks"

    task_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.project_id"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    estimated_hours: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    # NULL means "use the project default"; see billing.resolve_billable.
    is_billable: Mapped[bool | None] = mapped_column(Boolean)
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    version: Mapped[int] = _version()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("estimated_hours IS NULL OR estimated_hours >= 0", name="estimate_not_negative"),
        Index("uq_tasks_project_name_ci", "project_id", func.lower(text("name")), unique=True),
        Index("ix_tasks_project_created", "project_id", "created_at", "task_id"),
    )


class ProjectMember(Base):
    __tablename__ = "project_members"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.project_id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.user_id"), primary_key=True)
    project_role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="MEMBER")
    version: Mapped[int] = _version()
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("project_role IN ('MEMBER', 'MANAGER')", name="project_role_known"),
        Index("ix_project_members_user", "user_id", "project_id"),
    )


class ProjectUserRate(Base):
    __tablename__ = "project_user_rates"

    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hourly_rate: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    version: Mapped[int] = _version()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        # No rate for a non-member: the database refuses it, whatever the code does.
        ForeignKeyConstraint(
            ["project_id", "user_id"],
            ["project_members.project_id", "project_members.user_id"],
            name="fk_project_user_rates_member",
        ),
        CheckConstraint("hourly_rate >= 0", name="rate_not_negative"),
    )


class ApiToken(Base):
    """A personal API token: only the SHA-256 of its secret is kept (see projects/tokens.py)."""

    __tablename__ = "api_tokens"

    token_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.user_id"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("uq_api_tokens_hash", "token_hash", unique=True),
        Index("ix_api_tokens_user_created", "user_id", "created_at", "token_id"),
    )


outbox = outbox_table(Base.metadata)
