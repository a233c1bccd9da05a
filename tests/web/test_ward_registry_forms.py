"""The ward office's registry forms (/ward): a ward officer records a representative (a parent
or a guardian) for a person, where a person lives, and an insurance card, as the API lets a
ward officer (D24), from forms that check, ask, then act, whose result names nobody in its
address; each look-up of a person on record is in that person's access log, refused or not,
and a form sent again (the back button) does nothing twice."""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_login import AN, login
from tests.web.test_ward_page import (
    BA_DINH,
    CUONG,
    HOAN_KIEM,
    MAI,
    _csrf,
    _enrol,
    _field_error,
    _officer,
    _person,
    _shown,
    _value,
)
from vnehr import audit, identity
from vnehr.identity.models import InsuranceCard, Person, Representative
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.i18n import text

BE = {  # Mai's son, 10, with a personal ID: she comes to the counter with his birth certificate
    "personal_id": "001215001234",
    "full_name": "Nguyễn Văn Bé",
    "birth_date": "04/03/2015",
    "sex": "male",
}
CARD = "DN4010123456789"
TODAY = today_in_vietnam().strftime("%d/%m/%Y")


async def _looked_up(session: AsyncSession, personal_id: str, action: str) -> int:
    """How many times the office's ``action`` look-up is in this person's access log."""
    person = await identity.person_id_of(session, personal_id)
    assert person is not None
    reads = await audit.reads_about(session, [person], not_by=f"person:{personal_id}")
    return sum(e.action == action for e in reads)


async def _audited(session: AsyncSession, action: str) -> int:
    stmt = select(func.count()).where(audit.AuditEvent.action == action)
    return int(await session.scalar(stmt) or 0)


async def _mai_and_be(client: httpx.AsyncClient, csrf: str) -> None:
    """Mai and her son on record, living in Hoàn Kiếm (their books opened at the office)."""
    assert (await _enrol(client, csrf, "confirm")).status_code == 303
    assert (await _enrol(client, csrf, "confirm", **BE)).status_code == 303


async def _representative(
    client: httpx.AsyncClient, csrf: str, step: str, ward: str = HOAN_KIEM, **typed: str
) -> httpx.Response:
    """The representative form: Mai as her son's parent from today (``typed`` changes a field)."""
    sent = {
        "csrf": csrf,
        "ward": ward,
        "step": step,
        "personal_id": BE["personal_id"],
        "agent_personal_id": MAI["personal_id"],
        "relation": "parent",
        "valid_from": TODAY,
        "valid_to": "",
    }
    return await client.post("/ward/representative", data={**sent, **typed})


async def _residence(
    client: httpx.AsyncClient, csrf: str, step: str, personal_id: str, ward: str = HOAN_KIEM
) -> httpx.Response:
    sent = {"csrf": csrf, "ward": ward, "step": step, "personal_id": personal_id}
    return await client.post("/ward/residence", data=sent)


async def _card(
    client: httpx.AsyncClient, csrf: str, step: str, ward: str = HOAN_KIEM, **typed: str
) -> httpx.Response:
    """The card form: Mai's card for 2026 (``typed`` changes a field)."""
    sent = {
        "csrf": csrf,
        "ward": ward,
        "step": step,
        "personal_id": MAI["personal_id"],
        "card_number": CARD,
        "valid_from": "01/01/2026",
        "valid_to": "31/12/2026",
        "registered_facility": "",
    }
    return await client.post("/ward/card", data={**sent, **typed})


def _recent(page: str) -> str:
    return _shown(page[page.index('id="recent"') :])


async def _links(session: AsyncSession) -> list[Representative]:
    be = await _person(session, BE["personal_id"])
    assert be is not None
    stmt = select(Representative).where(Representative.subject_id == be.id)
    return list(await session.scalars(stmt))


# ------------------------------------------------------------------ representatives


