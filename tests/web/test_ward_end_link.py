"""The ward office ends a representation link (/ward, "Chấm dứt đại diện"): the officer types
the represented person's personal ID, the page lists that person's links (a look-up in their
access log), the officer picks one in force or not yet begun, the first day its agent no longer
acts and why; a question names the person, the agent, the relation and the end; once confirmed
the agent no longer reads the person's book, the result names nobody in its address, a second
confirmation ends nothing twice, and the officer's recent work says it. Every refusal comes
back on the page in words, as typed."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_service import person
from tests.web.test_login import AN, login
from tests.web.test_ward_page import (
    BA_DINH,
    CUONG,
    HOAN_KIEM,
    MAI,
    _csrf,
    _field_error,
    _officer,
    _shown,
    _value,
)
from tests.web.test_ward_registry_forms import (
    BE,
    TODAY,
    _audited,
    _links,
    _looked_up,
    _mai_and_be,
    _recent,
    _representative,
)
from vnehr import audit, identity
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.i18n import text

READ = "representatives.read"
BINH = "079162003581"  # Trần Thị Bình, here Hà Nội's health department
WHY = "Giấy khai sinh ghi sai cha/mẹ; đã cải chính theo quyết định số 12/QĐ-UBND"
YESTERDAY = (today_in_vietnam() - timedelta(days=1)).strftime("%d/%m/%Y")
TOMORROW = (today_in_vietnam() + timedelta(days=1)).strftime("%d/%m/%Y")


async def _end(
    client: httpx.AsyncClient,
    csrf: str,
    step: str,
    ward: str = HOAN_KIEM,
    lang: str = "",
    **typed: str,
) -> httpx.Response:
    """The end form for Bé's links (``typed``: the link, the day, the reason, or a change)."""
    sent = {"csrf": csrf, "ward": ward, "step": step, "personal_id": BE["personal_id"]}
    where = f"/ward/end_link?lang={lang}" if lang else "/ward/end_link"
    return await client.post(where, data={**sent, **typed})


async def _mai_represents_be(client: httpx.AsyncClient, session: AsyncSession, csrf: str) -> str:
    """Mai and her son on record in Hoàn Kiếm, Mai recorded at the office as his parent from
    his birth: the link's id, as the form sends it."""
    await _mai_and_be(client, csrf)
    born = await _representative(client, csrf, "confirm", valid_from=BE["birth_date"])
    assert born.status_code == 303, _shown(born.text)[:900]
    [link] = await _links(session)
    return str(link.id)


def _pick(link: str, **changes: str) -> dict[str, str]:
    return {"link": link, "ends_on": TODAY, "reason": WHY, **changes}


def _alert(page: str) -> str:
    found = re.search(r'<div class="error" role="alert" id="refused">(.*?)</div>', page, re.S)
    assert found is not None, _shown(page)[:900]
    return _shown(found[1])


async def _mai_acts_for_be(session: AsyncSession) -> bool:
    return await identity.may_act_for(session, person(MAI["personal_id"]), BE["personal_id"])


