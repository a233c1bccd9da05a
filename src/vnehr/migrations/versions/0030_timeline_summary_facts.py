"""timeline_entry.summary_facts and summary_version: what the downloaded book's summary reads
of a visit (its XML1 diagnoses, blood group and weight, and until when its medicines count)
and the version they were read from, so that the PDF of a book of thousands of visits reads
these rows instead of opening every visit (D209, as amended). Only the columns are added
(nullable, no default: no rewrite, no read of the visits, as 0024 and 0025, D118);
`vnehr db backfill-cards` fills the rows stored before, in batches, while the service runs.
Until then those rows' visits are opened, as before.

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-28 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timeline_entry", sa.Column("summary_facts", sa.Text(), nullable=True))
    version_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("timeline_entry", sa.Column("summary_version", version_id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_column("summary_version")
        batch.drop_column("summary_facts")
