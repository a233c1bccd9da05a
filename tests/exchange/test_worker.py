"""The outbox reaches the BHXH portal (its simulator) reliably: in order per visit, with a
record of every attempt, backoff, dead letters and replay, and no visit lost or sent twice
after its answer was recorded."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import checkin_row, facility_with_token, send, visit
from vnehr import exchange
from vnehr.exchange.models import BhxhReceipt, DeliveryAttempt
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.sim.bhxh import Account, BhxhConfig, create_app
from vnehr.submissions import synth

USER, PASSWORD = "hub-hanoi", "mat-khau-thu-nghiem"


@pytest.fixture
async def portal() -> AsyncIterator[tuple[BhxhConfig, exchange.BhxhClient]]:
    config = BhxhConfig(accounts={USER: Account(PASSWORD, ())})
    config.faults.seed = 7
    outer = FastAPI()
    outer.mount("/sim/bhxh", create_app(config))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://portal"
    ) as http:
        yield (
            config,
            exchange.BhxhClient(
                http, base_url="http://portal/sim/bhxh", username=USER, password=PASSWORD, timeout=2
            ),
        )


async def count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def deliver_all(
    db: Database, client: exchange.BhxhClient, policy: exchange.Policy, rounds: int = 50
) -> None:
    """Run delivery rounds until nothing is pending (or ``rounds`` run out)."""
    handlers: exchange.Consumers = {
        "visit.accepted": {
            "bhxh": exchange.bhxh_consumer(client),
            "inbox": exchange.visit_notifier(exchange.LogPush()),
        }
    }
    for _ in range(rounds):
        if await exchange.deliver_once(db, handlers, policy, rng=random.Random(1)):
            continue
        async with db.read_session() as session:
            if not (await exchange.depth(session)).get("pending"):
                return
        await asyncio.sleep(0.01)  # everything left is waiting for its backoff


async def test_accepted_visits_reach_the_portal_with_its_transaction_ids(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    _, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    visits = [visit(code, n) for n in range(3)]
    await send(client, headers, synth.envelope(visits, code))
    await deliver_all(db, bhxh, exchange.Policy())
    receipts = list(await session.scalars(select(BhxhReceipt).order_by(BhxhReceipt.id)))
    assert sorted(r.visit_key for r in receipts) == sorted(v.ma_lk for v in visits)
    assert all(r.ma_giao_dich for r in receipts)
    assert await count(session, OutboxEvent, OutboxEvent.status == "pending") == 0
    delivered = (DeliveryAttempt.outcome == "delivered", DeliveryAttempt.target == "bhxh")
    assert await count(session, DeliveryAttempt, *delivered) == 3


async def test_failures_are_retried_with_a_record_of_each_attempt_and_nothing_is_lost(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    visits = [visit(code, n) for n in range(10)]
    await send(client, headers, synth.envelope(visits, code))
    config.faults.error_rate = 0.5
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=50)
    await deliver_all(db, bhxh, policy, rounds=200)
    received = (await bhxh.http.get("http://portal/sim/bhxh/_sim/received")).json()
    assert sorted({r["ma_lk"] for r in received}) == sorted(v.ma_lk for v in visits)
    assert not any(r["duplicate"] for r in received)  # nothing sent twice after a clean answer
    failed = await count(session, DeliveryAttempt, DeliveryAttempt.outcome == "failed")
    assert failed > 0
    bhxh_attempts = await count(session, DeliveryAttempt, DeliveryAttempt.target == "bhxh")
    assert bhxh_attempts == failed + 10
    # the inbox took each event once, however often the portal failed
    inbox = (DeliveryAttempt.target == "inbox", DeliveryAttempt.outcome == "delivered")
    assert await count(session, DeliveryAttempt, *inbox) == 10
    assert await count(session, OutboxEvent, OutboxEvent.status != "delivered") == 0


async def test_a_correction_never_overtakes_its_original(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, 1)
    await send(client, headers, synth.envelope([one], code))
    one.tables["XML1"][0]["GHI_CHU"] = "Bản sửa"
    await send(client, headers, synth.envelope([one], code))
    config.faults.error_rate = 1.0  # the original fails; the correction must wait behind it
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=50)
    await deliver_all(db, bhxh, policy, rounds=5)
    assert (
        await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{one.ma_lk}")
    ).json() == []
    config.faults.error_rate = 0.0
    await deliver_all(db, bhxh, policy, rounds=20)
    versions = (
        await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{one.ma_lk}")
    ).json()
    assert [v["version_number"] for v in versions] == [1, 2]
    assert versions[0]["content_sha256"] != versions[1]["content_sha256"]
    ours = list(await session.scalars(select(BhxhReceipt.version).order_by(BhxhReceipt.id)))
    assert ours == [1, 2]  # our version 1 reached the portal first, then the correction


async def test_dead_letters_are_listed_and_replayed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, 2)
    await send(client, headers, synth.envelope([one], code))
    config.faults.unavailable = True
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=3)
    await deliver_all(db, bhxh, policy, rounds=10)
    [dead] = await exchange.dead_letters(session)
    assert dead.attempts == 3
    assert "503" in (dead.last_error or "")
    bhxh_attempts = (DeliveryAttempt.event_id == dead.event_id, DeliveryAttempt.target == "bhxh")
    assert await count(session, DeliveryAttempt, *bhxh_attempts) == 3
    config.faults.unavailable = False
    assert await exchange.replay(session, [dead.event_id]) == 1
    await deliver_all(db, bhxh, policy)
    assert await count(session, BhxhReceipt, BhxhReceipt.visit_key == one.ma_lk) == 1


async def test_a_lost_answer_is_resent_and_a_recorded_answer_is_not(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, 3)
    await send(client, headers, synth.envelope([one], code))
    config.faults.drop_rate = 1.0  # the portal keeps the file, its answer is lost
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=50)
    await deliver_all(db, bhxh, policy, rounds=1)
    config.faults.drop_rate = 0.0
    await deliver_all(db, bhxh, policy)
    received = (
        await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{one.ma_lk}")
    ).json()
    assert len(received) == 2  # sent again only because the first answer never came
    [attempt_failed] = list(
        await session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.outcome == "failed"))
    )
    assert attempt_failed.detail["maybe_received"] is True
    # a replay of an event whose answer was recorded does not reach the portal again
    event = (await session.scalars(select(OutboxEvent))).one()
    event.status = "dead"
    await session.flush()
    await exchange.replay(session)
    await deliver_all(db, bhxh, policy)
    assert (
        len(
            (await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{one.ma_lk}")).json()
        )
        == 2
    )


async def test_metrics_show_intake_delivery_and_the_outbox(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    _, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    before = (await client.get("/metrics")).text
    await send(
        client, headers, synth.envelope([visit(code, 1), visit(code, 2, defect="bad_icd")], code)
    )
    pending = (await client.get("/metrics")).text
    # the accepted visit's event, and the rejected one's (for the report's quality figures)
    assert 'vnehr_outbox_events{status="pending"} 2.0' in pending
    assert (
        _value(pending, 'vnehr_intake_visits_total{status="rejected"}')
        == _value(before, 'vnehr_intake_visits_total{status="rejected"}') + 1
    )
    await deliver_all(db, bhxh, exchange.Policy())
    after = (await client.get("/metrics")).text
    # (pending and dead events are counted; delivered ones pile up for good and are not)
    assert 'vnehr_outbox_events{status="pending"}' not in after
    assert 'status="delivered"' not in after
    assert "vnehr_outbox_oldest_pending_seconds 0.0" in after
    assert (
        'vnehr_http_request_seconds_count{method="POST",route="/api/v1/submissions",status="201"}'
        in after
    )


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def test_the_citizen_is_told_of_a_new_visit_and_only_they_see_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    from vnehr import identity
    from vnehr.kit.auth import make_session_cookie

    _, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, 4)
    await send(client, headers, synth.envelope([one], code))
    await deliver_all(db, bhxh, exchange.Policy())
    patient = one.tables["XML1"][0]["SO_CCCD"]

    def as_person(personal_id: str) -> None:
        client.cookies.set(
            "vnehr_session",
            make_session_cookie(
                settings, {"personal_id": personal_id, "name": "x", "assurance_level": 2}
            ),
        )

    as_person(patient)
    inbox = (await client.get("/api/v1/me/notifications")).json()
    assert inbox["unread"] == 1
    [message] = inbox["items"]
    assert message["title"]["vi"] == "Lượt khám mới trong Sổ sức khỏe điện tử"
    assert message["body"]["vi"].startswith("Bệnh viện thử đã gửi")  # the facility's name
    assert message["params"]["visit_key"] == one.ma_lk
    assert (await client.post(f"/api/v1/me/notifications/{message['id']}/read")).status_code == 204
    assert (await client.get("/api/v1/me/notifications")).json()["unread"] == 0
    page = await client.get("/portal")
    assert "Lượt khám mới trong Sổ sức khỏe điện tử" in page.text

    await identity.sign_in(
        session,
        {"sub": "s-an", "personal_id": "001085004217", "name": "Nguyễn Văn An", "birthdate": "1985-03-14",
         "gender": "male", "assurance_level": 2},
    )  # fmt: skip
    as_person("001085004217")
    assert (await client.get("/api/v1/me/notifications")).json() == {
        "unread": 0,
        "items": [],
        "next_cursor": None,
    }
    stolen = await client.post(f"/api/v1/me/notifications/{message['id']}/read")
    assert stolen.status_code == 404


async def test_check_ins_are_relayed_as_they_came(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    from vnehr.submissions.xmlio import write_table

    _, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    row = checkin_row(code, "LK-CI-9")
    sent = await client.post(
        "/api/v1/checkins", content=write_table("XML0", [row]), headers=headers
    )
    assert sent.json()["status"] == "accepted"
    consumers: exchange.Consumers = {"checkin.received": {"bhxh": exchange.checkin_consumer(bhxh)}}
    await exchange.deliver_once(db, consumers, exchange.Policy())
    checkins = (await bhxh.http.get("http://portal/sim/bhxh/_sim/checkins")).json()
    assert len(checkins) == 1
    assert (
        await count(
            session,
            OutboxEvent,
            OutboxEvent.topic == "checkin.received",
            OutboxEvent.status == "delivered",
        )
        == 1
    )


async def test_a_visit_s_file_waits_for_the_check_in_that_names_it_second(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    """A check-in of two visits is one signed file, sent once; the second visit's file waits
    for it as the first's does (D256), so the portal hears of every check-in first."""
    from vnehr.submissions.xmlio import write_table

    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    first, second = visit(code, 1), visit(code, 2)
    rows = [checkin_row(code, first.ma_lk), checkin_row(code, second.ma_lk)]
    rows[1]["STT"] = "2"
    sent = await client.post("/api/v1/checkins", content=write_table("XML0", rows), headers=headers)
    assert sent.json()["status"] == "accepted"
    assert (await send(client, headers, synth.envelope([second], code))).status_code == 201
    consumers: exchange.Consumers = {
        "checkin.received": {"bhxh": exchange.checkin_consumer(bhxh)},
        "visit.accepted": {"bhxh": exchange.bhxh_consumer(bhxh)},
    }
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=50)
    config.faults.unavailable = True
    for _ in range(3):
        await exchange.deliver_once(db, consumers, policy)
        await asyncio.sleep(0.01)
    file_event = OutboxEvent.topic == "visit.accepted"
    checkin_event = OutboxEvent.topic == "checkin.received"
    tried = select(DeliveryAttempt.event_id).join(
        OutboxEvent, OutboxEvent.event_id == DeliveryAttempt.event_id
    )
    assert (
        await count(
            session, DeliveryAttempt, DeliveryAttempt.event_id.in_(tried.where(checkin_event))
        )
        >= 1
    )
    # the second visit's file was not even tried while the check-in could not go
    assert (
        await count(session, DeliveryAttempt, DeliveryAttempt.event_id.in_(tried.where(file_event)))
        == 0
    )
    config.faults.unavailable = False
    for _ in range(20):
        if not await exchange.deliver_once(db, consumers, policy):
            break
    [checked_in] = (await bhxh.http.get("http://portal/sim/bhxh/_sim/checkins")).json()
    [received] = (
        await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{second.ma_lk}")
    ).json()
    assert sorted(checked_in["ma_lk"]) == sorted([first.ma_lk, second.ma_lk])
    assert checked_in["received_at"] <= received["received_at"]


