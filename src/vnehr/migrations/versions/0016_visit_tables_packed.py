"""visit_version.tables: zstd-compressed JSON (bytea/BLOB) instead of JSONB/JSON (D51)

The canonical tables of a visit are only ever read whole. Stored compressed they take about a
fifth of the space and PostgreSQL no longer parses 20 KB of JSON per visit on the way in.
Existing rows are converted in batches (the downgrade converts them back).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 09:40:00
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from vnehr.kit.db import pack_json, unpack_json

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _convert(source: str, target: str, change: Any, target_type: Any) -> None:
    """Copy ``source`` into the new column ``target`` through ``change``, batch by batch."""
    bind = op.get_bind()
    rows = sa.table("visit_version", sa.column("id", sa.BigInteger), sa.column(target, target_type))
    last = 0
    while True:
        key_column: Any = sa.column("id", sa.BigInteger)
        found = bind.execute(
            sa.select(key_column, sa.column(source))
            .select_from(sa.table("visit_version"))
            .where(key_column > last)
            .order_by(key_column)
            .limit(BATCH)
        ).all()
        if not found:
            return
        bind.execute(
            rows.update().where(rows.c.id == sa.bindparam("key")),
            [{"key": key, target: change(value)} for key, value in found],
        )
        last = found[-1][0]


def _swap(old: str, new: str, new_type: Any) -> None:
    with op.batch_alter_table("visit_version") as batch:
        batch.drop_column(old)
    with op.batch_alter_table("visit_version") as batch:
        batch.alter_column(new, new_column_name=old, existing_type=new_type, nullable=False)


def upgrade() -> None:
    op.add_column("visit_version", sa.Column("tables_packed", sa.LargeBinary(), nullable=True))
    _convert(
        "tables",
        "tables_packed",
        lambda value: pack_json(json.loads(value) if isinstance(value, str) else value),
        sa.LargeBinary(),
    )
    _swap("tables", "tables_packed", sa.LargeBinary())


def downgrade() -> None:
    op.add_column("visit_version", sa.Column("tables_json", JSON_DOC, nullable=True))
    _convert("tables", "tables_json", lambda value: unpack_json(bytes(value)), JSON_DOC)
    _swap("tables", "tables_json", JSON_DOC)
