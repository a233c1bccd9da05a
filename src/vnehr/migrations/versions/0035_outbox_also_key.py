"""Keys an outbox event holds back besides its own (``outbox_also_key``, D256): a check-in of
several visits is one signed file, sent once under its first visit's key; the other visits'
files now wait behind it too. A row goes with its event (``ON DELETE CASCADE``). Check-ins
recorded before keep holding their first visit only.

Revision ID: 0035
Revises: 0034
Create Date: 2026-11-28 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_also_key",
        sa.Column(
            "event_id",
            _ID,
            sa.ForeignKey("outbox_event.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(200), primary_key=True),
    )
    op.create_index("ix_outbox_also_key_key", "outbox_also_key", ["key", "event_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_also_key_key", table_name="outbox_also_key")
    op.drop_table("outbox_also_key")
