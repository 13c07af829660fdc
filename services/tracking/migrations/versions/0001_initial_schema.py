"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The overlap EXCLUDE constraint compares uuid with = inside a gist index.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "entry_audit",
        sa.Column("audit_id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("actor_user_id", sa.UUID(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_entry_audit")),
    )
    op.create_index(op.f("ix_entry_audit_entry_id"), "entry_audit", ["entry_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "time_entries",
        sa.Column("entry_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("is_billable", sa.Boolean(), nullable=False),
        sa.Column("hourly_rate", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("invoice_id", sa.UUID(), nullable=True),
        sa.Column("capped", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        postgresql.ExcludeConstraint(
            (sa.column("user_id"), "="),
            (sa.text("tstzrange(start_time, COALESCE(end_time, 'infinity'::timestamptz), '[)')"), "&&"),
            using="gist",
            name="ex_time_entries_no_overlap",
        ),
        sa.CheckConstraint(
            "end_time IS NULL OR end_time - start_time <= interval '24 hours'",
            name=op.f("ck_time_entries_at_most_24h"),
        ),
        sa.CheckConstraint(
            "end_time IS NULL OR end_time > start_time", name=op.f("ck_time_entries_end_after_start")
        ),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_time_entries")),
    )
    op.create_index(
        "ix_time_entries_project_start", "time_entries", ["project_id", "start_time"], unique=False
    )
    op.create_index("ix_time_entries_user_start", "time_entries", ["user_id", "start_time"], unique=False)
    op.create_index(
        "uq_time_entries_one_running_timer",
        "time_entries",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("end_time IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_time_entries_one_running_timer",
        table_name="time_entries",
        postgresql_where=sa.text("end_time IS NULL"),
    )
    op.drop_index("ix_time_entries_user_start", table_name="time_entries")
    op.drop_index("ix_time_entries_project_start", table_name="time_entries")
    op.drop_table("time_entries")
    op.drop_index(
        "ix_outbox_unpublished", table_name="outbox", postgresql_where=sa.text("published_at IS NULL")
    )
    op.drop_table("outbox")
    op.drop_index(op.f("ix_entry_audit_entry_id"), table_name="entry_audit")
    op.drop_table("entry_audit")
