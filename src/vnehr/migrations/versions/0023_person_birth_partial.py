"""a birth known by its year or month only is kept as such ("yyyy", "yyyy-mm"), so that a
parent's representation ends by it and a more precise date can replace it (D105)

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-27 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("person", sa.Column("birth_partial", sa.String(7), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("person") as batch:
        batch.drop_column("birth_partial")
