"""The identity API as the portal, a ward office and a facility administrator call it, signed
in with the portal's session cookie."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.audit import AuditEvent
from vnehr.identity.models import HealthAccount, Person
from vnehr.kit.auth import SESSION_COOKIE, Grant, make_session_cookie
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.settings import Settings

AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
BINH = ("079162003581", "Trần Thị Bình", "1962-08-02", "female")
CUONG = ("031054007793", "Lê Văn Cường", "1954-11-20", "male")
DUNG = ("048190002468", "Phạm Thị Dung", "1990-05-09", "female")
HUNG = ("001078009135", "Đặng Văn Hùng", "1978-12-30", "male")

NOT_SIGNED_IN = {
    "vi": "Bạn chưa đăng nhập. Vui lòng đăng nhập bằng tài khoản VNeID.",
    "en": "You are not signed in. Please sign in with your VNeID account.",
}


async def sign_in_as(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    who: tuple[str, str, str, str],
    *grants: dict[str, str],
    level: int = 2,
) -> Person:
    """Record the person (as VNeID sign-in does), give them roles, and put the portal's
    session cookie on the client, replacing whoever was signed in."""
    pid, name, birth, gender = who
    person = await identity.sign_in(
        session,
        {
            "sub": f"vneid-{pid}",
            "personal_id": pid,
            "name": name,
            "birthdate": birth,
            "gender": gender,
            "assurance_level": level,
        },
    )
    for grant in grants:
        await identity.bootstrap_grant(session, pid, **grant)
    await session.flush()
    client.cookies.clear()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(settings, {"personal_id": pid, "name": name, "assurance_level": level}),
    )
    return person


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["message"]["vi"]
    assert body["message"]["en"]
    return body


# ------------------------------------------------------------------ who am I


async def test_me_without_a_session_is_401_in_both_languages(client: httpx.AsyncClient) -> None:
    body = error(await client.get("/api/v1/me"), 401, "AUTH-0001")
    assert body["message"] == NOT_SIGNED_IN


async def test_me_shows_the_profile_with_the_roles(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client,
        session,
        settings,
        AN,
        {"role": "facility_admin", "facility_code": "01001"},
        {"role": "ward_officer", "ward_code": "00070"},
    )

    response = await client.get("/api/v1/me")

    assert response.status_code == 200, response.text
    me = response.json()
    assert {k: me[k] for k in ("personal_id", "full_name", "birth_date", "sex")} == {
        "personal_id": AN[0],
        "full_name": "Nguyễn Văn An",
        "birth_date": "1985-03-14",
        "sex": "male",
    }
    assert me["assurance_level"] == 2
    assert me["account"] is None
    assert me["representing"] == []
    assert [(g["role"], g["facility_code"], g["ward_code"]) for g in me["grants"]] == [
        ("facility_admin", "01001", None),
        ("ward_officer", None, "00070"),
    ]
    assert all(g["granted_by"] == "operator" for g in me["grants"])


async def test_a_tampered_cookie_is_anonymous(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN, {"role": "department_admin"})
    genuine = client.cookies[SESSION_COOKIE]
    assert (await client.get("/api/v1/me")).status_code == 200
    _, _, timestamp_and_signature = genuine.partition(".")
    head, _, signature = genuine.rpartition(".")
    # another person's payload under An's signature
    other_payload = make_session_cookie(settings, {"personal_id": BINH[0]}).partition(".")[0]
    for value in (
        f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",  # signature altered
        f"{other_payload}.{timestamp_and_signature}",
        "not-a-cookie",
    ):
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, value)
        body = error(await client.get("/api/v1/me"), 401, "AUTH-0001")
        assert body["message"] == NOT_SIGNED_IN


async def test_a_cookie_signed_with_another_key_is_anonymous(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    other = settings.model_copy(update={"secret_key": type(settings.secret_key)("z" * 48)})
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, make_session_cookie(other, {"personal_id": AN[0]}))
    error(await client.get("/api/v1/me"), 401, "AUTH-0001")


# ------------------------------------------------------------------ health account


async def test_level_one_cannot_open_the_health_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, HUNG, level=1)

    body = error(await client.post("/api/v1/me/account"), 403, "ID-0101")

    assert "mức 2" in body["message"]["vi"]
    assert "mức 1" in body["message"]["vi"]
    assert "level 2" in body["message"]["en"]
    assert (await client.get("/api/v1/me")).json()["account"] is None


async def test_level_two_opens_and_closes_the_health_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await sign_in_as(client, session, settings, AN)

    opened = await client.post("/api/v1/me/account")

    assert opened.status_code == 200, opened.text
    assert opened.json()["status"] == "open"
    assert opened.json()["channel"] == "vneid"
    assert opened.json()["assisted_ward_code"] is None
    assert (await client.get("/api/v1/me")).json()["account"]["status"] == "open"
    stored = (
        await session.scalars(select(HealthAccount).where(HealthAccount.person_id == an.id))
    ).one()
    assert stored.status == "open"

    closed = await client.post("/api/v1/me/account/close", json={"reason": "chuyển đi"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["closed_at"] is not None
    reopened = await client.post("/api/v1/me/account")
    assert reopened.json()["status"] == "open"


async def test_closing_a_book_never_opened_is_404(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    error(await client.post("/api/v1/me/account/close", json={}), 404, "ID-0103")


# ------------------------------------------------------------------ assisted enrolment

ENROL_BINH = {
    "personal_id": BINH[0],
    "full_name": "Trần Thị Bình",
    "birth_date": "1962-08-02",
    "sex": "female",
    "ward_code": "00070",
}


async def test_a_ward_officer_enrols_a_citizen(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "00070"}
    )

    response = await client.post("/api/v1/enrolments", json=ENROL_BINH)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person"]["personal_id"] == BINH[0]
    assert body["person"]["full_name"] == "Trần Thị Bình"
    assert body["person"]["provisional"] is False
    assert body["account"]["status"] == "open"
    assert body["account"]["channel"] == "assisted"
    assert body["account"]["assisted_ward_code"] == "00070"
    assert body["person"]["residence_ward_code"] == "00070"
    stored = await session.scalar(
        select(HealthAccount.assisted_by)
        .join(Person, Person.id == HealthAccount.person_id)
        .where(Person.personal_id == BINH[0])
    )
    assert stored == f"person:{CUONG[0]}"


async def test_enrolment_refusals(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "00004"}
    )
    post = client.post
    error(await post("/api/v1/enrolments", json=ENROL_BINH), 403, "AUTH-0002")
    elsewhere = {**ENROL_BINH, "ward_code": "00004"}
    error(await post("/api/v1/enrolments", json={**elsewhere, "sex": "male"}), 422, "ID-0004")
    error(
        await post("/api/v1/enrolments", json={**elsewhere, "ward_code": "99999"}), 422, "ID-0110"
    )
    error(
        await post("/api/v1/enrolments", json={**elsewhere, "personal_id": "7916"}), 422, "KIT-0422"
    )
    assert await session.scalar(select(Person.id).where(Person.personal_id == BINH[0])) is None


async def test_a_citizen_cannot_enrol_others(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    error(await client.post("/api/v1/enrolments", json=ENROL_BINH), 403, "AUTH-0002")


# ------------------------------------------------------------------ insurance cards


async def test_cards_are_recorded_and_private(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, BINH)
    await sign_in_as(client, session, settings, AN)
    card = {"card_number": "DN4010123456789", "valid_from": "2026-01-01", "valid_to": "2026-12-31"}

    added = await client.post(f"/api/v1/persons/{AN[0]}/cards", json=card)
    assert added.status_code == 201, added.text
    assert added.json()["social_insurance_number"] == "0123456789"
    listed = await client.get(f"/api/v1/persons/{AN[0]}/cards")
    assert [c["card_number"] for c in listed.json()] == ["DN4010123456789"]

    bad = {**card, "card_number": "DN6010123456789"}
    error(await client.post(f"/api/v1/persons/{AN[0]}/cards", json=bad), 422, "ID-0009")
    upside_down = {**card, "valid_from": "2027-01-01"}
    error(await client.post(f"/api/v1/persons/{AN[0]}/cards", json=upside_down), 422, "ID-0105")

    await sign_in_as(client, session, settings, BINH)
    error(await client.get(f"/api/v1/persons/{AN[0]}/cards"), 403, "AUTH-0002")


async def audited(session: AsyncSession, action: str) -> int:
    stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    return int(await session.scalar(stmt) or 0)


async def test_cards_are_kept_within_the_area_where_the_person_lives(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await sign_in_as(client, session, settings, AN)
    an.residence_ward_code = "00070"  # Hoàn Kiếm, Hà Nội
    await session.flush()
    card = {"card_number": "DN4010123456789"}
    cards = f"/api/v1/persons/{AN[0]}/cards"

    # the ward officer of another ward, and the HCMC department, are refused
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "00004"}
    )
    error(await client.post(cards, json=card), 403, "AUTH-0002")
    await sign_in_as(
        client, session, settings, BINH, {"role": "department_admin", "province_code": "79"}
    )
    error(await client.post(cards, json=card), 403, "AUTH-0002")
    error(await client.get(cards), 403, "AUTH-0002")
    assert await audited(session, "card.added") == 0

    # the ward officer of Hoàn Kiếm records it; the Hà Nội department reads it (audited)
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "00070"}
    )
    assert (await client.post(cards, json=card)).status_code == 201
    await sign_in_as(
        client, session, settings, HUNG, {"role": "department_admin", "province_code": "01"}
    )
    listed = await client.get(cards)
    assert listed.status_code == 200, listed.text
    assert [c["card_number"] for c in listed.json()] == ["DN4010123456789"]
    assert (await audited(session, "card.added"), await audited(session, "cards.read")) == (1, 1)


# ------------------------------------------------------------------ residence and representatives


async def test_the_department_records_a_residence_then_a_guardian(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    await sign_in_as(client, session, settings, BINH)
    guardian = {
        "agent_personal_id": AN[0],
        "subject_personal_id": BINH[0],
        "relation": "guardian",
        "valid_from": "2026-01-01",
    }
    residence = f"/api/v1/persons/{BINH[0]}/residence"

    # Bình, with no residence on record, is placed by the department, not a ward office (D24)
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "26740"}
    )
    error(await client.put(residence, json={"ward_code": "26740"}), 403, "ID-0118")
    await sign_in_as(
        client, session, settings, DUNG, {"role": "department_admin", "province_code": "79"}
    )
    recorded = await client.put(residence, json={"ward_code": "26740"})
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["residence_ward_code"] == "26740"

    # a Hà Nội ward officer can neither make An her guardian nor move her into his ward
    await sign_in_as(
        client, session, settings, HUNG, {"role": "ward_officer", "ward_code": "00070"}
    )
    error(await client.post("/api/v1/representatives", json=guardian), 403, "AUTH-0002")
    error(await client.put(residence, json={"ward_code": "00070"}), 403, "AUTH-0002")
    error(await client.put(residence, json={"ward_code": "99999"}), 422, "ID-0110")
    error(await client.put(residence, json={"ward_code": "7"}), 422, "KIT-0422")
    await sign_in_as(client, session, settings, AN)
    assert (await client.get("/api/v1/me")).json()["representing"] == []

    # the Sài Gòn ward officer may not either: an adult's guardian (a court's) is the
    # department's to record, and never the officer himself
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "26740"}
    )
    error(await client.post("/api/v1/representatives", json=guardian), 403, "ID-0117")
    himself = {**guardian, "agent_personal_id": CUONG[0]}
    error(await client.post("/api/v1/representatives", json=himself), 403, "ID-0115")
    # the department: not her own representative, not her parent (she is of age), not a
    # guardianship begun in her childhood (it ended at 18); a court's guardian from now
    await sign_in_as(
        client, session, settings, DUNG, {"role": "department_admin", "province_code": "79"}
    )
    itself = {**guardian, "agent_personal_id": BINH[0]}
    error(await client.post("/api/v1/representatives", json=itself), 422, "ID-0113")
    parent = {**guardian, "relation": "parent"}
    error(await client.post("/api/v1/representatives", json=parent), 422, "ID-0114")
    childhood = {**guardian, "valid_from": "1975-01-01"}
    error(await client.post("/api/v1/representatives", json=childhood), 422, "ID-0116")
    error(
        await client.post(
            "/api/v1/representatives", json={**guardian, "agent_personal_id": DUNG[0]}
        ),
        403,
        "ID-0115",
    )
    added = await client.post("/api/v1/representatives", json=guardian)
    assert added.status_code == 201, added.text
    await sign_in_as(client, session, settings, AN)
    (represented,) = (await client.get("/api/v1/me")).json()["representing"]
    assert (represented["personal_id"], represented["relation"]) == (BINH[0], "guardian")
    assert await audited(session, "representative.added") == 1
    assert await audited(session, "person.residence_set") == 1


# ------------------------------------------------------------------ newborns


async def test_a_newborn_is_registered_then_gets_a_personal_id(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    mother = await sign_in_as(client, session, settings, DUNG)
    mother.residence_ward_code = "00070"  # she lives in Hoàn Kiếm, Hà Nội
    await session.flush()
    newborn = {"mother_personal_id": DUNG[0], "birth_date": "2026-01-10", "sex": "male"}
    # a clinician in Hồ Chí Minh City may not register a Hà Nội mother's baby
    await sign_in_as(
        client, session, settings, CUONG, {"role": "clinician", "facility_code": "79001"}
    )
    error(await client.post("/api/v1/persons/newborns", json=newborn), 403, "AUTH-0002")

    await sign_in_as(
        client, session, settings, CUONG, {"role": "clinician", "facility_code": "01001"}
    )
    born = await client.post("/api/v1/persons/newborns", json=newborn)
    assert born.status_code == 201, born.text
    child = born.json()
    assert child["provisional"] is True
    assert child["personal_id"] is None
    assert child["mother_id"] == mother.id
    assert child["residence_ward_code"] == "00070"

    # a clinician may register the baby but only the ward office assigns the number
    assign = f"/api/v1/persons/{child['id']}/personal-id"
    error(await client.post(assign, json={"personal_id": "048226001234"}), 403, "AUTH-0002")

    await sign_in_as(client, session, settings, DUNG)
    (represented,) = (await client.get("/api/v1/me")).json()["representing"]
    assert (represented["person_id"], represented["provisional"]) == (child["id"], True)
    assert represented["relation"] == "parent"

    # the ward office of another ward does not assign it; Hoàn Kiếm's does
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "00004"}
    )
    error(await client.post(assign, json={"personal_id": "048226001234"}), 403, "AUTH-0002")
    await sign_in_as(
        client, session, settings, CUONG, {"role": "ward_officer", "ward_code": "00070"}
    )
    assigned = await client.post(assign, json={"personal_id": "048226001234"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["personal_id"] == "048226001234"
    assert assigned.json()["provisional"] is False
    error(await client.post(assign, json={"personal_id": "048226001234"}), 409, "ID-0106")
    assert (
        await audited(session, "newborn.added"),
        await audited(session, "person.id_assigned"),
    ) == (
        1,
        1,
    )
    # the child's name ("Con của …") named the mother: the look-up is in her access log, and
    # so is the refused one of the clinician in Hồ Chí Minh City (told she lives elsewhere)
    assert await audited(session, "newborn.mother_read") == 2


async def test_a_newborn_is_not_born_in_the_future_nor_before_the_mother(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The mother represents the child from the birth date: a slip in the year would start
    that in 2999, or before she was born herself."""
    await sign_in_as(client, session, settings, BINH)  # born 1962-08-02
    await sign_in_as(
        client, session, settings, AN, {"role": "department_admin", "province_code": None}
    )
    newborn = {"mother_personal_id": BINH[0], "sex": "male"}
    later = today_in_vietnam() + timedelta(days=1)
    for born, code in (("2999-01-01", "ID-0111"), (later.isoformat(), "ID-0111")):
        body = error(
            await client.post("/api/v1/persons/newborns", json={**newborn, "birth_date": born}),
            422,
            code,
        )
        assert born in body["message"]["en"]
    body = error(
        await client.post("/api/v1/persons/newborns", json={**newborn, "birth_date": "1950-01-01"}),
        422,
        "ID-0112",
    )
    assert "1962-08-02" in body["message"]["vi"]
    today = today_in_vietnam().isoformat()
    born = await client.post("/api/v1/persons/newborns", json={**newborn, "birth_date": today})
    assert born.status_code == 201, born.text
    assert born.json()["birth_date"] == today


