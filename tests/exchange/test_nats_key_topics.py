"""On JetStream each consumer keeps a person's events in order (one ordering key,
``person:{id}``), but only among the topics it reads: the report's ``account.changed`` never
holds back an inbox notice of the same person, nor the other way round. Before, a former
agent's "you no longer act for ‹child›" waited behind their own book's opening, which the inbox
never takes, until that event was pruned (30 days) or the message expired."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.test_database_outage import Message
from vnehr import exchange
from vnehr.app import exchange_handlers
from vnehr.exchange import nats_bus
from vnehr.exchange.models import DeliveryAttempt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent, new_event
from vnehr.kit.settings import Settings


@pytest.fixture(autouse=True)
def wired(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The topics each consumer reads, as a worker of the app's own wiring knows them."""
    consumers = exchange_handlers(settings, None)  # type: ignore[arg-type]
    monkeypatch.setattr(
        nats_bus, "_consumer_names", {topic: frozenset(named) for topic, named in consumers.items()}
    )


async def _two(db: Database, first: str, then: str, taken_by: str) -> tuple[str, str]:
    """Two events of one person, ``first`` already taken by ``taken_by`` (its only reader)."""
    one, two = new_event(first, "person:7", {"person_id": 7}), new_event(then, "person:7", {})
    async with db.session() as session:
        session.add(one)
        await session.flush()
        session.add(two)
        await session.flush()
        now = utcnow()
        session.add(
            DeliveryAttempt(event_id=one.event_id, topic=first, target=taken_by, attempt=1,
                            started_at=now, finished_at=now, outcome="delivered")
        )  # fmt: skip
        one.status, two.status = "delivered", "relayed"
    return one.event_id, two.event_id


async def _handle(db: Database, name: str, event_id: str) -> tuple[str, list[str]]:
    taken: list[str] = []

    async def handler(session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        taken.append(event.event_id)
        return None

    message = Message(event_id)
    outcome = await nats_bus.handle_message(
        db, name, handler, exchange.Policy(), message, random.Random(1)
    )
    return outcome, taken


async def test_an_inbox_notice_does_not_wait_for_an_event_only_the_report_reads(
    db: Database,
) -> None:
    _, released = await _two(db, "account.changed", "representative.released", "report")
    outcome, taken = await _handle(db, "inbox", released)
    assert (outcome, taken) == ("ack", [released])


async def test_the_reports_event_does_not_wait_for_an_inbox_notice(db: Database) -> None:
    _, changed = await _two(db, "representative.released", "account.changed", "inbox")
    outcome, taken = await _handle(db, "report", changed)
    assert (outcome, taken) == ("ack", [changed])


async def test_an_earlier_event_the_consumer_reads_still_comes_first(db: Database) -> None:
    """The order the key exists for: a later notice waits for an earlier one not yet taken."""
    added = new_event("representative.added", "person:7", {"person_id": 7})
    ended = new_event("representative.ended", "person:7", {"person_id": 7})
    async with db.session() as session:
        session.add(added)
        await session.flush()
        session.add(ended)
        await session.flush()
        added.status = ended.status = "relayed"
        later = ended.event_id
    outcome, taken = await _handle(db, "inbox", later)
    assert (outcome, taken) == ("wait", [])
