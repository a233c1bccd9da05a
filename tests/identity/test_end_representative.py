"""A representation link ends, and is listed, by the office that may record it: a court removes
a guardian, a ward office recorded the wrong parent. From the day it ends the former agent no
longer reads the person's book; the person, those who still represent them and the former
agent are told. The person and their representatives read the links; a registrar lists them
for a person of their area, and that look-up is in the person's access log."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import as_person
from tests.exchange.test_push_recipients import FAST, push_service
from tests.identity.test_api import AN, BINH, CUONG, DUNG, HUNG, error, sign_in_as
from tests.identity.test_service import HOAN_KIEM, KHANG, dept, person, ward_officer
from vnehr import exchange, identity
from vnehr.app import exchange_handlers
from vnehr.audit import AuditEvent
from vnehr.identity import service
from vnehr.identity.models import Person, Representative
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings

TODAY = today_in_vietnam()
TOPICS = ("representative.ended", "representative.released")
KINDS = ("representative_ended", "representative_released")
#: Sở Y tế Hà Nội (province 01), who records and ends links for Hoàn Kiếm's residents
DEPARTMENT = person("001086003333", dept("01"))
OFFICER = {"role": "ward_officer", "ward_code": HOAN_KIEM}
ELSEWHERE = {"role": "ward_officer", "ward_code": "00004"}  # Ba Đình, another ward of Hà Nội


def _day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


async def _resident(session: AsyncSession, who: tuple[str, str, str, str]) -> Person:
    """A person signed in once at level 2 (reads their book), living in Hoàn Kiếm."""
    found = await identity.sign_in(
        session,
        {"sub": f"s-{who[0]}", "personal_id": who[0], "name": who[1], "birthdate": who[2],
         "gender": who[3], "assurance_level": 2},
    )  # fmt: skip
    found.residence_ward_code = HOAN_KIEM
    await session.flush()
    return found


async def _link(
    session: AsyncSession,
    agent: tuple[str, str, str, str],
    subject: tuple[str, str, str, str],
    relation: str = "parent",
    since: date | None = None,
    until: date | None = None,
) -> int:
    """A link as the department records it (``add_representative``); its id."""
    row = await service.add_representative(
        session,
        DEPARTMENT,
        agent_personal_id=agent[0],
        subject_person=subject[0],
        relation=relation,
        valid_from=since or date.fromisoformat(subject[2]),
        valid_to=until,
    )
    return row.id


async def _family(session: AsyncSession) -> tuple[int, int]:
    """Khang (8) and his parents An and Dung, all on VNeID at level 2, in Hoàn Kiếm: the ids of
    An's link and Dung's."""
    for who in (KHANG, AN, DUNG):
        await _resident(session, who)
    return await _link(session, AN, KHANG), await _link(session, DUNG, KHANG)


async def _end(client: httpx.AsyncClient, link_id: int, **body: Any) -> httpx.Response:
    return await client.post(
        f"/api/v1/representatives/{link_id}/end",
        json={"reason": "Tòa án nhân dân quận Hoàn Kiếm hạn chế quyền của cha", **body},
    )


async def _deliver(settings: Settings, db: Database) -> list[dict[str, Any]]:
    """Run the two topics' outbox through the app's own wiring; what the phones were told."""
    async with push_service(settings, db) as service_:
        wired = exchange_handlers(settings, service_.http)
        while await exchange.deliver_once(db, {t: wired[t] for t in TOPICS}, FAST):
            pass
        return [p for p in await service_.pushed() if p["kind"] in KINDS]


async def inbox_of(
    client: httpx.AsyncClient, settings: Settings, personal_id: str, kinds: Collection[str]
) -> list[Any]:
    """The notifications of these kinds in the person's inbox, as their app reads it (the
    client's own sign-in kept)."""
    saved = dict(client.cookies)
    client.cookies.clear()
    as_person(client, settings, personal_id)
    answer = await client.get("/api/v1/me/notifications")
    client.cookies.clear()
    client.cookies.update(saved)
    assert answer.status_code == 200, answer.text
    return [m for m in answer.json()["items"] if m["kind"] in kinds]


async def _inbox(client: httpx.AsyncClient, settings: Settings, personal_id: str) -> list[Any]:
    return await inbox_of(client, settings, personal_id, KINDS)


async def _count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _written(session: AsyncSession) -> tuple[int, int]:
    """(audit rows of ended links, outbox events of ended links)."""
    return (
        await _count(session, AuditEvent, AuditEvent.action == "representative.ended"),
        await _count(session, OutboxEvent, OutboxEvent.topic.in_(TOPICS)),
    )


