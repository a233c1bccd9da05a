"""The recording of a mother's link made with her newborn's provisional identity, in the audit
log as any other link's (``representative.added``, the link its object, D245): a woman named as
the mother by mistake reports the link from her portal, a case about that row. From now on
``identity.add_newborn`` writes the row; this writes it for the links made before, with the
time and the actor of the link's own recording (``created_at``, ``created_by``) and
``"backfilled": "0034"`` in its detail. The audit sealer chains the new rows as it finds them.

Which links: a parent link whose agent is the represented person's mother and whose recording
has no row (looked up through ``ix_audit_event_registrar``, by the actor: the link's
``created_by``; the index's condition is repeated word for word, as SQLite uses a partial index
only then: without it each link scanned the whole audit log, 193 s for 2,000 links over 500,000
rows, against 0.03 s). A run stopped half way is run again: it writes only what is still missing.

Down: the rows stay. They tell what happened; an audit log is not rewritten.

Revision ID: 0034
Revises: 0033
Create Date: 2026-11-28 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DETAIL = {
    "postgresql": "jsonb_build_object('agent_id', r.agent_id, 'relation', r.relation,"
    " 'newborn', true, 'backfilled', '0034')",
    "sqlite": "json_object('agent_id', r.agent_id, 'relation', r.relation,"
    " 'newborn', json('true'), 'backfilled', '0034')",
}

_BACKFILL = """
INSERT INTO audit_event (at, actor, action, person_id, object_type, object_id, detail)
SELECT r.created_at, r.created_by, 'representative.added', r.subject_id, 'representative',
       CAST(r.id AS VARCHAR(200)), {detail}
FROM representative r JOIN person c ON c.id = r.subject_id
WHERE r.relation = 'parent' AND c.mother_id = r.agent_id
  AND NOT EXISTS (
    SELECT 1 FROM audit_event a
    WHERE a.actor = r.created_by AND a.action = 'representative.added'
      AND a.action IN ('representative.added', 'card.added', 'person.residence_set',
                       'representative.ended')
      AND a.object_type = 'representative' AND a.object_id = CAST(r.id AS VARCHAR(200)))
ORDER BY r.id
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(sa.text(_BACKFILL.format(detail=_DETAIL[dialect])))


def downgrade() -> None:
    """The rows stay (see above)."""
