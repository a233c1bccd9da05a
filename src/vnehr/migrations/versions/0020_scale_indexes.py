"""indexes for national volume: the pending outbox, FHIR identifiers by resource, emergency
accesses by time (D80)

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_event_pending",
        "outbox_event",
        ["id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_outbox_event_pending_key",
        "outbox_event",
        ["key", "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_fhir_identifier_resource", "fhir_identifier", ["resource_type", "resource_id"]
    )
    op.create_index("ix_emergency_access_opened", "emergency_access", ["opened_at"])


def downgrade() -> None:
    op.drop_index("ix_emergency_access_opened", table_name="emergency_access")
    op.drop_index("ix_fhir_identifier_resource", table_name="fhir_identifier")
    op.drop_index("ix_outbox_event_pending_key", table_name="outbox_event")
    op.drop_index("ix_outbox_event_pending", table_name="outbox_event")
