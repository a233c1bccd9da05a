"""`vnehr report rebuild` recounts every stored visit, paper and account while some of their
events still wait for the report's consumer (files written alone, FHIR, the papers API,
accounts, a restored backup). Delivering those events afterwards, or while the rebuild runs,
must count nothing twice and miss nothing; and `vnehr report check` says the counters are
right while events merely wait."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.conftest import new_database_on, set_by
from tests.exchange.test_retention import Message
from tests.exchange.test_round_sqlite_lock import PASSWORD, USER, connected_facility
from tests.reporting.test_report import this_half
from tests.reporting.test_round_locks import waiting_on_a_lock
from tests.submissions.test_intake import send, visit
from vnehr import exchange, reporting
from vnehr.app import create_app, exchange_handlers
from vnehr.cli import app
from vnehr.exchange import nats_bus
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings, get_settings
from vnehr.reporting import rollup
from vnehr.reporting.metrics import Count
from vnehr.sim.bhxh import Account, BhxhConfig
from vnehr.sim.bhxh import create_app as create_portal
from vnehr.submissions import synth

runner = CliRunner()
STORES = ["sqlite", "postgresql"]


class Templates:
    """The demo loaded once per database kind (its 8 visits' and 5 papers' events waiting for
    the report), copied for each test."""

    def __init__(self, request: pytest.FixtureRequest, folder: Path) -> None:
        self.request, self.folder = request, folder
        self.urls: dict[str, str] = {}

    def of(self, store: str) -> str:
        if store not in self.urls:
            if store == "sqlite":
                url = f"sqlite+aiosqlite:///{self.folder / 'demo.db'}"
            else:
                url = new_database_on(self.request.getfixturevalue("postgres_url"), "demotmpl")
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("VNEHR_DATABASE_URL", url)
                get_settings.cache_clear()
                assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
                loaded = runner.invoke(app, ["demo", "load"])
                assert loaded.exit_code == 0, loaded.output
            get_settings.cache_clear()
            self.urls[store] = url
        return self.urls[store]


@pytest.fixture(scope="module")
def demo_templates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Templates:
    return Templates(request, tmp_path_factory.mktemp("demo"))


@pytest.fixture
def demo_url(
    request: pytest.FixtureRequest,
    demo_templates: Templates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A database of its own holding the demo, which the CLI commands below use."""
    store = request.param
    template = demo_templates.of(store)
    if store == "sqlite":
        target = tmp_path / "demo.db"
        source = Path(template.removeprefix("sqlite+aiosqlite:///"))
        for suffix in ("", "-wal"):  # (the log is folded in when the last connection closes)
            if Path(f"{source}{suffix}").exists():
                shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
        url = f"sqlite+aiosqlite:///{target}"
    else:
        url = _copy_postgres(template)
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _copy_postgres(template: str) -> str:
    import uuid

    import asyncpg
    from sqlalchemy import make_url

    name = f"demo_{uuid.uuid4().hex[:8]}"
    host = template.split("host=")[-1]
    source = str(make_url(template).database)

    async def create() -> None:
        connection = await asyncpg.connect(user="postgres", database="postgres", host=host)
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        await connection.close()

    asyncio.run(create())
    return template.replace(f"/{source}?", f"/{name}?")


def report_consumers(settings: Settings, http: httpx.AsyncClient) -> exchange.Consumers:
    """The report's consumers as the service wires them (the BHXH portal and the inbox left
    out: they are not what is counted)."""
    return {
        topic: {"report": named["report"]}
        for topic, named in exchange_handlers(settings, http).items()
        if "report" in named
    }


#: The demo's outbox events a delivery round handles: the 13 the report counts (visits and
#: papers), and the notice of An's link to his son Khang (``representative.added``, D241).
DEMO_EVENTS = 14


async def deliver_all(db: Database, consumers: exchange.Consumers) -> int:
    handled = 0
    while found := await exchange.deliver_once(db, consumers, exchange.Policy(), limit=200):
        handled += found
    return handled


def check() -> Any:
    return runner.invoke(app, ["report", "check", "--period", this_half().name, "--province", "01"])


async def rollups_and_recount(db: Database) -> tuple[dict[str, Any], dict[str, Any]]:
    async with db.read_session() as session:
        figures = [
            await reporting.figures(
                session, this_half(), province="01", cost_per_record=5000, source=source
            )
            for source in ("rollups", "recount")
        ]
    return figures[0], figures[1]


