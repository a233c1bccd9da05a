"""`vnehr report rebuild` recounts every stored visit, paper and account while some of their
events still wait for the report's consumer (files written alone, FHIR, the papers API,
accounts, a restored backup). Delivering those events afterwards, or while the rebuild runs,
must count nothing twice and miss nothing; and `vnehr report check` says the counters are
right while events merely wait."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.exchange.test_retention import Message
from tests.reporting.test_report import this_half
from tests.reporting.test_round_locks import waiting_on_a_lock
from vnehr import exchange, reporting
from vnehr.app import exchange_handlers
from vnehr.cli import app
from vnehr.exchange import nats_bus
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings, get_settings
from vnehr.reporting import rollup
from vnehr.reporting.metrics import Count

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
                assert await deliver_all(db, consumers) == 13
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
    PostgreSQL the rebuild waits for the round."""
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
            for _ in range(40):  # through (SQLite), or waiting for the round (PostgreSQL)
                if rebuilding.done() or await waiting_on_a_lock(db):
                    break
                await asyncio.sleep(0.05)
            portal.answer.set()
            handled, _ = await asyncio.wait_for(asyncio.gather(delivering, rebuilding), 60)
            assert handled == 13
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
            assert await asyncio.wait_for(delivering, 60) == 13
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
