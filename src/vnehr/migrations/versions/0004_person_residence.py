"""identity: the person's ward of residence (scopes registrar actions, D24)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("residence_ward_code", sa.String(length=5), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_person_residence_ward_code"), ["residence_ward_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_residence_ward_code"))
        batch_op.drop_column("residence_ward_code")
