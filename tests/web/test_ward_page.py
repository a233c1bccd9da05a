"""The ward office's page (/ward): a ward officer (the demo's Lê Văn Cường, Phường Hoàn Kiếm)
opens a citizen's health book at the office and records a newborn's provisional identity, from
forms that ask before what the officer cannot undo, come back as typed when refused, and say
what happened in words; nobody else uses the page."""

from __future__ import annotations

import html
import re
from datetime import date

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_browser import SCREENSHOTS, browser, server  # noqa: F401  (the fixtures)
from tests.web.test_login import AN, login
from tests.web.test_phone_layout import OVERFLOW_JS
from vnehr import audit, demo, identity
from vnehr.identity.models import AccountEvent, HealthAccount, Person, Representative
from vnehr.kit.i18n import text

CUONG = demo.WARD_OFFICER  # Lê Văn Cường
HOAN_KIEM = "00070"
BA_DINH = "00004"
MAI = {  # a citizen who cannot sign in herself: the officer reads her chip ID card
    "personal_id": "001190012345",
    "full_name": "Nguyễn Thị Mai",
    "birth_date": "12/05/1990",
    "sex": "female",
}


def _shown(page: str) -> str:
    """The page's text as read: no tags."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, _shown(page)[-600:]
    return found[1]


def _field_error(page: str, field: str) -> str:
    """The words shown beside a field of a form (``enrol-personal_id``)."""
    found = re.search(rf'id="{field}-error"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None, f"no error beside {field}: {_shown(page)[:900]}"
    return _shown(found[1])


def _value(page: str, field: str) -> str:
    found = re.search(rf'<input[^>]*id="{field}"[^>]*value="([^"]*)"', page)
    assert found is not None, f"no input {field}"
    return html.unescape(found[1])


async def _officer(client: httpx.AsyncClient, session: AsyncSession, ward: str = HOAN_KIEM) -> str:
    """Cường signed in as the ward officer of ``ward``; the page's form token."""
    await identity.bootstrap_grant(session, CUONG, "ward_officer", ward_code=ward)
    await login(client, CUONG, "/ward")
    page = await client.get("/ward")
    assert page.status_code == 200, _shown(page.text)[:600]
    return _csrf(page.text)


async def _enrol(client: httpx.AsyncClient, csrf: str, step: str, **typed: str) -> httpx.Response:
    return await client.post(
        "/ward/enrol", data={"csrf": csrf, "ward": HOAN_KIEM, "step": step, **MAI, **typed}
    )


async def _newborn(client: httpx.AsyncClient, csrf: str, step: str, **typed: str) -> httpx.Response:
    """The newborn form for Mai's unnamed boy, born 02/01/2025 (``typed`` changes a field)."""
    child = {"full_name": "", "birth_date": "02/01/2025", "sex": "male"}
    sent = {"csrf": csrf, "ward": HOAN_KIEM, "step": step, "mother_personal_id": MAI["personal_id"]}
    return await client.post("/ward/newborn", data={**sent, **child, **typed})


async def _person(session: AsyncSession, personal_id: str) -> Person | None:
    return (await session.scalars(select(Person).where(Person.personal_id == personal_id))).first()


