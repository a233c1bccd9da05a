"""The NATS JetStream bus: the outbox is relayed to a stream (one subject per topic, the event
id as the message id so JetStream drops duplicates), and each consumer reads it through its own
durable pull consumer. Delivery state stays in the database (one attempt row per consumer and
try), so every consumer is idempotent on the event id and per-key order survives restarts: a
message whose key has an earlier event not yet taken by this consumer is put back with a delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import APIError, NotFoundError
from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vnehr.exchange.models import DeliveryAttempt
from vnehr.exchange.worker import Consumers, Handler, Policy, Remote, _attempt, start_pruner
from vnehr.kit.clock import utcnow
from vnehr.kit.db import TURNS_CALLS, Database, try_turn
from vnehr.kit.logging import get_logger
from vnehr.kit.outage import Outage, database_lost
from vnehr.kit.outbox import OutboxAlsoKey, OutboxEvent

log = get_logger("vnehr.nats")
STREAM = "VNEHR"
PREFIX = "vnehr.events."


NO_LIMIT = -1  # JetStream's "no cap"
#: Seconds a fetched message is a consumer's before JetStream hands it out again, and how
#: often a batch tells JetStream it is still at the messages it has not answered yet.
ACK_WAIT = 60
HEARTBEAT = ACK_WAIT / 4
#: A consumer that no release runs is removed by the server once nobody has pulled from it for
#: this long (D112): a worker still running it keeps it.
UNUSED_AFTER = timedelta(hours=1)
#: Every durable consumer this release and the earlier ones run (``durable_name``): a worker
#: that does not run one of them leaves it alone, since workers of another release or
#: configuration may (D119). A release that adds a consumer names it here.
KNOWN_CONSUMERS = frozenset(
    {
        "bhxh-visit-accepted",
        "inbox-visit-accepted",
        "report-visit-accepted",
        "report-visit-rejected",
        "bhxh-checkin-received",
        "inbox-emergency-access",
        "inbox-emergency-reviewed",
        "inbox-paper-issued",
        "report-paper-issued",
        "report-account-changed",
        "inbox-record-viewed",
        "inbox-representative-added",
        "inbox-representative-ended",
        "inbox-representative-released",
        "inbox-representative-due",
    }
)
#: Known consumers a release stopped running (moved here from the wiring, kept in
#: ``KNOWN_CONSUMERS``): handed over to go once idle, like a name vnehr never used.
RETIRED_CONSUMERS: frozenset[str] = frozenset()
#: JetStream's "stream store failed" (maximum bytes exceeded: the stream is full, D88, D102)
STREAM_FULL = frozenset({10077})


def durable_name(name: str, topic: str) -> str:
    """The durable pull consumer of consumer ``name`` on ``topic``."""
    return f"{name}-{topic.replace('.', '-')}"


async def ensure_stream(
    js: JetStreamContext,
    replicas: int = 1,
    *,
    max_age: timedelta = timedelta(days=30),
    max_bytes: int | None = None,
    durables: Collection[str] = (),
) -> StreamConfig:
    """The stream of all events (file storage; replicated on a cluster), kept ``max_age`` (the
    outbox's retention, D81) and at most ``max_bytes`` (None: no cap). A message goes as soon as
    every consumer of its subject acknowledged it (interest retention, D102), so the stream is
    full only while a consumer is behind. At the cap the stream refuses new messages (discard
    new) rather than dropping old ones: events then wait in the outbox. An existing stream whose
    limits differ is updated (an earlier release's stream, which kept taken messages until
    ``max_age``, becomes an interest stream: what every consumer took goes at once), but a
    message that one of the ``durables`` has not taken yet is kept: the age is widened to cover
    it (logged). Returns the stream's configuration now."""
    age = max_age.total_seconds()
    cap = max_bytes if max_bytes is not None else NO_LIMIT
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        config = StreamConfig(
            name=STREAM,
            subjects=[f"{PREFIX}>"],
            num_replicas=replicas,
            duplicate_window=3600.0,
            max_age=age,
            max_bytes=cap,
            discard=DiscardPolicy.NEW,
            retention=RetentionPolicy.INTEREST,
        )
        return (await js.add_stream(config)).config
    config = info.config
    oldest = await _oldest_not_taken(js, info, durables)
    if oldest is not None and oldest >= age:
        log.warning("stream_max_age_widened", stream=STREAM, oldest_not_taken_seconds=oldest)
        age = oldest + age
    wanted = (age, cap, DiscardPolicy.NEW, RetentionPolicy.INTEREST)
    if (config.max_age, config.max_bytes, config.discard, config.retention) == wanted:
        return config
    log.info("stream_limits_updated", stream=STREAM, max_age=age, max_bytes=cap,
             was_max_age=config.max_age, was_max_bytes=config.max_bytes,
             was_retention=config.retention)  # fmt: skip
    # limits -> interest needs nats-server 2.10 or later (D102)
    config = replace(
        config,
        max_age=age,
        max_bytes=cap,
        discard=DiscardPolicy.NEW,
        retention=RetentionPolicy.INTEREST,
    )
    return (await js.update_stream(config)).config


async def _oldest_not_taken(
    js: JetStreamContext, info: StreamInfo, durables: Collection[str]
) -> float | None:
    """Age in seconds of the oldest message that one of ``durables`` has not acknowledged
    (conservative: from the first sequence after the consumer's ack floor), or None."""
    if not durables or not info.state.messages:
        return None
    first: int | None = None
    for consumer in await js.consumers_info(STREAM):
        if consumer.name not in durables:  # (``tend_consumers`` says what becomes of it)
            continue
        if not (consumer.num_pending or consumer.num_ack_pending):
            continue
        floor = consumer.ack_floor.stream_seq if consumer.ack_floor else 0
        start = (floor or 0) + 1
        first = start if first is None else min(first, start)
    if first is None:
        return None
    try:
        message = await js.get_msg(
            STREAM, max(first, info.state.first_seq), subject=f"{PREFIX}>", next=True
        )
    except NotFoundError:
        return None
    if message.time is None:
        return None
    return (utcnow() - message.time).total_seconds()


async def tend_consumers(
    js: JetStreamContext,
    durables: Collection[str],
    unused_after: timedelta = UNUSED_AFTER,
    *,
    known: Collection[str] = KNOWN_CONSUMERS,
    retired: Collection[str] = RETIRED_CONSUMERS,
) -> None:
    """A durable consumer of the stream that no release runs (a name vnehr never used, or one
    a release retired) holds its subject's messages on an interest stream until ``max_age``.
    It is handed to the server to remove once nobody has pulled from it for ``unused_after``
    (its inactive threshold): a worker that still runs it (an earlier release during a rolling
    upgrade) keeps it, and what it held goes with it (D112). Logged once per start
    (``stream_consumer_unused``). A ``known`` consumer that this configuration does not run is
    left alone: workers of another release or configuration run it, and while they are down it
    keeps what they have not taken (D119). The consumers of this configuration never have a
    threshold, whoever set one."""
    wanted = unused_after.total_seconds()
    for consumer in await js.consumers_info(STREAM):
        config = consumer.config
        if not config.durable_name:
            continue  # an ephemeral consumer goes by itself
        threshold = config.inactive_threshold or None
        if consumer.name in durables:
            if threshold is not None:
                log.info("stream_consumer_kept", stream=STREAM, consumer=consumer.name)
                await js.add_consumer(STREAM, replace(config, inactive_threshold=0.0))
            continue
        if consumer.name in known and consumer.name not in retired:
            continue  # another release's or configuration's: never handed over from here
        held = (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
        log.warning("stream_consumer_unused", stream=STREAM, consumer=consumer.name,
                    pending=held, removed_when_idle_seconds=round(wanted))  # fmt: skip
        if threshold != wanted:
            await js.add_consumer(STREAM, replace(config, inactive_threshold=wanted))


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """One consumer of the stream as ``vnehr outbox consumers`` shows it."""

    consumer: str
    subject: str
    configured: bool
    pending: int  # not handed out yet
    unacknowledged: int  # handed out, not answered
    pulls_waiting: int  # a worker reading it now
    last_delivered: str | None
    removed_when_idle_seconds: float | None


async def consumer_states(url: str, durables: Collection[str]) -> list[ConsumerState]:
    """The stream's consumers, by name, with what they hold; ``durables`` are this
    configuration's. Tries each server twice: an unreachable one raises ``ConnectionError``
    with the last reason (never a traceback, which would show the URL's password)."""
    nc = Nats()
    failures: list[Exception] = []

    async def quiet(exc: Exception) -> None:
        failures.append(exc)

    try:
        await nc.connect(servers=url.split(","), allow_reconnect=False, connect_timeout=5,
                         max_reconnect_attempts=1, reconnect_time_wait=0,
                         error_cb=quiet)  # fmt: skip
    except (NatsError, OSError) as failed:  # no servers left, refused, timed out
        last = failures[-1] if failures else failed
        reason = getattr(last, "strerror", None) or type(last).__name__
        raise ConnectionError(reason) from None
    try:
        found = await nc.jetstream().consumers_info(STREAM)
    finally:
        await nc.close()
    states = []
    for info in sorted(found, key=lambda c: c.name):
        active = info.delivered.last_active if info.delivered else None
        states.append(
            ConsumerState(
                consumer=info.name,
                subject=info.config.filter_subject or "",
                configured=info.name in durables,
                pending=info.num_pending or 0,
                unacknowledged=info.num_ack_pending or 0,
                pulls_waiting=info.num_waiting or 0,
                last_delivered=active.isoformat() if active else None,
                removed_when_idle_seconds=info.config.inactive_threshold or None,
            )
        )
    return states


def durables(consumers: Consumers) -> frozenset[str]:
    """The durable consumers a worker of this configuration runs."""
    return frozenset(
        durable_name(name, topic) for topic, named in consumers.items() for name in named
    )


#: topic -> the consumers this worker runs on it (``run`` fills it)
_consumer_names: dict[str, frozenset[str]] = {}
#: stream name -> when the relay found it full (said once per outage, D102)
_full_since: dict[str, datetime] = {}


async def relay_once(db: Database, js: JetStreamContext, limit: int = 500) -> int:
    """Publish pending outbox events to the stream, oldest first; mark them relayed. A full
    stream (a consumer is behind) is not an error: the events published so far are marked, the
    others wait in the outbox, and the condition is logged once until a publish succeeds again
    (``stream_full``, ``stream_full_cleared``); meanwhile each call tries one event."""
    if STREAM in _full_since:
        limit = 1
    async with db.session() as session:
        # (an event held until a later day, D247, waits in the outbox: JetStream has no
        # delivery at a time of the sender's choosing)
        stmt = (
            select(OutboxEvent)
            .where(OutboxEvent.status == "pending", OutboxEvent.next_attempt_at <= utcnow())
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        events = list(await session.scalars(stmt))
        relayed = 0
        for event in events:
            body = orjson.dumps(
                {"event_id": event.event_id, "topic": event.topic, "key": event.key, "id": event.id}
            )
            # A replayed dead letter is a new message (JetStream would drop a repeated id).
            message_id = f"{event.event_id}@{int(event.next_attempt_at.timestamp() * 1000)}"
            try:
                await js.publish(
                    PREFIX + event.topic, body, headers={"Nats-Msg-Id": message_id}, timeout=10
                )
            except APIError as refused:
                if refused.err_code not in STREAM_FULL:
                    raise
                if STREAM not in _full_since:
                    _full_since[STREAM] = utcnow()
                    log.warning("stream_full", stream=STREAM, error=str(refused.description))
                break
            event.status = "relayed"
            relayed += 1
        if relayed and STREAM in _full_since:
            since = _full_since.pop(STREAM)
            log.info("stream_full_cleared", stream=STREAM,
                     full_seconds=round((utcnow() - since).total_seconds(), 1))  # fmt: skip
        return relayed


async def _earlier_not_taken(session: AsyncSession, event: OutboxEvent, name: str) -> bool:
    """Whether an earlier event of the same key (its own, or one it holds as well:
    ``OutboxAlsoKey``), of a topic consumer ``name`` reads, has not been taken by it. Events
    of topics it does not read are none of its business: a person's ``account.changed`` (the
    report's alone) never holds their inbox notices back, nor an inbox notice the report's
    counters (before: until the other event was pruned, 30 days)."""
    earlier = aliased(OutboxEvent)
    taken = exists().where(
        and_(
            DeliveryAttempt.event_id == earlier.event_id,
            DeliveryAttempt.target == name,
            DeliveryAttempt.outcome == "delivered",
        )
    )
    reads = sorted(topic for topic, names in _consumer_names.items() if name in names)
    own = select(earlier.id).where(earlier.key == event.key)
    # an earlier event that holds this key too (D256), looked up from the few keys held so
    also = (
        select(earlier.id)
        .join(OutboxAlsoKey, OutboxAlsoKey.event_id == earlier.id)
        .where(OutboxAlsoKey.key == event.key)
    )
    for stmt in (own, also):
        stmt = stmt.where(earlier.id < event.id, earlier.status != "dead", ~taken).limit(1)
        if reads:  # (known once the worker runs: ``run`` fills it from its consumers)
            stmt = stmt.where(earlier.topic.in_(reads))
        if await session.scalar(stmt) is not None:
            return True
    return False


async def handle_message(
    db: Database, name: str, handler: Handler, policy: Policy, msg: Any, rng: random.Random
) -> str:
    """One message for one consumer: ack, nak with a delay, or term (dead). Returns which. The
    checks and the attempt share one transaction; NATS hears the outcome only after it is
    committed."""
    data = orjson.loads(msg.data)
    outcome, reason, attempt_no, wait_seconds = "ack", None, 0, 0.0
    event_id = str(data["event_id"])
    async with db.session() as session:
        found = select(OutboxEvent).where(OutboxEvent.event_id == event_id)
        if session.get_bind().dialect.name == "postgresql":
            # FOR KEY SHARE: the prune cannot remove the event (and the attempts that say who
            # took it) between the reads below; other consumers of the event are not held up
            # (D81). SQLite takes one writer at a time anyway.
            found = found.with_for_update(read=True, key_share=True)
        event = await session.scalar(found)
        if event is None:  # never recorded, or delivered and pruned long since: nothing to do
            outcome = "term"
        elif not await try_turn(session, TURNS_CALLS, f"{event_id}|{name}"):
            # another worker has this event in hand for this consumer right now (JetStream
            # handed the message out again while that one was at it): back later, never two
            # calls to the portal for one event at once; by then it is found taken
            outcome = "wait"
            wait_seconds = policy.delay(1, rng).total_seconds()
        else:
            attempts = (
                await session.execute(
                    select(DeliveryAttempt.outcome, DeliveryAttempt.finished_at)
                    .where(DeliveryAttempt.event_id == event_id, DeliveryAttempt.target == name)
                    .order_by(DeliveryAttempt.finished_at)
                )
            ).all()
            tried = [outcome for outcome, _ in attempts]
            # Our own count of tries (NATS also counts the times a message waited behind its
            # key).
            attempt_no = len(tried) + 1
            early = _backing_off(attempts, policy)
            if "delivered" in tried:  # idempotent: already taken (a redelivery after a lost ack)
                outcome = "taken"  # finish it: a worker killed after the attempt did not
            elif early:
                # handed out again (to another worker) before its backoff ran out: the rest of
                # the backoff first, not a second try at once
                outcome, wait_seconds = "early", early
            elif await _earlier_not_taken(session, event, name):
                outcome = "wait"
                # a wait behind a portal that is away can be long: back later and later
                wait_seconds = policy.delay(min(_deliveries(msg), 5), rng).total_seconds()
            else:
                # (the event's row is written after the call, not before: its lock would
                # otherwise hold the event's other consumers through the portal's answer, and
                # a portal that hangs would hold the phones' notice of the same visit)
                reason = await _attempt(session, event, name, handler, number=attempt_no)
                event.attempts = max(event.attempts, attempt_no)
                if reason is None:
                    outcome = "taken"
                elif attempt_no >= policy.max_attempts:
                    event.status, event.last_error = "dead", f"{name}: {reason}"[:500]
                    outcome = "term"
                else:
                    outcome = "nak"
    if outcome == "taken":
        await _finish_if_all_taken(db, event_id)
        await msg.ack()
        return "ack"
    if outcome == "ack":
        await msg.ack()
    elif outcome == "term":
        await msg.term()
    elif outcome in ("wait", "early"):
        await msg.nak(delay=wait_seconds)
    else:
        await msg.nak(delay=policy.delay(attempt_no, rng).total_seconds())
    return outcome


def _backing_off(attempts: Sequence[Any], policy: Policy) -> float:
    """Seconds left of the backoff after the last failed attempt (0 when none is left, or the
    last attempt did not fail): the least the policy waits after it, jitter included."""
    if not attempts or attempts[-1][0] != "failed" or attempts[-1][1] is None:
        return 0.0
    least = min(policy.backoff_seconds * 2 ** (len(attempts) - 1), policy.max_backoff_seconds)
    finished: datetime = attempts[-1][1]
    left = float(least) * 0.8 - (utcnow() - finished).total_seconds()
    return max(left, 0.0)


def _deliveries(msg: Any) -> int:
    """How many times JetStream handed the message out (1 when it does not say)."""
    try:
        return max(int(msg.metadata.num_delivered), 1)
    except (AttributeError, TypeError, ValueError):
        return 1


async def _finish_if_all_taken(db: Database, event_id: str) -> None:
    async with db.session() as session:
        event = await session.scalar(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
        if event is None:
            return
        names = _consumer_names.get(event.topic, frozenset())
        taken = set(
            await session.scalars(
                select(DeliveryAttempt.target).where(
                    DeliveryAttempt.event_id == event_id, DeliveryAttempt.outcome == "delivered"
                )
            )
        )
        if names <= taken:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event.id)
                .values(status="delivered", delivered_at=utcnow(), last_error=None)
            )


async def run(
    db: Database,
    url: str,
    consumers: Consumers,
    policy: Policy,
    *,
    stop: asyncio.Event,
    replicas: int = 1,
    max_bytes: int | None = None,
    unused_after: timedelta = UNUSED_AFTER,
) -> None:
    """Relay the outbox and run every consumer until ``stop`` is set. The stream keeps
    messages as long as the outbox keeps delivered events (``policy.keep_days``), at most
    ``max_bytes``; an existing stream gets these limits on start (``ensure_stream``). A consumer
    of the stream that no release runs (not in ``KNOWN_CONSUMERS``, or retired) is removed by
    the server once nobody pulled from it for ``unused_after`` (``tend_consumers``)."""
    nc = Nats()

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=f"{type(exc).__name__}: {exc}")

    await nc.connect(servers=url.split(","), max_reconnect_attempts=-1, error_cb=on_error)
    js = nc.jetstream()
    ours = durables(consumers)
    await ensure_stream(
        js, replicas, max_age=timedelta(days=policy.keep_days), max_bytes=max_bytes, durables=ours
    )
    await tend_consumers(js, ours, unused_after)
    for topic, named in consumers.items():
        _consumer_names[topic] = frozenset(named)
    rng = random.Random()  # noqa: S311  (jitter)
    # Every consumer exists before the relay publishes: an interest stream does not keep a
    # message that no consumer is there to take (D102).
    subscriptions = [
        (
            name,
            handler,
            await js.pull_subscribe(
                PREFIX + topic,
                durable=durable_name(name, topic),
                stream=STREAM,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT, max_deliver=-1
                ),
            ),
        )
        for topic, named in consumers.items()
        for name, handler in named.items()
    ]
    tasks = [
        asyncio.create_task(_relay_loop(db, js, stop)),
        start_pruner(db, policy, stop),
    ]
    gates: dict[str, asyncio.Semaphore] = {}
    for name, handler, subscription in subscriptions:
        tasks.append(
            asyncio.create_task(_consume(db, subscription, name, handler, policy, rng, stop, gates))
        )
    try:
        await stop.wait()
    finally:
        # Graceful: each loop finishes its current message and hands back what it fetched.
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The loops have handed back what they fetched; nothing is left to drain. A server
        # that died under us may reset the connection while it closes: nothing is lost then.
        try:
            await nc.close()
        except (ConnectionError, OSError) as exc:
            log.warning("nats_close_failed", error=f"{type(exc).__name__}: {exc}")


