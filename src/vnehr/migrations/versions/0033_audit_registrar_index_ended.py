"""ix_audit_event_registrar also over ``representative.ended``: a link the officer ended at the
ward office is in their recent work on the ward page (D205), read from their own rows as the
links, cards and residences they recorded. A partial index's condition cannot be changed in
place: the index is built again. Only an index (no rewrite).

On PostgreSQL the new one is built concurrently under another name while the old one still
serves the ward page, then takes the old one's place (a rename waits for no reader); an upgrade
stopped half way is run again from the start (as 0031).

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-28 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_audit_event_registrar"
BUILDING = "ix_audit_event_registrar_new"
TABLE = "audit_event"
COLUMNS = ["actor", "at"]
#: as ``audit.log.REGISTRAR_WHERE`` (a migration does not import the models)
WHERE = sa.text(
    "action IN ('representative.added', 'card.added', 'person.residence_set',"
    " 'representative.ended')"
)
#: 0031's
BEFORE = sa.text("action IN ('representative.added', 'card.added', 'person.residence_set')")


def _rebuild(where: sa.TextClause) -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(NAME, table_name=TABLE)
        op.create_index(NAME, TABLE, COLUMNS, sqlite_where=where)
        return
    # concurrently, outside the upgrade's transaction: the audit log is written on every read
    # while it is built. What a build stopped before left (an index half built, invalid) is
    # dropped first.
    with op.get_context().autocommit_block():
        op.drop_index(BUILDING, table_name=TABLE, postgresql_concurrently=True, if_exists=True)
        op.create_index(
            BUILDING, TABLE, COLUMNS, postgresql_where=where, postgresql_concurrently=True
        )
        op.drop_index(NAME, table_name=TABLE, postgresql_concurrently=True, if_exists=True)
        op.execute(f"ALTER INDEX {BUILDING} RENAME TO {NAME}")


def upgrade() -> None:
    _rebuild(WHERE)


def downgrade() -> None:
    _rebuild(BEFORE)
