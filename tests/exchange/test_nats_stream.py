"""The JetStream stream does not grow without bound: it keeps messages as long as the outbox
keeps delivered events (D81), optionally up to a size cap at which it refuses new messages
rather than dropping old ones; a stream made by an earlier release (without limits) gets them
when a worker starts, and no message a consumer has not taken yet is lost by it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import APIError, NotFoundError
from sqlalchemy import func, select
from structlog.testing import LogCapture

from vnehr import exchange
from vnehr.app import exchange_handlers
from vnehr.exchange import nats_bus
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent, new_event
from vnehr.kit.settings import Settings

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
    db: Database,
    nats_url: str,
    keep_days: int,
    max_bytes: int | None = None,
    names: tuple[str, ...] = ("bhxh",),
    unused_after: timedelta = nats_bus.UNUSED_AFTER,
) -> None:
    """A worker that starts (sets the stream up, creates its consumers) and stops at once."""
    stop = asyncio.Event()
    stop.set()
    consumers: exchange.Consumers = {TOPIC: dict.fromkeys(names, _ignore)}
    policy = exchange.Policy(keep_days=keep_days)
    await nats_bus.run(db, nats_url, consumers, policy, stop=stop, max_bytes=max_bytes,
                       unused_after=unused_after)  # fmt: skip


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


CONSUMERS = ("bhxh", "inbox", "report")
CAP = 1_048_576  # the smallest cap the settings allow


async def subscribe(js: JetStreamContext, names: tuple[str, ...] = CONSUMERS) -> list[Any]:
    """Pull subscriptions bound to the worker's durable consumers (as its loops read them)."""
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60, max_deliver=-1)
    return [
        await js.pull_subscribe(
            nats_bus.PREFIX + TOPIC,
            durable=nats_bus.durable_name(name, TOPIC),
            stream=nats_bus.STREAM,
            config=config,
        )
        for name in names
    ]


BODY = b'{"event_id":"%s","topic":"visit.accepted","key":"01001/K","id":1}' + b" " * 150


async def publish_one(js: JetStreamContext, message_id: str) -> None:
    """A message of the size the relay sends (about 270 bytes with its headers)."""
    await js.publish(
        nats_bus.PREFIX + TOPIC,
        BODY % message_id.encode(),
        headers={"Nats-Msg-Id": message_id},
    )


async def fill(js: JetStreamContext) -> int:
    """Publish until the stream refuses; how many it took."""
    refused: APIError | None = None
    n = 0
    while refused is None and n < 100_000:
        try:
            await publish_one(js, f"fill-{uuid.uuid4().hex}")
            n += 1
        except APIError as error:
            refused = error
    assert refused is not None, "the stream never filled"
    assert "maximum bytes exceeded" in str(refused.description)
    return n


async def take_everything(subscriptions: list[Any]) -> None:
    for subscription in subscriptions:
        while True:
            try:
                messages = await subscription.fetch(500, timeout=0.5)
            except TimeoutError:  # nothing left (nats' and asyncio's both are one)
                break
            for message in messages:
                await message.ack()