async def test_ids_beyond_64_bits_find_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, AN, {"role": "department_admin", "province_code": None}
    )
    for number in (2**63, 2**70):
        for path, body in (
            (f"/api/v1/grants/{number}/revoke", None),
            (f"/api/v1/persons/{number}/personal-id", {"personal_id": BINH[0]}),
        ):
            error(await client.post(path, json=body), 422, "KIT-0422")
        representative = {
            "agent_personal_id": AN[0],
            "subject_person_id": number,
            "relation": "parent",
            "valid_from": "2024-01-01",
        }
        error(await client.post("/api/v1/representatives", json=representative), 422, "KIT-0422")
    largest = 2**63 - 1
    error(await client.post(f"/api/v1/grants/{largest}/revoke"), 422, "ID-0107")
    assign = await client.post(
        f"/api/v1/persons/{largest}/personal-id", json={"personal_id": BINH[0]}
    )
    assert assign.status_code == 404, assign.text


# ------------------------------------------------------------------ grants


async def test_a_facility_admin_grants_clinicians_only_at_their_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, CUONG, {"role": "facility_admin", "facility_code": "01001"}
    )
    grant = {"personal_id": AN[0], "role": "clinician"}

    error(
        await client.post("/api/v1/grants", json={**grant, "facility_code": "01002"}),
        403,
        "AUTH-0002",
    )
    created = await client.post("/api/v1/grants", json={**grant, "facility_code": "01001"})
    assert created.status_code == 201, created.text
    assert created.json()["granted_by"] == f"person:{CUONG[0]}"
    error(
        await client.post(
            "/api/v1/grants", json={**grant, "role": "root", "facility_code": "01001"}
        ),
        422,
        "KIT-0422",
    )
    assert await identity.grants_for(session, AN[0]) == (
        Grant("citizen"),
        Grant("clinician", facility_code="01001"),
    )


