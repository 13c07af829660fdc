"""outbox rows may carry a JSON body that the relay encodes

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from tt_common.migrations import add_outbox_encoded_bodies, drop_outbox_encoded_bodies

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_encoded_bodies()


def downgrade() -> None:
    drop_outbox_encoded_bodies()
