"""The JetStream stream does not grow without bound: it keeps messages as long as the outbox
keeps delivered events (D81), optionally up to a size cap at which it refuses new messages
rather than dropping old ones; a stream made by an earlier release (without limits) gets them
when a worker starts, and no message a consumer has not taken yet is lost by it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, StreamConfig
from nats.js.errors import NotFoundError

from vnehr import exchange
from vnehr.exchange import nats_bus
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent

DAY = 86400.0
TOPIC = "visit.accepted"


@pytest.fixture
async def js(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[JetStreamContext]:
    """A stream name of this test's own on the shared server."""
    stream = f"L{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(nats_bus, "STREAM", stream)
    monkeypatch.setattr(nats_bus, "PREFIX", f"{stream.lower()}.events.")
    client: Client = await nats.connect(nats_url)
    js = client.jetstream()
    try:
        yield js
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
        await client.close()


async def _ignore(session: Any, event: OutboxEvent) -> dict[str, Any] | None:
    return None


async def start_and_stop(
    db: Database, nats_url: str, keep_days: int, max_bytes: int | None = None
) -> None:
    """A worker that starts (sets the stream up, creates its consumers) and stops at once."""
    stop = asyncio.Event()
    stop.set()
    consumers: exchange.Consumers = {TOPIC: {"bhxh": _ignore}}
    policy = exchange.Policy(keep_days=keep_days)
    await nats_bus.run(db, nats_url, consumers, policy, stop=stop, max_bytes=max_bytes)


async def publish(js: JetStreamContext, n: int) -> None:
    for i in range(n):
        await js.publish(
            nats_bus.PREFIX + TOPIC,
            b'{"event_id": "x"}',
            headers={"Nats-Msg-Id": uuid.uuid4().hex + str(i)},
        )


async def test_a_new_stream_keeps_messages_as_long_as_the_outbox_and_caps_its_size(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    await start_and_stop(db, nats_url, keep_days=9, max_bytes=2_000_000)
    config = (await js.stream_info(nats_bus.STREAM)).config
    assert config.max_age == 9 * DAY
    assert config.max_bytes == 2_000_000
    assert config.discard == DiscardPolicy.NEW
    assert config.duplicate_window == 3600.0


async def test_a_stream_of_an_earlier_release_gets_the_limits_and_keeps_its_messages(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    # as the earlier release made it: no limits at all
    await js.add_stream(
        StreamConfig(
            name=nats_bus.STREAM,
            subjects=[f"{nats_bus.PREFIX}>"],
            num_replicas=1,
            duplicate_window=3600.0,
        )
    )
    await start_and_stop(db, nats_url, keep_days=30)  # creates the durable consumer
    await publish(js, 5)
    await start_and_stop(db, nats_url, keep_days=30)
    info = await js.stream_info(nats_bus.STREAM)
    assert info.config.max_age == 30 * DAY
    assert info.config.max_bytes == -1  # no cap unless configured
    assert info.config.discard == DiscardPolicy.NEW
    assert info.state.messages == 5  # nothing not yet taken was dropped
    [consumer] = await js.consumers_info(nats_bus.STREAM)
    assert consumer.num_pending == 5

    # a cap below what the stream holds: new messages are refused, none is dropped
    await start_and_stop(db, nats_url, keep_days=30, max_bytes=1_048_576)
    assert (await js.stream_info(nats_bus.STREAM)).config.max_bytes == 1_048_576
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 5


async def test_shorter_limits_never_drop_a_message_a_consumer_has_not_taken(
    js: JetStreamContext,
) -> None:
    # an earlier stream with a short duplicate window, so that a short max_age is allowed
    await js.add_stream(
        StreamConfig(name=nats_bus.STREAM, subjects=[f"{nats_bus.PREFIX}>"], duplicate_window=0.5)
    )
    durable = nats_bus.durable_name("bhxh", TOPIC)
    other = nats_bus.durable_name("report", TOPIC)
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60, max_deliver=-1)
    taker = await js.pull_subscribe(
        nats_bus.PREFIX + TOPIC, durable=durable, stream=nats_bus.STREAM, config=config
    )
    await js.pull_subscribe(  # a consumer nobody runs any more: it holds nothing back
        nats_bus.PREFIX + TOPIC, durable=other, stream=nats_bus.STREAM, config=config
    )
    await publish(js, 3)
    await asyncio.sleep(2.5)

    # the consumer has not taken them: a 2 s limit would drop them, so the age is widened
    applied = await nats_bus.ensure_stream(js, max_age=timedelta(seconds=2), durables={durable})
    await asyncio.sleep(1.5)
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 3
    assert applied.max_age is not None
    assert applied.max_age >= 4.5  # its age (2.5 s) and a full period more
    for message in await taker.fetch(3, timeout=2):
        await message.ack()

    # once taken, the limit applies as configured and the old messages go
    applied = await nats_bus.ensure_stream(js, max_age=timedelta(seconds=2), durables={durable})
    assert applied.max_age == 2.0
    for _ in range(50):
        if not (await js.stream_info(nats_bus.STREAM)).state.messages:
            break
        await asyncio.sleep(0.1)
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 0
