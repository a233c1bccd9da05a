"""papers at national volume: a counter per facility, kind and year for the numbers the hub
makes (seeded from the driver's certificates issued), and the revocation list's own index

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-27 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVOKED = sa.text("revoked_at IS NOT NULL")

#: The highest serial of each facility's numbers of the hub's shape
#: ``{facility}.KSK.{serial}.{yy}`` (serial of 6 to 9 digits) per year, among its driver's
#: certificates: the counters go on from there. Numbers of another shape (the facility's
#: own), or naming another facility, never collide with the hub's and are left out.
SEED = """
INSERT INTO paper_counter (facility_code, kind, year, last_serial)
SELECT facility_code, 'driver', 2000 + CAST(yy AS INTEGER), MAX(CAST(serial AS INTEGER))
FROM (
    SELECT facility_code,
           substr(number, 11, length(number) - 13) AS serial,
           substr(number, length(number) - 1, 2) AS yy
    FROM paper
    WHERE kind = 'driver'
      AND length(number) BETWEEN 19 AND 22
      AND substr(number, 1, 5) = facility_code
      AND substr(number, 6, 5) = '.KSK.'
      AND substr(number, length(number) - 2, 1) = '.'
) AS hub
WHERE {digits}
GROUP BY facility_code, yy
"""
DIGITS = {
    "postgresql": "serial ~ '^[0-9]+$' AND yy ~ '^[0-9]{2}$'",
    "sqlite": "serial NOT GLOB '*[^0-9]*' AND yy GLOB '[0-9][0-9]'",
}


def upgrade() -> None:
    op.create_table(
        "paper_counter",
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_serial", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("facility_code", "kind", "year", name=op.f("pk_paper_counter")),
    )
    dialect = op.get_bind().dialect.name
    op.execute(SEED.format(digits=DIGITS.get(dialect, DIGITS["postgresql"])))
    # the revocation list reads the revoked papers alone, in order, with their rid
    op.create_index(
        "ix_paper_revocations",
        "paper",
        ["revoked_at", "rid"],
        postgresql_where=REVOKED,
        sqlite_where=REVOKED,
    )
    op.drop_index("ix_paper_revoked", table_name="paper")


def downgrade() -> None:
    op.create_index("ix_paper_revoked", "paper", ["revoked_at"])
    op.drop_index("ix_paper_revocations", table_name="paper")
    op.drop_table("paper_counter")
