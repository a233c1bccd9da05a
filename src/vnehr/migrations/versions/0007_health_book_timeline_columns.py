"""health book: the timeline carries what the citizen's list shows

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("visit_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=2), nullable=True))
    with op.batch_alter_table("timeline_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=2), nullable=True))
        batch_op.add_column(
            sa.Column("insured", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_index("ix_timeline_entry_person")
        batch_op.create_index(
            "ix_timeline_entry_person", ["person_id", "ended_at", "id"], unique=False
        )
    # Fill the new columns of visits stored before this revision from their current version.
    op.execute(
        """
        UPDATE timeline_entry SET
          insured = (SELECT v.insured FROM visit_version v WHERE v.id = timeline_entry.version_id),
          started_at = (SELECT v.started_at FROM visit_version v
                        WHERE v.id = timeline_entry.version_id),
          version = (SELECT v.version FROM visit_version v WHERE v.id = timeline_entry.version_id),
          updated_at = (SELECT v.received_at FROM visit_version v
                        WHERE v.id = timeline_entry.version_id)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("timeline_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_timeline_entry_person")
        batch_op.create_index("ix_timeline_entry_person", ["person_id", "ended_at"], unique=False)
        batch_op.drop_column("updated_at")
        batch_op.drop_column("version")
        batch_op.drop_column("started_at")
        batch_op.drop_column("insured")
        batch_op.drop_column("outcome")
    with op.batch_alter_table("visit_version", schema=None) as batch_op:
        batch_op.drop_column("outcome")
