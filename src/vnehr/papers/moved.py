"""Papers that corrections stored by earlier releases left in the first holder's book:
``vnehr db backfill-papers``.

Before D170 a correction that gave a paper another holder kept its earlier versions in the
first holder's book, and so did a correction that dropped a paper from a visit it gave another
patient; until papers issued through the papers API followed their visit (``_withdraw``), one
issued for a visit later corrected to another patient stayed hers, and valid. This takes each
out of the book as a correction does now: a version whose holder is not the holder of its
paper's latest version, and a paper (not a birth certificate, which names its holder itself)
of a visit whose current version names another patient than the paper does. Such a paper
still valid is revoked (``VISIT_MOVED``); the person's notices of them go
(``on_leaving_book``); one ``paper.moved`` audit row per version, about the first holder,
never naming the other. A batch per transaction, while the service runs; a version taken out
is not found again, so running it again does nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vnehr import records
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.papers.models import Paper
from vnehr.papers.service import VISIT_MOVED, _leave_book, _revoke_for

#: Who the audit rows say did it.
ACTOR = "vnehr:backfill-papers"
DEFAULT_BATCH = 500


@dataclass(frozen=True, slots=True)
class PapersLeft:
    #: paper versions taken out of a person's book
    left: int
    #: of them, revoked: still valid, of a visit now another patient's
    revoked: int
    batches: int


def _found_after(after: str, limit: int) -> Any:
    """The next ``limit`` versions (by id, after ``after``) that a correction should have
    taken out of their holder's book, each with whether its visit is now another patient's;
    locked until the batch ends (PostgreSQL)."""
    later = aliased(Paper)
    latest_holder = (
        select(later.person_id)
        .where(
            later.facility_code == Paper.facility_code,
            later.kind == Paper.kind,
            later.number == Paper.number,
        )
        .order_by(later.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    visit_moved = and_(
        Paper.kind != "birth",
        Paper.visit_key.is_not(None),
        records.names_another_patient(Paper.personal_id, Paper.facility_code, Paper.visit_key),
    )
    return (
        select(Paper, visit_moved.label("visit_moved"))
        .where(
            Paper.id > after,
            Paper.person_id.is_not(None),
            or_(latest_holder.is_distinct_from(Paper.person_id), visit_moved),
        )
        .order_by(Paper.id)
        .limit(limit)
        .with_for_update(of=Paper)
    )


async def _batch(session: AsyncSession, after: str, limit: int) -> tuple[int, int, str | None]:
    """One batch in the caller's transaction: (taken out, revoked, the last id or None)."""
    rows = list(await session.execute(_found_after(after, limit)))
    now = utcnow()
    revoked = 0
    for paper, visit_moved in rows:
        if visit_moved and paper.status == "valid":
            _revoke_for(session, paper, ACTOR, VISIT_MOVED, now)
            revoked += 1
    await _leave_book(session, [paper for paper, _ in rows], None, ACTOR)
    return len(rows), revoked, (rows[-1][0].id if rows else None)


async def leave_moved(db: Database, *, batch: int = DEFAULT_BATCH) -> PapersLeft:
    """Take out of their holder's book the papers that corrections stored by earlier releases
    left there (see the module), ``batch`` versions per transaction."""
    left = revoked = batches = 0
    after = ""
    while True:
        async with db.session() as session:
            found, gone, last = await _batch(session, after, batch)
        batches += 1
        left, revoked = left + found, revoked + gone
        if last is None or found < batch:
            return PapersLeft(left, revoked, batches)
        after = last
