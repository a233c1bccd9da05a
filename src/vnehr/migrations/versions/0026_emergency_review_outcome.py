"""emergency_access.review_outcome: whether the review found the access justified. An access
found unjustified ends when it is reviewed; a justified one runs its time. Only the column is
added (nullable: accesses reviewed before say nothing, and run their time as they did).

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-28 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("emergency_access", sa.Column("review_outcome", sa.String(12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("emergency_access") as batch:
        batch.drop_column("review_outcome")
