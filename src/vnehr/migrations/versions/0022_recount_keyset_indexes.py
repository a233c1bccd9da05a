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


def _build(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    """On PostgreSQL concurrently (outside the upgrade's transaction, whose earlier steps are
    committed first): the intake keeps writing while the table is read. An index left invalid
    by a concurrent build that failed is dropped and built again. SQLite builds it in the
    transaction as any other step."""
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(name, table, columns, sqlite_where=where)
        return
    with op.get_context().autocommit_block():
        invalid = op.get_bind().scalar(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
            ),
            {"name": name},
        )
        if invalid:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
        op.create_index(
            name,
            table,
            columns,
            postgresql_where=where,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def upgrade() -> None:
    _build("ix_submission_rejected_received", "submission", ["received_at", "id"], REJECTED)
    _build("ix_paper_first_issued", "paper", ["issued_at", "id"], FIRST_VERSION)


def downgrade() -> None:
    op.drop_index("ix_paper_first_issued", table_name="paper")
    op.drop_index("ix_submission_rejected_received", table_name="submission")
