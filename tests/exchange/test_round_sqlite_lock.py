"""On SQLite (the embedded default) a write transaction locks the whole file. A delivery round
that called the BHXH portal inside its transaction made every intake submission wait for the
portal's answer (or fail with "database is locked" past the busy timeout). The round now claims
its events and commits, calls the portal with no transaction open, and records the answers in a
short second transaction; a second worker does not take what the first claimed, and the claims
of a worker that died run out."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import func, select

from tests.submissions.test_intake import ADMIN, ASSERTION, send, visit
from vnehr import catalogs, exchange, facilities
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

    def consumers(self) -> exchange.Consumers:
        return {
            "visit.accepted": {
                "bhxh": exchange.bhxh_consumer(self.bhxh),
                "inbox": exchange.visit_notifier(exchange.LogPush()),
            }
        }

    async def count(self, model: type, *where: object) -> int:
        async with self.db.read_session() as session:
            found = await session.scalar(select(func.count()).select_from(model).where(*where))
        return int(found or 0)


async def connected_facility(
    db: Database, http: httpx.AsyncClient, settings: Settings
) -> tuple[str, dict[str, str]]:
    """A connected facility and its system's bearer token, committed before the token is asked
    (on a real SQLite file the token endpoint cannot see an open transaction's rows)."""
    key = ECKey.generate_key("P-256", parameters={"kid": "k"})
    async with db.session() as session:
        facility = await facilities.register(
            session,
            ADMIN,
            facilities.FacilityCreate(
                name="Bệnh viện thử",
                kind=facilities.Kind.hospital,
                level=facilities.Level.basic,
                ownership=facilities.Ownership.public,
                province_code="01",
            ),
        )
        for state in list(facilities.State)[1:5]:
            await facilities.move(session, ADMIN, facility.code, state, None)
        registered = await facilities.add_client(
            session,
            ADMIN,
            facility.code,
            facilities.ClientCreate(
                name="HIS", jwks={"keys": [key.as_dict(private=False)]}, scopes=["submission.write"]
            ),
        )
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": "k"},
        {"iss": registered.client_id, "sub": registered.client_id, "aud": f"{settings.public_url}/oauth/token",
         "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        key,
    )  # fmt: skip
    token = await http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION,
            "client_assertion": assertion,
        },
    )
    assert token.status_code == 200, token.text
    return facility.code, {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """The hub on a SQLite file of its own (its transactions commit for real, from connections
    of their own, as in `make run`), its API in-process, and the portal simulator."""
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
                yield Hub(db, http, config, transport, bhxh, code, headers)
            finally:
                queue = getattr(app.state, "intake_queue", None)
                if queue is not None:
                    await queue.close()
                await app.state.http.aclose()
    finally:
        await db.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_submission_is_stored_while_a_round_waits_for_the_slow_portal(
    backend: str, hub: Hub
) -> None:
    first = await send(hub.http, hub.headers, synth.envelope([visit(hub.code, 1)], hub.code))
    assert first.status_code == 201, first.text
    delivering = asyncio.create_task(
        exchange.deliver_once(hub.db, hub.consumers(), exchange.Policy(), rng=random.Random(1))
    )
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=LATENCY * 3)
    # the portal has the file and takes LATENCY seconds to answer: a facility sends meanwhile
    second = await send(hub.http, hub.headers, synth.envelope([visit(hub.code, 2)], hub.code))
    stored_while_waiting = not hub.transport.answered.is_set()
    assert second.status_code == 201, second.text
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


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_second_worker_takes_nothing_the_first_claimed(backend: str, hub: Hub) -> None:
    one = await send(hub.http, hub.headers, synth.envelope([visit(hub.code, 1)], hub.code))
    assert one.status_code == 201, one.text
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


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_claims_of_a_worker_that_died_run_out_and_are_delivered(
    backend: str, hub: Hub
) -> None:
    one = await send(hub.http, hub.headers, synth.envelope([visit(hub.code, 1)], hub.code))
    assert one.status_code == 201, one.text
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