@pytest.mark.parametrize("demo_url", STORES, indirect=True)
def test_events_waiting_at_a_rebuild_are_counted_once_when_delivered(demo_url: str) -> None:
    waiting = check()
    assert waiting.exit_code == 0, waiting.output  # counted once the worker delivers them
    assert "DIFFERS" not in waiting.output
    assert "13 events not yet counted" in waiting.output
    rebuilt = runner.invoke(app, ["report", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert check().exit_code == 0

    async def serve() -> tuple[dict[str, Any], dict[str, Any]]:
        db = Database.from_urls(demo_url)
        try:
            async with httpx.AsyncClient() as http:
                consumers = report_consumers(Settings(), http)
                assert await deliver_all(db, consumers) == DEMO_EVENTS
            return await rollups_and_recount(db)
        finally:
            await db.dispose()

    kept, counted = asyncio.run(serve())
    assert kept["totals"]["sent"] == counted["totals"]["sent"] > 0
    assert kept["papers"] == counted["papers"]
    assert kept == counted
    after = check()
    assert after.exit_code == 0, after.output
    assert "not yet counted" not in after.output


@pytest.mark.parametrize("demo_url", STORES, indirect=True)
def test_the_check_still_finds_a_wrong_counter_while_events_wait(demo_url: str) -> None:
    """What the waiting events will add is no cover for a counter that is wrong (here one
    visit too many, as a counter restored from another backup would be)."""

    async def one_too_many() -> tuple[str, int]:
        db = Database.from_urls(demo_url)
        try:
            async with db.session() as session:
                _, coming = await rollup.waiting(session, this_half(), "01")
                key = min(k for k in coming if k[4] == "visits_sent")
                await rollup.add(session, [Count(*key, value=1)])
            return " ".join(str(part) for part in key[1:]), coming[key]
        finally:
            await db.dispose()

    wrong, visits = asyncio.run(one_too_many())
    checked = check()
    assert checked.exit_code == 1, checked.output
    assert "13 events not yet counted" in checked.output
    differs = [line for line in checked.output.splitlines() if line.startswith("DIFFERS")]
    assert len(differs) == 1, checked.output
    assert f"{wrong}: rollup 1 (+{visits} waiting), recount {visits}" in differs[0]


class Portal:
    """The BHXH portal in a delivery round: it answers when the test says so."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.answer = asyncio.Event()

    def consumer(self) -> exchange.Remote:
        async def prepare(session: Any, event: OutboxEvent) -> exchange.Call[str]:
            async def send() -> str:
                self.called.set()
                await self.answer.wait()
                return "GD-1"

            async def record(session: Any, answer: str) -> dict[str, Any]:
                return {"ma_giao_dich": answer}

            return exchange.Call(send, record)

        return exchange.Remote(prepare)


@pytest.mark.parametrize("demo_url", STORES, indirect=True)
async def test_a_rebuild_while_a_round_calls_the_portal_counts_each_event_once(
    demo_url: str,
) -> None:
    """The round has taken the report's events and waits for the portal: on SQLite its claim
    is committed and its counts come in its second transaction, after the rebuild; on
    PostgreSQL the rebuild goes first (the round holds nothing of the counters yet) and the
    round's last step finds the events it marked."""
    db = Database.from_urls(demo_url)
    portal = Portal()
    try:
        async with httpx.AsyncClient() as http:
            consumers = report_consumers(Settings(), http)
            consumers["visit.accepted"]["bhxh"] = portal.consumer()
            delivering = asyncio.create_task(deliver_all(db, consumers))
            await asyncio.wait_for(portal.called.wait(), timeout=20)

            async def rebuild() -> int:
                async with db.session() as session:
                    return await reporting.rebuild(session)

            rebuilding = asyncio.create_task(rebuild())
            await until_waiting_or_done(db, rebuilding)
            portal.answer.set()
            handled, _ = await asyncio.wait_for(asyncio.gather(delivering, rebuilding), 60)
            assert handled == DEMO_EVENTS
            assert await deliver_all(db, consumers) == 0
        kept, counted = await rollups_and_recount(db)
        assert kept["totals"]["sent"] == counted["totals"]["sent"] > 0
        assert kept == counted
        async with db.read_session() as session:
            assert await reporting.checked(session, this_half(), "01") == reporting.Checked([], 0)
    finally:
        await db.dispose()


@pytest.mark.parametrize("demo_url", STORES, indirect=True)
async def test_a_round_that_starts_during_a_rebuild_counts_what_the_rebuild_did_not(
    demo_url: str,
) -> None:
    """A round that reads the waiting events before the rebuild commits (PostgreSQL), or
    waits for its lock (SQLite), finds them counted by the rebuild afterwards."""
    db = Database.from_urls(demo_url)
    try:
        async with httpx.AsyncClient() as http:
            consumers = report_consumers(Settings(), http)
            async with db.session() as session:
                await reporting.rebuild(session)
                delivering = asyncio.create_task(deliver_all(db, consumers))
                for _ in range(20):
                    if delivering.done() or await waiting_on_a_lock(db):
                        break
                    await asyncio.sleep(0.05)
                assert not delivering.done(), "the round did not wait for the rebuild"
            assert await asyncio.wait_for(delivering, 60) == DEMO_EVENTS
        kept, counted = await rollups_and_recount(db)
        assert kept["totals"]["sent"] == counted["totals"]["sent"] > 0
        assert kept == counted
    finally:
        await db.dispose()


@pytest.mark.parametrize("demo_url", STORES, indirect=True)
async def test_messages_on_the_stream_at_a_rebuild_count_nothing_twice(demo_url: str) -> None:
    """VNEHR_BUS=nats: the events were on the JetStream stream, not yet taken by the report's
    consumer, when the rebuild ran; JetStream hands them out afterwards."""
    import random

    db = Database.from_urls(demo_url)
    try:
        async with db.session() as session:
            await reporting.rebuild(session)
        async with db.read_session() as session:
            events = list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
        async with httpx.AsyncClient() as http:
            consumers = report_consumers(Settings(), http)
            answers = [
                await nats_bus.handle_message(
                    db,
                    "report",
                    consumers[event.topic]["report"],
                    exchange.Policy(),
                    Message(event.event_id, event.topic, event.key),
                    random.Random(1),
                )
                for event in events
                if event.topic in consumers
            ]
        assert answers == ["ack"] * 13
        kept, counted = await rollups_and_recount(db)
        assert kept["totals"]["sent"] == counted["totals"]["sent"] > 0
        assert kept == counted
    finally:
        await db.dispose()


class SlowPortal(httpx.ASGITransport):
    """The BHXH portal simulator, telling when the round's second file went out and when its
    answer came back."""

    def __init__(self, config: BhxhConfig) -> None:
        from fastapi import FastAPI

        outer = FastAPI()
        outer.mount("/sim/bhxh", create_portal(config))
        super().__init__(app=outer)
        self.files = 0
        self.second_sent = asyncio.Event()
        self.second_answered = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        second = False
        if "guiHoSo" in request.url.path:
            self.files += 1
            second = self.files == 2
            if second:
                self.second_sent.set()
        response = await super().handle_async_request(request)
        if second:
            self.second_answered.set()
        return response


@dataclass
class Hub:
    """The service on the demo's database: its API in-process, a connected facility's system
    and token, and the worker's consumers as the service wires them, against the portal
    simulator (the inbox left out: it is not what is counted)."""

    db: Database
    http: httpx.AsyncClient
    portal: BhxhConfig
    transport: SlowPortal
    consumers: exchange.Consumers
    code: str
    headers: dict[str, str]

    async def submit(self, seed: int) -> httpx.Response:
        return await send(
            self.http, self.headers, synth.envelope([visit(self.code, seed)], self.code)
        )


@asynccontextmanager
async def hub_on(url: str) -> AsyncIterator[Hub]:
    db = Database.from_urls(url)
    portal = BhxhConfig(accounts={USER: Account(PASSWORD, ())})
    transport = SlowPortal(portal)
    settings = Settings(
        bhxh_url="http://portal/sim/bhxh", bhxh_username=USER, bhxh_password=PASSWORD
    )
    service = create_app(settings, database=db)
    try:
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=service, raise_app_exceptions=False),
                base_url="https://testserver",
            ) as http,
            httpx.AsyncClient(transport=transport) as to_portal,
        ):
            code, headers = await connected_facility(db, http, settings)
            consumers = {
                topic: {name: named[name] for name in named if name in ("bhxh", "report")}
                for topic, named in exchange_handlers(settings, to_portal).items()
            }
            yield Hub(db, http, portal, transport, consumers, code, headers)
    finally:
        queue = getattr(service.state, "intake_queue", None)
        if queue is not None:
            await queue.close()
        await service.state.http.aclose()
        await db.dispose()


