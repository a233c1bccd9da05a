"""facility.search_key: what the citizen's search of the facilities to share with matches
(code, name, address, the ward's names, folded), filled here for the facilities registered
before; an index of the connected facilities' keys: trigrams (pg_trgm, GIN) on PostgreSQL,
so that a word found anywhere in a key is looked up rather than read from every row.

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-28 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_facility_search"
RECEIVES = sa.text("status = 'connected'")


def _fill() -> None:
    """The keys of the facilities already registered, made as registering makes them now,
    with the packaged catalogue's ward and province names (the lists ``vnehr catalog load``
    loads)."""
    from vnehr.catalogs import offline
    from vnehr.facilities import search_key
    from vnehr.kit.clock import today_in_vietnam

    bind = op.get_bind()
    facility = sa.table(
        "facility",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("address", sa.String),
        sa.column("ward_code", sa.String),
        sa.column("province_code", sa.String),
        sa.column("search_key", sa.Text),
    )
    rows = bind.execute(
        sa.select(
            facility.c.code,
            facility.c.name,
            facility.c.address,
            facility.c.ward_code,
            facility.c.province_code,
        )
    ).all()
    if not rows:
        return
    book, today = offline(), today_in_vietnam()
    keys = [
        {
            "code_": row.code,
            "key": search_key(
                book,
                code=row.code,
                name=row.name,
                address=row.address,
                ward_code=row.ward_code,
                province_code=row.province_code,
                day=today,
            ),
        }
        for row in rows
    ]
    bind.execute(
        facility.update()
        .where(facility.c.code == sa.bindparam("code_"))
        .values(search_key=sa.bindparam("key")),
        keys,
    )


def upgrade() -> None:
    op.add_column("facility", sa.Column("search_key", sa.Text(), server_default="", nullable=False))
    _fill()
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, "facility", ["search_key"], sqlite_where=RECEIVES)
        return
    # concurrently, outside the upgrade's transaction (its earlier steps are committed
    # first), as 0022 and 0027; an index left invalid by a failed build is built again.
    # pg_trgm is a trusted extension: the database's owner may create it (or an
    # administrator once, beforehand).
    with op.get_context().autocommit_block():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        invalid = op.get_bind().scalar(
            sa.text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
            ),
            {"name": NAME},
        )
        if invalid:
            op.drop_index(NAME, table_name="facility", postgresql_concurrently=True)
        op.create_index(
            NAME,
            "facility",
            ["search_key"],
            postgresql_using="gin",
            postgresql_ops={"search_key": "gin_trgm_ops"},
            postgresql_where=RECEIVES,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    op.drop_index(NAME, table_name="facility")
    with op.batch_alter_table("facility") as batch:
        batch.drop_column("search_key")
