"""An event held in the outbox until a later day (a representation's day, D247) is not handed
to JetStream before its time: the relay takes what is due, and the held event once its hour
has come. JetStream itself has no delivery at a time of the sender's choosing."""

from __future__ import annotations

from datetime import timedelta

from nats.js import JetStreamContext
from sqlalchemy import select, update

from tests.exchange.test_nats_stream import TOPIC, js, start_and_stop  # noqa: F401
from vnehr.exchange import nats_bus
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent, new_event


async def _status(db: Database) -> dict[str, str]:
    async with db.session() as session:
        return {e.key: e.status for e in await session.scalars(select(OutboxEvent))}


async def test_the_relay_hands_over_a_held_event_only_once_its_hour_has_come(
    js: JetStreamContext,  # noqa: F811
    db: Database,
    nats_url: str,
) -> None:
    await start_and_stop(db, nats_url, keep_days=30)
    held = new_event(TOPIC, "later", {})
    held.next_attempt_at = utcnow() + timedelta(days=3)
    async with db.session() as session:
        session.add_all([held, new_event(TOPIC, "now", {})])

    assert await nats_bus.relay_once(db, js) == 1
    assert await _status(db) == {"now": "relayed", "later": "pending"}
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 1
    assert await nats_bus.relay_once(db, js) == 0  # still held

    async with db.session() as session:  # the day comes
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.key == "later")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert await nats_bus.relay_once(db, js) == 1
    assert await _status(db) == {"now": "relayed", "later": "relayed"}
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 2
