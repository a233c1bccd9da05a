"""fhir: resources written through FHIR (not part of a visit), and their identifiers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fhir_resource",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("person_id", BIG, nullable=True),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_resource")),
        sa.UniqueConstraint(
            "resource_type",
            "resource_id",
            "version",
            name=op.f("uq_fhir_resource_resource_type_resource_id_version"),
        ),
    )
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_resource_current", ["resource_type", "resource_id", "current"], unique=False
        )
        batch_op.create_index(
            "ix_fhir_resource_person", ["person_id", "resource_type"], unique=False
        )
        batch_op.create_index(
            "ix_fhir_resource_writer", ["facility_code", "resource_type"], unique=False
        )
    op.create_table(
        "fhir_identifier",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("resource_type", sa.String(length=40), nullable=False),
        sa.Column("system", sa.String(length=300), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_identifier")),
    )
    with op.batch_alter_table("fhir_identifier", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_identifier_value", ["resource_type", "value", "system"], unique=False
        )


def downgrade() -> None:
    op.drop_table("fhir_identifier")
    op.drop_table("fhir_resource")