async def rebuilt_and_right(db: Database) -> None:
    """The counters equal a recount, and nothing waits that would change them."""
    kept, counted = await rollups_and_recount(db)
    assert kept["totals"]["sent"] == counted["totals"]["sent"] > 0
    assert kept == counted
    async with db.read_session() as session:
        assert await reporting.checked(session, this_half(), "01") == reporting.Checked([], 0)


async def rebuild_on(db: Database, tries: rollup.LockTries | None = None) -> int:
    async with db.session() as session:
        return await reporting.rebuild(session, tries)


async def until_waiting_or_done(db: Database, task: asyncio.Task[Any]) -> None:
    for _ in range(40):
        if task.done() or await waiting_on_a_lock(db):
            return
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("demo_url", ["postgresql"], indirect=True)
async def test_a_rebuild_while_a_round_waits_for_the_portal_does_not_hold_up_the_intake(
    demo_url: str,
) -> None:
    """The worker's round has counted the demo's first visit and sends the next one to a slow
    BHXH portal; an operator runs `vnehr report rebuild`, and a facility sends a file. The
    file is stored before the portal answers (the rebuild did not queue the intake's counters
    behind the round), and each event is counted once."""
    latency = 5.0
    async with hub_on(demo_url) as hub:
        hub.portal.faults.latency_seconds = latency
        delivering = asyncio.create_task(deliver_all(hub.db, hub.consumers))
        await asyncio.wait_for(hub.transport.second_sent.wait(), timeout=latency * 3)
        rebuilding = asyncio.create_task(rebuild_on(hub.db))
        await until_waiting_or_done(hub.db, rebuilding)
        sending = asyncio.create_task(hub.submit(7))
        await asyncio.wait({sending}, timeout=latency * 2)
        stored_while_waiting = sending.done() and not hub.transport.second_answered.is_set()
        hub.portal.faults.latency_seconds = 0
        answer = await asyncio.wait_for(sending, latency * 4)
        assert answer.status_code == 201, answer.text
        assert stored_while_waiting, "the submission waited for the portal's answer"
        await asyncio.wait_for(asyncio.gather(delivering, rebuilding), latency * 6)
        assert await deliver_all(hub.db, hub.consumers) == 0
        await rebuilt_and_right(hub.db)


