"""Retention of the outbox: delivered events and their delivery attempts go once they are older
than the horizon, in short batches, by `vnehr outbox prune` and by every worker on its own;
pending and dead events stay, and no consumer takes an event twice because of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.exchange.test_worker import count, deliver_all, portal  # noqa: F401  (fixture)
from tests.submissions.test_intake import facility_with_token, send, visit
from vnehr import exchange
from vnehr.cli import app as cli
from vnehr.exchange import nats_bus, retention
from vnehr.exchange.models import BhxhReceipt, DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent, new_event
from vnehr.kit.settings import Settings, get_settings
from vnehr.sim.bhxh import BhxhConfig
from vnehr.submissions import synth

DAY = timedelta(days=1)


async def stored(
    db: Database,
    status: str,
    *,
    age: timedelta,
    delivered: timedelta | None = None,
    targets: tuple[str, ...] = ("bhxh", "inbox"),
    topic: str = "visit.accepted",
    key: str | None = None,
) -> str:
    """An event created ``age`` ago; delivered ``delivered`` ago (when given), with one failed
    and one delivered attempt per target (only failed ones when it is not delivered)."""
    now = utcnow()
    event = new_event(topic, key or f"visit:{uuid.uuid4().hex[:8]}", {"n": 1})
    event.created_at = event.next_attempt_at = now - age
    event.status = status
    if delivered is not None:
        event.delivered_at = now - delivered
    async with db.session() as session:
        session.add(event)
        for target in targets:
            for attempt, outcome in enumerate(("failed", "delivered"), start=1):
                if outcome == "delivered" and status != "delivered":
                    continue
                at = now - (delivered if delivered is not None else age)
                session.add(
                    DeliveryAttempt(
                        event_id=event.event_id, topic=topic, target=target, attempt=attempt,
                        started_at=at, finished_at=at, outcome=outcome, detail=None,
                    )
                )  # fmt: skip
    return event.event_id


async def left(db: Database) -> tuple[set[str], dict[str, int]]:
    """The events still stored, and their delivery attempts by event."""
    async with db.read_session() as session:
        events = set(await session.scalars(select(OutboxEvent.event_id)))
        rows = await session.execute(
            select(DeliveryAttempt.event_id, func.count()).group_by(DeliveryAttempt.event_id)
        )
        return events, {event_id: int(n) for event_id, n in rows}


# ------------------------------------------------------------------ the prune itself


async def test_prune_removes_old_delivered_events_with_their_attempts_and_nothing_else(
    db: Database,
) -> None:
    old = [await stored(db, "delivered", age=40 * DAY, delivered=40 * DAY) for _ in range(3)]
    recent = await stored(db, "delivered", age=2 * DAY, delivered=2 * DAY)
    # waited a month (behind its visit, or the portal was down) and went out yesterday: the
    # month is counted from its delivery
    late = await stored(db, "delivered", age=40 * DAY, delivered=DAY)
    pending = await stored(db, "pending", age=60 * DAY)
    dead = await stored(db, "dead", age=60 * DAY)  # awaiting `vnehr outbox replay`
    relayed = await stored(db, "relayed", age=60 * DAY)  # on its way through NATS

    pruned = await exchange.prune(db, keep_days=30)

    assert (pruned.events, pruned.attempts) == (3, 12)
    events, attempts = await left(db)
    assert events.isdisjoint(old)
    assert {recent, late, pending, dead, relayed} <= events
    assert not set(old) & set(attempts)  # their attempts went with them
    assert attempts[recent] == attempts[late] == 4
    assert attempts[pending] == attempts[dead] == attempts[relayed] == 2
    assert (await exchange.prune(db, keep_days=30)).events == 0  # nothing more to do


async def test_prune_goes_in_batches_until_everything_old_is_gone(db: Database) -> None:
    old = [await stored(db, "delivered", age=45 * DAY, delivered=44 * DAY) for _ in range(7)]
    kept = await stored(db, "delivered", age=45 * DAY, delivered=10 * DAY)

    pruned = await exchange.prune(db, keep_days=30, batch=2)

    assert (pruned.events, pruned.attempts, pruned.batches) == (7, 28, 4)
    events, attempts = await left(db)
    assert events.isdisjoint(old)
    assert kept in events
    assert set(attempts) & set(old) == set()
    # a shorter horizon (not below the minimum) takes the one kept above
    assert (await exchange.prune(db, keep_days=exchange.MIN_KEEP_DAYS, batch=2)).events == 1


async def test_the_horizon_has_a_minimum(db: Database) -> None:
    await stored(db, "delivered", age=3 * DAY, delivered=3 * DAY)
    with pytest.raises(ValueError, match="at least 7 days"):
        await exchange.prune(db, keep_days=exchange.MIN_KEEP_DAYS - 1)
    assert len((await left(db))[0]) == 1
    assert exchange.MIN_KEEP_DAYS == 7
    with pytest.raises(ValueError, match="greater than or equal to 7"):
        Settings(outbox_retention_days=exchange.MIN_KEEP_DAYS - 1)


# ------------------------------------------------------------------ the command


@pytest.fixture
def cli_database(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A migrated database of its own that the command opens (it commits for real)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'prune.db'}"
    else:
        url = new_database_on(str(request.getfixturevalue("postgres_url")), "prune")
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    yield url
    get_settings.cache_clear()


def test_outbox_prune_says_how_many_it_removed(cli_database: str) -> None:
    runner = CliRunner()

    async def seed() -> None:
        db = Database.from_urls(cli_database)
        for _ in range(5):
            await stored(db, "delivered", age=50 * DAY, delivered=50 * DAY)
        await stored(db, "delivered", age=20 * DAY, delivered=20 * DAY)
        await stored(db, "dead", age=90 * DAY)
        await db.dispose()

    asyncio.run(seed())
    result = runner.invoke(cli, ["outbox", "prune", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "5 delivered event(s) and 20 delivery attempt(s) removed "
        "(delivered more than 30 days ago; 3 batch(es))\n"
    )
    assert runner.invoke(cli, ["outbox", "list"]).output == "dead 1, delivered 1\n"
    shorter = runner.invoke(cli, ["outbox", "prune", "--older-than-days", "10"])
    assert shorter.exit_code == 0, shorter.output
    assert shorter.output.startswith("1 delivered event(s) and 4 delivery attempt(s) removed")
    assert runner.invoke(cli, ["outbox", "list"]).output == "dead 1\n"
    again = runner.invoke(cli, ["outbox", "prune"])
    assert again.exit_code == 0
    assert again.output.startswith("0 delivered event(s) and 0 delivery attempt(s) removed")
    for args in (["--older-than-days", "6"], ["--batch", "0"]):
        refused = runner.invoke(cli, ["outbox", "prune", *args])
        assert refused.exit_code == 2, refused.output
    assert runner.invoke(cli, ["outbox", "list"]).output == "dead 1\n"


# ------------------------------------------------------------------ the workers


@pytest.fixture
async def fresh_db(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    """A database of its own with committed data (workers and prunes run concurrently)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    else:
        base = str(request.getfixturevalue("postgres_url"))
        name = "prune_" + uuid.uuid4().hex[:8]
        host = base.split("host=")[-1]
        connection = await asyncpg.connect(user="postgres", database="postgres", host=host)
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()
        url = base.replace("/vnehr_test?", f"/{name}?")
    await upgrade(url)
    db = Database.from_urls(url)
    yield db
    await db.dispose()


