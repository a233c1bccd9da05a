"""checkin_entry: the visits checked in (XML0), to find those whose full file never came (D65)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "checkin_entry",
        sa.Column("id", BigId, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("visit_key", sa.String(length=100), nullable=False),
        sa.Column("began_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_cost_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_checkin_entry_visit", "checkin_entry", ["facility_code", "visit_key"])
    op.create_index(
        "ix_checkin_entry_facility_received", "checkin_entry", ["facility_code", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_checkin_entry_facility_received", table_name="checkin_entry")
    op.drop_index("ix_checkin_entry_visit", table_name="checkin_entry")
    op.drop_table("checkin_entry")