async def test_the_ward_officer_enrols_a_citizen_after_confirming(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    page = await client.get("/ward")
    assert "Phường Hoàn Kiếm" in _shown(page.text)
    assert 'action="/ward/enrol"' in page.text
    assert 'action="/ward/newborn"' in page.text
    assert "ngày/tháng/năm (vd. 02/01/2025)" in page.text

    # first the check: what will be done, in words, and nothing done yet
    asked = await _enrol(client, csrf, "check")
    assert asked.status_code == 200
    shown = _shown(asked.text)
    assert "Nguyễn Thị Mai" in shown
    assert "12/05/1990" in shown
    assert text("web.ward.enrol.final", "vi") in shown
    assert await _person(session, MAI["personal_id"]) is None

    done = await _enrol(client, _csrf(asked.text), "confirm")
    assert done.status_code == 303
    assert done.headers["location"].startswith("/ward/result?")
    assert MAI["personal_id"] not in done.headers["location"]  # an address names nobody
    result = await client.get(done.headers["location"])
    assert result.status_code == 200
    shown = _shown(result.text)
    assert text("web.ward.outcome.opened", "vi", {"name": "Nguyễn Thị Mai"}) in shown

    # as the API makes it: the person, living in the ward, with an assisted book of the ward
    person = await _person(session, MAI["personal_id"])
    assert person is not None
    assert (person.full_name, person.birth_date) == ("Nguyễn Thị Mai", date(1990, 5, 12))
    assert (person.sex, person.residence_ward_code) == ("female", HOAN_KIEM)
    account = (
        await session.scalars(select(HealthAccount).where(HealthAccount.person_id == person.id))
    ).one()
    assert (account.status, account.channel, account.assisted_ward_code, account.assisted_by) == (
        "open",
        "assisted",
        HOAN_KIEM,
        f"person:{CUONG}",
    )

    # again: the book was already open, said so, nothing more recorded
    again = await _enrol(client, csrf, "confirm")
    shown = _shown((await client.get(again.headers["location"])).text)
    assert text("web.ward.outcome.already_open", "vi", {"name": "Nguyễn Thị Mai"}) in shown
    events = await session.scalars(
        select(AccountEvent).where(AccountEvent.account_id == account.id)
    )
    assert [e.action for e in events] == ["opened"]

    # what the officer did, newest first, by name
    recent = await client.get("/ward")
    work = _shown(recent.text[recent.text.index('id="recent"') :])
    assert "Nguyễn Thị Mai" in work

    english = await client.get("/ward?lang=en")
    assert text("web.ward.title", "en") in english.text
    assert text("web.ward.enrol.title", "en") in _shown(english.text)


async def test_a_bad_personal_id_comes_back_with_its_words_and_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    short = await _enrol(client, csrf, "check", personal_id="00119001234")
    assert short.status_code == 422
    assert "ID-0001" in short.text
    assert "có 11 ký tự" in _field_error(short.text, "enrol-personal_id")
    assert _value(short.text, "enrol-personal_id") == "00119001234"
    assert _value(short.text, "enrol-full_name") == "Nguyễn Thị Mai"
    assert _value(short.text, "enrol-birth_date") == "12/05/1990"
    assert re.search(r'value="female"[^>]*checked', short.text)

    # the ID says a man: the sex typed does not match it
    male = await _enrol(client, csrf, "confirm", personal_id="001090012345")
    assert male.status_code == 422
    assert "ID-0004" in male.text
    assert _field_error(male.text, "enrol-personal_id")

    # "change the details" on the question brings the form back as typed, nothing done
    edit = await _enrol(client, csrf, "edit", full_name="Nguyễn Thị Mai Anh")
    assert edit.status_code == 200
    assert _value(edit.text, "enrol-full_name") == "Nguyễn Thị Mai Anh"
    assert 'id="refused"' not in edit.text

    # a date that is not one, said beside the date
    day = await _enrol(client, csrf, "check", birth_date="31/02/1990")
    assert day.status_code == 422
    assert "ngày/tháng/năm" in _field_error(day.text, "enrol-birth_date")
    assert _value(day.text, "enrol-birth_date") == "31/02/1990"
    assert await _person(session, MAI["personal_id"]) is None
    assert await _person(session, "001090012345") is None


async def test_a_newborn_gets_a_provisional_record_linked_to_the_mother(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    await _enrol(client, csrf, "confirm")  # the mother, now living in the ward
    future = await _newborn(client, csrf, "check", birth_date="01/01/2099")
    assert future.status_code == 422
    assert "01/01/2099" in _field_error(future.text, "newborn-birth_date")
    asked = await _newborn(client, csrf, "check")
    assert asked.status_code == 200, _shown(asked.text)[:800]
    shown = _shown(asked.text)
    assert "Nguyễn Thị Mai" in shown  # the mother, by name, to be confirmed
    assert text("web.ward.newborn.final", "vi") in shown
    mother = await _person(session, MAI["personal_id"])
    assert mother is not None
    children = select(Person).where(Person.mother_id == mother.id)
    assert list(await session.scalars(children)) == []

    done = await _newborn(client, csrf, "confirm")
    assert done.status_code == 303
    result = _shown((await client.get(done.headers["location"])).text)
    assert "Con của Nguyễn Thị Mai" in result
    child = (await session.scalars(children)).one()
    assert (child.provisional, child.personal_id, child.sex) == (True, None, "male")
    assert child.birth_date == date(2025, 1, 2)
    assert child.residence_ward_code == HOAN_KIEM
    link = (
        await session.scalars(select(Representative).where(Representative.subject_id == child.id))
    ).one()
    assert (link.agent_id, link.relation) == (mother.id, "parent")
    recent = await client.get("/ward")
    work = _shown(recent.text[recent.text.index('id="recent"') :])
    assert "Con của Nguyễn Thị Mai" in work
    assert work.count("Con của Nguyễn Thị Mai") == 1  # once: the mother's link is its line's

    # a mother nobody knows: said beside her ID, as typed
    unknown = await _newborn(client, csrf, "check", mother_personal_id="001185099999")
    assert unknown.status_code == 404
    assert "001185099999" in _field_error(unknown.text, "newborn-mother_personal_id")
    assert _value(unknown.text, "newborn-birth_date") == "02/01/2025"


async def _mother_looked_up(session: AsyncSession) -> int:
    """How many times an office's newborn form is in Mai's access log."""
    mother = await identity.person_id_of(session, MAI["personal_id"])
    assert mother is not None
    reads = await audit.reads_about(session, [mother], not_by=f"person:{MAI['personal_id']}")
    return sum(e.action == "newborn.mother_read" for e in reads)


async def test_whatever_the_newborn_form_tells_of_the_mother_is_in_her_access_log(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    assert (await _enrol(client, csrf, "confirm")).status_code == 303  # Mai, born 12/05/1990
    assert await _mother_looked_up(session) == 0
    early = await _newborn(client, csrf, "check", birth_date="01/01/1980")
    assert early.status_code == 422
    assert "12/05/1990" in _shown(early.text)  # her birth date, told
    assert await _mother_looked_up(session) == 1

    # an office of another ward is told she lives elsewhere: that the ID is someone's
    await identity.bootstrap_grant(session, AN, "ward_officer", ward_code=BA_DINH)
    client.cookies.clear()
    await login(client, AN, "/ward")
    elsewhere = await client.post(
        "/ward/newborn",
        data={"csrf": _csrf((await client.get("/ward")).text), "ward": BA_DINH,
              "step": "check", "mother_personal_id": MAI["personal_id"],
              "birth_date": "02/01/2025", "sex": "male"},
    )  # fmt: skip
    assert elsewhere.status_code == 403
    assert text("web.ward.mother_elsewhere", "vi") in _shown(elsewhere.text)
    assert await _mother_looked_up(session) == 2

    # each step that names her is one line, the confirmation too
    client.cookies.clear()
    csrf = await _officer(client, session)
    assert (await _newborn(client, csrf, "check")).status_code == 200
    assert await _mother_looked_up(session) == 3
    assert (await _newborn(client, csrf, "confirm")).status_code == 303
    assert await _mother_looked_up(session) == 4


async def test_a_citizen_and_a_clinician_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await identity.bootstrap_grant(session, demo.CLINICIAN, "clinician", facility_code="01001")
    for who in (AN, demo.CLINICIAN):
        client.cookies.clear()
        await login(client, who, "/ward")
        page = await client.get("/ward")
        assert page.status_code == 403, who
        assert text("web.ward.not_an_officer", "vi") in _shown(page.text)
        portal = await client.get("/portal")
        sent = await client.post(
            "/ward/enrol",
            data={"csrf": _csrf(portal.text), "ward": HOAN_KIEM, "step": "confirm", **MAI},
        )
        assert sent.status_code == 403, who
    assert await _person(session, MAI["personal_id"]) is None


async def test_an_officer_of_another_ward_cannot_act_for_this_one(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session, ward=BA_DINH)
    assert "Phường Ba Đình" in _shown((await client.get("/ward")).text)
    other = await client.get(f"/ward?ward={HOAN_KIEM}")
    assert other.status_code == 403
    sent = await _enrol(client, csrf, "confirm")  # the form's ward changed by hand
    assert sent.status_code == 403
    assert "AUTH-0002" in sent.text
    assert await _person(session, MAI["personal_id"]) is None


async def test_a_form_without_the_session_token_does_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _officer(client, session)
    forged = await _enrol(client, "guess", "confirm")
    assert forged.status_code == 403
    assert "AUTH-0005" in forged.text
    assert await _person(session, MAI["personal_id"]) is None


async def test_the_portal_leads_the_officer_to_the_page_and_a_wrong_address_is_a_page(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _officer(client, session)
    portal = await client.get("/portal")
    assert f'href="/ward?ward={HOAN_KIEM}"' in portal.text
    assert text("web.ward.link", "vi") in _shown(portal.text)
    lost = await client.get("/ward/nothing-here")
    assert lost.status_code == 404
    assert lost.headers["content-type"].startswith("text/html")
    # a result address made for nobody, or tampered with: said in words, nothing shown
    stale = await client.get("/ward/result?r=bm90aGluZw")
    assert text("web.ward.result.expired", "vi") in _shown(stale.text)


@pytest.mark.e2e
async def test_the_ward_page_on_a_phone(
    server: str,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    """Cường (demo) on a phone: the page, a refused form, the question and the result all fit
    390 px in both languages, and the forms work without scripts."""
    context = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    page = await context.new_page()

    async def fits(where: str) -> None:
        wide = await page.evaluate(OVERFLOW_JS)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert (width, wide[:5]) == (390, []), where

    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Lê Văn Cường", exact=True).click()
    await expect(page).to_have_url(server + "/portal")
    await page.get_by_role("link", name=text("web.ward.link", "vi")).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Phường Hoàn Kiếm")
    await fits("/ward")
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "ward-office-vi.png", full_page=True)

    enrol = page.locator('form[action="/ward/enrol"]')
    await enrol.get_by_label(text("web.ward.personal_id", "vi")).fill("00119001234")
    await enrol.get_by_label(text("web.ward.full_name", "vi")).fill(MAI["full_name"])
    await enrol.get_by_label(text("web.ward.birth_date", "vi")).fill(MAI["birth_date"])
    await enrol.get_by_label(text("web.ward.sex.female", "vi")).check()
    await enrol.get_by_role("button", name=text("web.ward.check", "vi")).click()
    await expect(page.locator("#enrol-personal_id-error")).to_contain_text("11 ký tự")
    await fits("refused")
    await enrol.get_by_label(text("web.ward.personal_id", "vi")).fill(MAI["personal_id"])
    await enrol.get_by_role("button", name=text("web.ward.check", "vi")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text("web.ward.confirm.enrol", "vi")
    )
    await fits("confirm")
    await page.get_by_role("button", name=text("web.ward.confirm_yes.enrol", "vi")).click()
    await expect(page.get_by_role("status")).to_have_text(
        text("web.ward.outcome.opened", "vi", {"name": MAI["full_name"]})
    )
    await fits("result")
    await page.locator("#lang-switch").click()
    await expect(page.get_by_role("status")).to_have_text(
        text("web.ward.outcome.opened", "en", {"name": MAI["full_name"]})
    )
    await page.goto(server + "/ward?lang=en")
    await expect(page.get_by_role("table", name="recent work")).to_contain_text(MAI["full_name"])
    await fits("/ward (en)")

    # a registry form on the phone (Mai lives in the ward now): refused, asked, done
    card = page.locator('form[action="/ward/card"]')
    await card.get_by_label(text("web.ward.personal_id", "en")).fill(MAI["personal_id"])
    await card.get_by_label(text("web.ward.card.number", "en")).fill("DN40101234")
    await card.get_by_role("button", name=text("web.ward.check", "en")).click()
    await expect(page.locator("#card-card_number-error")).to_contain_text("DN40101234")
    await fits("card refused")
    await card.get_by_label(text("web.ward.card.number", "en")).fill("DN4010123456789")
    await card.get_by_role("button", name=text("web.ward.check", "en")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        text("web.ward.confirm.card", "en")
    )
    await fits("card question")
    await page.get_by_role("button", name=text("web.ward.confirm_yes.card", "en")).click()
    words = {"name": MAI["full_name"], "card": "DN4010123456789"}
    await expect(page.get_by_role("status")).to_have_text(
        text("web.ward.outcome.card.added", "en", words)
    )
    await fits("card result")
    await context.close()


async def test_the_department_acts_for_a_ward_of_its_province(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """As the API allows: the department of the ward's province, asked which ward first."""
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/ward")
    ask = await client.get("/ward")
    assert ask.status_code == 200
    assert text("web.ward.choose_intro", "vi") in _shown(ask.text)
    page = await client.get(f"/ward?ward={HOAN_KIEM}")
    assert page.status_code == 200
    sent = await client.post(
        "/ward/enrol",
        data={"csrf": _csrf(page.text), "ward": HOAN_KIEM, "step": "confirm", **MAI},
    )
    assert sent.status_code == 303
    person = await _person(session, MAI["personal_id"])
    assert person is not None
    assert person.residence_ward_code == HOAN_KIEM


async def test_a_long_vietnamese_name_still_reaches_its_result(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # the result's address carries the outcome sealed: a mother and child named at length in
    # Vietnamese used to push it past its cap, a 422 after the record was made
    csrf = await _officer(client, session)
    long = " ".join(["Ưỡngữễ Độằờợ Ặẫổỡ"] * 12)[:200].strip()
    mother = await _enrol(client, csrf, "confirm", full_name=long)
    assert mother.status_code == 303
    assert (await client.get(mother.headers["location"])).status_code == 200
    done = await _newborn(client, csrf, "confirm", full_name=long, sex="female")
    assert done.status_code == 303
    result = await client.get(done.headers["location"])
    assert result.status_code == 200
    assert long in _shown(result.text)


async def test_a_newborn_confirmed_twice_is_recorded_once_and_twins_when_the_officer_says_so(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # the back button and a second tap on "confirm" used to make a second provisional record
    # of the same child; twins may share the provisional name, so the officer is asked (D226)
    csrf = await _officer(client, session)
    await _enrol(client, csrf, "confirm")
    mother = await _person(session, MAI["personal_id"])
    assert mother is not None
    children = select(Person).where(Person.mother_id == mother.id)
    first = await _newborn(client, csrf, "confirm")
    assert first.status_code == 303
    assert len(list(await session.scalars(children))) == 1

    again = await _newborn(client, csrf, "confirm")  # the same form, sent again
    assert again.status_code == 200
    shown = _shown(again.text)
    assert "Chưa ghi thêm" in shown
    assert "Con của Nguyễn Thị Mai" in shown  # the child on record, by name
    assert len(list(await session.scalars(children))) == 1
    asked = await _newborn(client, csrf, "check")  # the question says so before confirming
    assert "đã có 1 trẻ sinh cùng ngày được ghi" in _shown(asked.text)
    assert 'name="another"' in asked.text

    twin = await _newborn(client, csrf, "confirm", another="1")
    assert twin.status_code == 303
    assert len(list(await session.scalars(children))) == 2


async def test_the_newborn_form_records_children_of_the_office_s_own_ward_and_plausible_dates(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """An officer of two wards (or the department) acting at one office records the children
    of mothers of that ward; a birth date the mother could not have given, or a day no form
    means (01/01/0001), is refused beside its field (D252)."""
    await identity.bootstrap_grant(session, CUONG, "ward_officer", ward_code="00004")  # Ba Đình
    csrf = await _officer(client, session)
    await _enrol(client, csrf, "confirm")  # Mai lives in Hoàn Kiếm
    elsewhere = await _newborn(client, csrf, "check", ward="00004")
    assert elsewhere.status_code == 403, _shown(elsewhere.text)[:600]
    assert "không cư trú tại xã/phường này" in _field_error(
        elsewhere.text, "newborn-mother_personal_id"
    )
    too_young = await _newborn(client, csrf, "check", birth_date="12/05/1995")  # Mai: 1990
    assert too_young.status_code == 422
    said = _field_error(too_young.text, "newborn-birth_date")
    assert "chưa đủ 10 tuổi" in said
    assert "12/05/1995" in said
    ancient = await _newborn(client, csrf, "check", birth_date="01/01/0001")
    assert ancient.status_code == 422
    assert "từ 01/01/1900 đến 31/12/2099" in _field_error(ancient.text, "newborn-birth_date")
    mother = await _person(session, MAI["personal_id"])
    assert mother is not None
    children = select(Person).where(Person.mother_id == mother.id)
    assert list(await session.scalars(children)) == []
    assert (await _newborn(client, csrf, "check")).status_code == 200  # her ward, a real date


async def test_another_province_s_department_is_told_the_ward_is_not_theirs(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Not "your account has no ward officer role": the department of Hồ Chí Minh City opening
    Hoàn Kiếm's office reads that the ward is neither theirs nor of their province."""
    await identity.bootstrap_grant(session, CUONG, "department_admin", province_code="79")
    await login(client, CUONG, "/ward")
    page = await client.get("/ward", params={"ward": HOAN_KIEM})
    assert page.status_code == 403
    said = _shown(page.text)
    assert "không thuộc Sở Y tế của tỉnh, thành phố có xã/phường này" in said
    assert "Phường Hoàn Kiếm" in said
