"""On SQLite (the embedded default) a write transaction locks the whole file. A delivery round
that called the BHXH portal inside its transaction made every intake submission wait for the
portal's answer (or fail with "database is locked" past the busy timeout). The round now claims
its events and commits, calls the portal with no transaction open, and records the answers in a
short second transaction; a second worker does not take what the first claimed, and the claims
of a worker that died run out."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from tests.submissions.test_intake import bearer, new_facility, new_system, send, visit
from vnehr import catalogs, exchange
from vnehr.app import create_app
from vnehr.demo import demo_icd10_titles
from vnehr.exchange.models import BhxhReceipt, DeliveryAttempt
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.sim.bhxh import Account, BhxhConfig
from vnehr.sim.bhxh import create_app as create_portal
from vnehr.submissions import synth

USER, PASSWORD = "hub-hanoi", "mat-khau-thu-nghiem"
LATENCY = 3.0  # seconds the portal takes to answer a file
#: The hub is a SQLite file of its own: these tests are SQLite's.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class Watched(httpx.ASGITransport):
    """The portal's transport, telling when a file went out and when its answer came back."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(app=app)
        self.sent = asyncio.Event()
        self.answered = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sending = "guiHoSo" in request.url.path
        if sending:
            self.sent.set()
        response = await super().handle_async_request(request)
        if sending:
            self.answered.set()
        return response


@dataclass
class Hub:
    db: Database
    http: httpx.AsyncClient  # the hub's API
    portal: BhxhConfig
    transport: Watched
    bhxh: exchange.BhxhClient
    code: str
    headers: dict[str, str]
    path: Path  # the SQLite file

    def consumers(self) -> exchange.Consumers:
        return {
            "visit.accepted": {
                "bhxh": exchange.bhxh_consumer(self.bhxh),
                "inbox": exchange.visit_notifier(exchange.LogPush()),
            }
        }

    async def submit(self, *seeds: int) -> httpx.Response:
        """The facility sends a file of the visits ``visit`` makes of ``seeds``: stored (201)."""
        files = synth.envelope([visit(self.code, seed) for seed in seeds], self.code)
        answer = await send(self.http, self.headers, files)
        assert answer.status_code == 201, answer.text
        return answer

    async def count(self, model: type, *where: object) -> int:
        async with self.db.read_session() as session:
            found = await session.scalar(select(func.count()).select_from(model).where(*where))
        return int(found or 0)


async def connected_facility(
    db: Database, http: httpx.AsyncClient, settings: Settings
) -> tuple[str, dict[str, str]]:
    """A connected facility and its system's bearer token, committed before the token is asked
    (on a real SQLite file the token endpoint cannot see an open transaction's rows)."""
    async with db.session() as session:
        code = await new_facility(session)
        client_id, key = await new_system(session, code, ("submission.write",))
    return code, await bearer(http, settings, client_id, key)


@pytest.fixture
async def hub(backend: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """The hub on a SQLite file of its own (its transactions commit for real, from connections
    of their own, as in `make run`), its API in-process, and the portal simulator."""
    assert backend == "sqlite", "a test module of the hub runs on SQLite only (pytestmark)"
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await upgrade(url)
    db = Database.from_urls(url)
    async with db.session() as session:
        await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
    settings = Settings()
    app = create_app(settings, database=db)
    config = BhxhConfig(accounts={USER: Account(PASSWORD, ())})
    outer = FastAPI()
    outer.mount("/sim/bhxh", create_portal(config))
    transport = Watched(outer)
    try:
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="https://testserver",
            ) as http,
            httpx.AsyncClient(transport=transport, base_url="http://portal") as to_portal,
        ):
            code, headers = await connected_facility(db, http, settings)
            bhxh = exchange.BhxhClient(
                to_portal,
                base_url="http://portal/sim/bhxh",
                username=USER,
                password=PASSWORD,
                timeout=LATENCY * 10,
            )
            await bhxh.token()  # the file, not the token, is what the portal is slow with
            config.faults.latency_seconds = LATENCY
            try:
                yield Hub(db, http, config, transport, bhxh, code, headers, tmp_path / "hub.db")
            finally:
                queue = getattr(app.state, "intake_queue", None)
                if queue is not None:
                    await queue.close()
                await app.state.http.aclose()
    finally:
        await db.dispose()


async def test_a_submission_is_stored_while_a_round_waits_for_the_slow_portal(hub: Hub) -> None:
    await hub.submit(1)
    delivering = asyncio.create_task(
        exchange.deliver_once(hub.db, hub.consumers(), exchange.Policy(), rng=random.Random(1))
    )
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=LATENCY * 3)
    # the portal has the file and takes LATENCY seconds to answer: a facility sends meanwhile
    second = await hub.submit(2)
    stored_while_waiting = not hub.transport.answered.is_set()
    assert second.json()["status"] == "accepted"
    assert stored_while_waiting, "the submission waited for the portal's answer"
    assert not delivering.done()
    assert await delivering == 1
    # the round recorded its answer; the second visit waits for the next round
    assert await hub.count(BhxhReceipt) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "pending") == 1
    hub.portal.faults.latency_seconds = 0
    assert await exchange.deliver_once(hub.db, hub.consumers(), exchange.Policy()) == 1
    assert await hub.count(BhxhReceipt) == 2
    received = (await hub.bhxh.http.get("http://portal/sim/bhxh/_sim/received")).json()
    assert len(received) == 2


