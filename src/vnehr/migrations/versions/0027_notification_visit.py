"""notification.facility_code and visit_key: the visit a new visit's notice tells of, in
columns of their own with a partial index, so that the inbox finds in one indexed look
whether the person was told of that visit already (a visit corrected out of a book and back
before the worker delivered was told twice). Only the columns are added (nullable, no
default: no rewrite); rows stored before keep them empty and are not in the index.

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-28 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_notification_visit"
COLUMNS = ["person_id", "facility_code", "visit_key"]
OF_A_VISIT = sa.text("visit_key IS NOT NULL")


def upgrade() -> None:
    op.add_column("notification", sa.Column("facility_code", sa.String(5), nullable=True))
    op.add_column("notification", sa.Column("visit_key", sa.String(100), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, "notification", COLUMNS, sqlite_where=OF_A_VISIT)
        return
    # concurrently, outside the upgrade's transaction (its earlier steps are committed
    # first): the inbox keeps writing while the table is read; an index left invalid by a
    # concurrent build that failed is dropped and built again (as 0022)
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
            ),
            {"name": NAME},
        )
        if invalid:
            op.drop_index(NAME, table_name="notification", postgresql_concurrently=True)
        op.create_index(
            NAME,
            "notification",
            COLUMNS,
            postgresql_where=OF_A_VISIT,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    op.drop_index(NAME, table_name="notification")
    with op.batch_alter_table("notification") as batch:
        batch.drop_column("visit_key")
        batch.drop_column("facility_code")
