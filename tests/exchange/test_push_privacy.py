"""What a representative's phone shows: a parent's representation ends when the child comes of
age (18), in the push and in the inbox; a guardian appointed for an adult keeps it; a visit
touching a sensitive category (D35) reaches a representative's lock screen in neutral words,
without the facility, and so does an emergency access or a read of the child's record; a
representative with a level-1 identity is not pushed (as the inbox shows them nothing, D74);
and a representative's text speaks of the child's book, not "your" book."""

from __future__ import annotations

from datetime import date, datetime

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, BINH, KHANG, as_person, hospital, signed_in
from tests.exchange.test_push import child_with_a_new_visit
from tests.exchange.test_push_recipients import FAST, deliver, push_service
from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_intake import facility_with_token, send
from vnehr import demo, exchange, facilities, identity
from vnehr.identity.models import Representative
from vnehr.kit.auth import Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


async def visit_with_diagnosis(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    *,
    age_group: int,
    diagnosis: str,
) -> tuple[tuple[str, str, str, str], str]:
    """A visit whose main diagnosis is ``diagnosis`` (nothing else on it); the patient and the
    facility's name."""
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 7, datetime(2026, 10, 3, 9, 0), care_type="01", age_group=age_group)  # noqa: DTZ001
    for rows in one.tables.values():  # every table that repeats the diagnoses
        for row in rows:
            if "MA_BENH_CHINH" in row:
                row["MA_BENH_CHINH"] = diagnosis
            if "MA_BENH_KT" in row:
                row["MA_BENH_KT"] = ""
    answer = await send(client, headers, synth.envelope([one], code))
    assert answer.json()["status"] != "rejected", answer.text
    name = (await facilities.directory(session, [code]))[code].name
    return who(one), name


async def represent(
    session: AsyncSession, agent: tuple[str, ...], subject: str, relation: str, since: date
) -> None:
    """A link as recorded when it began (``since``): a parent's recorded while the child was a
    minor, which the ward office no longer records once they are of age (D233)."""
    await signed_in(session, agent)  # type: ignore[arg-type]
    agent_id = await identity.person_id_of(session, agent[0])
    subject_id = await identity.person_id_of(session, subject)
    assert agent_id is not None
    assert subject_id is not None
    session.add(
        Representative(
            agent_id=agent_id, subject_id=subject_id, relation=relation, valid_from=since,
            valid_to=None, created_at=utcnow(), created_by=demo.OPERATOR.label,
        )
    )  # fmt: skip
    await session.flush()


def person(personal_id: str) -> Subject:
    return Subject(kind="person", id=personal_id, name="x", assurance_level=2)


async def test_an_adults_parent_is_told_nothing_and_a_guardian_in_neutral_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    adult, facility = await visit_with_diagnosis(
        client, session, settings, age_group=3, diagnosis="F32.2"
    )
    born = date.fromisoformat(adult[2])
    assert born.year < 2008  # of age
    await signed_in(session, adult)  # at level 2: their own phone is told in full
    # the link made at birth was never closed (newborn links are made that way)
    await represent(session, AN, adult[0], "parent", born)
    # a guardian appointed by a court for the adult
    await represent(session, BINH, adult[0], "guardian", date(2026, 1, 1))

    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = {p["personal_id"]: p for p in await service.pushed()}

    assert set(pushed) == {adult[0], BINH[0]}  # not the parent of an adult
    guardian = pushed[BINH[0]]
    assert guardian["title"] == {
        "vi": f"Có thông báo mới về {adult[1]}",
        "en": f"New notice about {adult[1]}",
    }
    shown = orjson.dumps(guardian).decode()
    assert facility not in shown
    assert "khám" not in shown.lower()
    assert "visit" not in shown.lower()
    assert adult[0] not in shown
    assert facility in pushed[adult[0]]["body"]["vi"]  # the adult's own phone: in full

    # the parent's inbox and book end with the representation; the guardian's do not
    as_person(client, settings, AN[0])
    assert (await client.get("/api/v1/me/notifications")).json()["items"] == []
    assert not await identity.may_act_for(session, person(AN[0]), adult[0])
    as_person(client, settings, BINH[0])
    [item] = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert item["person"]["name"] == adult[1]
    assert await identity.may_act_for(session, person(BINH[0]), adult[0])


async def test_a_childs_sensitive_visit_reaches_the_parent_in_neutral_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child, facility = await visit_with_diagnosis(
        client, session, settings, age_group=1, diagnosis="Z30.0"
    )
    from tests.healthbook.test_access import born_years_ago

    await born_years_ago(session, child[0], 12)  # from 16 the parent is not told (D109)
    await represent(session, AN, child[0], "parent", date.fromisoformat(child[2]))
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = {p["personal_id"]: p for p in await service.pushed()}

    parent = pushed[AN[0]]
    assert parent["title"]["vi"] == f"Có thông báo mới về {child[1]}"
    assert parent["about"] == {"relation": "parent", "name": child[1]}
    assert facility not in orjson.dumps(parent).decode()
    assert parent["kind"] != "visit"