async def test_a_second_worker_takes_nothing_the_first_claimed(hub: Hub) -> None:
    await hub.submit(1)
    policy = exchange.Policy()
    delivering = asyncio.create_task(exchange.deliver_once(hub.db, hub.consumers(), policy))
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=LATENCY * 3)
    # another worker (another `vnehr serve` process) runs a round meanwhile
    assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 0
    assert await delivering == 1
    received = (await hub.bhxh.http.get("http://portal/sim/bhxh/_sim/received")).json()
    assert len(received) == 1
    attempts = (DeliveryAttempt.target == "bhxh",)
    assert await hub.count(DeliveryAttempt, *attempts) == 1


async def test_the_claims_of_a_worker_that_died_run_out_and_are_delivered(hub: Hub) -> None:
    await hub.submit(1)
    hub.portal.faults.latency_seconds = 0
    policy = exchange.Policy(claim_seconds=1.0)
    from vnehr.exchange.worker import _claim

    # a worker claims the event and dies before it calls the portal (nothing released)
    async with hub.db.session() as session:
        claimed = await _claim(session, policy, limit=50)
    assert claimed is not None
    assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 0  # still claimed
    await asyncio.sleep(1.2)
    assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 1
    assert await hub.count(BhxhReceipt) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1


async def another_writer(path: Path, seconds: float) -> asyncio.Task[None]:
    """Another process's write transaction on the file (another worker recording, an import),
    held for ``seconds``; returns once it holds the write lock."""
    loop = asyncio.get_running_loop()
    held = asyncio.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            loop.call_soon_threadsafe(held.set)
            time.sleep(seconds)
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    holder = asyncio.create_task(asyncio.to_thread(hold))
    await asyncio.wait_for(held.wait(), timeout=10)
    return holder


async def wait_for_the_lock_at_most(hub: Hub, seconds: float) -> None:
    """The hub's busy timeout (30 s in service) shortened, so that a test takes seconds."""
    engine = hub.db.engine
    assert engine is not None

    @event.listens_for(engine.sync_engine, "connect")
    def wait_less(dbapi_connection: Any, _record: object) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        cursor.close()

    await engine.dispose()  # the connections opened from now on


async def portal_received(hub: Hub) -> int:
    return len((await hub.bhxh.http.get("http://portal/sim/bhxh/_sim/received")).json())


async def test_a_claim_lasts_from_when_the_write_lock_was_taken(hub: Hub) -> None:
    await hub.submit(1)
    hub.portal.faults.latency_seconds = 1.5
    policy = exchange.Policy(claim_seconds=3.0)
    started = time.monotonic()
    # another writer holds the file for most of a claim's length as the round begins
    holder = await another_writer(hub.path, 2.5)
    delivering = asyncio.create_task(exchange.deliver_once(hub.db, hub.consumers(), policy))
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=10)
    # a claim's length after the round began, but not after it claimed: a second worker
    # must still find the event claimed while the portal answers the first
    await asyncio.sleep(max(started + 3.2 - time.monotonic(), 0))
    assert not hub.transport.answered.is_set()
    assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 0
    assert await delivering == 1
    await holder
    assert await portal_received(hub) == 1
    assert await hub.count(BhxhReceipt) == 1


async def test_answers_are_recorded_when_the_file_is_busy_as_the_round_ends(hub: Hub) -> None:
    await wait_for_the_lock_at_most(hub, 0.5)
    await hub.submit(1)
    hub.portal.faults.latency_seconds = 1.0
    policy = exchange.Policy(claim_seconds=6.0)
    delivering = asyncio.create_task(exchange.deliver_once(hub.db, hub.consumers(), policy))
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=10)
    # another writer holds the file from before the portal answers until longer than the
    # busy timeout after: the round's first try to record the answer finds the file locked
    holder = await another_writer(hub.path, 1.75)
    assert await delivering == 1
    await holder
    assert await hub.count(BhxhReceipt) == 1
    bhxh = (DeliveryAttempt.target == "bhxh", DeliveryAttempt.outcome == "delivered")
    assert await hub.count(DeliveryAttempt, *bhxh) == 1
    # the answer is recorded: the file is not sent again
    hub.portal.faults.latency_seconds = 0
    await asyncio.sleep(policy.claim_seconds / 3)
    await exchange.deliver_once(hub.db, hub.consumers(), policy)
    assert await portal_received(hub) == 1


