"""invoice claims and lookup indexes

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_claims",
        sa.Column("invoice_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_claims")),
    )
    op.create_index(
        "ix_time_entries_invoice_id",
        "time_entries",
        ["invoice_id"],
        unique=False,
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
    op.create_index("ix_time_entries_tags", "time_entries", ["tags"], unique=False, postgresql_using="gin")


def downgrade() -> None:
    op.drop_index("ix_time_entries_tags", table_name="time_entries", postgresql_using="gin")
    op.drop_index(
        "ix_time_entries_invoice_id",
        table_name="time_entries",
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
    op.drop_table("invoice_claims")
