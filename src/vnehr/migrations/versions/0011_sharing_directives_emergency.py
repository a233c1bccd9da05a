"""sharing: the citizen's directives and emergency accesses

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_directive",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("person_id", BIG, nullable=False),
        sa.Column("grantee", sa.String(length=5), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column(
            "sensitive", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("valid_from", WHEN, nullable=False),
        sa.Column("valid_to", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_directive")),
    )
    with op.batch_alter_table("consent_directive", schema=None) as batch_op:
        batch_op.create_index("ix_consent_directive_person", ["person_id", "grantee"], unique=False)
    op.create_table(
        "emergency_access",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("person_id", BIG, nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("clinician", sa.String(length=100), nullable=False),
        sa.Column("reason_code", sa.String(length=30), nullable=False),
        sa.Column("reason_text", sa.String(length=1000), nullable=False),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("reviewed_at", WHEN, nullable=True),
        sa.Column("review_note", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_access")),
    )
    with op.batch_alter_table("emergency_access", schema=None) as batch_op:
        batch_op.create_index(
            "ix_emergency_access_person",
            ["person_id", "facility_code", "expires_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_emergency_access_status", ["status", "facility_code"], unique=False
        )


def downgrade() -> None:
    op.drop_table("emergency_access")
    op.drop_table("consent_directive")