async def test_a_revoked_role_stops_at_the_next_request(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    await sign_in_as(
        client, session, settings, CUONG, {"role": "department_admin", "province_code": "01"}
    )
    created = await client.post(
        "/api/v1/grants", json={"personal_id": AN[0], "role": "ward_officer", "ward_code": "00070"}
    )
    assert created.status_code == 201, created.text
    listed = await client.get("/api/v1/grants", params={"personal_id": AN[0]})
    assert [g["id"] for g in listed.json()] == [created.json()["id"]]

    revoked = await client.post(f"/api/v1/grants/{created.json()['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert (await client.get("/api/v1/grants", params={"personal_id": AN[0]})).json() == []

    await sign_in_as(client, session, settings, AN)
    assert (await client.get("/api/v1/me")).json()["grants"] == []
    error(await client.post("/api/v1/enrolments", json=ENROL_BINH), 403, "AUTH-0002")


async def test_the_department_of_another_province_cannot_revoke(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    grant = await identity.bootstrap_grant(session, AN[0], "ward_officer", ward_code="00070")
    await sign_in_as(
        client, session, settings, CUONG, {"role": "department_admin", "province_code": "79"}
    )
    error(await client.post(f"/api/v1/grants/{grant.id}/revoke"), 403, "AUTH-0002")


async def test_a_department_grant_names_a_province_in_force(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, AN, {"role": "department_admin", "province_code": None}
    )
    grant = {"personal_id": BINH[0], "role": "department_admin"}
    body = error(
        await client.post("/api/v1/grants", json={**grant, "province_code": "99"}), 422, "ID-0107"
    )
    assert "99" in body["message"]["en"]
    made = await client.post("/api/v1/grants", json={**grant, "province_code": "79"})
    assert made.status_code == 201, made.text