async def test_the_officer_records_a_parent_for_a_child_after_confirming(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    page = await client.get("/ward")
    assert 'action="/ward/representative"' in page.text
    await _mai_and_be(client, csrf)
    read = "representative.person.read"

    # the question names both, as recorded, and nothing is written yet but the look-ups
    asked = await _representative(client, csrf, "check")
    assert asked.status_code == 200, _shown(asked.text)[:900]
    shown = _shown(asked.text)
    assert "Nguyễn Văn Bé" in shown
    assert "Nguyễn Thị Mai" in shown
    assert text("web.ward.representative.final", "vi") in shown
    assert await _links(session) == []
    assert await _looked_up(session, BE["personal_id"], read) == 1
    assert await _looked_up(session, MAI["personal_id"], read) == 1

    done = await _representative(client, _csrf(asked.text), "confirm")
    assert done.status_code == 303
    where = done.headers["location"]
    assert where.startswith("/ward/result?")
    assert BE["personal_id"] not in where
    assert MAI["personal_id"] not in where
    result = _shown((await client.get(where)).text)
    words = {"name": "Nguyễn Văn Bé", "agent": "Nguyễn Thị Mai"}
    said = text("web.ward.outcome.representative.parent", "vi", words)
    assert said in result
    [link] = await _links(session)
    mai = await _person(session, MAI["personal_id"])
    assert mai is not None
    assert (link.agent_id, link.relation, link.valid_to) == (mai.id, "parent", None)
    assert (link.valid_from, link.created_by) == (today_in_vietnam(), f"person:{CUONG}")
    be = await _person(session, BE["personal_id"])
    assert be is not None
    assert [h.full_name for h in await identity.representatives(session, be.id)] == [
        "Nguyễn Thị Mai"
    ]
    assert await _audited(session, "representative.added") == 1

    # the back button and "confirm" again: said so, nothing recorded twice
    again = await _representative(client, csrf, "confirm")
    assert again.status_code == 303
    result = _shown((await client.get(again.headers["location"])).text)
    assert text("web.ward.outcome.representative.already", "vi", words) in result
    assert len(await _links(session)) == 1
    assert await _audited(session, "representative.added") == 1
    assert await _looked_up(session, BE["personal_id"], read) == 3  # each step that named him

    recent = _recent((await client.get("/ward")).text)
    assert text("web.ward.work.representative", "vi", {"agent": "Nguyễn Thị Mai"}) in recent
    english = await client.get("/ward?lang=en")
    assert text("web.ward.representative.title", "en") in _shown(english.text)


async def test_a_representative_form_comes_back_with_its_words_and_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)

    nobody = await _representative(client, csrf, "check", agent_personal_id="001185099999")
    assert nobody.status_code == 404
    assert "001185099999" in _field_error(nobody.text, "representative-agent_personal_id")
    assert _value(nobody.text, "representative-personal_id") == BE["personal_id"]

    himself = await _representative(client, csrf, "check", agent_personal_id=BE["personal_id"])
    assert himself.status_code == 422
    assert _field_error(himself.text, "representative-agent_personal_id")

    # a parent represents a child until 18: for an adult, a guardian (a court's) is asked for
    adult = await _representative(
        client, csrf, "confirm", personal_id=MAI["personal_id"], agent_personal_id=BE["personal_id"]
    )
    assert adult.status_code == 422
    assert text("web.ward.representative.adult", "vi") in _field_error(
        adult.text, "representative-relation"
    )

    reversed_ = await _representative(client, csrf, "check", valid_to="01/01/2020")
    assert reversed_.status_code == 422
    assert "01/01/2020" in _field_error(reversed_.text, "representative-valid_to")
    assert _value(reversed_.text, "representative-valid_to") == "01/01/2020"

    day = await _representative(client, csrf, "check", valid_from="31/02/2025")
    assert day.status_code == 422
    assert "ngày/tháng/năm" in _field_error(day.text, "representative-valid_from")
    assert await _links(session) == []


async def test_another_wards_officer_is_refused_in_words_and_the_look_up_is_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)  # both living in Hoàn Kiếm
    client.cookies.clear()
    await identity.bootstrap_grant(session, AN, "ward_officer", ward_code=BA_DINH)
    await login(client, AN, "/ward")
    csrf = _csrf((await client.get("/ward")).text)
    read = "representative.person.read"

    # the form's ward changed by hand: refused before anyone is looked up
    forged = await _representative(client, csrf, "check")
    assert forged.status_code == 403
    assert await _looked_up(session, BE["personal_id"], read) == 0

    elsewhere = await _representative(client, csrf, "confirm", ward=BA_DINH)
    assert elsewhere.status_code == 403
    assert text("web.ward.lives_elsewhere", "vi") in _field_error(
        elsewhere.text, "representative-personal_id"
    )
    assert await _links(session) == []
    assert await _looked_up(session, BE["personal_id"], read) == 1  # kept though refused
    assert await _looked_up(session, MAI["personal_id"], read) == 0  # never named


