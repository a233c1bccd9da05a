"""audit_event (actor, at) for a registrar's acts only: what an officer recorded at the ward
office (representatives, insurance cards, residences), newest first, for the ward page (D205),
read from the officer's own rows. A partial index: the reads written on every look-up at a
record pay for no second index. Only an index (no rewrite).

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-28 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_audit_event_registrar"
TABLE = "audit_event"
COLUMNS = ["actor", "at"]
#: as ``audit.log.REGISTRAR_WHERE`` (a migration does not import the models)
WHERE = sa.text("action IN ('representative.added', 'card.added', 'person.residence_set')")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, TABLE, COLUMNS, sqlite_where=WHERE)
        return
    # concurrently, outside the upgrade's transaction: the audit log is written on every read
    # while it is built; an index left invalid by a concurrent build that failed is built
    # again (as 0027, 0028)
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
        op.create_index(
            NAME,
            TABLE,
            COLUMNS,
            postgresql_where=WHERE,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
