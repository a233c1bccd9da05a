"""timeline_entry.sensitive_categories and sensitive_version: the sensitive categories (D35)
a visit touches and the version they were read from, so that a representative of a person of
16 or 17 gets a page of the book without opening the visits it leaves out (D132). Only the
columns are added (nullable, no default: no rewrite, no read of the visits, as 0024, D118);
`vnehr db backfill-cards` fills the rows stored before, in batches, while the service runs.
Until then those rows' visits are opened, as before.

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-28 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timeline_entry", sa.Column("sensitive_categories", sa.Text(), nullable=True))
    version_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("timeline_entry", sa.Column("sensitive_version", version_id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_column("sensitive_version")
        batch.drop_column("sensitive_categories")
