"""kit: portal sessions signed out before their cookies expired

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ended_session",
        sa.Column("sid", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_ended_session")),
    )
    op.create_index("ix_ended_session_expires_at", "ended_session", ["expires_at"])


def downgrade() -> None:
    op.drop_table("ended_session")