async def test_the_officer_ends_a_parents_link_after_confirming(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    link = await _mai_represents_be(client, session, csrf)
    page = await client.get("/ward")
    assert 'action="/ward/end_link"' in page.text
    assert text("web.ward.end_link.title", "vi") in _shown(page.text)
    assert await _mai_acts_for_be(session)

    # the check lists Bé's links, with what each is today; the look-up is in his access log
    listed = await _end(client, csrf, "check")
    assert listed.status_code == 200, _shown(listed.text)[:900]
    shown = _shown(listed.text)
    assert "Nguyễn Văn Bé" in shown
    assert "Nguyễn Thị Mai" in shown
    assert text("web.ward.relation.parent", "vi") in shown
    assert text("web.ward.link_state.in_force", "vi") in shown
    assert f'name="link" value="{link}"' in listed.text
    assert _value(listed.text, "end_link-ends_on") == TODAY  # today unless changed
    assert await _looked_up(session, BE["personal_id"], READ) == 1
    assert await _mai_acts_for_be(session)

    # the question names the person, the agent, the relation and the end; nothing done yet
    asked = await _end(client, _csrf(listed.text), "pick", **_pick(link))
    assert asked.status_code == 200, _shown(asked.text)[:900]
    shown = _shown(asked.text)
    for said in ("Nguyễn Văn Bé", "Nguyễn Thị Mai", text("web.ward.relation.parent", "vi")):
        assert said in shown
    assert TODAY in shown
    assert WHY in shown
    assert text("web.ward.end_link.final", "vi") in shown
    assert await _mai_acts_for_be(session)
    assert await _audited(session, "representative.ended") == 0

    done = await _end(client, _csrf(asked.text), "confirm", **_pick(link))
    assert done.status_code == 303, _shown(done.text)[:900]
    where = done.headers["location"]
    assert where.startswith("/ward/result?")
    assert BE["personal_id"] not in where
    assert MAI["personal_id"] not in where
    result = _shown((await client.get(where)).text)
    words = {"name": "Nguyễn Văn Bé", "agent": "Nguyễn Thị Mai", "ends_on": TODAY}
    assert text("web.ward.outcome.end_link.ended", "vi", words) in result
    assert WHY in result

    # Mai reads her son's book no more, from today
    assert not await _mai_acts_for_be(session)
    [row] = await _links(session)
    assert row.valid_to == today_in_vietnam() - timedelta(days=1)
    assert (row.ended_by, row.end_reason) == (f"person:{CUONG}", WHY)
    assert await _audited(session, "representative.ended") == 1

    # the back button and "confirm" again: said so, nothing ended twice
    again = await _end(client, csrf, "confirm", **_pick(link))
    assert again.status_code == 303
    result = _shown((await client.get(again.headers["location"])).text)
    assert text("web.ward.outcome.end_link.already", "vi", words) in result
    assert await _audited(session, "representative.ended") == 1
    assert await _looked_up(session, BE["personal_id"], READ) == 4  # each step that named him

    # the list now says the link has ended, and offers nothing to end
    listed = await _end(client, csrf, "check")
    assert text("web.ward.link_state.ended", "vi") in _shown(listed.text)
    assert 'name="link"' not in listed.text
    assert text("web.ward.end_link.none_to_end", "vi") in _shown(listed.text)

    # what the officer did lately, in words, both languages
    recent = _recent((await client.get("/ward")).text)
    assert text("web.ward.work.ended", "vi", {"agent": "Nguyễn Thị Mai", "ends_on": TODAY}) in (
        recent
    )
    assert "Nguyễn Văn Bé" in recent
    english = _recent((await client.get("/ward?lang=en")).text)
    assert text("web.ward.work.ended", "en", {"agent": "Nguyễn Thị Mai", "ends_on": TODAY}) in (
        english
    )


async def test_an_end_refused_comes_back_in_words_with_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    link = await _mai_represents_be(client, session, csrf)

    # a day before today: what Mai read until now stays lawful
    past = await _end(client, csrf, "pick", **_pick(link, ends_on=YESTERDAY))
    assert past.status_code == 422
    said = _field_error(past.text, "end_link-ends_on")
    assert YESTERDAY in said
    assert TODAY in said
    assert "ID-0121" in past.text
    assert _value(past.text, "end_link-ends_on") == YESTERDAY
    assert _value(past.text, "end_link-reason") == WHY  # the reason typed, kept
    assert f'name="link" value="{link}" checked' in past.text

    # no reason: asked for, beside the field, in each language
    blank = await _end(client, csrf, "pick", **_pick(link, reason="   "))
    assert blank.status_code == 422
    assert _field_error(blank.text, "end_link-reason") == _shown(
        text("ID-0123", "vi", {"length": 0, "max_length": 500})
    )
    assert _value(blank.text, "end_link-ends_on") == TODAY

    # a day that is no day, and no link picked: the page's own words
    no_day = await _end(client, csrf, "pick", **_pick(link, ends_on="31/02/2026"))
    assert no_day.status_code == 422
    assert "ngày/tháng/năm" in _field_error(no_day.text, "end_link-ends_on")
    unpicked = await _end(client, csrf, "pick", **_pick(""))
    assert unpicked.status_code == 422
    assert _field_error(unpicked.text, "end_link-link")

    # a link of someone else's, sent by hand: as unknown
    forged = await _end(client, csrf, "pick", **_pick(str(int(link) + 1000)))
    assert forged.status_code == 404
    assert "ID-0120" in forged.text
    assert _field_error(forged.text, "end_link-link")
    assert await _mai_acts_for_be(session)
    assert await _audited(session, "representative.ended") == 0

    # ended from tomorrow, then asked to end from a later day: it ends before that already
    assert (await _end(client, csrf, "confirm", **_pick(link, ends_on=TOMORROW))).status_code == 303
    assert await _mai_acts_for_be(session)  # until tonight
    later = (today_in_vietnam() + timedelta(days=5)).strftime("%d/%m/%Y")
    ended = await _end(client, csrf, "confirm", **_pick(link, ends_on=later))
    assert ended.status_code == 409
    assert "ID-0122" in ended.text
    assert TODAY in _field_error(ended.text, "end_link-link")  # its last day in force
    assert _value(ended.text, "end_link-ends_on") == later
    assert await _audited(session, "representative.ended") == 1

    # an ID that is no ID, and one not on record: back on the office's page, as typed
    short = await _end(client, csrf, "check", personal_id="00121500")
    assert short.status_code == 422
    assert _field_error(short.text, "end_link-personal_id")
    assert _value(short.text, "end_link-personal_id") == "00121500"
    nobody = await _end(client, csrf, "check", personal_id="001215009999")
    assert nobody.status_code == 404
    assert "001215009999" in _field_error(nobody.text, "end_link-personal_id")
    # Mai is represented by nobody: said so, nothing offered
    none = await _end(client, csrf, "check", personal_id=MAI["personal_id"])
    assert none.status_code == 200
    assert text("web.ward.end_link.no_links", "vi") in _shown(none.text)
    assert 'name="link"' not in none.text

    # in the officer's language
    english = await _end(client, csrf, "pick", lang="en", **_pick(link, reason=""))
    assert english.status_code == 422
    assert "Give the reason" in _field_error(english.text, "end_link-reason")
    assert "Give the reason" in _alert(english.text)


async def test_another_wards_officer_is_refused_at_the_check(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    link = await _mai_represents_be(client, session, csrf)  # both living in Hoàn Kiếm
    client.cookies.clear()
    await identity.bootstrap_grant(session, AN, "ward_officer", ward_code=BA_DINH)
    await login(client, AN, "/ward")
    csrf = _csrf((await client.get("/ward")).text)

    # the form's ward changed by hand: refused before anyone is looked up
    forged = await _end(client, csrf, "check")
    assert forged.status_code == 403
    assert "Nguyễn Thị Mai" not in _shown(forged.text)

    elsewhere = await _end(client, csrf, "check", ward=BA_DINH)
    assert elsewhere.status_code == 403
    assert _field_error(elsewhere.text, "end_link-personal_id") == text(
        "web.ward.lives_elsewhere", "vi"
    )
    assert _value(elsewhere.text, "end_link-personal_id") == BE["personal_id"]
    assert "Nguyễn Thị Mai" not in _shown(elsewhere.text)
    # "lives elsewhere" told that Bé is on record: the look-up stays in his access log (D228)
    reads_by_an = (audit.AuditEvent.action == "representatives.read") & (
        audit.AuditEvent.actor == f"person:{AN}"
    )
    assert await session.scalar(select(func.count()).where(reads_by_an)) == 1
    for step in ("pick", "confirm"):
        sent = await _end(client, csrf, step, ward=BA_DINH, **_pick(link))
        assert sent.status_code == 403
    assert await _mai_acts_for_be(session)
    assert await _audited(session, "representative.ended") == 0


async def test_an_adults_guardian_is_ended_by_the_department_not_the_ward_office(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await login(client, AN)  # An, on record from his VNeID sign-in
    client.cookies.clear()
    csrf = await _officer(client, session)
    await _mai_and_be(client, csrf)  # Mai, born 1990, lives in Hoàn Kiếm
    # Hà Nội's health department records a court's guardian for her, on the same page
    client.cookies.clear()
    await identity.bootstrap_grant(session, BINH, "department_admin", province_code="01")
    await login(client, BINH, "/ward")
    dept_csrf = _csrf((await client.get(f"/ward?ward={HOAN_KIEM}")).text)
    court = {
        "personal_id": MAI["personal_id"],
        "agent_personal_id": AN,
        "relation": "guardian",
        "valid_from": "01/06/2020",
    }
    assert (await _representative(client, dept_csrf, "confirm", **court)).status_code == 303
    mai = await identity.person_id_of(session, MAI["personal_id"])
    assert mai is not None
    [link] = await identity.representation_links(session, mai)
    sent = {"personal_id": MAI["personal_id"], **_pick(str(link.id))}

    # the ward office lists it, but ending it is the department's, said beside the choice
    client.cookies.clear()
    await login(client, CUONG, "/ward")
    csrf = _csrf((await client.get("/ward")).text)
    listed = await _end(client, csrf, "check", personal_id=MAI["personal_id"])
    assert "Nguyễn Văn An" in _shown(listed.text)
    assert text("web.ward.relation.guardian", "vi") in _shown(listed.text)
    for step in ("pick", "confirm"):
        refused = await _end(client, csrf, step, **sent)
        assert refused.status_code == 403
        assert _field_error(refused.text, "end_link-link") == text(
            "web.ward.end_link.adult_guardian", "vi"
        )
        assert "Sở Y tế" in _alert(refused.text)
        assert _value(refused.text, "end_link-reason") == WHY
    assert [x.state for x in await identity.representation_links(session, mai)] == ["in_force"]

    # the department ends it
    client.cookies.clear()
    await login(client, BINH, "/ward")
    dept_csrf = _csrf((await client.get(f"/ward?ward={HOAN_KIEM}")).text)
    done = await _end(client, dept_csrf, "confirm", **sent)
    assert done.status_code == 303, _shown(done.text)[:900]
    assert [x.state for x in await identity.representation_links(session, mai)] == ["ended"]
