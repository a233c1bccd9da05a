"""The in-process worker delivers up to 50 events in one transaction, calling the BHXH portal
for some of them; an intake batch (group commit, `vnehr import`) adds the report's counters of
its visits as its last statement (D113). The worker's report consumer must neither make the
batch wait for the portal's answers nor lock the same counters in another order (a deadlock,
which PostgreSQL breaks by failing one of the two), and it counts each event once (D121)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import new_database_on
from vnehr import exchange, reporting
from vnehr.exchange.models import DeliveryAttempt
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent, record_event
from vnehr.reporting.models import ReportCount

FIRST, SECOND = "98801", "98802"  # facility codes: FIRST's counters sort before SECOND's


def rejected(code: str) -> dict[str, Any]:
    """A ``visit.rejected`` payload as the intake writes it for a file it refused."""
    return {
        "facility_code": code,
        "visit_key": "K" + code,
        "codes": ["SUB-0101"],
        "received_at": "2026-10-07T09:00:00+00:00",
        "submission_id": "s-" + code,
    }


class Portal:
    """The BHXH portal's call in a delivery round: it answers when the test says so."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.answer = asyncio.Event()

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
        self.called.set()
        await self.answer.wait()
        return {"ma_giao_dich": "GD-1"}


@pytest.fixture
def own_database(postgres_url: str) -> str:
    """A database of its own: the worker and the batch commit for real, and the round must
    take only this test's events."""
    return new_database_on(postgres_url, "roundlocks")


async def rejections_counted(db: Database, code: str) -> int:
    async with db.read_session() as session:
        found = await session.scalar(
            select(func.sum(ReportCount.value)).where(
                ReportCount.facility == code, ReportCount.metric == "rejected_visits"
            )
        )
    return int(found or 0)


async def intake_batch(db: Database, codes: list[str]) -> None:
    """The end of an intake batch: its rejections counted in one statement, then the commit."""
    async with db.session() as session:
        await reporting.intake_counter()(session, [], [rejected(c) for c in codes])


async def waiting_on_a_lock(db: Database) -> bool:
    """Whether a statement on ``db`` waits for another transaction's lock (PostgreSQL; on
    SQLite a writer waits for the file, never for a lock this can see)."""
    if db.engine is None or db.engine.dialect.name != "postgresql":
        return False
    async with db.read_session() as session:
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def round_with_portal(db: Database, first: str, second: str) -> tuple[Portal, Any]:
    """Events: ``first``'s rejection, a file for the portal, ``second``'s rejection; a round
    started on them, stopped in the portal's call."""
    async with db.session() as session:
        await record_event(session, "visit.rejected", "K" + first, rejected(first))
        await record_event(session, "checkin.received", "checkin", {"submission_id": "s"})
        await record_event(session, "visit.rejected", "K" + second, rejected(second))
    portal = Portal()
    report = reporting.consumers()
    consumers: exchange.Consumers = {
        "visit.rejected": {"report": report["visit.rejected"]},
        "checkin.received": {"bhxh": portal},
    }
    delivering = asyncio.create_task(exchange.deliver_once(db, consumers, exchange.Policy()))
    await asyncio.wait_for(portal.called.wait(), timeout=10)
    return portal, delivering


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_an_intake_batch_does_not_wait_for_the_portal_calls_of_a_delivery_round(
    backend: str, own_database: str
) -> None:
    await upgrade(own_database)
    db = Database.from_urls(own_database)
    try:
        portal, delivering = await round_with_portal(db, FIRST, SECOND)
        # the round has taken FIRST's rejection and waits for the portal (BHXH latency)
        batch = asyncio.create_task(intake_batch(db, [FIRST]))
        done, _ = await asyncio.wait({batch}, timeout=3)
        portal.answer.set()
        assert await delivering == 3
        await batch
        assert batch in done, "the intake batch waited for the portal's answer"
        assert await rejections_counted(db, FIRST) == 2
        assert await rejections_counted(db, SECOND) == 1
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_delivery_round_and_an_intake_batch_counting_the_same_facilities_never_deadlock(
    backend: str, own_database: str
) -> None:
    await upgrade(own_database)
    db = Database.from_urls(own_database)
    try:
        # the round takes SECOND's rejection first, FIRST's after the portal's call: the
        # event order, not the counters' order
        portal, delivering = await round_with_portal(db, SECOND, FIRST)
        batch = asyncio.create_task(intake_batch(db, [FIRST, SECOND]))  # key order
        for _ in range(100):  # until the batch is through, or stuck behind the round
            if batch.done() or await waiting_on_a_lock(db):
                break
            await asyncio.sleep(0.05)
        portal.answer.set()
        outcomes = await asyncio.gather(delivering, batch, return_exceptions=True)
        assert outcomes == [3, None]
        async with db.read_session() as session:
            failed = await session.scalar(
                select(func.count())
                .select_from(DeliveryAttempt)
                .where(DeliveryAttempt.outcome != "delivered")
            )
            pending = await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.status != "delivered")
            )
        assert (failed, pending) == (0, 0)
        assert await rejections_counted(db, FIRST) == 2
        assert await rejections_counted(db, SECOND) == 2
    finally:
        await db.dispose()


async def test_a_rejection_retried_for_another_consumer_is_counted_once(db: Database) -> None:
    tries: list[str] = []

    async def fails_first(session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
        tries.append(event.event_id)
        if len(tries) == 1:
            raise exchange.DeliveryFailed("the other side is down")
        return {}

    consumers: exchange.Consumers = {
        "visit.rejected": {"report": reporting.consumers()["visit.rejected"], "other": fails_first}
    }
    async with db.session() as session:
        await record_event(session, "visit.rejected", "K" + FIRST, rejected(FIRST))
    policy = exchange.Policy(backoff_seconds=0.0)
    assert await exchange.deliver_once(db, consumers, policy) == 1
    assert await rejections_counted(db, FIRST) == 1  # counted though the event is retried
    assert await exchange.deliver_once(db, consumers, policy) == 1
    assert len(tries) == 2
    assert await rejections_counted(db, FIRST) == 1
    async with db.read_session() as session:
        status = await session.scalar(select(OutboxEvent.status))
    assert status == "delivered"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_rejection_that_cannot_be_counted_leaves_the_rest_of_its_round_counted(
    backend: str, db: Database
) -> None:
    broken = {**rejected(SECOND), "codes": ["X" * 40]}  # longer than a counter's dimension
    async with db.session() as session:
        await record_event(session, "visit.rejected", "K" + FIRST, rejected(FIRST))
        broken_id = await record_event(session, "visit.rejected", "K" + SECOND, broken)
        await record_event(session, "visit.rejected", "K" + FIRST + "b", rejected(FIRST))
    consumers: exchange.Consumers = {
        "visit.rejected": {"report": reporting.consumers()["visit.rejected"]}
    }
    assert await exchange.deliver_once(db, consumers, exchange.Policy()) == 3
    assert await rejections_counted(db, FIRST) == 2
    assert await rejections_counted(db, SECOND) == 0
    async with db.read_session() as session:
        rows = await session.execute(select(OutboxEvent.event_id, OutboxEvent.status))
        states: dict[str, str] = dict(list(rows))
        outcome = await session.scalar(
            select(DeliveryAttempt.outcome).where(DeliveryAttempt.event_id == broken_id)
        )
    assert states.pop(broken_id) == "pending"  # tried again later, for the report only
    assert set(states.values()) == {"delivered"}
    assert outcome == "failed"