# ------------------------------------------------------------------ residence


async def _unplaced(session: AsyncSession, personal_id: str, ward: str | None = None) -> Person:
    """A citizen on record (signed in to VNeID once) living in ``ward`` (None: nowhere known)."""
    person = Person(
        personal_id=personal_id,
        full_name="Trần Văn Tư",
        birth_date=date(1970, 1, 1),
        sex="male",
        residence_ward_code=ward,
        created_at=utcnow(),
        created_by="test",
    )
    session.add(person)
    await session.flush()
    return person


async def _department(client: httpx.AsyncClient, session: AsyncSession) -> str:
    """An signed in as Hà Nội's health department at Hoàn Kiếm's office; the form token."""
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/ward")
    page = await client.get(f"/ward?ward={HOAN_KIEM}")
    assert page.status_code == 200, _shown(page.text)[:600]
    return _csrf(page.text)


async def test_the_department_records_where_a_citizen_lives(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # a citizen with no residence on record is placed by the department only (D24)
    csrf = await _department(client, session)
    tu = await _unplaced(session, "001070001111")
    read = "residence.person.read"

    asked = await _residence(client, csrf, "check", "001070001111")
    assert asked.status_code == 200, _shown(asked.text)[:900]
    shown = _shown(asked.text)
    assert "Trần Văn Tư" in shown
    assert text("web.ward.residence.none", "vi") in shown
    assert text("web.ward.residence.final", "vi") in shown
    await session.refresh(tu)
    assert tu.residence_ward_code is None
    assert await _looked_up(session, "001070001111", read) == 1

    done = await _residence(client, _csrf(asked.text), "confirm", "001070001111")
    assert done.status_code == 303
    assert "001070001111" not in done.headers["location"]
    words = {"name": "Trần Văn Tư", "ward": "Phường Hoàn Kiếm"}
    result = _shown((await client.get(done.headers["location"])).text)
    assert text("web.ward.outcome.residence.set", "vi", words) in result
    await session.refresh(tu)
    assert tu.residence_ward_code == HOAN_KIEM
    assert await _audited(session, "person.residence_set") == 1

    again = await _residence(client, csrf, "confirm", "001070001111")
    result = _shown((await client.get(again.headers["location"])).text)
    assert text("web.ward.outcome.residence.already", "vi", words) in result
    assert await _audited(session, "person.residence_set") == 1

    recent = _recent((await client.get(f"/ward?ward={HOAN_KIEM}")).text)
    assert "Trần Văn Tư" in recent
    assert text("web.ward.work.residence", "vi") in recent


async def test_a_move_from_a_ward_out_of_reach_is_refused_in_words_and_the_look_up_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    tu = await _unplaced(session, "001070001111", BA_DINH)
    refused = await _residence(client, csrf, "check", "001070001111")
    assert refused.status_code == 403
    said = _field_error(refused.text, "residence-personal_id")
    assert said == text("web.ward.residence.elsewhere", "vi", {"ward": "Phường Ba Đình"})
    assert await _looked_up(session, "001070001111", "residence.person.read") == 1
    await session.refresh(tu)
    assert tu.residence_ward_code == BA_DINH

    unknown = await _residence(client, csrf, "check", "001070002222")
    assert unknown.status_code == 404
    assert "001070002222" in _field_error(unknown.text, "residence-personal_id")


# ------------------------------------------------------------------ insurance cards


async def _cards(session: AsyncSession) -> list[InsuranceCard]:
    mai = await _person(session, MAI["personal_id"])
    assert mai is not None
    return list(
        await session.scalars(select(InsuranceCard).where(InsuranceCard.person_id == mai.id))
    )


async def test_the_officer_adds_an_insurance_card_after_confirming(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    assert (await _enrol(client, csrf, "confirm")).status_code == 303
    read = "card.person.read"

    asked = await _card(client, csrf, "check")
    assert asked.status_code == 200, _shown(asked.text)[:900]
    shown = _shown(asked.text)
    assert "Nguyễn Thị Mai" in shown
    assert CARD in shown
    assert "31/12/2026" in shown
    assert await _cards(session) == []
    assert await _looked_up(session, MAI["personal_id"], read) == 1

    done = await _card(client, _csrf(asked.text), "confirm")
    assert done.status_code == 303
    assert MAI["personal_id"] not in done.headers["location"]
    assert CARD not in done.headers["location"]
    words = {"name": "Nguyễn Thị Mai", "card": CARD}
    result = _shown((await client.get(done.headers["location"])).text)
    assert text("web.ward.outcome.card.added", "vi", words) in result
    [card] = await _cards(session)
    assert (card.card_number, card.valid_from, card.valid_to) == (
        CARD,
        date(2026, 1, 1),
        date(2026, 12, 31),
    )
    assert card.recorded_by == f"person:{CUONG}"

    again = await _card(client, csrf, "confirm")
    result = _shown((await client.get(again.headers["location"])).text)
    assert text("web.ward.outcome.card.already", "vi", words) in result
    assert len(await _cards(session)) == 1
    assert await _audited(session, "card.added") == 1

    recent = _recent((await client.get("/ward")).text)
    assert text("web.ward.work.card", "vi", {"card": CARD}) in recent


async def test_a_card_form_comes_back_with_its_words_and_another_ward_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    assert (await _enrol(client, csrf, "confirm")).status_code == 303

    short = await _card(client, csrf, "check", card_number="DN401012345678")
    assert short.status_code == 422
    assert "ID-0007" in short.text
    assert "DN401012345678" in _field_error(short.text, "card-card_number")
    assert _value(short.text, "card-card_number") == "DN401012345678"
    assert _value(short.text, "card-valid_to") == "31/12/2026"
    reversed_ = await _card(client, csrf, "check", valid_to="31/12/2025")
    assert reversed_.status_code == 422
    assert "31/12/2025" in _field_error(reversed_.text, "card-valid_to")
    assert await _looked_up(session, MAI["personal_id"], "card.person.read") == 0

    client.cookies.clear()
    await identity.bootstrap_grant(session, AN, "ward_officer", ward_code=BA_DINH)
    await login(client, AN, "/ward")
    csrf = _csrf((await client.get("/ward")).text)
    elsewhere = await _card(client, csrf, "confirm", ward=BA_DINH)
    assert elsewhere.status_code == 403
    assert text("web.ward.lives_elsewhere", "vi") in _field_error(
        elsewhere.text, "card-personal_id"
    )
    assert await _cards(session) == []
    assert await _looked_up(session, MAI["personal_id"], "card.person.read") == 1


async def test_the_registry_forms_without_the_session_token_do_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)
    for forged in (
        await _representative(client, "guess", "confirm"),
        await _residence(client, "guess", "confirm", BE["personal_id"]),
        await _card(client, "guess", "confirm"),
    ):
        assert forged.status_code == 403
        assert "AUTH-0005" in forged.text
    assert await _links(session) == []
    assert await _cards(session) == []
    for action in ("representative.person.read", "residence.person.read", "card.person.read"):
        assert await _looked_up(session, MAI["personal_id"], action) == 0


async def test_a_day_no_form_means_is_refused_beside_its_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """A guardian from 01/01/0001 or a card to 31/12/9999 is a typing slip (D252): every link
    and card recorded tells the citizen of its dates."""
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)
    link = await _representative(client, csrf, "check", valid_from="01/01/0001")
    assert link.status_code == 422
    assert "từ 01/01/1900 đến 31/12/2099" in _field_error(link.text, "representative-valid_from")
    card = await _card(client, csrf, "check", valid_to="31/12/9999")
    assert card.status_code == 422
    assert "từ 01/01/1900 đến 31/12/2099" in _field_error(card.text, "card-valid_to")
    assert await _links(session) == []
    assert await session.scalar(select(func.count()).select_from(InsuranceCard)) == 0
