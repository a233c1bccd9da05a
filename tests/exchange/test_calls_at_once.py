"""A worker has several calls to other systems in flight at once (`VNEHR_OUTBOX_CONCURRENCY`,
8): with a portal answering in a few hundred milliseconds, one call at a time would deliver a
few visits a second. The calls at once are each for another key: one visit's versions still go
one after the other, in order. Both buses: a SQLite round (in-process) and a JetStream consumer
on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from tests.exchange.test_nats import fresh_db  # noqa: F401  (fixture)
from vnehr import exchange
from vnehr.exchange import nats_bus
from vnehr.exchange.models import DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent, new_event

TOPIC = "visit.accepted"


class Portal:
    """A remote consumer that holds each call until ``wanted`` calls are in flight at once (or
    a second passed), and notes the most in flight and the order of each key's events."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.in_flight = 0
        self.most = 0
        self.sent: list[tuple[str, int]] = []
        self.enough = asyncio.Event()

    def consumer(self) -> exchange.Remote:
        async def prepare(session: Any, event: OutboxEvent) -> exchange.Call[None]:
            key, number = event.key, int(event.payload["n"])

            async def send() -> None:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                if self.in_flight >= self.wanted:
                    self.enough.set()
                try:
                    await asyncio.wait_for(self.enough.wait(), timeout=1)
                except TimeoutError:
                    pass
                finally:
                    self.in_flight -= 1
                self.sent.append((key, number))

            async def record(session: Any, answer: None) -> dict[str, Any]:
                return {"n": number}

            return exchange.Call(send=send, record=record)

        return exchange.Remote(prepare=prepare)


async def _events(db: Database) -> None:
    """Visit A's two versions, then one version each of visits B to F."""
    async with db.session() as session:
        session.add(new_event(TOPIC, "visit:A", {"n": 1}))
        session.add(new_event(TOPIC, "visit:A", {"n": 2}))
        for key in "BCDEF":
            session.add(new_event(TOPIC, f"visit:{key}", {"n": 1}))


def _in_order(portal: Portal) -> None:
    assert sorted(portal.sent) == [("visit:A", 1), ("visit:A", 2)] + [
        (f"visit:{key}", 1) for key in "BCDEF"
    ]
    a = [n for key, n in portal.sent if key == "visit:A"]
    assert a == [1, 2]  # the correction after its original