async def test_a_full_stream_takes_messages_again_once_every_consumer_has_acknowledged(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    await start_and_stop(db, nats_url, keep_days=30, max_bytes=CAP, names=CONSUMERS)
    subscriptions = await subscribe(js)
    assert await fill(js) > 1000
    await take_everything(subscriptions[:2])
    with pytest.raises(APIError):  # one consumer is behind: the stream stays full
        await publish_one(js, "late")

    await take_everything(subscriptions[2:])
    # before: acknowledged messages stayed until max_age (30 days) and the relay stalled
    await publish_one(js, "after")
    info = await js.stream_info(nats_bus.STREAM)
    assert info.config.retention == RetentionPolicy.INTEREST
    assert info.state.messages == 1


async def test_a_full_stream_of_an_earlier_release_is_emptied_of_what_was_taken_on_start(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    # as the previous release made it: messages kept until max_age, even when taken
    await js.add_stream(
        StreamConfig(
            name=nats_bus.STREAM,
            subjects=[f"{nats_bus.PREFIX}>"],
            duplicate_window=3600.0,
            max_age=30 * DAY,
            max_bytes=CAP,
            discard=DiscardPolicy.NEW,
        )
    )
    subscriptions = await subscribe(js)
    await fill(js)
    await take_everything(subscriptions[1:])  # the BHXH consumer is behind
    await start_and_stop(db, nats_url, keep_days=30, max_bytes=CAP, names=CONSUMERS)
    info = await js.stream_info(nats_bus.STREAM)
    assert info.config.retention == RetentionPolicy.INTEREST
    assert info.state.messages > 1000  # what the BHXH consumer has not taken is kept

    await take_everything(subscriptions[:1])
    await publish_one(js, "after")
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 1


async def test_the_relay_says_once_that_the_stream_is_full_and_the_events_wait(
    js: JetStreamContext, db: Database, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = LogCapture()
    monkeypatch.setattr(nats_bus, "log", structlog.wrap_logger(None, processors=[lines]))
    await start_and_stop(db, nats_url, keep_days=30, max_bytes=CAP, names=CONSUMERS)
    subscriptions = await subscribe(js)
    await fill(js)
    async with db.session() as session:
        session.add_all(new_event(TOPIC, f"01001/K{i}", {}) for i in range(5))

    async def waiting() -> int:
        async with db.session() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.topic == TOPIC, OutboxEvent.status == "pending")
                )
                or 0
            )

    for _ in range(5):  # the relay loop tries again every 0.2 s
        assert await nats_bus.relay_once(db, js) == 0
    assert await waiting() == 5  # they wait in the outbox (its gauges show them, D80)
    full = [e for e in lines.entries if e["event"] == "stream_full"]
    assert len(full) == 1  # once, without a traceback; before: one a try
    assert "maximum bytes exceeded" in full[0]["error"]
    assert not [e for e in lines.entries if e.get("exc_info")]

    await take_everything(subscriptions)
    assert await nats_bus.relay_once(db, js) == 1  # while full it tries one at a time
    assert await nats_bus.relay_once(db, js) == 4
    assert await waiting() == 0
    assert [e["event"] for e in lines.entries] == ["stream_full", "stream_full_cleared"]

    await fill(js)  # a second outage is told again
    async with db.session() as session:
        session.add(new_event(TOPIC, "01001/K9", {}))
    assert await nats_bus.relay_once(db, js) == 0
    assert [e["event"] for e in lines.entries][-1] == "stream_full"


