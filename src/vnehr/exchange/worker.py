"""Outbox delivery: events written in the same transaction as the change are handed to their
consumer by topic, in order per key (a correction never overtakes its original), with a
delivery record for every attempt, exponential backoff with jitter, and dead letters after
too many failures.

Consumers are idempotent on the event id: an event is delivered again only when its attempt
never recorded an answer (the process died, or the answer never came back).

On SQLite a write transaction locks the whole file, so a round there claims its events and
commits, calls the other systems (``Remote`` consumers: the BHXH portal, the app's push
service) with no transaction open, and records the answers in a short second transaction
(D129); its events are its own for as long as it runs, however long the file stays locked
(``rounds``, D162). On PostgreSQL a round is one transaction; its row locks hold back no other
writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vnehr.exchange import retention, rounds
from vnehr.exchange.bhxh import BhxhClient, DeliveryFailed, PortalAnswer
from vnehr.exchange.models import BhxhReceipt, DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.logging import get_logger
from vnehr.kit.metrics import DELIVERY_ATTEMPTS
from vnehr.kit.outage import Outage, database_lost
from vnehr.kit.outbox import OutboxAlsoKey, OutboxEvent, held

log = get_logger("vnehr.exchange")
Handler = Callable[[AsyncSession, OutboxEvent], Awaitable[dict[str, Any] | None]]
#: topic -> {consumer name -> handler}; each consumer takes each event once.
Consumers = dict[str, dict[str, Handler]]
T = TypeVar("T")
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Deferred(Generic[T]):
    """A consumer whose writes wait for the end of the transaction that takes its events
    (D121): ``take`` reads an event and returns the attempt's detail and what to write;
    ``settle`` writes, in one go, what every event it took in the transaction returned. A
    delivery round settles once, after its last event and right before its commit (nothing
    slow after), every deferred consumer sharing a ``settle`` together, so rows that other
    writers also update (the report's counters) are locked only for the commit and in the
    order ``settle`` chooses, not in event order through the round's portal calls. Called as a
    plain handler (JetStream: one event, one short transaction) it takes, then settles."""

    take: Callable[[AsyncSession, OutboxEvent], Awaitable[tuple[dict[str, Any] | None, T]]]
    settle: Callable[[AsyncSession, list[T]], Awaitable[object]]

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        detail, work = await self.take(session, event)
        await self.settle(session, [work])
        return detail


@dataclass(frozen=True, slots=True)
class Call(Generic[A]):
    """A ``Remote`` consumer's call, ready to go: ``send`` needs no database; ``record``
    writes what came back, in the transaction that records the attempt."""

    send: Callable[[], Awaitable[A]]
    record: Callable[[AsyncSession, A], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class Remote:
    """A consumer that calls another system (D129): ``prepare`` reads what to send and returns
    a ``Call``, or the attempt's detail when there is nothing to send. On SQLite a round
    prepares on a read-only snapshot, sends with no transaction open (the file's one write
    lock is not held through the other side's latency) and records in the short transaction
    that ends the round; on PostgreSQL, and called as a plain handler (JetStream), the three
    run one after the other in the caller's transaction, or ``inline`` runs instead when the
    consumer orders its steps otherwise there (the inbox writes its row before it pushes, so
    that a second delivery of the event at the same time waits for the first's commit)."""

    prepare: Callable[[AsyncSession, OutboxEvent], Awaitable[Call[Any] | dict[str, Any] | None]]
    inline: Handler | None = None

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        if self.inline is not None:
            return await self.inline(session, event)
        prepared = await self.prepare(session, event)
        if not isinstance(prepared, Call):
            return prepared
        return await prepared.record(session, await prepared.send())


Settle = Callable[[AsyncSession, list[Any]], Awaitable[object]]
#: settle -> the events a round's deferred consumers took, their attempts and what they returned
Settling = dict[Settle, list[tuple[OutboxEvent, DeliveryAttempt, Any]]]


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: int = 8
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 3600.0
    #: retention (D81): delivered events and their attempts are removed after ``keep_days``,
    #: checked on start and every ``prune_every_seconds``, ``prune_batch`` events at a time
    keep_days: int = 30
    prune_every_seconds: float = 3600.0
    prune_batch: int = 1000
    #: SQLite (D129, D138): a round's claim on its events lasts this long from when the write
    #: lock was taken, renewed a third of it after each claim or renewal while the round runs;
    #: the events of a worker that died are due again when it runs out (a live round's stay
    #: its own, D162). Above the busy timeout (30 s by default) plus a third of it: a renewal
    #: that waits the whole busy timeout for the lock still ends before the claim does (the
    #: settings check it).
    claim_seconds: float = 60.0
    #: calls to other systems (the portal, the phones) in flight at once: the events of a
    #: round (SQLite, and PostgreSQL with the in-process bus, D257), and a JetStream consumer's
    #: messages, each of its own key (a key's events, one visit's versions, always go one
    #: after the other, in order)
    concurrency: int = 8

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        base = min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)
        return timedelta(seconds=base * rng.uniform(0.8, 1.2))


async def due_events(
    session: AsyncSession, now: datetime, limit: int, skip: Collection[int] = ()
) -> list[OutboxEvent]:
    """Pending events whose time has come and that no earlier pending event of the same key
    holds back (its own key, or one it holds as well: ``OutboxAlsoKey``), but those in
    ``skip``; locked for this worker (other workers skip them)."""
    earlier = aliased(OutboxEvent)
    blocked = exists().where(
        and_(
            earlier.key == OutboxEvent.key, earlier.id < OutboxEvent.id, earlier.status == "pending"
        )
    )
    holder = aliased(OutboxEvent)
    held_back = exists().where(  # an earlier event that holds this key too (D256)
        and_(
            OutboxAlsoKey.key == OutboxEvent.key,
            OutboxAlsoKey.event_id < OutboxEvent.id,
            holder.id == OutboxAlsoKey.event_id,
            holder.status == "pending",
        )
    )
    stmt = (
        select(OutboxEvent)
        .where(
            OutboxEvent.status == "pending",
            OutboxEvent.next_attempt_at <= now,
            ~blocked,
            ~held_back,
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if skip:
        stmt = stmt.where(OutboxEvent.id.not_in(skip))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=OutboxEvent)
    return list(await session.scalars(stmt))


async def deliver_once(
    db: Database,
    consumers: Consumers,
    policy: Policy,
    *,
    limit: int = 50,
    rng: random.Random | None = None,
) -> int:
    """Deliver what is due now to every consumer of its topic; returns how many events were
    handled. A consumer that already took an event is not called again for it; the event is
    delivered when all of them took it, and retried (for the others only) otherwise."""
    rng = rng or random.Random()  # noqa: S311  (jitter, not security)
    claim: _Claim | None = None
    try:
        async with db.session() as session:
            bind = session.get_bind()
            if bind.dialect.name != "sqlite":
                return await _deliver_in(session, consumers, policy, limit, rng)
            claim = await _claim(session, policy, limit, rounds.folder_of(bind.engine.url.database))
    except BaseException:
        if claim is not None and claim.mark is not None:
            claim.mark.drop()  # the claim was not committed
        raise
    if claim is None:
        return 0
    return await _deliver_apart(db, claim, consumers, policy, rng)


async def _delivered_to(session: AsyncSession, event_ids: list[str]) -> dict[str, set[str]]:
    """The consumers that already took each of these events."""
    done: dict[str, set[str]] = {event_id: set() for event_id in event_ids}
    if not event_ids:
        return done
    rows = await session.execute(
        select(DeliveryAttempt.event_id, DeliveryAttempt.target).where(
            DeliveryAttempt.event_id.in_(event_ids), DeliveryAttempt.outcome == "delivered"
        )
    )
    for event_id, target in rows:
        done[event_id].add(target)
    return done


def _conclude(event: OutboxEvent, failures: list[str], policy: Policy, rng: random.Random) -> None:
    """The event's state after its consumers' attempts of this round."""
    if failures:
        event.last_error = "; ".join(failures)[:500]
        dead = event.attempts >= policy.max_attempts
        event.status = "dead" if dead else "pending"
        event.next_attempt_at = utcnow() + policy.delay(event.attempts, rng)
        log.warning("delivery_failed", event_id=event.event_id, reasons=failures)
    else:
        event.status, event.delivered_at, event.last_error = "delivered", utcnow(), None


async def _deliver_in(
    session: AsyncSession,
    consumers: Consumers,
    policy: Policy,
    limit: int,
    rng: random.Random,
) -> int:
    """A round in one transaction (PostgreSQL: the events' rows locked, other workers skip
    them, other writers are not held back). The calls to other systems are made first, up to
    ``policy.concurrency`` at once (``_calls_in``), then every attempt is recorded."""
    handled = 0
    settling: Settling = {}
    events = await due_events(session, utcnow(), limit)
    done = await _delivered_to(session, [event.event_id for event in events])
    outcomes = await _calls_in(session, events, consumers, done, policy)
    for event in events:
        await _take(
            session, event, consumers, done[event.event_id], settling, policy, rng, outcomes
        )
        handled += 1
    await _settle_round(session, settling, policy, rng)
    return handled


async def _calls_in(
    session: AsyncSession,
    events: list[OutboxEvent],
    consumers: Consumers,
    done: dict[str, set[str]],
    policy: Policy,
) -> dict[tuple[int, str], _Outcome]:
    """A round in one transaction (PostgreSQL, in-process bus): each remote consumer's call
    is prepared in the round's transaction, one after the other (one connection), then the
    calls are sent up to ``policy.concurrency`` at once; ``_take`` records what came of each.
    The round's events are each of its own key (``due_events``), so one visit's versions still
    go in order. A consumer that writes before it calls (``Remote.inline``: the inbox) is
    called in ``_take`` as before."""
    outcomes: dict[tuple[int, str], _Outcome] = {}
    calls: list[tuple[tuple[int, str], datetime, Call[Any]]] = []
    for event in events:
        for name, handler in consumers.get(event.topic, {}).items():
            if name in done[event.event_id] or not isinstance(handler, Remote):
                continue
            if handler.inline is not None:
                continue
            started = utcnow()
            try:
                async with session.begin_nested():  # (a failed read leaves the round whole)
                    prepared = await handler.prepare(session, event)
            except DeliveryFailed as failed:
                outcomes[(event.id, name)] = (started, failed)
                continue
            except Exception as bug:  # one broken event must not stop the rest
                if database_lost(bug) is not None:
                    raise
                broken = DeliveryFailed(f"consumer error: {type(bug).__name__}: {bug}")
                outcomes[(event.id, name)] = (started, broken)
                continue
            if isinstance(prepared, Call):
                calls.append(((event.id, name), started, prepared))
            else:
                outcomes[(event.id, name)] = (started, prepared)
    gate = asyncio.Semaphore(max(policy.concurrency, 1))

    async def send(key: tuple[int, str], started: datetime, call: Call[Any]) -> None:
        async with gate:
            try:
                outcomes[key] = (started, (call, await call.send()))
            except DeliveryFailed as failed:
                outcomes[key] = (started, failed)
            except Exception as bug:  # noqa: BLE001 - recorded as the attempt's failure
                broken = DeliveryFailed(f"consumer error: {type(bug).__name__}: {bug}")
                outcomes[key] = (started, broken)

    await asyncio.gather(*(send(*call) for call in calls))
    return outcomes


async def _take(
    session: AsyncSession,
    event: OutboxEvent,
    consumers: Consumers,
    done: set[str],
    settling: Settling,
    policy: Policy,
    rng: random.Random,
    outcomes: dict[tuple[int, str], _Outcome] | None = None,
    later: Collection[str] = (),
) -> None:
    """One attempt of an event in a round: every consumer of its topic not in ``done`` (those
    that took it before), each recorded, then the event's state. A remote consumer whose call
    was made outside the transaction (``outcomes``, SQLite) has what came of it recorded; one
    in ``later`` was not called (the round's claim ran short) and is left for the next round,
    the event due again at once unless another consumer failed."""
    event.attempts += 1
    failures: list[str] = []
    for name, handler in consumers.get(event.topic, {}).items():
        if name in done or name in later:
            continue
        outcome = outcomes.get((event.id, name)) if outcomes else None
        if outcome is None:
            reason = await _attempt(session, event, name, handler, settling)
        else:
            started, result = outcome
            reason = await _attempt(session, event, name, _recording(result), started=started)
        if reason is not None:
            failures.append(f"{name}: {reason}")
    if later and not failures:
        event.next_attempt_at = utcnow()
    else:
        _conclude(event, failures, policy, rng)


async def _settle_round(
    session: AsyncSession, settling: Settling, policy: Policy, rng: random.Random
) -> None:
    """Last in a round, with no remote call after: the deferred consumers' writes, in the
    transaction that records their attempts (each event counted once), locked until the
    commit only (D121)."""
    for settle, taken in settling.items():
        await _settle(session, settle, taken, policy, rng)


@dataclass(slots=True)
class _Claim:
    """A SQLite round's events, claimed by pushing their next attempt to ``until`` (renewed
    while the round runs): other workers' rounds skip them, and later events of their keys
    wait behind them, until the claim runs out."""

    until: datetime
    events: list[OutboxEvent]  # as claimed (detached: read them, never write them)
    done: dict[str, set[str]]
    lost: bool = False
    #: the round's mark (D162): while it is held, no other round takes these events, even
    #: past ``until``; None for a database in memory (and for tests' rounds that "die")
    mark: rounds.RoundMark | None = None


#: (when the attempt started, what came of it: the answer's ``Call`` and answer, the detail
#: of an event with nothing to send, or the failure)
_Result = tuple[Call[Any], Any] | dict[str, Any] | DeliveryFailed | None
_Outcome = tuple[datetime, _Result]


async def _claim(
    session: AsyncSession, policy: Policy, limit: int, marks: Path | None = None
) -> _Claim | None:
    """Claim what is due (SQLite); committed by the caller before anything is sent. With
    ``marks`` (where rounds leave them), the events of rounds still running are skipped even
    past their claim's time, and the claim leaves a mark of its own (the caller drops it if the
    claim is not committed)."""
    await session.connection()  # BEGIN IMMEDIATE: may wait up to the busy timeout for the lock
    now = utcnow()  # the claim lasts from when the lock is held, not from before the wait
    events = await due_events(session, now, limit, skip=rounds.held(marks))
    if not events:
        return None
    until = now + timedelta(seconds=policy.claim_seconds)
    for event in events:
        event.next_attempt_at = until
    done = await _delivered_to(session, [event.event_id for event in events])
    await session.flush()
    claim = _Claim(until, events, done)
    if marks is not None:  # last: nothing can fail between it and the caller's commit but that
        claim.mark = rounds.RoundMark.take(marks, [event.id for event in events])
    return claim


def _ours(claim: _Claim) -> Any:
    return and_(
        OutboxEvent.id.in_([event.id for event in claim.events]),
        OutboxEvent.status == "pending",
        OutboxEvent.next_attempt_at == claim.until,
    )


def _period(policy: Policy) -> timedelta:
    """How often a claim is renewed; a call is not begun with less than this left."""
    return timedelta(seconds=policy.claim_seconds / 3)


def _left(claim: _Claim) -> timedelta:
    return claim.until - utcnow()


async def _renew(
    db: Database, claim: _Claim, policy: Policy, turn: asyncio.Lock, stop: asyncio.Event
) -> None:
    """Keep the claim while the round runs (a portal call may take longer than the claim),
    until ``stop`` is set. Stopped by the flag, never cancelled: a pass that committed its
    renewal also sets ``claim.until``, or the round would not know its own claim."""
    period = _period(policy)
    pause = timedelta(0)
    while True:
        # a period after the claim's (renewed) start, not after the last pass ended: a pass
        # that waited for the write lock does not push the next one back
        due = claim.until - timedelta(seconds=policy.claim_seconds) + period
        wait = max((due - utcnow()).total_seconds(), pause.total_seconds(), 0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
        async with turn:
            if stop.is_set():
                return
            try:
                async with db.session() as session:
                    await session.connection()  # BEGIN IMMEDIATE (may wait for the lock)
                    until = utcnow() + timedelta(seconds=policy.claim_seconds)
                    renewed = await session.execute(
                        update(OutboxEvent).where(_ours(claim)).values(next_attempt_at=until)
                    )
            except Exception as exc:  # noqa: BLE001 - kept as it is; the calls stop before it ends
                log.warning("delivery_claim_not_renewed", error=type(exc).__name__)
                if _left(claim) <= timedelta(0):
                    claim.lost = True  # run out: another worker may have it now (unmarked)
                    return
                pause = min(period, _left(claim))  # then try again
                continue
            pause = timedelta(0)
            if int(renewed.rowcount or 0) < len(claim.events):  # type: ignore[attr-defined]
                claim.lost = True  # (a pause longer than the claim): call no more
            claim.until = until


async def _release(db: Database, claim: _Claim) -> None:
    """Give back what a round that ends early claimed: due again at once."""
    async with db.session() as session:
        await session.execute(
            update(OutboxEvent).where(_ours(claim)).values(next_attempt_at=utcnow())
        )


async def _deliver_apart(
    db: Database, claim: _Claim, consumers: Consumers, policy: Policy, rng: random.Random
) -> int:
    """A SQLite round after its claim: the remote consumers' calls with no transaction open,
    then one short transaction recording every attempt, the other consumers' work and the
    deferred consumers' writes (D121: once a round, right before the commit). Its mark is
    dropped last, once nothing more of the round will be written."""
    try:
        return await _deliver_claimed(db, claim, consumers, policy, rng)
    finally:
        if claim.mark is not None:
            claim.mark.drop()


async def _deliver_claimed(
    db: Database, claim: _Claim, consumers: Consumers, policy: Policy, rng: random.Random
) -> int:
    outcomes: dict[tuple[int, str], _Outcome] = {}
    # the renewal, the reads and the recording take turns: the recording reads the claim's
    # ``until`` that the renewal sets (and tests have one connection)
    turn = asyncio.Lock()
    stop = asyncio.Event()
    renewing = asyncio.create_task(_renew(db, claim, policy, turn, stop))
    try:
        try:
            await _calls(db, claim, consumers, policy, turn, outcomes)
            # renewed meanwhile, and marked: tries that find the file locked do not cost the claim
            return await _record_retrying(db, claim, outcomes, consumers, policy, rng, turn)
        finally:
            stop.set()
            await renewing  # its current pass ends with ``claim.until`` set
    except BaseException:
        # ended early (stopped, the database lost): what was claimed is due again now, and
        # resent only if its answer was not recorded (at least once, D25)
        with contextlib.suppress(Exception):
            await _release(db, claim)
        raise


async def _calls(
    db: Database,
    claim: _Claim,
    consumers: Consumers,
    policy: Policy,
    turn: asyncio.Lock,
    outcomes: dict[tuple[int, str], _Outcome],
) -> None:
    """The round's remote calls, ``policy.concurrency`` in flight at once (a round's events are
    each of its own key: ``due_events`` leaves out an event while an earlier one of its key is
    pending). None is begun once the claim may run out before it ends; the first error that is
    not the event's (the database lost) stops the others, and the round with it."""
    gate = asyncio.Semaphore(max(policy.concurrency, 1))

    async def one(event: OutboxEvent, name: str, handler: Remote) -> None:
        async with gate:
            if claim.lost or _left(claim) < _period(policy):
                return  # (a renewal waiting for the lock): the claim may run out mid-call
            outcomes[(event.id, name)] = await _call(db, event, handler, turn)

    calls = [
        asyncio.create_task(one(event, name, handler))
        for event in claim.events
        for name, handler in consumers.get(event.topic, {}).items()
        if isinstance(handler, Remote) and name not in claim.done[event.event_id]
    ]
    try:
        for finished in asyncio.as_completed(calls):
            await finished
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)


async def _call(db: Database, event: OutboxEvent, handler: Remote, turn: asyncio.Lock) -> _Outcome:
    """Prepare on a read-only snapshot, then send with no transaction open."""
    started = utcnow()
    try:
        async with turn, db.read_session() as reading:
            prepared = await handler.prepare(reading, event)
        if not isinstance(prepared, Call):
            return started, prepared
        return started, (prepared, await prepared.send())
    except DeliveryFailed as failed:
        return started, failed
    except Exception as bug:  # one broken event must not stop the rest
        if database_lost(bug) is not None:
            raise  # not the event's fault: the round ends, the loop waits (D101)
        return started, DeliveryFailed(f"consumer error: {type(bug).__name__}: {bug}")


async def _record_retrying(
    db: Database,
    claim: _Claim,
    outcomes: dict[tuple[int, str], _Outcome],
    consumers: Consumers,
    policy: Policy,
    rng: random.Random,
    turn: asyncio.Lock,
) -> int:
    """The recording transaction, tried again for as long as the file is locked past the busy
    timeout (another writer): the answers are only in memory, and a round that gave up would
    have its files sent again. The round's mark keeps its events from other rounds meanwhile,
    however long that takes (D162); between tries the turn is let go, so that the claim's
    renewal can run. Safe to repeat: a failed try wrote nothing, and each try writes only
    events whose claim is still this round's."""
    tried = 1
    while True:
        try:
            async with turn, db.session() as session:
                return await _record(session, claim, outcomes, consumers, policy, rng)
        except OperationalError as exc:
            if not _locked(exc):
                raise
        log.warning("delivery_record_retried", tried=tried, answers=len(outcomes))
        tried += 1
        await asyncio.sleep(_RECORD_PAUSE)  # (a lock refused at once is not tried in a loop)


_RECORD_PAUSE = 0.1  # seconds between tries to record; each try waits up to the busy timeout


def _locked(exc: OperationalError) -> bool:
    """SQLite's "database is locked": the write lock still held after the busy timeout."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return (
        isinstance(exc.orig, sqlite3.Error)
        and code is not None
        and code & 0xFF == sqlite3.SQLITE_BUSY
    )


async def _record(
    session: AsyncSession,
    claim: _Claim,
    outcomes: dict[tuple[int, str], _Outcome],
    consumers: Consumers,
    policy: Policy,
    rng: random.Random,
) -> int:
    """The second transaction of a SQLite round."""
    handled = 0
    settling: Settling = {}
    rows = await session.scalars(select(OutboxEvent).where(_ours(claim)).order_by(OutboxEvent.id))
    mine = {event.id: event for event in rows}
    for claimed in claim.events:
        event = mine.get(claimed.id)
        if event is None:  # the claim ran out and another worker took it: its turn now
            log.warning("delivery_claim_lost", event_id=claimed.event_id)
            continue
        done = claim.done[event.event_id]
        topic = consumers.get(event.topic, {})
        remote = [name for name in topic if isinstance(topic[name], Remote) and name not in done]
        later = [name for name in remote if (event.id, name) not in outcomes]
        if later and len(later) == len(remote):
            # none called (the round stopped calling when its claim ran short or was lost):
            # the event as it was, due again at once. When some were, their answers are
            # recorded (never sent again, D25) and the rest wait for the next round.
            event.next_attempt_at = utcnow()
            continue
        await _take(session, event, consumers, done, settling, policy, rng, outcomes, later)
        handled += 1
    await _settle_round(session, settling, policy, rng)
    return handled


def _recording(result: _Result) -> Handler:
    """A handler that records what a remote consumer's call came to."""

    async def record(session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        if isinstance(result, DeliveryFailed):
            raise result
        if isinstance(result, tuple):
            call, answer = result
            return await call.record(session, answer)
        return result

    return record


async def _settle(
    session: AsyncSession,
    settle: Settle,
    taken: list[tuple[OutboxEvent, DeliveryAttempt, Any]],
    policy: Policy,
    rng: random.Random,
) -> None:
    """What a round's deferred consumer took, written at once; if that fails, each event's
    part alone, and an event whose part fails has its attempt recorded as failed and is
    retried (for that consumer only), so one broken event does not fail the others."""
    try:
        async with session.begin_nested():
            await settle(session, [work for _, _, work in taken])
        return
    except Exception as bug:
        if database_lost(bug) is not None:
            raise
    for event, attempt, work in taken:
        try:
            async with session.begin_nested():
                await settle(session, [work])
        except Exception as bug:
            if database_lost(bug) is not None:
                raise
            reason = f"consumer error: {type(bug).__name__}: {bug}"
            attempt.outcome, attempt.finished_at = "failed", utcnow()
            attempt.detail = {"reason": reason, "maybe_received": False}
            DELIVERY_ATTEMPTS.labels(event.topic, "failed").inc()
            event.last_error = f"{attempt.target}: {reason}"[:500]
            if event.status == "delivered":
                dead = event.attempts >= policy.max_attempts
                event.status = "dead" if dead else "pending"
                event.delivered_at = None
                event.next_attempt_at = utcnow() + policy.delay(event.attempts, rng)
            log.warning("delivery_failed", event_id=event.event_id, reasons=[event.last_error])


async def _attempt(
    session: AsyncSession,
    event: OutboxEvent,
    name: str,
    handler: Handler,
    settling: Settling | None = None,
    *,
    started: datetime | None = None,
    number: int | None = None,
) -> str | None:
    """One consumer, one attempt, recorded; the failure reason, or None when delivered. With
    ``settling``, a deferred consumer's writes are added to it (only when delivered), not made.
    ``started``: when the attempt began, if before this call (a call made outside). ``number``:
    the attempt's number when it is not ``event.attempts`` (a JetStream consumer's own count,
    written to the event only after the call)."""
    started = started or utcnow()
    number = event.attempts if number is None else number
    deferred = handler if settling is not None and isinstance(handler, Deferred) else None
    work: Any = None
    try:
        partly: DeliveryFailed | None = None
        async with session.begin_nested():
            try:
                if deferred is not None:
                    detail, work = await deferred.take(session, event)
                else:
                    detail = await handler(session, event)
            except DeliveryFailed as failed:
                if not failed.partial:
                    raise
                partly = failed  # what it wrote stays (the inbox row); the rest is retried
            except Exception as bug:  # one broken event must not stop the rest
                if database_lost(bug) is not None:
                    raise  # not the event's fault: the round ends, the loop waits (D101)
                raise DeliveryFailed(f"consumer error: {type(bug).__name__}: {bug}") from bug
        if partly is not None:
            raise partly
    except DeliveryFailed as exc:
        session.add(
            DeliveryAttempt(
                event_id=event.event_id, topic=event.topic, target=name, attempt=number,
                started_at=started, finished_at=utcnow(), outcome="failed",
                detail={**(exc.keep or {}), "reason": exc.reason,
                        "maybe_received": exc.maybe_received},
            )
        )  # fmt: skip
        DELIVERY_ATTEMPTS.labels(event.topic, "failed").inc()
        return exc.reason
    delivered = DeliveryAttempt(
        event_id=event.event_id, topic=event.topic, target=name, attempt=number,
        started_at=started, finished_at=utcnow(), outcome="delivered", detail=detail,
    )  # fmt: skip
    session.add(delivered)
    if deferred is not None and settling is not None:
        settling.setdefault(deferred.settle, []).append((event, delivered, work))
    DELIVERY_ATTEMPTS.labels(event.topic, "delivered").inc()
    return None


def start_pruner(db: Database, policy: Policy, stop: asyncio.Event) -> asyncio.Task[None]:
    """The retention pruner (D81) beside a delivery loop, as ``policy`` sets it (both buses)."""
    return asyncio.create_task(
        retention.run_pruner(
            db,
            keep_days=policy.keep_days,
            every_seconds=policy.prune_every_seconds,
            batch=policy.prune_batch,
            stop=stop,
        )
    )


async def run(
    db: Database,
    consumers: Consumers,
    policy: Policy,
    *,
    stop: asyncio.Event,
    idle_seconds: float = 0.5,
) -> None:
    """Deliver until ``stop`` is set; sleeps when nothing is due. Old delivered events are
    pruned beside it (``policy.keep_days``). While the database is lost the rounds back off
    (up to 30 s) and say so once, not once a round (``kit.outage``)."""
    pruner = start_pruner(db, policy, stop)
    outage = Outage(log, "outbox_delivery")
    try:
        while not stop.is_set():
            wait = idle_seconds
            try:
                handled = await deliver_once(db, consumers, policy)
                outage.succeeded()
            except Exception as exc:  # a broken database must not end the worker: log, wait, retry
                handled = 0
                retry = outage.failed(exc, interval=idle_seconds)
                if retry is None:
                    log.exception("delivery_round_failed")
                else:
                    wait = retry
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
    finally:
        if not stop.is_set():  # cancelled, not stopped
            pruner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pruner


# ------------------------------------------------------------------ consumers


def bhxh_consumer(client: BhxhClient) -> Remote:
    """visit.accepted -> the BHXH portal; stores the portal's transaction id per version."""
    from vnehr import records, submissions

    async def prepare(
        session: AsyncSession, event: OutboxEvent
    ) -> Call[PortalAnswer] | dict[str, Any]:
        payload = event.payload
        if payload.get("test_mode"):
            return {"note": "test-mode visit, not relayed"}
        version = await records.version_by_id(session, int(payload["version_id"]))
        if version is None:
            return {"note": "version no longer exists"}
        already = await session.scalar(
            select(BhxhReceipt.ma_giao_dich).where(BhxhReceipt.version_id == version.id)
        )
        if already is not None:  # idempotent: a replayed event is not sent twice
            return {"ma_giao_dich": already, "note": "already delivered"}
        newer = await session.scalar(
            select(func.max(BhxhReceipt.version)).where(
                BhxhReceipt.facility_code == version.facility_code,
                BhxhReceipt.visit_key == version.visit_key,
                BhxhReceipt.version > version.version,
            )
        )
        if newer is not None:  # a dead letter replayed after its correction went: the portal
            # keeps the last file it gets, which must stay the newer content (D66)
            return {"note": "superseded", "delivered_version": int(newer)}
        document = submissions.render_visit(
            version.facility_code, version.tables, version.received_at
        )
        version_id, code = version.id, version.facility_code
        key, number = version.visit_key, version.version

        async def record(session: AsyncSession, answer: PortalAnswer) -> dict[str, Any]:
            session.add(
                BhxhReceipt(
                    version_id=version_id,
                    facility_code=code,
                    visit_key=key,
                    version=number,
                    ma_giao_dich=answer.ma_giao_dich,
                    portal_received_at=answer.received_at,
                    delivered_at=utcnow(),
                )
            )
            return {"ma_giao_dich": answer.ma_giao_dich, "received_at": answer.received_at}

        return Call(lambda: client.send_file(code, document), record)

    return Remote(prepare)


def checkin_consumer(client: BhxhClient) -> Remote:
    """checkin.received -> the BHXH portal's check-in endpoint, the file as it came."""
    from vnehr import submissions

    async def prepare(
        session: AsyncSession, event: OutboxEvent
    ) -> Call[PortalAnswer] | dict[str, Any]:
        data = await submissions.raw_file(session, str(event.payload["submission_id"]))
        if data is None:
            return {"note": "submission no longer exists"}
        code = str(event.payload["facility_code"])
        return Call(lambda: client.send_checkin(code, data), _answered)

    return Remote(prepare)


async def _answered(session: AsyncSession, answer: PortalAnswer) -> dict[str, Any]:
    return {"ma_giao_dich": answer.ma_giao_dich, "received_at": answer.received_at}


# ------------------------------------------------------------------ dead letters


async def dead_letters(session: AsyncSession, limit: int = 100) -> list[OutboxEvent]:
    stmt = (
        select(OutboxEvent)
        .where(OutboxEvent.status == "dead")
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def replay(session: AsyncSession, event_ids: list[str] | None = None) -> int:
    """Put dead letters back in line (all, or the given ones); returns how many."""
    stmt = (
        update(OutboxEvent)
        .where(OutboxEvent.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=utcnow())
    )
    if event_ids:
        stmt = stmt.where(OutboxEvent.event_id.in_(event_ids))
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def depth(session: AsyncSession) -> dict[str, int]:
    """Events by status; those held for a moment not come yet (``kit.outbox.held_event``) as
    ``held``, not ``pending``: they are not a backlog."""
    rows = await session.execute(
        select(OutboxEvent.status, func.count()).group_by(OutboxEvent.status)
    )
    found = {status: int(n) for status, n in rows}
    kept = int(
        await session.scalar(select(func.count()).select_from(OutboxEvent).where(held(utcnow())))
        or 0
    )
    if kept:
        found["held"] = kept
        found["pending"] -= kept
        if not found["pending"]:
            del found["pending"]
    return found
