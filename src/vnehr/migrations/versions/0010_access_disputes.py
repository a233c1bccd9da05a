"""audit: a citizen's "I don't recognise this" cases

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "access_dispute",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("audit_event_id", BIG, nullable=False),
        sa.Column("person_id", BIG, nullable=False),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finding", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_event_id"],
            ["audit_event.id"],
            name=op.f("fk_access_dispute_audit_event_id_audit_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_dispute")),
    )
    with op.batch_alter_table("access_dispute", schema=None) as batch_op:
        batch_op.create_index("ix_access_dispute_status", ["status", "opened_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_access_dispute_person_id"), ["person_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("access_dispute")