async def test_an_idle_worker_logs_nothing_while_there_is_nothing_to_fetch(
    js: JetStreamContext, tmp_path: Path, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch that finds nothing ends in the built-in TimeoutError (nats-py raises asyncio's,
    which is it, as well as its own): an idle worker logged ``fetch_failed`` at error level,
    with a traceback, every second for each consumer."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'idle.db'}"  # (the worker's tasks share it)
    await upgrade(url)
    db = Database.from_urls(url)
    lines = LogCapture()
    monkeypatch.setattr(nats_bus, "log", structlog.wrap_logger(None, processors=[lines]))
    stop = asyncio.Event()
    consumers: exchange.Consumers = {TOPIC: dict.fromkeys(CONSUMERS, _ignore)}
    worker = asyncio.create_task(
        nats_bus.run(db, nats_url, consumers, exchange.Policy(keep_days=30), stop=stop)
    )
    try:
        await asyncio.sleep(2.5)  # each consumer's fetch waits 1 s for messages, twice
    finally:
        stop.set()
        await worker
        await db.dispose()
    assert [e["event"] for e in lines.entries if e["log_level"] in ("error", "critical")] == []
    assert not [e for e in lines.entries if e.get("exc_info")]


class IdleSubscription:
    """Stands in for nats-py's pull subscription with nothing to deliver, when the server's
    "request timeout" (408) for the fetch arrives just before the client's own timer fires (a
    busy host): nats-py then raises asyncio's TimeoutError, the built-in one, not its own."""

    def __init__(self) -> None:
        self.fetches = 0
        self.fetched_five = asyncio.Event()

    async def fetch(self, batch: int, timeout: float) -> list[Any]:  # noqa: ASYNC109 (nats-py's)
        self.fetches += 1
        if self.fetches == 5:
            self.fetched_five.set()
        await asyncio.sleep(0.01)
        raise TimeoutError  # (asyncio.TimeoutError is it)


async def test_a_fetch_that_ends_in_the_builtin_timeout_is_nothing_to_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = LogCapture()
    monkeypatch.setattr(nats_bus, "log", structlog.wrap_logger(None, processors=[lines]))
    db = Database.from_urls("sqlite+aiosqlite://")  # (never used: nothing arrives)
    subscription, stop = IdleSubscription(), asyncio.Event()
    run = nats_bus._consume(
        db, subscription, "bhxh", _ignore, exchange.Policy(), random.Random(1), stop
    )
    consumer = asyncio.create_task(run)
    # before: each fetch logged fetch_failed with a traceback, then waited a second
    await asyncio.wait_for(subscription.fetched_five.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(consumer, timeout=5)
    await db.dispose()
    assert lines.entries == []


async def test_a_consumer_nobody_runs_any_more_is_named_when_it_holds_messages(
    js: JetStreamContext, db: Database, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on an interest stream it keeps its messages until max_age: the operator removes it
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",))
    await subscribe(js, ("bhxh", "retired"))
    await publish(js, 3)
    lines = LogCapture()
    monkeypatch.setattr(nats_bus, "log", structlog.wrap_logger(None, processors=[lines]))
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",))
    [unused] = [e for e in lines.entries if e["event"] == "stream_consumer_unused"]
    assert unused["consumer"] == nats_bus.durable_name("retired", TOPIC)
    assert unused["pending"] == 3


# ------------------------------------------------------------------ consumers nobody runs


async def _consumers(js: JetStreamContext) -> dict[str, Any]:
    return {c.name: c for c in await js.consumers_info(nats_bus.STREAM)}


async def _eventually(check: Any, seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


IDLE = timedelta(seconds=1)


async def test_a_consumer_nobody_runs_any_more_goes_once_idle_and_its_messages_with_it(
    js: JetStreamContext, db: Database, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left by an earlier release (or a feature switched off): it held its topic's messages
    until max_age, a month, and the stream full meanwhile (D102). Now the worker hands it to
    the server to remove once nobody has pulled from it for a while; what it held goes."""
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",))
    bhxh, _retired = await subscribe(js, ("bhxh", "retired"))
    await publish(js, 3)
    await take_everything([bhxh])
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 3  # held by "retired"

    lines = LogCapture()
    monkeypatch.setattr(nats_bus, "log", structlog.wrap_logger(None, processors=[lines]))
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",), unused_after=IDLE)
    [unused] = [e for e in lines.entries if e["event"] == "stream_consumer_unused"]
    assert unused["consumer"] == nats_bus.durable_name("retired", TOPIC)
    assert unused["pending"] == 3
    assert unused["removed_when_idle_seconds"] == 1

    async def gone() -> bool:
        return nats_bus.durable_name("retired", TOPIC) not in await _consumers(js)

    assert await _eventually(gone)
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 0
    assert set(await _consumers(js)) == {nats_bus.durable_name("bhxh", TOPIC)}


async def test_a_stopped_workers_consumers_keep_their_messages(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    """The consumers of the configuration are never handed over: with every worker stopped
    they keep what they have not taken, however long. One that a worker of another
    configuration handed over (the feature off there) is taken back by a worker that runs it."""
    await start_and_stop(db, nats_url, keep_days=30, names=CONSUMERS, unused_after=IDLE)
    await publish(js, 3)
    # a worker with the report switched off, then one with everything again
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh", "inbox"), unused_after=IDLE)
    await start_and_stop(db, nats_url, keep_days=30, names=CONSUMERS, unused_after=IDLE)
    await asyncio.sleep(3 * IDLE.total_seconds())  # idle for longer than the threshold
    found = await _consumers(js)
    assert set(found) == {nats_bus.durable_name(n, TOPIC) for n in CONSUMERS}
    for consumer in found.values():
        assert consumer.num_pending == 3
        assert not consumer.config.inactive_threshold
    assert (await js.stream_info(nats_bus.STREAM)).state.messages == 3


async def test_a_consumer_of_another_release_is_left_alone_while_its_workers_are_down(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    """The workers running every consumer are down; a worker of another release that does
    not run the report's consumer starts. That consumer is one vnehr runs (not retired), so
    it is not handed to the server to remove: it keeps what it has not taken, and the report
    misses nothing when its workers come back. Before, it went an hour later with its
    messages."""
    await start_and_stop(db, nats_url, keep_days=30, names=CONSUMERS, unused_after=IDLE)
    await publish(js, 3)
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh", "inbox"), unused_after=IDLE)
    await asyncio.sleep(3 * IDLE.total_seconds())  # idle for longer than the threshold
    report = (await _consumers(js)).get(nats_bus.durable_name("report", TOPIC))
    assert report is not None, "the report's consumer was removed"
    assert report.num_pending == 3
    assert not report.config.inactive_threshold


async def test_a_consumer_a_release_retired_goes_once_idle(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    """A consumer vnehr once ran and a release retired (named in ``RETIRED_CONSUMERS``) is
    handed over like one vnehr never knew."""
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",))
    report = nats_bus.durable_name("report", TOPIC)
    await subscribe(js, ("report",))
    bhxh = {nats_bus.durable_name("bhxh", TOPIC)}
    await nats_bus.tend_consumers(js, bhxh, IDLE, retired={report})

    async def gone() -> bool:
        return report not in await _consumers(js)

    assert await _eventually(gone)


async def test_every_consumer_the_worker_runs_is_known(settings: Settings) -> None:
    """A consumer added to the wiring is named in ``KNOWN_CONSUMERS`` (and not retired), or a
    worker of this release would hand it over while that feature's workers are down."""
    async with httpx.AsyncClient() as http:
        running = nats_bus.durables(exchange_handlers(settings, http))
    assert running <= nats_bus.KNOWN_CONSUMERS
    assert not running & nats_bus.RETIRED_CONSUMERS


async def test_a_consumer_an_older_release_still_runs_is_kept_while_it_pulls(
    js: JetStreamContext, db: Database, nats_url: str
) -> None:
    """A rolling upgrade: a worker of the earlier release still reads a consumer this release
    no longer has. It is removed only after that worker stopped pulling."""
    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",))
    [older] = await subscribe(js, ("retired",))
    stop = asyncio.Event()

    async def pulling() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                for message in await older.fetch(10, timeout=0.5):
                    await message.ack()

    reader = asyncio.create_task(pulling())
    retired = nats_bus.durable_name("retired", TOPIC)
    try:
        await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",), unused_after=IDLE)
        await asyncio.sleep(3 * IDLE.total_seconds())
        assert retired in await _consumers(js)
    finally:
        stop.set()
        await reader

    async def gone() -> bool:
        return retired not in await _consumers(js)

    assert await _eventually(gone)


async def test_the_command_lists_the_consumers_with_what_they_hold(
    js: JetStreamContext, db: Database, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``vnehr outbox consumers``: each consumer of the stream, whether this configuration
    runs it, what it has not taken yet and what it took without answering."""
    from typer.testing import CliRunner

    from vnehr.cli import app
    from vnehr.kit.settings import get_settings

    await start_and_stop(db, nats_url, keep_days=30, names=("bhxh",))
    await subscribe(js, ("retired",))
    await publish(js, 2)
    monkeypatch.setenv("VNEHR_BUS", "nats")
    monkeypatch.setenv("VNEHR_NATS_URL", nats_url)
    get_settings.cache_clear()
    try:  # (the command runs its own event loop)
        shown = await asyncio.to_thread(CliRunner().invoke, app, ["outbox", "consumers"])
        as_json = await asyncio.to_thread(
            CliRunner().invoke, app, ["outbox", "consumers", "--json"]
        )
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    retired = nats_bus.durable_name("retired", TOPIC)
    [line] = [line for line in shown.output.splitlines() if line.startswith(retired)]
    assert "not configured" in line
    assert "pending 2" in line
    rows = {row["consumer"]: row for row in json.loads(as_json.output)}
    assert rows[retired]["configured"] is False
    assert rows[retired]["pending"] == 2
    bhxh = rows[nats_bus.durable_name("bhxh", TOPIC)]
    assert (bhxh["configured"], bhxh["pending"], bhxh["unacknowledged"]) == (True, 2, 0)


def test_the_command_says_in_one_line_that_nats_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from tests.conftest import free_port
    from vnehr.cli import app
    from vnehr.kit.settings import get_settings

    port = free_port()  # nothing listens there
    monkeypatch.setenv("VNEHR_BUS", "nats")
    monkeypatch.setenv("VNEHR_NATS_URL", f"nats://vnehr:s3cret-pw@127.0.0.1:{port}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["outbox", "consumers"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"cannot connect to NATS at 127.0.0.1:{port}: ")
    assert "s3cret" not in result.output