class Taker:
    """A consumer that remembers every event it was handed (a second call is a double
    delivery)."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
        self.taken.append(event.event_id)
        return {"n": len(self.taken)}


async def _until(check: Any, seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("bus", ["inprocess", "nats"])
async def test_the_worker_prunes_every_interval_and_keeps_delivering(
    fresh_db: Database, bus: str, request: pytest.FixtureRequest
) -> None:
    taker = Taker()
    consumers: exchange.Consumers = {"visit.accepted": {"bhxh": taker}}
    policy = exchange.Policy(keep_days=30, prune_every_seconds=0.3, prune_batch=2)
    first = [await stored(fresh_db, "delivered", age=40 * DAY, delivered=40 * DAY, targets=("bhxh",)) for _ in range(3)]  # fmt: skip
    stop = asyncio.Event()
    if bus == "nats":
        stream = f"P{uuid.uuid4().hex[:6]}"
        nats_bus.STREAM, nats_bus.PREFIX = stream, f"{stream.lower()}.events."
        url = str(request.getfixturevalue("nats_url"))
        worker = asyncio.create_task(nats_bus.run(fresh_db, url, consumers, policy, stop=stop))
    else:
        worker = asyncio.create_task(exchange.run(fresh_db, consumers, policy, stop=stop))
    try:

        async def gone(ids: list[str]) -> bool:
            events, attempts = await left(fresh_db)
            return events.isdisjoint(ids) and set(attempts).isdisjoint(ids)

        assert await _until(lambda: gone(first))  # on start
        later = [await stored(fresh_db, "delivered", age=40 * DAY, delivered=40 * DAY, targets=("bhxh",)) for _ in range(3)]  # fmt: skip
        async with fresh_db.session() as session:
            fresh = new_event("visit.accepted", "visit:new", {"n": 2})
            session.add(fresh)
        assert await _until(lambda: gone(later))  # and again after the interval

        async def delivered() -> bool:
            async with fresh_db.read_session() as session:
                status = await session.scalar(
                    select(OutboxEvent.status).where(OutboxEvent.event_id == fresh.event_id)
                )
            return status == "delivered"

        assert await _until(delivered)  # deliveries go on meanwhile
        assert taker.taken == [fresh.event_id]  # the pruned ones were never handed out again
    finally:
        stop.set()
        await worker


class Message:
    """A JetStream message as a pull consumer gets it (a fake of the outside system): the
    worker answers it with ack, nak or term."""

    def __init__(self, event_id: str, topic: str, key: str) -> None:
        self.data = orjson.dumps({"event_id": event_id, "topic": topic, "key": key, "id": 0})
        self.answers: list[str] = []
        self.progress = 0  # "still at it" (``in_progress``) heard

    async def ack(self) -> None:
        self.answers.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.answers.append("nak")

    async def term(self) -> None:
        self.answers.append("term")

    async def in_progress(self) -> None:
        self.progress += 1


async def test_a_redelivery_after_the_prune_is_dropped_not_delivered_again(
    fresh_db: Database,
) -> None:
    import random

    taker = Taker()
    event_id = await stored(
        fresh_db, "delivered", age=40 * DAY, delivered=40 * DAY, targets=("report",), key="k"
    )
    await exchange.prune(fresh_db, keep_days=30)
    # JetStream hands the message out again (its ack was lost when a worker died)
    message = Message(event_id, "visit.accepted", "k")
    outcome = await nats_bus.handle_message(
        fresh_db, "report", taker, exchange.Policy(), message, random.Random(1)
    )
    assert (outcome, message.answers, taker.taken) == ("term", ["term"], [])
    assert await left(fresh_db) == (set(), {})


async def test_a_redelivery_racing_the_prune_is_not_delivered_again(fresh_db: Database) -> None:
    """The prune removes an event and its attempts while JetStream hands the event out again:
    the consumer must not find the event but miss the attempts that say it took it."""
    import random

    taker = Taker()
    event_id = await stored(
        fresh_db, "delivered", age=40 * DAY, delivered=40 * DAY, targets=("report",), key="k"
    )
    message = Message(event_id, "visit.accepted", "k")
    async with fresh_db.session() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            # hold back the redelivery's read of the attempts until the prune commits (what a
            # busy server may do between its two reads)
            await session.execute(text("LOCK TABLE delivery_attempt IN ACCESS EXCLUSIVE MODE"))
        found = await retention.prune_batch(session, utcnow() - 30 * DAY, 10, None)
        assert found.events == 1
        redelivery = asyncio.create_task(
            nats_bus.handle_message(
                fresh_db, "report", taker, exchange.Policy(), message, random.Random(1)
            )
        )
        await asyncio.sleep(0.5)
        assert not redelivery.done()  # it waits for the prune
    assert await redelivery == "term"
    assert taker.taken == []  # not counted twice in the report
    assert await left(fresh_db) == (set(), {})  # and no attempt row left behind


# ------------------------------------------------------------------ the BHXH portal (D66)


async def test_a_replayed_original_stays_superseded_after_its_correction_was_pruned(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],  # noqa: F811
) -> None:
    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, 4)
    await send(client, headers, synth.envelope([one], code))
    config.faults.unavailable = True
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=2)
    await deliver_all(db, bhxh, policy, rounds=10)
    [dead] = await exchange.dead_letters(session)  # the original, given up on
    config.faults.unavailable = False
    one.tables["XML1"][0]["GHI_CHU"] = "Bản sửa"
    await send(client, headers, synth.envelope([one], code))
    await deliver_all(db, bhxh, policy)  # the correction reaches the portal
    await session.execute(  # ... long ago
        update(OutboxEvent)
        .where(OutboxEvent.topic == "visit.accepted", OutboxEvent.status == "delivered")
        .values(delivered_at=utcnow() - 60 * DAY, next_attempt_at=utcnow() - 60 * DAY)
    )
    await session.flush()
    assert (await exchange.prune(db, keep_days=30)).events == 1
    visits = (OutboxEvent.topic == "visit.accepted", OutboxEvent.status == "delivered")
    assert await count(session, OutboxEvent, *visits) == 0
    assert await exchange.replay(session, [dead.event_id]) == 1  # the dead letter was kept
    await deliver_all(db, bhxh, policy)
    versions = (
        await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{one.ma_lk}")
    ).json()
    assert [v["version_number"] for v in versions] == [1]  # the portal still holds the correction
    assert list(await session.scalars(select(BhxhReceipt.version))) == [2]
    [note] = await session.scalars(
        select(DeliveryAttempt.detail).where(
            DeliveryAttempt.event_id == dead.event_id,
            DeliveryAttempt.target == "bhxh",
            DeliveryAttempt.outcome == "delivered",
        )
    )
    assert note == {"note": "superseded", "delivered_version": 2}
