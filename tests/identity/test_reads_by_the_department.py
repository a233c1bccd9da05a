"""What the health department reads of a person outside their health book, their insurance
cards and their roles, is read within the department's province and shows in that person's
"who viewed my record", as every read of a record by someone else does."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_access import seventeen_with_a_parent
from tests.healthbook.test_api import who
from tests.identity.test_api import AN, BINH, CUONG, DUNG, HUNG, error, sign_in_as
from vnehr import identity
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings

SAIGON = ("079080012345", "Lê Văn Sài", "1980-01-01", "male")  # Sở Y tế TP. Hồ Chí Minh
OFFICER = ("001086003333", "Phạm Sở Y Tế", "1986-01-01", "male")  # Sở Y tế Hà Nội
REGISTRAR = Subject("person", "registrar", "registrar", (Grant("department_admin"),))


async def test_the_departments_read_of_the_cards_is_in_the_citizens_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    await identity.set_residence(session, REGISTRAR, AN[0], "00070")  # Hà Nội
    added = await client.post(
        f"/api/v1/persons/{AN[0]}/cards", json={"card_number": "DN4010123456789"}
    )
    assert added.status_code == 201, added.text
    await sign_in_as(
        client, session, settings, HUNG, {"role": "department_admin", "province_code": "01"}
    )
    cards = await client.get(f"/api/v1/persons/{AN[0]}/cards")
    assert [c["card_number"] for c in cards.json()] == ["DN4010123456789"]

    await sign_in_as(client, session, settings, AN)
    log = (await client.get("/api/v1/me/access-log")).json()
    assert [(e["action"], e["who"]["name"]) for e in log] == [("cards.read", HUNG[1])]
    for lang in ("vi", "en"):
        page = (await client.get("/portal/book/access-log", params={"lang": lang})).text
        assert text("web.access.action.cards.read", lang) in page
        assert HUNG[1] in page


async def test_a_parent_of_a_sixteen_year_old_is_told_the_department_read_the_cards(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Only the department reads someone's cards: a parent of a person of 16 or more is told
    its officer's name, not "a medical facility" (which hides who looked, D109)."""
    _, _, one = await seventeen_with_a_parent(client, session, settings, 74)
    young = who(one)
    await identity.set_residence(session, REGISTRAR, young[0], "00070")
    await sign_in_as(
        client, session, settings, OFFICER, {"role": "department_admin", "province_code": "01"}
    )
    assert (await client.get(f"/api/v1/persons/{young[0]}/cards")).status_code == 200

    await sign_in_as(client, session, settings, AN)
    log = (await client.get("/api/v1/me/access-log")).json()
    read = [e for e in log if e["action"] == "cards.read"]
    assert [(e["who"]["kind"], e["who"]["name"], e["person_name"]) for e in read] == [
        ("person", OFFICER[1], young[1])
    ]


async def test_a_department_reads_only_the_roles_it_administers_and_the_read_is_logged(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # Bình is a ward officer in Hà Nội (province 01) and a department administrator of 79
    await sign_in_as(
        client,
        session,
        settings,
        BINH,
        {"role": "ward_officer", "ward_code": "00070"},
        {"role": "department_admin", "province_code": "79"},
    )
    listing = "/api/v1/grants"

    async def roles(personal_id: str) -> list[tuple[str, str | None]]:
        answer = await client.get(listing, params={"personal_id": personal_id})
        assert answer.status_code == 200, answer.text
        return [(g["role"], g["ward_code"] or g["province_code"]) for g in answer.json()]

    mine = [("ward_officer", "00070"), ("department_admin", "79")]
    assert await roles(BINH[0]) == mine  # her own, all of them

    await sign_in_as(
        client, session, settings, HUNG, {"role": "department_admin", "province_code": "01"}
    )
    assert await roles(BINH[0]) == [("ward_officer", "00070")]
    await sign_in_as(
        client, session, settings, SAIGON, {"role": "department_admin", "province_code": "79"}
    )
    assert await roles(BINH[0]) == [("department_admin", "79")]
    await sign_in_as(client, session, settings, CUONG, {"role": "department_admin"})
    assert await roles(BINH[0]) == mine  # the national department
    # a person with roles only in province 79: Hà Nội's department is told none
    await sign_in_as(
        client, session, settings, DUNG, {"role": "clinician", "facility_code": "79001"}
    )
    await sign_in_as(
        client, session, settings, HUNG, {"role": "department_admin", "province_code": "01"}
    )
    assert await roles(DUNG[0]) == []
    # nobody else reads another person's roles
    await sign_in_as(
        client, session, settings, AN, {"role": "facility_admin", "facility_code": "01001"}
    )
    error(await client.get(listing, params={"personal_id": BINH[0]}), 403, "AUTH-0002")

    # Bình sees each department's read in "who viewed my record", not her own
    await sign_in_as(client, session, settings, BINH)
    log = (await client.get("/api/v1/me/access-log")).json()
    assert sorted((e["action"], e["who"]["name"]) for e in log) == sorted(
        [("grants.read", HUNG[1]), ("grants.read", SAIGON[1]), ("grants.read", CUONG[1])]
    )
    for lang in ("vi", "en"):
        page = (await client.get("/portal/book/access-log", params={"lang": lang})).text
        assert text("web.access.action.grants.read", lang) in page
    await sign_in_as(client, session, settings, DUNG)
    log = (await client.get("/api/v1/me/access-log")).json()
    assert [(e["action"], e["who"]["name"]) for e in log] == [("grants.read", HUNG[1])]
