"""timeline_entry.insurance_cards: the visit's insurance cards (XML1 MA_THE_BHYT), so that the
FHIR Patient lists them without opening the visits (D114); filled for existing rows in batches

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-27 03:50:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from vnehr.kit.db import unpack_json

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000


def _cards(tables: Any) -> str | None:
    """As ``records`` keeps them: the cards of XML1 MA_THE_BHYT, trimmed, ";"-separated."""
    xml1 = ((tables or {}).get("XML1") or [{}])[0]
    cards = [c.strip() for c in str(xml1.get("MA_THE_BHYT") or "").split(";") if c.strip()]
    return ";".join(cards) or None


def upgrade() -> None:
    op.add_column("timeline_entry", sa.Column("insurance_cards", sa.Text(), nullable=True))
    bind = op.get_bind()
    entries = sa.table(
        "timeline_entry",
        sa.column("id", sa.BigInteger),
        sa.column("version_id", sa.BigInteger),
        sa.column("insured", sa.Boolean),
        sa.column("insurance_cards", sa.Text),
    )
    versions = sa.table(
        "visit_version", sa.column("id", sa.BigInteger), sa.column("tables", sa.LargeBinary)
    )
    last = 0
    while True:
        # only insured visits have a card (``insured`` is "MA_THE_BHYT is not blank")
        found = bind.execute(
            sa.select(entries.c.id, versions.c.tables)
            .select_from(entries.join(versions, versions.c.id == entries.c.version_id))
            .where(entries.c.id > last, entries.c.insured.is_(True))
            .order_by(entries.c.id)
            .limit(BATCH)
        ).all()
        if not found:
            return
        changed = [
            {"key": key, "cards": cards}
            for key, packed in found
            if (cards := _cards(unpack_json(bytes(packed)) if packed else None))
        ]
        if changed:
            bind.execute(
                entries.update()
                .where(entries.c.id == sa.bindparam("key"))
                .values(insurance_cards=sa.bindparam("cards")),
                changed,
            )
        last = found[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_column("insurance_cards")
