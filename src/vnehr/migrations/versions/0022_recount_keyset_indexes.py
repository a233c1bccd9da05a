"""the report's recount reads rejected files and first papers in the order received/issued:
a partial index of each (D103)

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-27 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REJECTED = sa.text("rejected > 0")
FIRST_VERSION = sa.text("version = 1")


def upgrade() -> None:
    op.create_index(
        "ix_submission_rejected_received",
        "submission",
        ["received_at", "id"],
        postgresql_where=REJECTED,
        sqlite_where=REJECTED,
    )
    op.create_index(
        "ix_paper_first_issued",
        "paper",
        ["issued_at", "id"],
        postgresql_where=FIRST_VERSION,
        sqlite_where=FIRST_VERSION,
    )


def downgrade() -> None:
    op.drop_index("ix_paper_first_issued", table_name="paper")
    op.drop_index("ix_submission_rejected_received", table_name="submission")
