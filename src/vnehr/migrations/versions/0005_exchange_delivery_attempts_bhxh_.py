"""exchange: delivery attempts, BHXH receipts, outbox status

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 23:43:18.096929
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "bhxh_receipt",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("visit_key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ma_giao_dich", sa.String(length=100), nullable=False),
        sa.Column("portal_received_at", sa.String(length=14), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bhxh_receipt")),
        sa.UniqueConstraint("version_id", name=op.f("uq_bhxh_receipt_version_id")),
    )
    op.create_table(
        "delivery_attempt",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=60), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempt")),
    )
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_attempt_event", ["event_id", "attempt"], unique=False)

    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        # Rows written before this revision: delivered by nobody yet, due now.
        batch_op.add_column(
            sa.Column("status", sa.String(length=10), nullable=False, server_default="pending")
        )
        batch_op.add_column(
            sa.Column(
                "next_attempt_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            )
        )
        batch_op.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch_op.drop_index(batch_op.f("ix_outbox_event_pending"))
        batch_op.create_index(
            "ix_outbox_event_due", ["status", "next_attempt_at", "id"], unique=False
        )
        batch_op.create_index("ix_outbox_event_key", ["key", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_event_key")
        batch_op.drop_index("ix_outbox_event_due")
        batch_op.create_index(
            batch_op.f("ix_outbox_event_pending"), ["delivered_at", "id"], unique=False
        )
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("status")

    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_attempt_event")

    op.drop_table("delivery_attempt")
    op.drop_table("bhxh_receipt")
