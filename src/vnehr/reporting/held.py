"""The report's counters when visits leave a book after they were counted: held at their
holder's first VNeID sign-in (D167), a visit first received into a book no longer counts as
one (``visits_in_book``), as the recount of the stored rows finds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import exchange, records
from vnehr.kit.outbox import OutboxEvent
from vnehr.reporting import metrics
from vnehr.reporting.metrics import Count
from vnehr.reporting.rollup import _WRITING, CONSUMER, Places, add


async def out_of_book(session: AsyncSession, held: Sequence[records.Filed]) -> int:
    """Take back ``visits_in_book`` of the visits held whose first version is the one held
    and was counted: by the intake's batch (its event says ``counted``), by the report's
    consumer, or by a rebuild (the event taken, or delivered and pruned). One not counted
    yet is counted by its event as the version is now, in no book. First the counters'
    lock (PostgreSQL), as every writer of them takes it: a rebuild under way is waited
    for, and one after waits for this commit. Returns how many counters changed."""
    firsts = {(f.facility_code, f.visit_key): f for f in held if f.version == 1}
    firsts = {key: f for key, f in firsts.items() if not f.test_mode}
    if not firsts:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_WRITING)
    waiting: dict[str, records.Filed] = {}
    events = await session.execute(
        select(OutboxEvent.event_id, OutboxEvent.key, OutboxEvent.payload).where(
            OutboxEvent.key.in_([f"{code}:{key}" for code, key in firsts]),
            OutboxEvent.topic == "visit.accepted",
        )
    )
    for event_id, key, payload in events:
        code, _, visit_key = str(key).partition(":")
        filed = firsts.get((code, visit_key))
        if filed is None or (payload or {}).get("version_id") != filed.version_id:
            continue
        if not (payload or {}).get("counted"):
            waiting[str(event_id)] = filed
    taken = await exchange.taken_among(session, CONSUMER, list(waiting))
    not_yet = {id(filed) for event_id, filed in waiting.items() if event_id not in taken}
    counted = [f for f in firsts.values() if id(f) not in not_yet]
    places = await Places().of(session, {f.facility_code for f in counted})
    return await add(
        session,
        [
            Count(one.month, one.province, one.ward, one.facility, one.metric, one.dim1,
                  one.dim2, -one.value)
            for f in counted
            for one in metrics.visit_counts(
                facility=f.facility_code,
                where=places[f.facility_code],
                care_type=f.care_type,
                insured=f.insured,
                ended_at=f.ended_at,
                received_at=f.received_at,
                lag_seconds=None,
                has_summary=False,
                in_book=True,
            )
            if one.metric == "visits_in_book"
        ],
    )  # fmt: skip
