"""bhxh_receipt: index on the visit (is a newer version already at the portal? D66)

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26 19:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_bhxh_receipt_visit", "bhxh_receipt", ["facility_code", "visit_key", "version"]
    )


def downgrade() -> None:
    op.drop_index("ix_bhxh_receipt_visit", table_name="bhxh_receipt")
