"""Filling the timeline's insurance cards (migration 0024, D114), sensitive categories
(0025, D132) and the downloaded book's summary facts (0030, D209) of rows stored before, or
corrected by a process of the previous release during a rolling upgrade:
`vnehr db backfill-cards`.

The migrations only add the columns; this walks the rows whose cards (of an insured visit),
categories or facts are missing or older than their version (the categories also when kept by
an older classification, ``sensitive.CLASSIFICATION``, the facts in an older form,
``facts.FORM``), a batch per transaction, while the service runs. The FHIR Patient, a
representative's timeline and the book's PDF are right without it (they open the visit of
such a row); they get faster as rows are filled. A row whose stored tables cannot be
read is logged (its id, no personal data) and left as it is; running again takes up what is
left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import zstandard
from sqlalchemy import LargeBinary, and_, bindparam, not_, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.kit.db import Database, unpack_json
from vnehr.kit.logging import get_logger
from vnehr.records import facts
from vnehr.records.models import TimelineEntry, VisitVersion
from vnehr.records.sensitive import as_kept, kept_prefix
from vnehr.records.service import insurance_cards

log = get_logger("vnehr.records")

DEFAULT_BATCH = 1000
MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class CardsFilled:
    #: rows whose cards, sensitive categories and summary facts are now those of their
    #: current version
    filled: int
    #: rows left as they were: their stored tables cannot be read
    skipped: int
    batches: int


@dataclass(frozen=True, slots=True)
class _Batch:
    seen: int
    filled: int
    skipped: int
    last: int


async def _fill_batch(session: AsyncSession, after: int, limit: int) -> _Batch:
    """Fill up to ``limit`` rows with an id above ``after``, in the caller's transaction. Only
    insured rows have cards to be missing; every row has its categories and facts; a row is
    written only if it still points to the version read (one corrected meanwhile is already
    right)."""
    timeline: Any = TimelineEntry.__table__
    t = timeline.c
    v = VisitVersion.__table__.c
    rows = (
        await session.execute(
            # the tables as stored (one that cannot be unpacked is skipped, not an error)
            select(t.id, t.version_id, type_coerce(v.tables, LargeBinary), t.started_at, t.ended_at)
            .select_from(timeline.join(VisitVersion.__table__, v.id == t.version_id))
            .where(
                t.id > after,
                or_(
                    and_(
                        t.insured.is_(True),
                        or_(
                            t.insurance_cards_version.is_(None),
                            t.insurance_cards_version != t.version_id,
                        ),
                    ),
                    t.sensitive_version.is_(None),
                    t.sensitive_version != t.version_id,
                    t.sensitive_categories.is_(None),
                    # kept by an older classification (the lists changed since)
                    not_(t.sensitive_categories.startswith(kept_prefix())),
                    t.summary_version.is_(None),
                    t.summary_version != t.version_id,
                    t.summary_facts.is_(None),
                    not_(t.summary_facts.startswith(facts.kept_prefix())),
                ),
            )
            .order_by(t.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return _Batch(0, 0, 0, after)
    changed: list[dict[str, Any]] = []
    skipped = 0
    for entry_id, version_id, packed, started_at, ended_at in rows:
        try:
            tables = unpack_json(bytes(packed))
            if not isinstance(tables, dict):
                raise ValueError("not a document of tables")
            cards = insurance_cards(tables)
            kept = as_kept(tables)
            summary = facts.as_kept(facts.facts(tables, started_at, ended_at))
        except (zstandard.ZstdError, ValueError, LookupError, TypeError, AttributeError) as exc:
            log.warning(
                "timeline_cards_unreadable",
                timeline_id=entry_id,
                version_id=version_id,
                error=type(exc).__name__,
            )
            skipped += 1
            continue
        changed.append(
            {"key": entry_id, "seen": version_id, "cards": cards, "kept": kept, "facts": summary}
        )
    if changed:
        await session.execute(
            update(timeline)
            .where(t.id == bindparam("key"), t.version_id == bindparam("seen"))
            .values(
                insurance_cards=bindparam("cards"),
                insurance_cards_version=bindparam("seen"),
                sensitive_categories=bindparam("kept"),
                sensitive_version=bindparam("seen"),
                summary_facts=bindparam("facts"),
                summary_version=bindparam("seen"),
            ),
            changed,
        )
    return _Batch(len(rows), len(changed), skipped, rows[-1][0])


async def fill_insurance_cards(db: Database, *, batch: int = DEFAULT_BATCH) -> CardsFilled:
    """Fill the insurance cards, sensitive categories and summary facts of every timeline row
    that lacks those of its version, ``batch`` rows per transaction (each committed: an
    interruption loses at most one batch)."""
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"a batch is 1 to {MAX_BATCH} rows")
    filled = skipped = batches = 0
    after = 0
    while True:
        async with db.session() as session:
            done = await _fill_batch(session, after, batch)
        if done.seen:
            filled, skipped, batches = filled + done.filled, skipped + done.skipped, batches + 1
        if done.seen < batch:
            return CardsFilled(filled, skipped, batches)
        after = done.last
