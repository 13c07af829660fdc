"""invoices

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_number_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_invoice_number_counters")),
    )
    op.create_table(
        "invoice_requests",
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.UUID(), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "state IN ('PENDING', 'DONE', 'RELEASED')", name=op.f("ck_invoice_requests_state_known")
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_invoice_requests")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_invoice_requests_invoice_id")),
    )
    op.create_index(
        "ix_invoice_requests_pending",
        "invoice_requests",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("state = 'PENDING'"),
    )
    op.create_table(
        "invoices",
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Text(), nullable=True),
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="DRAFT", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("tax_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("tax", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("total", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("payment_reference", sa.Text(), nullable=True),
        sa.Column("pdf_key", sa.Text(), nullable=True),
        sa.Column("pdf_stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entries_released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(status = 'DRAFT' OR status = 'VOID') = (number IS NULL)",
            name=op.f("ck_invoices_number_iff_issued"),
        ),
        sa.CheckConstraint(
            "status IN ('DRAFT', 'SENT', 'PAID', 'OVERDUE', 'VOID')", name=op.f("ck_invoices_status_known")
        ),
        sa.CheckConstraint("total = subtotal + tax", name=op.f("ck_invoices_total_adds_up")),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
    )
    op.create_index("ix_invoices_client", "invoices", ["client_id", "created_at"], unique=False)
    op.create_index("ix_invoices_created", "invoices", ["created_at", "invoice_id"], unique=False)
    op.create_index(
        "ix_invoices_due", "invoices", ["due_date"], unique=False, postgresql_where=sa.text("status = 'SENT'")
    )
    op.create_index("ix_invoices_project", "invoices", ["project_id", "created_at"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("line_id", sa.UUID(), nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("grouping_key", sa.Text(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("hourly_rate", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("amount", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("entry_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.invoice_id"], name=op.f("fk_invoice_lines_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(op.f("ix_invoice_lines_invoice_id"), "invoice_lines", ["invoice_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_invoice_lines_invoice_id"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_project", table_name="invoices")
    op.drop_index("ix_invoices_due", table_name="invoices", postgresql_where=sa.text("status = 'SENT'"))
    op.drop_index("ix_invoices_created", table_name="invoices")
    op.drop_index("ix_invoices_client", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(
        "ix_invoice_requests_pending",
        table_name="invoice_requests",
        postgresql_where=sa.text("state = 'PENDING'"),
    )
    op.drop_table("invoice_requests")
    op.drop_table("invoice_number_counters")
