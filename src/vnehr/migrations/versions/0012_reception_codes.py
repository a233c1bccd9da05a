"""sharing: one-time codes shown at reception

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reception_code",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("person_id", BIG, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.Column("used_by", sa.String(length=100), nullable=True),
        sa.Column("directive_id", BIG, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reception_code")),
    )
    with op.batch_alter_table("reception_code", schema=None) as batch_op:
        batch_op.create_index("ix_reception_code_person", ["person_id", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("reception_code")
