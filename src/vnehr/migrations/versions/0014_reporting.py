"""reporting: rollups, ward population, declared visits, notes

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "report_count",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("ward", sa.String(length=5), nullable=False),
        sa.Column("facility", sa.String(length=5), nullable=False),
        sa.Column("metric", sa.String(length=30), nullable=False),
        sa.Column("dim1", sa.String(length=30), nullable=False),
        sa.Column("dim2", sa.String(length=30), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_count")),
        sa.UniqueConstraint(
            "month",
            "province",
            "ward",
            "facility",
            "metric",
            "dim1",
            "dim2",
            name=op.f("uq_report_count_month_province_ward_facility_metric_dim1_dim2"),
        ),
    )
    with op.batch_alter_table("report_count", schema=None) as batch_op:
        batch_op.create_index(
            "ix_report_count_lookup", ["province", "month", "metric"], unique=False
        )
    op.create_table(
        "ward_population",
        sa.Column("ward_code", sa.String(length=5), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("population", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("ward_code", name=op.f("pk_ward_population")),
    )
    op.create_table(
        "declared_visits",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=6), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("category", sa.String(length=30), nullable=False),
        sa.Column("insured", sa.Boolean(), nullable=False),
        sa.Column("visits", sa.BigInteger(), nullable=False),
        sa.Column("declared_at", WHEN, nullable=False),
        sa.Column("declared_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declared_visits")),
        sa.UniqueConstraint(
            "period",
            "facility_code",
            "category",
            "insured",
            name=op.f("uq_declared_visits_period_facility_code_category_insured"),
        ),
    )
    op.create_table(
        "report_note",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=6), nullable=False),
        sa.Column("province", sa.String(length=2), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_note")),
        sa.UniqueConstraint("period", "province", name=op.f("uq_report_note_period_province")),
    )


def downgrade() -> None:
    op.drop_table("report_note")
    op.drop_table("declared_visits")
    op.drop_table("ward_population")
    op.drop_table("report_count")
