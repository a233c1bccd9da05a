"""Which events a consumer has taken, read and recorded outside a delivery round. A consumer
whose work a recount can redo (the report's counters, D141) marks the events the recount
covered as taken by it, in the recount's transaction: a round, or a JetStream message, then
skips them as it skips any event the consumer took before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.exchange.models import DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import JSONDoc, UtcDateTime
from vnehr.kit.outbox import OutboxEvent

#: every state of an event not delivered to all its consumers yet: due (``pending``), on the
#: JetStream stream (``relayed``), or a dead letter that may be replayed (``dead``)
NOT_DELIVERED = ("pending", "relayed", "dead")


def _not_taken(target: str, topics: Collection[str]) -> ColumnElement[bool]:
    taken = exists().where(
        DeliveryAttempt.event_id == OutboxEvent.event_id,
        DeliveryAttempt.target == target,
        DeliveryAttempt.outcome == "delivered",
    )
    return and_(
        OutboxEvent.status.in_(NOT_DELIVERED), OutboxEvent.topic.in_(sorted(topics)), ~taken
    )


async def marked(
    session: AsyncSession, target: str, event_ids: Collection[str], detail: dict[str, Any]
) -> set[str]:
    """Of these events, those that a mark with ``detail`` (``mark_taken``) says consumer
    ``target`` has taken: another transaction's, committed (the caller's own attempts do not
    say ``detail``)."""
    return await _delivered(
        session,
        target,
        event_ids,
        DeliveryAttempt.detail["note"].as_string() == str(detail["note"]),
    )


async def restate(
    session: AsyncSession, target: str, event_ids: Collection[str], detail: dict[str, Any]
) -> None:
    """The delivered attempts of ``target`` for these events (a mark's, and the caller's own
    written in its transaction) say ``detail``: what the caller took from them is nothing."""
    await session.execute(
        update(DeliveryAttempt)
        .where(
            DeliveryAttempt.event_id.in_(sorted(set(event_ids))),
            DeliveryAttempt.target == target,
            DeliveryAttempt.outcome == "delivered",
        )
        .values(detail=dict(detail))
    )


async def not_taken(
    session: AsyncSession, target: str, topics: Collection[str], *, page: int = 1000
) -> AsyncIterator[OutboxEvent]:
    """The events of these topics not delivered yet that ``target`` has not taken, in id
    order, read ``page`` at a time."""
    after = 0
    while True:
        rows = list(
            await session.scalars(
                select(OutboxEvent)
                .where(_not_taken(target, topics), OutboxEvent.id > after)
                .order_by(OutboxEvent.id)
                .limit(page)
            )
        )
        for event in rows:
            yield event
        if len(rows) < page:
            return
        after = rows[-1].id


async def mark_taken(
    session: AsyncSession, target: str, topics: Collection[str], detail: dict[str, Any]
) -> int:
    """Record, in the caller's transaction and in one statement, that ``target`` has taken
    every event of these topics not delivered yet that it had not taken: a delivered attempt
    with ``detail``. The other consumers of those events still take them. Returns how many."""
    now = utcnow()
    marks = select(
        OutboxEvent.event_id,
        OutboxEvent.topic,
        literal(target),
        OutboxEvent.attempts,
        literal(now, UtcDateTime()),
        literal(now, UtcDateTime()),
        literal("delivered"),
        literal(detail, JSONDoc),
    ).where(_not_taken(target, topics))
    columns = ["event_id", "topic", "target", "attempt", "started_at", "finished_at"]
    result = await session.execute(
        insert(DeliveryAttempt).from_select([*columns, "outcome", "detail"], marks)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def taken_among(session: AsyncSession, target: str, event_ids: Collection[str]) -> set[str]:
    """Of these events, those consumer ``target`` has taken (a delivered attempt, or a
    mark)."""
    return await _delivered(session, target, event_ids)


async def _delivered(
    session: AsyncSession,
    target: str,
    event_ids: Collection[str],
    *also: ColumnElement[bool],
) -> set[str]:
    """Of these events, those with a delivered attempt of ``target`` (and ``also``)."""
    if not event_ids:
        return set()
    found = await session.scalars(
        select(DeliveryAttempt.event_id).where(
            DeliveryAttempt.event_id.in_(sorted(set(event_ids))),
            DeliveryAttempt.target == target,
            DeliveryAttempt.outcome == "delivered",
            *also,
        )
    )
    return set(found)
