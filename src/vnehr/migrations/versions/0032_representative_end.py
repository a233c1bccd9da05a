"""representative.ended_at, ended_by and end_reason: a link ended by the office that may record
it (a court removed a guardian, a ward office recorded the wrong parent) keeps when, by whom and
why; its period's end is ``valid_to`` as before. Only nullable columns are added (no default:
no rewrite); links stored before read as never ended.

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-28 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("representative", sa.Column("ended_at", sa.DateTime(timezone=True)))
    op.add_column("representative", sa.Column("ended_by", sa.String(60)))
    op.add_column("representative", sa.Column("end_reason", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("representative") as batch:
        batch.drop_column("end_reason")
        batch.drop_column("ended_by")
        batch.drop_column("ended_at")
