"""Retention of the outbox: a delivered event and its delivery attempts are removed once it was
delivered longer ago than the horizon (``VNEHR_OUTBOX_RETENTION_DAYS``), in short batches, each
its own transaction. Pending, relayed and dead events (awaiting replay) are never removed.

No consumer takes an event twice because of it (D81): an event is removed only once every
consumer took it, so neither bus hands it out again; a JetStream redelivery that comes later
finds no event and is dropped, and one that races the prune waits for it (the event row is
locked while a message is handled). What must outlive the outbox is kept elsewhere: the
portal's transaction id per visit version (``bhxh_receipt``, D25, D66), the inbox (one
notification per event and person).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.exchange.models import DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.logging import get_logger
from vnehr.kit.outage import Outage
from vnehr.kit.outbox import OutboxEvent

log = get_logger("vnehr.exchange")

#: The shortest horizon: far beyond JetStream's ack wait (60 s) and duplicate window (1 h) and
#: the longest backoff (1 h), and beyond a Vietnam day, which the "record viewed" notice
#: counts by its event key (one a day per facility).
MIN_KEEP_DAYS = 7
#: Events per batch: a few milliseconds of work, so a delivery waits at most that long on
#: SQLite (one writer) and never on PostgreSQL (locked rows are skipped).
DEFAULT_BATCH = 1000
MAX_BATCH = 10_000  # one IN list per table and batch


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune removed."""

    events: int = 0
    attempts: int = 0
    batches: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    events: int
    attempts: int
    #: (next_attempt_at, id) of the last event looked at: the next batch starts after it
    last: tuple[datetime, int] | None


async def prune_batch(
    session: AsyncSession, cutoff: datetime, limit: int, after: tuple[datetime, int] | None
) -> Batch:
    """Remove up to ``limit`` events delivered before ``cutoff`` with their attempts, in the
    caller's transaction. Events are walked in the order of ``ix_outbox_event_due`` (status,
    next_attempt_at, id): an event is due before it is delivered, so ``next_attempt_at <
    cutoff`` holds for every one to remove and keeps the walk on the old end of the index."""
    stmt = (
        select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.next_attempt_at)
        .where(
            OutboxEvent.status == "delivered",
            OutboxEvent.next_attempt_at < cutoff,
            OutboxEvent.delivered_at < cutoff,
        )
        .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(OutboxEvent.next_attempt_at, OutboxEvent.id) > tuple_(*after))
    if session.get_bind().dialect.name == "postgresql":
        # an event a consumer is handling right now (a JetStream redelivery) stays for the
        # next prune; other workers pruning at the same time take other rows
        stmt = stmt.with_for_update(skip_locked=True)
    rows = (await session.execute(stmt)).all()
    if not rows:
        return Batch(0, 0, after)
    gone = await session.execute(
        delete(DeliveryAttempt)
        .where(DeliveryAttempt.event_id.in_([row.event_id for row in rows]))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(OutboxEvent)
        .where(OutboxEvent.id.in_([row.id for row in rows]))
        .execution_options(synchronize_session=False)
    )
    last = rows[-1]
    return Batch(len(rows), int(gone.rowcount or 0), (last.next_attempt_at, last.id))  # type: ignore[attr-defined]


async def prune(
    db: Database,
    *,
    keep_days: int,
    batch: int = DEFAULT_BATCH,
    stop: asyncio.Event | None = None,
    pause_seconds: float = 0.0,
) -> Pruned:
    """Remove the events delivered more than ``keep_days`` ago and their delivery attempts,
    ``batch`` events per transaction, until none is left (or ``stop`` is set); what it
    removed. ``pause_seconds`` between batches lets deliveries in on a busy SQLite file."""
    if keep_days < MIN_KEEP_DAYS:
        raise ValueError(f"the outbox keeps delivered events at least {MIN_KEEP_DAYS} days")
    if not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"a batch is 1 to {MAX_BATCH} events")
    cutoff = utcnow() - timedelta(days=keep_days)
    events = attempts = batches = 0
    after: tuple[datetime, int] | None = None
    while stop is None or not stop.is_set():
        async with db.session() as session:
            done = await prune_batch(session, cutoff, batch, after)
        if done.events:
            events, attempts, batches = events + done.events, attempts + done.attempts, batches + 1
        if done.events < batch:
            break
        after = done.last
        await asyncio.sleep(pause_seconds)
    return Pruned(events, attempts, batches)


async def run_pruner(
    db: Database,
    *,
    keep_days: int,
    every_seconds: float,
    batch: int,
    stop: asyncio.Event,
) -> None:
    """Prune on start and then every ``every_seconds`` until ``stop`` is set, beside the
    delivery loop (never in its way for longer than one batch). While the database is lost it
    retries every 30 s at most, quietly after one line, and prunes as soon as it is back."""
    outage = Outage(log, "outbox_prune")
    while not stop.is_set():
        wait = every_seconds
        try:
            pruned = await prune(
                db, keep_days=keep_days, batch=batch, stop=stop, pause_seconds=0.01
            )
            outage.succeeded()
            if pruned.events:
                log.info(
                    "outbox_pruned",
                    events=pruned.events,
                    attempts=pruned.attempts,
                    batches=pruned.batches,
                )
        except Exception as exc:  # a broken database must not end the worker: log, try again
            retry = outage.failed(exc, interval=every_seconds)
            if retry is None:
                log.exception("outbox_prune_failed")
            else:
                wait = min(retry, every_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
