"""timeline_entry.insurance_cards and insurance_cards_version: the visit's insurance cards (XML1
MA_THE_BHYT) and the version they were read from, so that the FHIR Patient lists them without
opening the visits (D114). Only the columns are added (nullable, no default: no rewrite, no
read of the visits); `vnehr db backfill-cards` fills the rows stored before, in batches, while
the service runs. Until then the Patient opens those rows' visits, as before.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-27 03:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timeline_entry", sa.Column("insurance_cards", sa.Text(), nullable=True))
    version_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("timeline_entry", sa.Column("insurance_cards_version", version_id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_column("insurance_cards_version")
        batch.drop_column("insurance_cards")
