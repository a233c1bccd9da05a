"""A ward officer cannot make himself the guardian of a stranger and read their book: a citizen
who signed in with VNeID has no residence on record, so the officer may not place them in his
ward (the residence form, nor an enrolment under a made-up name), is never recorded as anyone's
representative himself, and records neither an adult's guardian (a court's: the department's)
nor a guardianship begun in childhood for an adult (it ended at 18). Each refusal is said in
words beside its field before anything recorded of the person is shown."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_login import AN, login
from tests.web.test_ward_page import (
    CUONG,
    HOAN_KIEM,
    MAI,
    _csrf,
    _enrol,
    _field_error,
    _officer,
    _person,
    _shown,
)
from tests.web.test_ward_registry_forms import (
    TODAY,
    _looked_up,
    _mai_and_be,
    _representative,
    _residence,
)
from vnehr import identity
from vnehr.kit.i18n import text

AN_NAME, AN_BORN = "Nguyễn Văn An", "14/03/1985"


async def test_an_officer_cannot_place_a_stranger_in_his_ward_and_become_their_guardian(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await login(client, AN)  # An signs in with VNeID: no residence recorded
    client.cookies.clear()
    csrf = await _officer(client, session)

    # the residence form refuses in words, before naming him or telling his birth date
    for step in ("check", "confirm"):
        refused = await _residence(client, csrf, step, AN)
        assert refused.status_code == 403
        said = _field_error(refused.text, "residence-personal_id")
        assert said == text("ID-0118", "vi")
        assert AN_NAME not in _shown(refused.text)
        assert AN_BORN not in _shown(refused.text)
    assert await _looked_up(session, AN, "residence.person.read") == 2  # in his access log

    # nor does the enrolment form place him under a name or birth date not his record's
    made_up = {"personal_id": AN, "full_name": "Nguyễn Văn Ai", "birth_date": AN_BORN}
    for typed in (made_up, {**made_up, "full_name": AN_NAME, "birth_date": "01/01/1985"}):
        enrolled = await _enrol(client, csrf, "confirm", sex="male", **typed)
        assert enrolled.status_code == 422
        assert AN in _field_error(enrolled.text, "enrol-full_name")
    assert AN_BORN not in _shown(enrolled.text)  # (the last typed another day)
    an = await _person(session, AN)
    assert an is not None
    assert an.residence_ward_code is None

    # the officer as the agent: refused beside that field, whoever the person is
    chain = {"personal_id": AN, "agent_personal_id": CUONG, "relation": "guardian"}
    himself = await _representative(client, csrf, "confirm", **chain)
    assert himself.status_code == 403
    assert _field_error(himself.text, "representative-agent_personal_id") == text("ID-0115", "vi")
    assert await identity.representatives(session, an.id) == []
    book = await client.get(f"/api/v1/me/timeline?for={AN}")
    assert book.status_code in (403, 404)


async def test_an_adults_guardian_is_the_departments_and_one_from_childhood_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await login(client, AN)
    client.cookies.clear()
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)  # Mai, born 1990, lives in Hoàn Kiếm
    page = _shown((await client.get("/ward")).text)
    assert text("web.ward.representative.intro", "vi") in page  # which says who does what
    assert "Sở Y tế" in text("web.ward.representative.intro", "vi")
    adult = {"personal_id": MAI["personal_id"], "agent_personal_id": AN, "relation": "guardian"}

    # a guardianship recorded as begun in 2005 would have ended when she came of age in 2008
    childhood = await _representative(client, csrf, "confirm", **adult, valid_from="01/01/2005")
    assert childhood.status_code == 422
    said = _field_error(childhood.text, "representative-valid_from")
    assert "12/05/2008" in said

    # a court's guardian for her, from today: the department records it, not the ward office
    court = await _representative(client, csrf, "check", **adult, valid_from=TODAY)
    assert court.status_code == 403
    assert _field_error(court.text, "representative-relation") == text(
        "web.ward.representative.adult_guardian", "vi"
    )
    mai = await _person(session, MAI["personal_id"])
    assert mai is not None
    assert await identity.representatives(session, mai.id) == []

    # the department of the province records it on the same page
    client.cookies.clear()
    await identity.bootstrap_grant(session, CUONG, "department_admin", province_code="01")
    await login(client, CUONG, "/ward")
    dept_csrf = _csrf((await client.get(f"/ward?ward={HOAN_KIEM}")).text)
    done = await _representative(client, dept_csrf, "confirm", **adult, valid_from=TODAY)
    assert done.status_code == 303, _shown(done.text)[:900]
    assert [h.full_name for h in await identity.representatives(session, mai.id)] == [AN_NAME]
