"""papers: electronic papers with their signed health cards

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "paper",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("number", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("visit_key", sa.String(length=100), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("person_id", BIG, nullable=True),
        sa.Column("personal_id", sa.String(length=15), nullable=True),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("content", JSON, nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("rid", sa.String(length=24), nullable=False),
        sa.Column("issued_at", WHEN, nullable=False),
        sa.Column("issued_by", sa.String(length=100), nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.Column("used_by", sa.String(length=120), nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.Column("revoke_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper")),
        sa.UniqueConstraint(
            "facility_code",
            "kind",
            "number",
            "version",
            name=op.f("uq_paper_facility_code_kind_number_version"),
        ),
        sa.UniqueConstraint("rid", name=op.f("uq_paper_rid")),
    )
    with op.batch_alter_table("paper", schema=None) as batch_op:
        batch_op.create_index("ix_paper_person", ["person_id", "issued_at"], unique=False)
        batch_op.create_index("ix_paper_visit", ["facility_code", "visit_key"], unique=False)
        batch_op.create_index("ix_paper_cited", ["number", "kind", "status"], unique=False)
        batch_op.create_index("ix_paper_revoked", ["revoked_at"], unique=False)


def downgrade() -> None:
    op.drop_table("paper")
