"""An event may hold back keys besides its own (D256): a check-in of several visits is one
signed file, sent once under its first visit's key, and the other visits' files wait behind it
too, on both buses. Before, a file of the check-in's second visit could reach the portal while
the check-in was still being retried."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.exchange.test_calls_at_once import _worker
from tests.exchange.test_nats import fresh_db  # noqa: F401  (fixture)
from vnehr import exchange
from vnehr.exchange import retention
from vnehr.exchange.models import DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxAlsoKey, OutboxEvent, add_event, new_event

CHECKIN, VISIT = "checkin.received", "visit.accepted"


class Portal:
    """Refuses the first ``refusals`` check-ins it gets; notes what it took, in order."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.took: list[tuple[str, str]] = []
        self.tried: list[tuple[str, str]] = []

    def consumer(self, what: str) -> exchange.Remote:
        async def prepare(session: Any, event: OutboxEvent) -> exchange.Call[None]:
            async def send() -> None:
                self.tried.append((what, event.key))
                if what == "checkin" and self.refusals > 0:
                    self.refusals -= 1
                    raise exchange.DeliveryFailed("portal busy")
                self.took.append((what, event.key))

            async def record(session: Any, answer: None) -> dict[str, Any]:
                return {}

            return exchange.Call(send=send, record=record)

        return exchange.Remote(prepare=prepare)

    def consumers(self) -> exchange.Consumers:
        return {
            CHECKIN: {"bhxh": self.consumer("checkin")},
            VISIT: {"bhxh": self.consumer("file")},
        }


async def _check_in_then_files(db: Database) -> None:
    """A check-in of visits F:1, F:2 and F:3 (sent under F:1), then the files of F:2 and F:3,
    and of a visit F:9 it does not name."""
    async with db.session() as session:
        checkin = new_event(CHECKIN, "F:1", {"visit_keys": ["1", "2", "3"]})
        await add_event(session, checkin, also_keys=["F:2", "F:3", "F:1"])
        for key in ("F:2", "F:3", "F:9"):
            session.add(new_event(VISIT, key, {}))


def _files_after_the_check_in(portal: Portal) -> None:
    assert sorted(portal.took) == [
        ("checkin", "F:1"),
        ("file", "F:2"),
        ("file", "F:3"),
        ("file", "F:9"),
    ]
    # the files of the visits it names were not even tried until the check-in got through
    # (its last try), though they were written before its first
    checked_in = max(i for i, tried in enumerate(portal.tried) if tried[0] == "checkin")
    named = [i for i, tried in enumerate(portal.tried) if tried[1] in ("F:2", "F:3")]
    assert named
    assert min(named) > checked_in


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_round_sends_no_file_of_a_visit_before_the_check_in_that_names_it(
    fresh_db: Database,  # noqa: F811
) -> None:
    await _check_in_then_files(fresh_db)
    portal = Portal(refusals=3)
    policy = exchange.Policy(backoff_seconds=0.001)
    rng = random.Random(1)
    for _ in range(100):
        await exchange.deliver_once(fresh_db, portal.consumers(), policy, rng=rng)
        if len(portal.took) == 4:
            break
        await asyncio.sleep(0.01)
    assert ("file", "F:9") in portal.took[:2]  # a visit the check-in does not name never waits
    _files_after_the_check_in(portal)
    assert portal.tried.count(("checkin", "F:1")) == 4


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_jetstream_consumer_sends_no_file_before_the_check_in_that_names_it(
    fresh_db: Database,  # noqa: F811
    nats_url: str,
) -> None:
    await _check_in_then_files(fresh_db)
    portal = Portal(refusals=2)
    policy = exchange.Policy(backoff_seconds=0.05)
    async with _worker(fresh_db, nats_url, portal.consumers(), policy):
        for _ in range(400):
            if len(portal.took) == 4:
                break
            await asyncio.sleep(0.05)
    _files_after_the_check_in(portal)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_the_held_keys_go_with_their_event_when_it_is_pruned(
    fresh_db: Database,  # noqa: F811
) -> None:
    await _check_in_then_files(fresh_db)
    old = utcnow() - timedelta(days=40)
    async with fresh_db.session() as session:
        for event in await session.scalars(select(OutboxEvent)):
            event.status, event.delivered_at, event.next_attempt_at = "delivered", old, old
    assert await _held(fresh_db) == 2
    await retention.prune(fresh_db, keep_days=30)
    assert await _held(fresh_db) == 0
    async with fresh_db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 0


async def _held(db: Database) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxAlsoKey)) or 0)
