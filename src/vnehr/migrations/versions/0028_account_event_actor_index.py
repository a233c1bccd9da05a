"""health_account_event (actor, at): what an officer did at the ward office, newest first
(the ward page), read from the officer's own rows rather than by walking every account's
history backwards. Only an index (no rewrite).

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-28 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_health_account_event_actor"
TABLE = "health_account_event"
COLUMNS = ["actor", "at"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, TABLE, COLUMNS)
        return
    # concurrently, outside the upgrade's transaction: accounts keep opening while it is
    # built; an index left invalid by a concurrent build that failed is built again (as 0027)
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
            ),
            {"name": NAME},
        )
        if invalid:
            op.drop_index(NAME, table_name=TABLE, postgresql_concurrently=True)
        op.create_index(NAME, TABLE, COLUMNS, postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