@asynccontextmanager
async def _worker(
    db: Database, nats_url: str, consumers: exchange.Consumers, policy: exchange.Policy
) -> AsyncIterator[None]:
    """A JetStream worker on a stream of this test's own (on the shared server)."""
    stream = f"T{uuid.uuid4().hex[:6]}"
    nats_bus.STREAM, nats_bus.PREFIX = stream, f"{stream.lower()}.events."
    stop = asyncio.Event()
    running = asyncio.create_task(nats_bus.run(db, nats_url, consumers, policy, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await running


async def _until_sent(portal: Portal) -> None:
    for _ in range(400):
        if len(portal.sent) == 7:
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize(("concurrency", "most"), [(8, 6), (3, 3), (1, 1)])
async def test_a_round_calls_the_portal_for_several_visits_at_once(
    fresh_db: Database,  # noqa: F811
    concurrency: int,
    most: int,
) -> None:
    """The in-process bus: on SQLite the round's calls are made with no transaction open, on
    PostgreSQL in the round's transaction (D257); side by side on both, then recorded."""
    await _events(fresh_db)
    portal = Portal(wanted=most)
    consumers: exchange.Consumers = {TOPIC: {"bhxh": portal.consumer()}}
    policy = exchange.Policy(concurrency=concurrency)
    # the first round: A's first version and B..F (A's second waits behind the first)
    assert await exchange.deliver_once(fresh_db, consumers, policy) == 6
    assert portal.most == most
    assert await exchange.deliver_once(fresh_db, consumers, policy) == 1
    _in_order(portal)
    async with fresh_db.read_session() as session:
        delivered = await session.scalar(
            select(func.count()).where(OutboxEvent.status == "delivered")
        )
    assert delivered == 7


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_jetstream_consumer_calls_for_several_visits_at_once(
    fresh_db: Database,  # noqa: F811
    nats_url: str,
) -> None:
    await _events(fresh_db)
    portal = Portal(wanted=5)
    consumers: exchange.Consumers = {TOPIC: {"bhxh": portal.consumer()}}
    async with _worker(fresh_db, nats_url, consumers, exchange.Policy()):
        await _until_sent(portal)
    assert portal.most >= 2  # B..F (and A) at once; how many came in one fetch may vary
    _in_order(portal)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_portal_that_hangs_does_not_hold_the_phones_notices_back(
    fresh_db: Database,  # noqa: F811
    nats_url: str,
) -> None:
    """The portal holds every call it gets; the pushes of the same visits go all the same:
    each remote system has its own calls in flight (two here), not a share of one pool."""
    await _events(fresh_db)
    released = asyncio.Event()
    held: list[str] = []

    async def prepare(session: Any, event: OutboxEvent) -> exchange.Call[None]:
        async def send() -> None:
            held.append(event.key)
            await released.wait()

        async def record(session: Any, answer: None) -> dict[str, Any]:
            return {}

        return exchange.Call(send=send, record=record)

    phones = Portal(wanted=1)
    consumers: exchange.Consumers = {
        TOPIC: {"bhxh": exchange.Remote(prepare=prepare), "inbox": phones.consumer()}
    }
    async with _worker(fresh_db, nats_url, consumers, exchange.Policy(concurrency=2)):
        try:
            await _until_sent(phones)
            assert 1 <= len(held) <= 2  # the portal holds what it got (two at most at once)
            _in_order(phones)  # every visit's push went meanwhile, in order
        finally:
            released.set()


class SlowPortal:
    """A portal whose every answer takes ``seconds``: notes each call it got."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[str] = []

    def consumer(self) -> exchange.Remote:
        async def prepare(session: Any, event: OutboxEvent) -> exchange.Call[None]:
            async def send() -> None:
                self.calls.append(event.event_id)
                await asyncio.sleep(self.seconds)

            async def record(session: Any, answer: None) -> dict[str, Any]:
                return {}

            return exchange.Call(send=send, record=record)

        return exchange.Remote(prepare=prepare)


def _handed_out(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of times JetStream had handed out each message a consumer handled (its
    metadata's ``num_delivered``), noted as it is handled."""
    seen: list[int] = []
    handle = nats_bus.handle_message

    async def noting(*args: Any) -> str:
        seen.append(int(args[4].metadata.num_delivered))
        return await handle(*args)

    monkeypatch.setattr(nats_bus, "handle_message", noting)
    return seen


async def _all_delivered(db: Database, count: int) -> bool:
    for _ in range(300):
        async with db.session() as session:
            done = await session.scalar(
                select(func.count()).where(OutboxEvent.status == "delivered")
            )
        if done == count:
            return True
        await asyncio.sleep(0.1)
    return False


async def _two_workers(
    db: Database, nats_url: str, heartbeat: float
) -> tuple[list[int], list[str]]:
    """One visit; the portal takes 2.5 s to answer, longer than ``ack_wait`` (1 s here). A
    second worker starts once the first is waiting on the portal, so JetStream has someone to
    hand the message to again. The times the message had been handed out when it was handled,
    and the portal's calls."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nats_bus, "ACK_WAIT", 1)
        patch.setattr(nats_bus, "HEARTBEAT", heartbeat)
        handed = _handed_out(patch)
        async with db.session() as session:
            session.add(new_event(TOPIC, "visit:A", {"n": 1}))
        portal = SlowPortal(2.5)
        consumers: exchange.Consumers = {TOPIC: {"bhxh": portal.consumer()}}
        policy = exchange.Policy(backoff_seconds=0.2)
        async with _worker(db, nats_url, consumers, policy):
            for _ in range(200):
                if portal.calls:
                    break
                await asyncio.sleep(0.05)
            stop = asyncio.Event()  # the second worker, on the same stream
            second = asyncio.create_task(nats_bus.run(db, nats_url, consumers, policy, stop=stop))
            try:
                assert await _all_delivered(db, 1)
            finally:
                stop.set()
                await second
    return handed, portal.calls


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_message_in_a_slow_call_is_not_handed_out_again(
    fresh_db: Database,  # noqa: F811
    nats_url: str,
) -> None:
    """A batch tells JetStream it is still at the messages it has not answered, in a call or
    waiting for their turn, so none is handed to another worker meanwhile (before: any that
    outlasted ``ack_wait``, 60 s, was)."""
    handed, calls = await _two_workers(fresh_db, nats_url, heartbeat=0.25)
    assert handed == [1]  # handed out once, handled once
    assert len(calls) == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_two_workers_never_call_the_portal_twice_for_one_event(
    fresh_db: Database,  # noqa: F811
    nats_url: str,
) -> None:
    """Should JetStream hand the message to the other worker while the first is still waiting
    on the portal (here: the first says nothing), the second finds the event in hand and
    comes back later, when it finds it taken: the portal hears of the visit once."""
    handed, calls = await _two_workers(fresh_db, nats_url, heartbeat=3600)
    assert max(handed) >= 2  # handed out again while the first worker was at it ...
    assert len(calls) == 1  # ... yet the portal was called once


class Handed:
    """A JetStream message as a consumer gets it (a fake of the outside system), handed out
    ``times`` times so far; notes its answer and the delay asked for."""

    def __init__(self, event: OutboxEvent, times: int = 1) -> None:
        self.data = orjson.dumps({"event_id": event.event_id, "topic": TOPIC, "key": event.key})
        self.metadata = SimpleNamespace(num_delivered=times)
        self.answers: list[tuple[str, float | None]] = []

    async def ack(self) -> None:
        self.answers.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.answers.append(("nak", delay))

    async def term(self) -> None:
        self.answers.append(("term", None))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_message_handed_out_again_early_waits_out_the_backoff(
    fresh_db: Database,  # noqa: F811
) -> None:
    """Another worker's second try failed a moment ago and asked for 4 s (its backoff, give or
    take a fifth); JetStream hands the message out again at once all the same (that worker
    paused, or its answer was lost). The portal is not called again: the message waits out
    the rest."""
    policy = exchange.Policy(backoff_seconds=2)
    event = new_event(TOPIC, "visit:A", {"n": 1})
    now = utcnow()
    async with fresh_db.session() as session:
        session.add(event)
        for attempt in (1, 2):
            session.add(
                DeliveryAttempt(
                    event_id=event.event_id, topic=TOPIC, target="bhxh", attempt=attempt,
                    started_at=now, finished_at=now, outcome="failed", detail=None,
                )
            )  # fmt: skip
    portal = SlowPortal(0)
    msg = Handed(event)
    rng = random.Random(1)
    outcome = await nats_bus.handle_message(fresh_db, "bhxh", portal.consumer(), policy, msg, rng)
    assert outcome == "early"
    assert portal.calls == []
    [(answer, delay)] = msg.answers
    assert answer == "nak"
    assert delay is not None
    assert 2 < delay <= 3.2  # at least 0.8 × 4 s after the last try, less the moment since


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_message_waiting_behind_its_key_comes_back_later_and_later(
    fresh_db: Database,  # noqa: F811
) -> None:
    """A visit's file behind a check-in the portal will not take: each time it is handed out
    it waits longer (up to the fifth backoff), not every 2 s for as long as the portal is
    away."""
    policy = exchange.Policy(backoff_seconds=2)
    async with fresh_db.session() as session:
        session.add(new_event(TOPIC, "visit:A", {"n": 1}))
        waiting = new_event(TOPIC, "visit:A", {"n": 2})
        session.add(waiting)
    delays = []
    for times in (1, 3, 5, 9):
        msg = Handed(waiting, times)
        rng = random.Random(1)
        outcome = await nats_bus.handle_message(
            fresh_db, "bhxh", SlowPortal(0).consumer(), policy, msg, rng
        )
        assert outcome == "wait"
        [(answer, delay)] = msg.answers
        assert answer == "nak"
        delays.append(delay)
    assert delays == sorted(delays)
    assert 1.6 <= delays[0] <= 2.4
    assert delays[2] == delays[3]  # (at most the fifth backoff: 32 s)
    assert 25.6 <= delays[3] <= 38.4