async def test_a_renewal_ending_as_the_calls_end_leaves_the_round_its_claim(hub: Hub) -> None:
    engine = hub.db.engine
    assert engine is not None
    renewals = "UPDATE OUTBOX_EVENT SET NEXT_ATTEMPT_AT"

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def mark(conn: Any, _cursor: object, sql: str, *_: object) -> None:
        if sql.lstrip().upper().startswith(renewals):
            conn.info["renewal"] = True

    @event.listens_for(engine.sync_engine, "commit")
    def slow(conn: Any) -> None:
        if conn.info.pop("renewal", False):
            time.sleep(0.3)  # a slow disk: the renewal's commit ends as the portal answers

    await hub.submit(1)
    hub.portal.faults.latency_seconds = 0.6
    policy = exchange.Policy(claim_seconds=1.5)  # renewed after 0.5 s
    assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 1
    assert await hub.count(BhxhReceipt) == 1
    # after the claim would have run out, the next round has nothing to send again
    hub.portal.faults.latency_seconds = 0
    await asyncio.sleep(policy.claim_seconds + 0.2)
    await exchange.deliver_once(hub.db, hub.consumers(), policy)
    assert await portal_received(hub) == 1


async def test_a_round_sends_no_file_its_claim_may_not_outlast(hub: Hub) -> None:
    await wait_for_the_lock_at_most(hub, 0.5)
    await hub.submit(1, 2)
    hub.portal.faults.latency_seconds = 2.2
    policy = exchange.Policy(claim_seconds=3.0)  # renewed after 1 s
    started = time.monotonic()
    delivering = asyncio.create_task(exchange.deliver_once(hub.db, hub.consumers(), policy))
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=10)
    await asyncio.sleep(0.5)
    # another writer holds the file past the claim's end: no renewal gets through, and when
    # the first answer comes back less than a renewal period of the claim is left
    holder = await another_writer(hub.path, 3.0)
    await holder
    await asyncio.sleep(max(started + 3.8 - time.monotonic(), 0))
    hub.portal.faults.latency_seconds = 0
    # a second worker, after the first one's claim ran out
    await exchange.deliver_once(hub.db, hub.consumers(), policy)
    await delivering
    await exchange.deliver_once(hub.db, hub.consumers(), policy)
    assert await portal_received(hub) == 2  # each visit once
    assert await hub.count(BhxhReceipt) == 2


async def test_a_round_locked_out_past_its_claim_keeps_it_and_records_its_answers(
    hub: Hub,
) -> None:
    await wait_for_the_lock_at_most(hub, 0.5)
    await hub.submit(1, 2)
    hub.portal.faults.latency_seconds = 0.5
    policy = exchange.Policy(claim_seconds=3.0)  # renewed after 1 s
    stop = asyncio.Event()

    async def second_worker() -> None:
        """Another worker's rounds all along, one right after the other."""
        while not stop.is_set():
            with contextlib.suppress(OperationalError):  # (the file locked past the timeout)
                await exchange.deliver_once(hub.db, hub.consumers(), policy)
            await asyncio.sleep(0.05)

    delivering = asyncio.create_task(exchange.deliver_once(hub.db, hub.consumers(), policy))
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=10)
    second = asyncio.create_task(second_worker())
    await asyncio.sleep(0.2)
    # another writer holds the file from before the portal's answers until well after the
    # round's claim would have run out: no renewal and no try to record gets through
    holder = await another_writer(hub.path, policy.claim_seconds + 2.0)
    await holder
    await asyncio.wait({delivering}, timeout=10)
    await asyncio.sleep(0.5)  # the second worker's rounds once the file is free
    stop.set()
    await second
    assert await portal_received(hub) == 2  # each visit once
    assert await hub.count(BhxhReceipt) == 2
    assert delivering.result() == 2
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 2


#: Another worker's process: its round claims what is due, then hangs (as a round whose portal
#: call, or whose recording on a locked file, takes its time).
HANGING_ROUND = """
import asyncio, sys
from vnehr import exchange
from vnehr.exchange import rounds
from vnehr.exchange.worker import _claim
from vnehr.kit.db import Database

async def main() -> None:
    db = Database.from_urls(f"sqlite+aiosqlite:///{sys.argv[1]}")
    async with db.session() as session:
        policy = exchange.Policy(claim_seconds=float(sys.argv[2]))
        claim = await _claim(session, policy, 50, rounds.folder_of(sys.argv[1]))
    print("claimed" if claim else "nothing", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_running_round_keeps_its_events_past_its_claim_a_killed_one_does_not(
    hub: Hub,
) -> None:
    await hub.submit(1)
    hub.portal.faults.latency_seconds = 0
    policy = exchange.Policy(claim_seconds=1.0)
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HANGING_ROUND, str(hub.path), str(policy.claim_seconds),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert other.stdout is not None
        assert (await asyncio.wait_for(other.stdout.readline(), timeout=60)).strip() == b"claimed"
        await asyncio.sleep(policy.claim_seconds + 0.3)
        # past its claim's time, its round still runs: the event is its own
        assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 0
        assert await portal_received(hub) == 0
    finally:
        other.kill()
        await other.wait()
    # killed (no line of it ran after): the event is delivered, and nothing is left behind
    assert await exchange.deliver_once(hub.db, hub.consumers(), policy) == 1
    assert await portal_received(hub) == 1
    assert await hub.count(BhxhReceipt) == 1
    assert list(hub.path.parent.glob("*-rounds/*")) == []