async def _relay_loop(db: Database, js: JetStreamContext, stop: asyncio.Event) -> None:
    outage = Outage(log, "nats_relay")
    while not stop.is_set():
        wait = 0.2
        try:
            moved = await relay_once(db, js)
            outage.succeeded()
        except Exception as exc:  # the database or NATS is away: try again shortly
            moved = 0
            retry = outage.failed(exc, interval=wait)
            if retry is None:
                log.exception("relay_failed")
            else:  # the database: one line, then back off
                wait = retry
        if not moved:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)


async def _consume(
    db: Database,
    subscription: Any,
    name: str,
    handler: Handler,
    policy: Policy,
    rng: random.Random,
    stop: asyncio.Event,
    gates: dict[str, asyncio.Semaphore] | None = None,
) -> None:
    """Fetch and handle this consumer's messages until ``stop`` is set (``gates``: see
    ``_gate``). When the database is lost, the rest of the batch is left unanswered
    (JetStream hands it out again after ``ack_wait``) and the next fetch waits (one line,
    then a growing wait up to 30 s)."""
    outage = Outage(log, "nats_consumer", consumer=name)
    gate = _gate(db, name, handler, {} if gates is None else gates, policy.concurrency)
    while not stop.is_set():
        try:
            messages = await subscription.fetch(50, timeout=1)
        except TimeoutError:
            # nothing to fetch: nats-py raises its own TimeoutError, or asyncio's (the built-in
            # one) when the server's "request timeout" arrives before the client's timer fires
            continue
        except Exception:
            log.exception("fetch_failed", consumer=name)
            await asyncio.sleep(1)
            continue
        retry = await _handle_batch(db, messages, name, handler, policy, rng, stop, outage, gate)
        if retry is not None:  # the database is lost: the next fetch waits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=retry)