@pytest.mark.parametrize("demo_url", ["postgresql"], indirect=True)
async def test_a_rebuild_behind_a_slow_writer_lets_the_intake_through_and_tries_again(
    demo_url: str,
) -> None:
    """A writer of the counters is slow to commit (a large import batch, a commit waiting for
    a synchronous replica). The rebuild, waiting for it, lets a facility's file through
    meanwhile, and rebuilds once the writer has committed."""
    async with hub_on(demo_url) as hub:
        committing = asyncio.Event()
        locked = asyncio.Event()

        async def slow_writer() -> None:
            async with hub.db.session() as session:
                await reporting.intake_counter()(session, [], [])
                await session.execute(text("LOCK TABLE report_count IN ROW EXCLUSIVE MODE"))
                locked.set()
                await committing.wait()

        writer = asyncio.create_task(slow_writer())
        try:
            await set_by(locked, writer)
            tries = rollup.LockTries(wait_seconds=0.3, tries=100, pause_seconds=0.3)
            rebuilding = asyncio.create_task(rebuild_on(hub.db, tries))
            await until_waiting_or_done(hub.db, rebuilding)
            assert not rebuilding.done()
            sending = asyncio.create_task(hub.submit(7))
            await asyncio.wait({sending}, timeout=10)
            through_meanwhile = sending.done()
        finally:
            committing.set()  # (a failure above must not leave the writer's lock held)
        await writer
        answer = await asyncio.wait_for(sending, 30)
        assert answer.status_code == 201, answer.text
        assert through_meanwhile, "the file waited behind the rebuild for the slow writer"
        assert await asyncio.wait_for(rebuilding, 30) > 0
        assert await deliver_all(hub.db, hub.consumers) > 0
        await rebuilt_and_right(hub.db)


@pytest.mark.parametrize("demo_url", ["postgresql"], indirect=True)
async def test_a_rebuild_that_never_gets_the_counters_says_so_and_changes_nothing(
    demo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two operators run `vnehr report rebuild` at once: the second one's tries end while the
    first still holds the counters; it exits 1 with REP-0007 in both languages."""
    db = Database.from_urls(demo_url)
    try:
        first_done = asyncio.Event()
        holding = asyncio.Event()

        async def first() -> int:
            async with db.session() as session:
                counters = await reporting.rebuild(session)
                holding.set()
                await first_done.wait()
                return counters

        running = asyncio.create_task(first())
        await set_by(holding, running)
        quick = rollup.LockTries(wait_seconds=0.2, tries=3, pause_seconds=0.2)
        monkeypatch.setattr(rollup, "REBUILD_LOCK", quick)
        second = await asyncio.to_thread(runner.invoke, app, ["report", "rebuild"])
        first_done.set()
        assert await running > 0
    finally:
        first_done.set()  # (a failure above must not leave the first holding the counters)
        await db.dispose()
    assert second.exit_code == 1, second.output
    assert "REP-0007" in second.output
    assert "chạy lại vnehr report rebuild" in second.output
    assert "Run vnehr report rebuild again" in second.output
    assert "3 times in 1 s" in second.output
    assert (await asyncio.to_thread(check)).exit_code == 0