async def test_a_representatives_push_speaks_of_the_childs_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, child_name = await child_with_a_new_visit(client, session, settings)
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = {p["personal_id"]: p for p in await service.pushed()}

    own, parent = pushed[child_id], pushed[AN[0]]
    assert "của bạn" in own["body"]["vi"]
    assert parent["title"] == {
        "vi": f"Lượt khám mới trong Sổ sức khỏe điện tử của {child_name}",
        "en": f"New visit in {child_name}'s electronic health book",
    }
    for language, mine in (("vi", "của bạn"), ("en", "your")):
        assert child_name in parent["body"][language]
        assert mine not in parent["body"][language].lower()
        assert mine not in parent["title"][language].lower()


async def test_a_representative_with_a_level_1_identity_is_not_pushed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, _ = await child_with_a_new_visit(client, session, settings)
    # the guardian last signed in with a level-1 identity: the inbox shows them nothing
    await identity.sign_in(
        session,
        {"sub": f"s-{BINH[0]}", "personal_id": BINH[0], "name": BINH[1], "birthdate": BINH[2],
         "gender": BINH[3], "assurance_level": 1},
    )  # fmt: skip
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = await service.pushed()

    assert sorted(p["personal_id"] for p in pushed) == sorted([child_id, AN[0]])


def looked_at(person: int, code: str, name: str) -> dict[str, OutboxEvent]:
    """A facility opening the person's record under emergency access, and reading it."""
    return {
        "emergency": OutboxEvent(
            event_id="e-glass",
            topic="emergency.access",
            key=f"person:{person}",
            payload={"person_id": person, "params": {"facility": code, "reason": "unconscious"}},
        ),
        "viewed": OutboxEvent(
            event_id="e-viewed",
            topic="record.viewed",
            key=f"viewed:{person}:{code}:2026-11-27",
            payload={"person_id": person, "params": {"facility": name}},
        ),
    }


async def test_a_parents_phone_is_told_of_an_emergency_or_a_read_without_the_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    khang = await signed_in(session, KHANG)
    await represent(session, AN, KHANG[0], "parent", date(2017, 9, 1))
    name = "Bệnh viện Tâm thần Trung ương 1"  # the name alone says what care the child had
    code = await hospital(session, name)
    events = looked_at(khang, code, name)
    async with push_service(settings, db) as service:
        for kind, event in events.items():
            await exchange.event_notifier(kind, service.push)(session, event)
        pushed = {(p["personal_id"], p["kind"]): p for p in await service.pushed()}

    assert set(pushed) == {(who, kind) for who in (AN[0], KHANG[0]) for kind in events}
    for kind in events:
        parent = pushed[(AN[0], kind)]
        shown = orjson.dumps(parent).decode()
        assert name not in shown
        assert code not in shown
        assert "Tâm thần" not in shown
        assert KHANG[0] not in shown
        assert parent["about"] == {"relation": "parent", "name": KHANG[1]}
        for language in ("vi", "en"):
            assert KHANG[1] in parent["title"][language]
            assert "your" not in parent["body"][language].lower()
        # where to look, signed in: the child's access log names the facility
        assert "Ai đã xem hồ sơ của tôi" in parent["body"]["vi"]
        assert name in pushed[(KHANG[0], kind)]["body"]["vi"]  # the child's own: in full
    emergency = pushed[(AN[0], "emergency")]
    assert emergency["title"] == {
        "vi": f"Hồ sơ của {KHANG[1]} vừa được mở trong tình huống cấp cứu",
        "en": f"{KHANG[1]}'s record was opened in an emergency",
    }
    assert "Người bệnh bất tỉnh" in emergency["body"]["vi"]  # why, which names no service
    assert "Patient unconscious" in emergency["body"]["en"]
    assert pushed[(AN[0], "viewed")]["title"]["vi"] == f"Hồ sơ sức khỏe của {KHANG[1]} vừa được xem"

    # signed in at level 2, the parent reads the facility in the inbox, as in the child's book
    as_person(client, settings, AN[0])
    items = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert sorted(i["kind"] for i in items) == ["emergency", "viewed"]
    for item in items:
        assert item["body"]["vi"].startswith(name)


