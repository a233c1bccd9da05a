"""The represented person is told when someone is recorded as their representative (D238's
"Left"): in the inbox and on the phone, in Vietnamese and English, naming the agent, the
relation, from when and the office that recorded it; the person's representatives already on
record are told too, about the person by name. A refused attempt tells no one."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import as_person, signed_in
from tests.exchange.test_push_recipients import FAST, push_service
from tests.web.test_ward_page import CUONG, MAI, _officer, _person
from tests.web.test_ward_registry_forms import BE, TODAY, _mai_and_be, _representative
from vnehr import exchange
from vnehr.app import exchange_handlers
from vnehr.identity.models import Representative
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings

TOPIC = "representative.added"
#: Bé's father, already his parent on record, who reads the book on VNeID (level 2)
FATHER = ("001088007777", "Nguyễn Văn Bố", "1988-02-02", "male")
BE_SIGNED_IN = (BE["personal_id"], BE["full_name"], "2015-03-04", "male")


async def _deliver(settings: Settings, db: Database) -> list[dict[str, Any]]:
    """Run the outbox through the app's own wiring; what the phones were told."""
    async with push_service(settings, db) as service:
        wired = exchange_handlers(settings, service.http)
        while await exchange.deliver_once(db, {TOPIC: wired[TOPIC]}, FAST):
            pass
        return [p for p in await service.pushed() if p["kind"] == "representative"]


async def _inbox(client: httpx.AsyncClient, settings: Settings, personal_id: str) -> Any:
    saved = dict(client.cookies)
    as_person(client, settings, personal_id)
    answer = await client.get("/api/v1/me/notifications")
    portal = await client.get("/portal")
    client.cookies.clear()
    client.cookies.update(saved)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"], portal.text


async def test_the_child_and_the_parent_on_record_are_told_of_a_new_representative(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)
    be = await _person(session, BE["personal_id"])
    assert be is not None
    await signed_in(session, BE_SIGNED_IN)  # Bé reads his book on VNeID
    father = await signed_in(session, FATHER)
    session.add(
        Representative(
            agent_id=father, subject_id=be.id, relation="parent", valid_from=be.birth_date,
            valid_to=None, created_at=utcnow(), created_by="test",
        )
    )  # fmt: skip
    await session.flush()

    # refused (the officer as the agent; someone not on record): nothing recorded, nobody told
    for agent in (CUONG, "001185099999"):
        refused = await _representative(client, csrf, "confirm", agent_personal_id=agent)
        assert refused.status_code != 303  # shown again, with its reason
    assert await _deliver(settings, db) == []
    assert (await _inbox(client, settings, BE["personal_id"]))[0] == []

    done = await _representative(client, csrf, "confirm")
    assert done.status_code == 303
    pushed = await _deliver(settings, db)

    items, portal = await _inbox(client, settings, BE["personal_id"])
    [told] = items
    assert (told["kind"], told["person"]["relation"]) == ("representative", None)
    assert told["title"]["vi"] == "Có người đại diện mới cho bạn"
    assert told["title"]["en"] == "A new representative for you"
    vi, en = told["body"]["vi"], told["body"]["en"]
    for said in (vi, en):
        assert "Nguyễn Thị Mai" in said
        assert TODAY in said
        assert "Phường Hoàn Kiếm" in said
    assert "cha/mẹ" in vi
    assert "parent" in en
    assert "Nguyễn Thị Mai" in portal
    # on her portal page it leads to the list of who acts for her, where she may report it
    assert f'<a href="/portal#representatives">{told["title"]["vi"]}</a>' in portal

    # the father reads it as news about his son, by name, never "you"
    [his], portal = await _inbox(client, settings, FATHER[0])
    # on his portal page it leads to the son's book
    assert re.search(
        r'href="/portal/book\?p=[^"]+">Có người đại diện mới cho Nguyễn Văn Bé<', portal
    )
    assert his["person"] == {
        "personal_id": BE["personal_id"],
        "name": BE["full_name"],
        "relation": "parent",
    }
    assert his["title"]["vi"] == "Có người đại diện mới cho Nguyễn Văn Bé"
    assert his["title"]["en"] == "A new representative for Nguyễn Văn Bé"
    for language in ("vi", "en"):
        assert "Nguyễn Thị Mai" in his["body"][language]
        assert "Nguyễn Văn Bé" in his["body"][language]
    assert "bạn" not in his["title"]["vi"]

    # on the phones: Bé's own words, the father's about Bé (Mai never signed in: no phone)
    by_whom = {p["personal_id"]: p for p in pushed}
    assert sorted(by_whom) == sorted([BE["personal_id"], FATHER[0]])
    assert by_whom[BE["personal_id"]]["title"] == told["title"]
    assert by_whom[FATHER[0]]["about"] == {"relation": "parent", "name": BE["full_name"]}
    assert "Nguyễn Thị Mai" in by_whom[FATHER[0]]["body"]["en"]
    assert MAI["personal_id"] not in str(pushed)  # a phone is told names, not IDs