async def test_ending_a_parent_takes_the_book_away_today_and_everyone_is_told(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    an_link, _ = await _family(session)
    an = person(AN[0])
    assert await identity.may_act_for(session, an, KHANG[0])

    await sign_in_as(client, session, settings, CUONG, OFFICER)
    ended = await _end(client, an_link)
    assert ended.status_code == 200, ended.text
    link = ended.json()
    assert (link["id"], link["agent_name"], link["agent_personal_id"]) == (an_link, AN[1], AN[0])
    assert (link["state"], link["valid_to"]) == ("ended", (TODAY - timedelta(1)).isoformat())
    assert link["end_reason"] == "Tòa án nhân dân quận Hoàn Kiếm hạn chế quyền của cha"
    assert link["ended_at"] is not None

    # An reads Khang's book no more, from today; Dung still does
    assert not await identity.may_act_for(session, an, KHANG[0])
    assert await identity.may_act_for(session, person(DUNG[0]), KHANG[0])
    await sign_in_as(client, session, settings, AN)
    error(await client.get("/api/v1/me/timeline", params={"for": KHANG[0]}), 403, "HB-0002")
    me = (await client.get("/api/v1/me")).json()
    assert me["representing"] == []

    # the change is in Khang's log, as its recording was
    [row] = await session.scalars(
        select(AuditEvent).where(AuditEvent.action == "representative.ended")
    )
    khang = await identity.person_id_of(session, KHANG[0])
    assert (row.person_id, row.actor) == (khang, f"person:{CUONG[0]}")
    assert row.detail is not None
    assert (row.detail["relation"], row.detail["ends_on"]) == ("parent", TODAY.isoformat())

    pushed = await _deliver(settings, db)
    # Khang: An no longer acts for him, from today, as recorded by the ward office
    [told] = await _inbox(client, settings, KHANG[0])
    assert (told["kind"], told["person"]["relation"]) == ("representative_ended", None)
    assert told["title"] == {
        "vi": "Nguyễn Văn An không còn là người đại diện của bạn",
        "en": "Nguyễn Văn An no longer acts for you",
    }
    for said in told["body"].values():
        assert _day(TODAY) in said
        assert "Phường Hoàn Kiếm" in said
    assert "cha/mẹ" in told["body"]["vi"]
    assert "parent" in told["body"]["en"]
    assert "Tòa án" not in str(told)  # the reason stays with the registry
    # Dung, who still represents him, reads it about Khang by name
    [hers] = await _inbox(client, settings, DUNG[0])
    assert hers["person"]["personal_id"] == KHANG[0]
    assert hers["title"]["vi"] == f"Nguyễn Văn An không còn là người đại diện của {KHANG[1]}"
    assert hers["title"]["en"] == f"Nguyễn Văn An no longer acts for {KHANG[1]}"
    # An, who reads Khang's inbox no more, is told in his own
    [his] = await _inbox(client, settings, AN[0])
    assert (his["kind"], his["person"]["personal_id"]) == ("representative_released", AN[0])
    assert his["title"] == {
        "vi": f"Bạn không còn là người đại diện của {KHANG[1]}",
        "en": f"You no longer act for {KHANG[1]}",
    }
    assert _day(TODAY) in his["body"]["vi"]
    assert _day(TODAY) in his["body"]["en"]
    # on the phones: each once, in their own words
    by_whom = sorted((p["personal_id"], p["kind"]) for p in pushed)
    assert by_whom == sorted(
        [
            (KHANG[0], "representative_ended"),
            (DUNG[0], "representative_ended"),
            (AN[0], "representative_released"),
        ]
    )


async def test_an_end_set_for_a_later_day_lets_the_agent_act_until_then(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    an_link, _ = await _family(session)
    later = TODAY + timedelta(days=10)
    await sign_in_as(client, session, settings, CUONG, OFFICER)
    ended = await _end(client, an_link, ends_on=later.isoformat())
    assert ended.status_code == 200, ended.text
    assert (ended.json()["state"], ended.json()["valid_to"]) == (
        "in_force",
        (later - timedelta(1)).isoformat(),
    )
    assert await identity.may_act_for(session, person(AN[0]), KHANG[0])
    assert await _written(session) == (1, 2)
    # An, Khang's representative until then, is told in his own words, not a second time on his
    # phone about Khang; Khang and Dung are told
    pushed = await _deliver(settings, db)
    assert sorted((p["personal_id"], p["kind"]) for p in pushed) == sorted(
        [
            (KHANG[0], "representative_ended"),
            (DUNG[0], "representative_ended"),
            (AN[0], "representative_released"),
        ]
    )
    [his] = [
        m for m in await _inbox(client, settings, AN[0]) if m["person"]["personal_id"] == AN[0]
    ]
    assert _day(later) in his["body"]["vi"]

    # the same end sent again writes nothing; a later one is refused, naming the last day
    again = await _end(client, an_link, ends_on=later.isoformat())
    assert again.status_code == 200, again.text
    assert again.json()["valid_to"] == (later - timedelta(1)).isoformat()
    body = error(await _end(client, an_link, ends_on=(later + timedelta(1)).isoformat()), 409,
                 "ID-0122")  # fmt: skip
    assert body["detail"]["last_day"] == (later - timedelta(1)).isoformat()
    assert await _written(session) == (1, 2)
    # an earlier one (from today) is taken
    sooner = await _end(client, an_link)
    assert (sooner.status_code, sooner.json()["state"]) == (200, "ended")
    assert not await identity.may_act_for(session, person(AN[0]), KHANG[0])
    assert await _written(session) == (2, 4)


async def test_who_may_not_end_a_link_and_what_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, _ = await _family(session)
    await _resident(session, HUNG)
    await _resident(session, BINH)  # of age since 1980
    court = await _link(session, HUNG, BINH, "guardian", TODAY)  # a court's guardian for Bình

    # a ward officer of another ward: the link is unknown to him, like one that does not exist
    await sign_in_as(client, session, settings, CUONG, ELSEWHERE)
    unknown = error(await _end(client, an_link), 404, "ID-0120")
    missing = error(await _end(client, an_link + 1000), 404, "ID-0120")
    for language in ("vi", "en"):
        said = unknown["message"][language].replace(str(an_link), "#")
        assert said == missing["message"][language].replace(str(an_link + 1000), "#")
    # a clinician, and An himself (a citizen), may not
    await sign_in_as(
        client, session, settings, HUNG, {"role": "clinician", "facility_code": "01001"}
    )
    error(await _end(client, an_link), 403, "AUTH-0002")
    await sign_in_as(client, session, settings, AN)
    error(await _end(client, an_link), 403, "AUTH-0002")
    # nor An as the ward's officer: nobody ends their own representation
    await sign_in_as(client, session, settings, AN, OFFICER)
    error(await _end(client, an_link), 403, "ID-0125")
    # the ward office: not in the past, not without a reason; a court's guardian for an adult
    # is the department's to end, as to record
    await sign_in_as(client, session, settings, CUONG, OFFICER)
    past = error(await _end(client, an_link, ends_on=(TODAY - timedelta(1)).isoformat()), 422,
                 "ID-0121")  # fmt: skip
    assert past["detail"]["today"] == TODAY.isoformat()
    for reason in ("", "   ", "x" * 501):
        error(await _end(client, an_link, reason=reason), 422, "ID-0123")
    error(await _end(client, court), 403, "ID-0117")
    error(await _end(client, an_link, ends_on="2026-02-30"), 422, "KIT-0422")
    assert await _written(session) == (0, 0)
    assert await identity.may_act_for(session, person(AN[0]), KHANG[0])
    assert await identity.may_act_for(session, person(HUNG[0]), BINH[0])
    # the department ends the court's guardianship
    done = await service.end_representative(
        session, DEPARTMENT, court, ends_on=None, reason="Tòa án chấm dứt việc giám hộ"
    )
    assert done.valid_to == TODAY - timedelta(1)
    assert not await identity.may_act_for(session, person(HUNG[0]), BINH[0])


async def test_a_link_not_begun_is_withdrawn(session: AsyncSession) -> None:
    for who in (KHANG, AN):
        await _resident(session, who)
    begins = TODAY + timedelta(days=30)
    link = await _link(session, AN, KHANG, "guardian", begins)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    row = await service.end_representative(
        session, officer, link, ends_on=TODAY + timedelta(days=5), reason="Nhầm người"
    )
    assert row.valid_to == begins - timedelta(1)  # it never takes effect
    assert (row.ended_by, row.end_reason) == (f"person:{CUONG[0]}", "Nhầm người")
    khang = await identity.person_id_of(session, KHANG[0])
    assert khang is not None
    [listed] = await identity.representation_links(session, khang)
    assert (listed.state, listed.agent_name, listed.relation) == ("withdrawn", AN[1], "guardian")
    # the person and the agent are told all the same: it was told when recorded
    [payload] = await session.scalars(
        select(OutboxEvent.payload).where(OutboxEvent.topic == "representative.ended")
    )
    assert payload["params"]["withdrawn"] is True
    assert await _count(session, OutboxEvent, OutboxEvent.topic == "representative.released") == 1


async def test_the_links_of_a_person_with_their_states(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    for who in (KHANG, AN, DUNG, BINH, HUNG):
        await _resident(session, who)
    # Khang: An's link in force, Dung's ended, Hùng's not yet begun, Bình's withdrawn
    in_force = await _link(session, AN, KHANG)
    ended = await _link(session, DUNG, KHANG)
    not_yet = await _link(session, HUNG, KHANG, "guardian", TODAY + timedelta(days=3))
    withdrawn = await _link(session, BINH, KHANG, "guardian", TODAY + timedelta(days=9))
    for link in (ended, withdrawn):
        await service.end_representative(session, DEPARTMENT, link, ends_on=None, reason="Sai")
    # Bình, of age since 1980: her parent's link stopped then (recorded in her childhood)
    binh = await identity.person_id_of(session, BINH[0])
    hung = await identity.person_id_of(session, HUNG[0])
    assert binh is not None
    assert hung is not None
    session.add(
        Representative(
            agent_id=hung, subject_id=binh, relation="parent", valid_from=date(1962, 8, 2),
            valid_to=None, created_at=utcnow(), created_by="test",
        )
    )  # fmt: skip
    await session.flush()

    await sign_in_as(client, session, settings, CUONG, OFFICER)
    listed = await client.get(f"/api/v1/persons/{KHANG[0]}/representatives")
    assert listed.status_code == 200, listed.text
    states = [(link["id"], link["state"]) for link in listed.json()]
    assert states == [  # newest first
        (withdrawn, "withdrawn"),
        (not_yet, "not_yet"),
        (ended, "ended"),
        (in_force, "in_force"),
    ]
    [dungs] = [link for link in listed.json() if link["id"] == ended]
    assert (dungs["agent_name"], dungs["relation"], dungs["end_reason"]) == (
        DUNG[1],
        "parent",
        "Sai",
    )
    of_age = await client.get(f"/api/v1/persons/{BINH[0]}/representatives")
    assert [link["state"] for link in of_age.json()] == ["of_age"]
    # an agent merged into another person since is not listed, as nowhere else
    dung = await identity.person_id_of(session, DUNG[0])
    merged = await session.get(Person, dung)
    assert merged is not None
    merged.merged_into_id = hung
    await session.flush()
    again = await client.get(f"/api/v1/persons/{KHANG[0]}/representatives")
    assert ended not in [link["id"] for link in again.json()]

    # the officer's look-ups are in each person's access log, by name
    await sign_in_as(client, session, settings, BINH)
    log = (await client.get("/api/v1/me/access-log")).json()
    assert [(e["action"], e["who"]["name"]) for e in log] == [("representatives.read", CUONG[1])]
    # another ward's officer reads none, a clinician there neither; each refusal told that
    # Khang is on record, so the look-up stays in Khang's log (D228)
    for grant in (ELSEWHERE, {"role": "clinician", "facility_code": "01001"}):
        await sign_in_as(client, session, settings, HUNG, grant)
        error(await client.get(f"/api/v1/persons/{KHANG[0]}/representatives"), 403, "AUTH-0002")
    reads = AuditEvent.action == "representatives.read"
    assert await _count(session, AuditEvent, reads) == 5
    khang = await identity.person_id_of(session, KHANG[0])
    by_hung = AuditEvent.actor == f"person:{HUNG[0]}"
    assert await _count(session, AuditEvent, reads, AuditEvent.person_id == khang, by_hung) == 2


async def test_the_person_and_their_representatives_read_the_links(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, dung_link = await _family(session)
    await service.end_representative(
        session, DEPARTMENT, an_link, ends_on=None, reason="Nhầm người cha"
    )
    # Khang reads who acts for him, ended links too
    await sign_in_as(client, session, settings, KHANG)
    mine = await client.get("/api/v1/me/representatives")
    assert mine.status_code == 200, mine.text
    assert [(link["agent_name"], link["state"]) for link in mine.json()] == [
        (DUNG[1], "in_force"),
        (AN[1], "ended"),
    ]
    # by name: never the agents' personal IDs (a stranger recorded by mistake included)
    assert [link["agent_personal_id"] for link in mine.json()] == [None, None]
    assert DUNG[0] not in mine.text
    assert AN[0] not in mine.text
    # Dung reads them as his mother, her own link marked by her ID; An, who no longer
    # represents him, is refused as the book refuses him
    await sign_in_as(client, session, settings, DUNG)
    hers = await client.get("/api/v1/me/representatives", params={"personal_id": KHANG[0]})
    assert [link["id"] for link in hers.json()] == [dung_link, an_link]
    assert [link["agent_personal_id"] for link in hers.json()] == [DUNG[0], None]
    assert (await client.get("/api/v1/me/representatives")).json() == []
    await sign_in_as(client, session, settings, AN)
    refused = error(
        await client.get("/api/v1/me/representatives", params={"personal_id": KHANG[0]}),
        403,
        "ID-0124",
    )
    assert KHANG[0] in refused["message"]["vi"]
    # a level-1 identity reads no book, and no links
    await sign_in_as(client, session, settings, KHANG, level=1)
    error(await client.get("/api/v1/me/representatives"), 403, "ID-0101")
    # reading one's own leaves no row in anyone's access log
    assert await _count(session, AuditEvent, AuditEvent.action == "representatives.read") == 0