async def test_a_level_1_identitys_own_phone_is_told_in_neutral_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A level-1 identity reads no book and no inbox (D74, D75): its phone is told that there
    is news and that level 2 is needed, never which facility sent or looked, nor what; at
    level 2 the phone is told in full."""
    name = "Bệnh viện Tâm thần Trung ương 1"
    code = await hospital(session, name)
    people = {}
    for who_, level in ((KHANG, 1), (BINH, 2)):
        await identity.sign_in(
            session,
            {"sub": f"s-{who_[0]}", "personal_id": who_[0], "name": who_[1],
             "birthdate": who_[2], "gender": who_[3], "assurance_level": level},
        )  # fmt: skip
        people[who_[0]] = await identity.person_id_of(session, who_[0])
    events = [
        OutboxEvent(
            event_id=f"e-{kind}-{pid}",
            topic=topic,
            key=f"person:{person_id}",
            payload={"person_id": person_id, "params": params},
        )
        for pid, person_id in people.items()
        for kind, topic, params in (
            ("emergency", "emergency.access", {"facility": code, "reason": "unconscious"}),
            ("viewed", "record.viewed", {"facility": name}),
        )
    ]
    async with push_service(settings, db) as service:
        for event in events:
            kind = "emergency" if event.topic == "emergency.access" else "viewed"
            await exchange.event_notifier(kind, service.push)(session, event)
        pushed = await service.pushed()

    weak = [p for p in pushed if p["personal_id"] == KHANG[0]]
    assert len(weak) == 2
    for message in weak:
        shown = orjson.dumps(message).decode()
        assert name not in shown
        assert code not in shown
        assert "Tâm thần" not in shown
        assert message["kind"] == "notice"
        assert message["title"] == {
            "vi": "Có thông tin mới trong Sổ sức khỏe điện tử của bạn",
            "en": "News in your electronic health book",
        }
        assert "mức 2" in message["body"]["vi"]
        assert "level 2" in message["body"]["en"]
    strong = [p for p in pushed if p["personal_id"] == BINH[0]]
    assert sorted(p["kind"] for p in strong) == ["emergency", "viewed"]
    assert all(name in p["body"]["vi"] for p in strong)


@pytest.mark.parametrize("level", [1, None])
async def test_a_level_1_identitys_new_visit_reaches_its_phone_without_the_facility(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    level: int | None,
) -> None:
    """Last signed in at level 1, or never seen signed in (the VNeID account may be level 1):
    the phone hears of news, not of the facility."""
    patient, facility = await visit_with_diagnosis(
        client, session, settings, age_group=3, diagnosis="J45.0"
    )
    if level is not None:
        await identity.sign_in(
            session,
            {"sub": f"s-{patient[0]}", "personal_id": patient[0], "name": patient[1],
             "birthdate": patient[2], "gender": patient[3], "assurance_level": level},
        )  # fmt: skip
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        [message] = await service.pushed()

    assert message["personal_id"] == patient[0]
    assert message["kind"] == "notice"
    assert facility not in orjson.dumps(message).decode()
    assert "mức 2" in message["body"]["vi"]


async def test_a_sixteen_year_olds_parent_is_not_told_which_facility_looked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """From 16 the access log names no facility to a representative (the young person may
    have chosen that care in confidence); nor do the representative's phone and inbox, the
    stored parameters included. The young person's own are in full."""
    from tests.healthbook.test_access import born_years_ago

    khang = await signed_in(session, KHANG)
    await born_years_ago(session, KHANG[0], 17)
    await represent(session, AN, KHANG[0], "parent", date(2017, 9, 1))
    name = "Bệnh viện Tâm thần Trung ương 1"
    code = await hospital(session, name)
    events = looked_at(khang, code, name)
    async with push_service(settings, db) as service:
        for kind, event in events.items():
            await exchange.event_notifier(kind, service.push)(session, event)
        pushed = {(p["personal_id"], p["kind"]): p for p in await service.pushed()}

    for kind in events:
        parent = orjson.dumps(pushed[(AN[0], kind)]).decode()
        assert name not in parent
        assert code not in parent
        assert "Xem cơ sở nào" not in parent
        assert "See which one" not in parent
        assert KHANG[1] in parent
        assert name in pushed[(KHANG[0], kind)]["body"]["vi"]

    as_person(client, settings, AN[0])
    inbox = await client.get("/api/v1/me/notifications")
    assert sorted(i["kind"] for i in inbox.json()["items"]) == ["emergency", "viewed"]
    assert name not in inbox.text
    assert code not in inbox.text
    assert "Xem cơ sở nào" not in inbox.text
    portal = (await client.get("/portal")).text
    assert name not in portal
    assert KHANG[1] in portal
    as_person(client, settings, KHANG[0])
    own = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert all(i["body"]["vi"].startswith(name) for i in own)