async def test_a_replayed_original_does_not_overwrite_a_correction_already_delivered(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    portal: tuple[BhxhConfig, exchange.BhxhClient],
) -> None:
    config, bhxh = portal
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, 3)
    await send(client, headers, synth.envelope([one], code))
    config.faults.unavailable = True
    policy = exchange.Policy(backoff_seconds=0.0001, max_attempts=2)
    await deliver_all(db, bhxh, policy, rounds=10)
    [dead] = await exchange.dead_letters(session)  # the original, given up on
    config.faults.unavailable = False
    one.tables["XML1"][0]["GHI_CHU"] = "Bản sửa"
    await send(client, headers, synth.envelope([one], code))
    await deliver_all(db, bhxh, policy)  # the correction goes: a dead letter holds nothing back
    assert await exchange.replay(session, [dead.event_id]) == 1
    await deliver_all(db, bhxh, policy)
    versions = (
        await bhxh.http.get(f"http://portal/sim/bhxh/_sim/received/{code}/{one.ma_lk}")
    ).json()
    assert [v["version_number"] for v in versions] == [1]  # the portal holds the correction
    ours = list(await session.scalars(select(BhxhReceipt.version).order_by(BhxhReceipt.id)))
    assert ours == [2]
    [attempt] = await session.scalars(
        select(DeliveryAttempt.detail).where(
            DeliveryAttempt.event_id == dead.event_id,
            DeliveryAttempt.target == "bhxh",
            DeliveryAttempt.outcome == "delivered",
        )
    )
    assert attempt["note"] == "superseded"
    assert attempt["delivered_version"] == 2
    assert await count(session, OutboxEvent, OutboxEvent.status != "delivered") == 0
