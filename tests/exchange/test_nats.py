"""Through NATS JetStream (a real server): visits reach the BHXH simulator with injected
failures and the worker stopped and restarted midway; none lost, in order per visit, and sent
again only after an attempt whose answer never came."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from vnehr import catalogs, exchange, facilities, submissions
from vnehr.exchange import nats_bus
from vnehr.exchange.models import BhxhReceipt
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent
from vnehr.sim.bhxh import Account, BhxhConfig, create_app
from vnehr.submissions import synth

ADMIN = Subject("person", "001085004217", "Sở Y tế", (Grant("department_admin"),))
VISITS = 40


@pytest.fixture
async def fresh_db(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    """A database of its own with committed data (the worker runs concurrently)."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('nats') / 'x.db'}"
    else:
        base = str(request.getfixturevalue("postgres_url"))
        name = "nats_" + uuid.uuid4().hex[:8]
        admin = base.replace("postgresql+asyncpg://", "postgresql://").replace(
            "/vnehr_test?", "/postgres?"
        )
        host = admin.split("host=")[-1]
        connection = await asyncpg.connect(user="postgres", database="postgres", host=host)
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()
        url = base.replace("/vnehr_test?", f"/{name}?")
    await upgrade(url)
    db = Database.from_urls(url)
    async with db.session() as session:
        await catalogs.load_builtin(session, only=["icd10", "province", "district", "ward",
                                                   "care-type", "treatment-result", "discharge-type",
                                                   "gender", "patient-category", "card-check-result"])  # fmt: skip
    yield db
    await db.dispose()


async def _facility(db: Database) -> tuple[str, Subject]:
    async with db.session() as session:
        facility = await facilities.register(
            session, ADMIN,
            facilities.FacilityCreate(name="BV NATS", kind=facilities.Kind.hospital, level=facilities.Level.basic,
                                      ownership=facilities.Ownership.public, province_code="01"),
        )  # fmt: skip
        for state in list(facilities.State)[1:5]:
            await facilities.move(session, ADMIN, facility.code, state, "test", override=True)
    system = Subject(
        "facility_system",
        "his",
        "his",
        scopes=frozenset({"submission.write"}),
        facility_code=facility.code,
    )
    return facility.code, system


async def test_visits_flow_through_jetstream_despite_failures_and_a_restart(
    fresh_db: Database, nats_url: str
) -> None:
    code, system = await _facility(fresh_db)
    rng = random.Random(11)
    visits = [synth.make_visit(rng, facility_code=code) for _ in range(VISITS)]
    options = submissions.IntakeOptions(limits=submissions.Limits())
    for one in visits:
        async with fresh_db.session() as session:
            await submissions.submit(session, system, synth.envelope([one], code), options)
    corrected = visits[:5]  # a correction of each of the first five
    for one in corrected:
        one.tables["XML1"][0]["GHI_CHU"] = "Bản sửa " + one.ma_lk
        async with fresh_db.session() as session:
            await submissions.submit(session, system, synth.envelope([one], code), options)

    config = BhxhConfig(accounts={"hub": Account("pw", ())})
    config.faults.seed = 3
    config.faults.error_rate = 0.3
    outer = FastAPI()
    outer.mount("/sim/bhxh", create_app(config))
    policy = exchange.Policy(backoff_seconds=0.05, max_attempts=100)
    stream = f"T{uuid.uuid4().hex[:6]}"
    nats_bus.STREAM = stream  # a stream of this test's own on the shared server
    nats_bus.PREFIX = f"{stream.lower()}.events."
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://p"
    ) as http:
        client = exchange.BhxhClient(
            http, base_url="http://p/sim/bhxh", username="hub", password="pw", timeout=5
        )
        consumers: exchange.Consumers = {"visit.accepted": {"bhxh": exchange.bhxh_consumer(client)}}

        async def pending() -> int:
            async with fresh_db.read_session() as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(OutboxEvent)
                        .where(OutboxEvent.status != "delivered")
                    )
                    or 0
                )

        stop = asyncio.Event()
        first = asyncio.create_task(nats_bus.run(fresh_db, nats_url, consumers, policy, stop=stop))
        for _ in range(400):
            async with fresh_db.read_session() as session:
                if (await session.scalar(select(func.count()).select_from(BhxhReceipt)) or 0) >= 8:
                    break
            await asyncio.sleep(0.02)
        stop.set()  # the worker stops midway
        await first
        assert await pending() > 0
        stop = asyncio.Event()
        second = asyncio.create_task(nats_bus.run(fresh_db, nats_url, consumers, policy, stop=stop))
        for _ in range(240):  # the restarted worker runs until everything arrived
            left = await pending()
            if not left:
                break
            await asyncio.sleep(0.25)
        stop.set()
        await second
        received = (await http.get("http://p/sim/bhxh/_sim/received")).json()

    assert left == 0
    by_visit: dict[str, list[dict[str, object]]] = {}
    for record in received:
        by_visit.setdefault(str(record["ma_lk"]), []).append(record)
    assert set(by_visit) == {v.ma_lk for v in visits}  # none lost
    for one in visits:
        versions = [r for r in by_visit[one.ma_lk] if not r["duplicate"]]
        expected = 2 if one in corrected else 1
        assert len(versions) == expected, one.ma_lk  # never sent twice after a clean answer
    async with fresh_db.read_session() as session:
        for one in corrected:  # the correction reached the portal after its original
            shas = [r["content_sha256"] for r in by_visit[one.ma_lk]]
            assert len(set(shas)) == 2
            ours = list(
                await session.scalars(
                    select(BhxhReceipt.version)
                    .where(BhxhReceipt.visit_key == one.ma_lk)
                    .order_by(BhxhReceipt.id)
                )
            )
            assert ours == [1, 2]
