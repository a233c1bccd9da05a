"""catalogues: lists, versioned entries, old-to-new mappings

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "catalog_list",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("national_field", sa.String(40), nullable=True),
        sa.Column("title_vi", sa.String(200), nullable=False),
        sa.Column("title_en", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("edition", sa.String(100), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_catalog_list")),
        sa.UniqueConstraint("national_field", name=op.f("uq_catalog_list_national_field")),
    )
    op.create_table(
        "catalog_entry",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("list_name", sa.String(40), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("title_vi", sa.String(500), nullable=True),
        sa.Column("title_en", sa.String(500), nullable=True),
        sa.Column("kind", sa.String(40), nullable=True),
        sa.Column("parent_code", sa.String(40), nullable=True),
        sa.Column("parent_list", sa.String(40), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("attrs", JSONDoc, nullable=True),
        sa.Column("search_key", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_name"],
            ["catalog_list.name"],
            name=op.f("fk_catalog_entry_list_name_catalog_list"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_entry")),
    )
    op.create_index("ix_catalog_entry_list_code", "catalog_entry", ["list_name", "code", "id"])
    op.create_index("ix_catalog_entry_parent", "catalog_entry", ["parent_list", "parent_code"])
    op.create_table(
        "catalog_mapping",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("list_name", sa.String(40), nullable=False),
        sa.Column("from_entry_id", BigId, nullable=False),
        sa.Column("to_entry_id", BigId, nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_name"],
            ["catalog_list.name"],
            name=op.f("fk_catalog_mapping_list_name_catalog_list"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_entry_id"],
            ["catalog_entry.id"],
            name=op.f("fk_catalog_mapping_from_entry_id_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_entry_id"],
            ["catalog_entry.id"],
            name=op.f("fk_catalog_mapping_to_entry_id_catalog_entry"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_mapping")),
    )
    op.create_index("ix_catalog_mapping_from", "catalog_mapping", ["from_entry_id"])
    op.create_index("ix_catalog_mapping_to", "catalog_mapping", ["to_entry_id"])


def downgrade() -> None:
    op.drop_table("catalog_mapping")
    op.drop_table("catalog_entry")
    op.drop_table("catalog_list")
