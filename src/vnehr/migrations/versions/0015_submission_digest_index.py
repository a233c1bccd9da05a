"""submission: index on the raw file's digest (the import's resume check)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26 07:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_submission_raw_sha256", "submission", ["raw_sha256"])


def downgrade() -> None:
    op.drop_index("ix_submission_raw_sha256", table_name="submission")
