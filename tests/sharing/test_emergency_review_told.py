"""The citizen is told when a review finds that an emergency access to their record was not
justified and ended it: in the inbox and on the phone, in Vietnamese and English, naming the
facility and the day, once however often the event is delivered. A justified finding is not
told (the opening was). A representative of a person of 16 or more is told without the
facility (D109, D124), as of the opening."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import BINH, as_person
from tests.exchange.test_push_privacy import represent
from tests.exchange.test_push_recipients import FAST, push_service
from tests.healthbook.test_access import born_years_ago
from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DEPARTMENT, DOCTOR, OTHER_DOCTOR, world
from tests.sharing.test_emergency_review import _break_glass
from vnehr import exchange
from vnehr.app import exchange_handlers
from vnehr.facilities.models import Facility
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings

KIND = "emergency_unjustified"
TOPICS = ("emergency.access", "emergency.reviewed")
#: The name of the facility that looked: it alone may tell what care the person had.
LOOKED = "Bệnh viện Tâm thần Trung ương 1"


async def _named(session: AsyncSession, code: str) -> str:
    await session.execute(update(Facility).where(Facility.code == code).values(name=LOOKED))
    await session.flush()
    return LOOKED


async def _review(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, found: dict[int, str]
) -> None:
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    for access_id, outcome in found.items():
        done = await client.post(
            f"/api/v1/emergency-accesses/{access_id}/review",
            json={"note": "Đã xem xét", "outcome": outcome},
        )
        assert done.status_code == 200, done.text
    client.cookies.clear()


async def _inbox(client: httpx.AsyncClient, settings: Settings, personal_id: str) -> Any:
    as_person(client, settings, personal_id)
    answer = await client.get("/api/v1/me/notifications")
    assert answer.status_code == 200, answer.text
    client.cookies.clear()
    return answer


async def test_an_access_found_unjustified_is_told_to_the_citizen_a_justified_one_is_not(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)  # level 2: reads the book and inbox
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    unjustified = await _break_glass(client, patient[0])
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    justified = await _break_glass(client, patient[0])
    await _review(client, session, settings, {unjustified: "unjustified", justified: "justified"})
    name = await _named(session, other)
    day = today_in_vietnam().strftime("%d/%m/%Y")

    async with push_service(settings, db) as service:
        wired = exchange_handlers(settings, service.http)  # the app's own wiring
        consumers = {topic: wired[topic] for topic in TOPICS}
        while await exchange.deliver_once(db, consumers, FAST):
            pass
        # delivered again (a worker that stopped before recording it): told once
        for event in await session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == "emergency.reviewed")
        ):
            await wired["emergency.reviewed"]["inbox"](session, event)
        pushed = [p for p in await service.pushed() if p["kind"] == KIND]

    inbox = (await _inbox(client, settings, patient[0])).json()
    kinds = sorted(i["kind"] for i in inbox["items"])
    assert kinds == ["emergency", "emergency", KIND]  # two openings, one finding
    [told] = [i for i in inbox["items"] if i["kind"] == KIND]
    assert told["params"]["facility"] == other  # the unjustified one
    assert told["title"] == {
        "vi": "Một lần mở hồ sơ của bạn trong tình huống cấp cứu bị kết luận là không chính đáng",
        "en": "An emergency access to your record was found unjustified",
    }
    for language in ("vi", "en"):
        assert name in told["body"][language]
        assert day in told["body"][language]
    assert "không chính đáng" in told["body"]["vi"]
    assert "Ai đã xem hồ sơ của tôi" in told["body"]["vi"]
    assert "unjustified" in told["body"]["en"]
    assert "Who viewed my record" in told["body"]["en"]
    # and on the citizen's phone, once
    assert [p["personal_id"] for p in pushed] == [patient[0]]
    assert name in pushed[0]["body"]["vi"]


async def test_a_seventeen_year_olds_parent_is_told_without_the_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    await born_years_ago(session, patient[0], 17)
    await represent(
        session, BINH, patient[0], "parent", today_in_vietnam() - timedelta(days=365 * 17)
    )
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    access = await _break_glass(client, patient[0])
    await _review(client, session, settings, {access: "unjustified"})
    name = await _named(session, other)

    async with push_service(settings, db) as service:
        wired = exchange_handlers(settings, service.http)
        while await exchange.deliver_once(db, {t: wired[t] for t in TOPICS}, FAST):
            pass
        pushed = {p["personal_id"]: p for p in await service.pushed() if p["kind"] == KIND}

    assert set(pushed) == {patient[0], BINH[0]}
    parents = orjson.dumps(pushed[BINH[0]]).decode()
    assert name not in parents
    assert other not in parents
    assert patient[1] in pushed[BINH[0]]["title"]["vi"]
    assert name in pushed[patient[0]]["body"]["vi"]  # the young person's own: in full

    answer = await _inbox(client, settings, BINH[0])
    [told] = [i for i in answer.json()["items"] if i["kind"] == KIND]
    assert told["person"]["name"] == patient[1]
    assert name not in answer.text
    assert other not in answer.text
    assert "không chính đáng" in told["body"]["vi"]
    assert "unjustified" in told["body"]["en"]
    as_person(client, settings, BINH[0])
    page = (await client.get("/portal")).text
    client.cookies.clear()
    assert name not in page
    assert patient[1] in page

    own = (await _inbox(client, settings, patient[0])).json()
    [mine] = [i for i in own["items"] if i["kind"] == KIND]
    assert mine["body"]["vi"].count(name) == 1
