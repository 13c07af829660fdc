"""directory tables

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
        "clients",
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_address", sa.Text(), server_default="", nullable=False),
        sa.Column("tax_rate", sa.Numeric(precision=5, scale=2), server_default="0", nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("archived", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "payment_terms_days >= 0 AND payment_terms_days <= 365",
            name=op.f("ck_clients_payment_terms_range"),
        ),
        sa.CheckConstraint("tax_rate >= 0 AND tax_rate <= 100", name=op.f("ck_clients_tax_rate_percent")),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_clients")),
    )
    op.create_index("ix_clients_created", "clients", ["created_at", "client_id"], unique=False)
    op.create_table(
        "users",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("default_hourly_rate", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("role IN ('EMPLOYEE', 'MANAGER', 'ADMIN')", name=op.f("ck_users_role_known")),
        sa.CheckConstraint(
            "default_hourly_rate IS NULL OR default_hourly_rate >= 0", name=op.f("ck_users_rate_not_negative")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_index("ix_users_created", "users", ["created_at", "user_id"], unique=False)
    op.create_index("uq_users_email_ci", "users", [sa.literal_column("lower(email)")], unique=True)
    op.create_table(
        "projects",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("client_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="ACTIVE", nullable=False),
        sa.Column("billing_type", sa.String(length=16), nullable=False),
        sa.Column("budget_hours", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("budget_amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("default_hourly_rate", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "billing_type IN ('HOURLY', 'FIXED', 'NON_BILLABLE')", name=op.f("ck_projects_billing_type_known")
        ),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'COMPLETED', 'ARCHIVED')", name=op.f("ck_projects_status_known")
        ),
        sa.CheckConstraint(
            "budget_amount IS NULL OR budget_amount >= 0", name=op.f("ck_projects_budget_amount_not_negative")
        ),
        sa.CheckConstraint(
            "budget_hours IS NULL OR budget_hours >= 0", name=op.f("ck_projects_budget_hours_not_negative")
        ),
        sa.CheckConstraint(
            "default_hourly_rate IS NULL OR default_hourly_rate >= 0",
            name=op.f("ck_projects_rate_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.client_id"], name=op.f("fk_projects_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_projects")),
    )
    op.create_index("ix_projects_created", "projects", ["created_at", "project_id"], unique=False)
    op.create_index(
        "uq_projects_client_name_ci", "projects", ["client_id", sa.literal_column("lower(name)")], unique=True
    )
    op.create_table(
        "project_members",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("project_role", sa.String(length=16), server_default="MEMBER", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "project_role IN ('MEMBER', 'MANAGER')", name=op.f("ck_project_members_project_role_known")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name=op.f("fk_project_members_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_project_members_user_id_users")
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_members")),
    )
    op.create_index("ix_project_members_user", "project_members", ["user_id", "project_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("estimated_hours", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("is_billable", sa.Boolean(), nullable=True),
        sa.Column("archived", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "estimated_hours IS NULL OR estimated_hours >= 0", name=op.f("ck_tasks_estimate_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name=op.f("fk_tasks_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
    )
    op.create_index(
        "ix_tasks_project_created", "tasks", ["project_id", "created_at", "task_id"], unique=False
    )
    op.create_index(
        "uq_tasks_project_name_ci", "tasks", ["project_id", sa.literal_column("lower(name)")], unique=True
    )
    op.create_table(
        "project_user_rates",
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("hourly_rate", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("hourly_rate >= 0", name=op.f("ck_project_user_rates_rate_not_negative")),
        sa.ForeignKeyConstraint(
            ["project_id", "user_id"],
            ["project_members.project_id", "project_members.user_id"],
            name="fk_project_user_rates_member",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_user_rates")),
    )


def downgrade() -> None:
    op.drop_table("project_user_rates")
    op.drop_index("uq_tasks_project_name_ci", table_name="tasks")
    op.drop_index("ix_tasks_project_created", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("ix_project_members_user", table_name="project_members")
    op.drop_table("project_members")
    op.drop_index("uq_projects_client_name_ci", table_name="projects")
    op.drop_index("ix_projects_created", table_name="projects")
    op.drop_table("projects")
    op.drop_index("uq_users_email_ci", table_name="users")
    op.drop_index("ix_users_created", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_clients_created", table_name="clients")
    op.drop_table("clients")