def _gate(
    db: Database, name: str, handler: Handler, gates: dict[str, asyncio.Semaphore], width: int
) -> asyncio.Semaphore:
    """How many of a consumer's messages are handled at once. A consumer calling another
    system (``Remote``: the portal, the phones) shares ``width`` calls at once with the other
    consumers of its name (the portal's ``bhxh`` of visits and of check-ins; the ``inbox`` of
    every topic): a slow portal never holds the phones' notices back. Each holds a database
    connection through its call (the worker's pool is sized for it, ``vnehr worker``), on
    PostgreSQL. Any other consumer, and every one on SQLite (one writer, and an attempt holds
    the write lock through its call) or on a single connection (tests), handles one at a
    time."""
    engine = db.engine
    if isinstance(handler, Remote) and engine is not None and engine.dialect.name == "postgresql":
        return gates.setdefault(name, asyncio.Semaphore(max(width, 1)))
    return asyncio.Semaphore(1)


def _key_of(msg: Any) -> str:
    try:
        return str(orjson.loads(msg.data)["key"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"#{id(msg)}"  # (a message not ours: alone; ``handle_message`` answers it)


async def _handle_batch(
    db: Database,
    messages: list[Any],
    name: str,
    handler: Handler,
    policy: Policy,
    rng: random.Random,
    stop: asyncio.Event,
    outage: Outage,
    gate: asyncio.Semaphore,
) -> float | None:
    """A fetched batch: the messages of each key one after the other, in the order fetched,
    and those of as many keys at once as ``gate`` lets (a remote call's latency is not paid
    one message at a time). Once ``stop`` is set the rest are given back; once the database
    is lost the rest are left unanswered (JetStream hands them out again after ``ack_wait``)
    and the wait before the next fetch is returned."""
    by_key: dict[str, list[Any]] = {}
    for msg in messages:
        by_key.setdefault(_key_of(msg), []).append(msg)
    lost: list[BaseException] = []
    worked: list[bool] = []
    unanswered = {id(msg) for msg in messages}

    async def in_turn(queue: list[Any]) -> None:
        async with gate:
            for msg in queue:
                if stop.is_set():  # give it back now rather than after ack_wait
                    unanswered.discard(id(msg))
                    await msg.nak()
                    continue
                if lost:  # not tried while the database is lost: back after ack_wait
                    continue
                try:
                    await handle_message(db, name, handler, policy, msg, rng)
                    worked.append(True)
                except Exception as exc:  # the message comes back after ack_wait
                    if database_lost(exc) is None:
                        log.exception("message_failed", consumer=name)
                        continue
                    lost.append(exc)
                finally:
                    unanswered.discard(id(msg))

    async def still_at_it() -> None:
        """A message waiting for its turn, or in a slow call, is still ours: JetStream hears
        so before ``ack_wait`` runs out, instead of handing it to another worker meanwhile."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            if lost:  # left for JetStream to hand out again
                return
            for msg in messages:
                if id(msg) in unanswered:  # (asked each time: one may be answered meanwhile)
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    heartbeat = asyncio.create_task(still_at_it())
    try:
        await asyncio.gather(*(in_turn(queue) for queue in by_key.values()))
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    # one round for the outage, whatever ran side by side: lost if any message found the
    # database lost (counted once), back if none did and one got through
    if lost:
        return outage.failed(lost[0])
    if worked:
        outage.succeeded()
    return None
