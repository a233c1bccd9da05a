"""The department's pages and the review queue as their readers meet them: who moved a
facility by name (never a personal ID) and why in words, tables that stack on a phone, the
facility of an emergency access by name, and the reader's language (``?lang=en``, then the
cookie) on every one of them, with dates as dd/mm/yyyy and places by name."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DOCTOR, SUPERVISOR, world
from tests.submissions.test_intake import new_system
from tests.web.test_login import AN, _hidden, login
from vnehr import catalogs, facilities, identity
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.web.pages import move_reason

WARD = "00070"


def _shown(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _section(html: str, label: str) -> str:
    start = html.index(f'aria-label="{label}"')
    return html[start : html.index("</table>", start)]


async def _facility(client: httpx.AsyncClient, session: AsyncSession) -> str:
    """A facility the department (An) issued a code to from its page, in ward ``WARD``."""
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/department/facilities")
    csrf = _hidden((await client.get("/department/facilities")).text)["csrf"]
    issued = await client.post(
        "/department/facilities",
        data={
            "csrf": csrf,
            "name": "Phòng khám Đa khoa Hàng Bông",
            "kind": "polyclinic",
            "level": "basic",
            "ownership": "private",
            "province_code": "01",
            "ward_code": WARD,
        },
    )
    assert issued.status_code == 303, _shown(issued.text)[-400:]
    return parse_qs(urlparse(issued.headers["location"]).query)["issued"][0]


async def _move(client: httpx.AsyncClient, code: str, **form: str) -> None:
    csrf = _hidden((await client.get(f"/department/facilities/{code}")).text)["csrf"]
    moved = await client.post(f"/department/facilities/{code}/move", data={"csrf": csrf, **form})
    assert moved.status_code == 303, _shown(moved.text)[-400:]


async def test_the_history_names_who_moved_the_facility_and_says_why_in_words(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(client, session)
    await _move(client, code, to_state="trained", reason="tập huấn 20/11")
    await _move(
        client,
        code,
        to_state="certificate_registered",
        reason="chứng thư ở BHXH",
        override="on",
    )
    # the facility's own system passes its test file: the move is the system's
    client_id, _ = await new_system(session, code, ("submission.write",))
    assert await facilities.test_submission_passed(session, code, f"facility_system:{client_id}")

    page = await client.get(f"/department/facilities/{code}")
    assert AN not in page.text  # the personal ID appears nowhere, not even in the markup
    history = _shown(_section(page.text, "onboarding history"))
    assert history.count("Nguyễn Văn An") == 3  # issued, trained, the override
    assert "person:" not in history
    assert "facility_system:" not in history
    assert client_id not in history
    assert "HIS" in history  # the system, by the name it was registered with
    assert move_reason("issued", "vi") in history
    assert move_reason("test submission passed", "vi") in history
    assert "tập huấn 20/11" in history  # what a person typed stays as typed
    overridden = move_reason("override (certificate): chứng thư ở BHXH", "vi")
    assert "chứng thư ở BHXH" in overridden
    assert overridden in history
    for raw in ("issued", "override (", "(certificate)", "test submission passed"):
        assert raw not in history, raw

    english = _shown(
        _section(
            (await client.get(f"/department/facilities/{code}?lang=en")).text, "onboarding history"
        )
    )
    assert move_reason("issued", "en") in english
    assert move_reason("override (certificate): chứng thư ở BHXH", "en") in english
    assert text("web.department.state.trained", "en") in english
    assert text("web.department.state.trained", "vi") not in english


def test_every_reason_the_hub_writes_has_its_words_in_both_languages() -> None:
    """The reasons the registry writes for its own moves (facilities/service.py), and an
    override's, are said in words; anything else is what a person typed, shown as typed."""
    for reason in ("issued", "existing code registered", "certificate", "test submission passed"):
        for lang in ("vi", "en"):
            said = move_reason(reason, lang)
            assert said != reason, (reason, lang)
            assert "web." not in said, (reason, lang)  # a key with no words
    for fact in ("certificate", "test_submission"):
        for lang in ("vi", "en"):
            said = move_reason(f"override ({fact}): no paper", lang)
            assert said.endswith(": no paper")
            assert f"({fact})" not in said
            assert "override" not in said.casefold()
            assert "web." not in said
    assert move_reason("demo data", "en") == "demo data"
    assert move_reason(None, "vi") == ""


async def test_the_department_tables_stack_on_a_phone_with_their_labels(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(client, session)
    listing = (await client.get("/department/facilities")).text
    page = (await client.get(f"/department/facilities/{code}")).text
    for html, label in (
        (listing, "facilities"),
        (page, "onboarding history"),
    ):
        table = _section(html, label)
        assert 'class="stack"' in table[:200], label
        cells = re.findall(r"<td[^>]*>", table)
        assert cells, label
        assert all("data-label=" in cell for cell in cells), (label, cells)
    # the ward by its name, not its code alone
    ward = await catalogs.lookup(session, "ward", WARD)
    assert ward.title_vi
    assert ward.title_vi in _shown(_section(listing, "facilities"))
    assert ward.title_vi in _shown(page)


async def test_the_review_queue_labels_its_columns_and_names_the_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    made = await client.post(
        f"/api/v1/patients/{patient[0]}/break-glass",
        json={"reason": "unconscious", "text": "brought in unconscious"},
    )
    assert made.status_code in (200, 201), made.text
    await sign_in_as(
        client,
        session,
        settings,
        SUPERVISOR,
        {"role": "facility_admin", "facility_code": consented},
    )
    for lang in ("vi", "en"):
        page = (await client.get(f"/review?lang={lang}")).text
        row = page[page.index('id="emergency-') :]
        row = row[: row.index("</tr>")]
        for key in ("facility", "opened", "expires", "status"):
            assert f'data-label="{text(f"web.review.column.{key}", lang)}"' in row, (lang, key)
        assert "Bệnh viện thử" in _shown(row)
        assert text("web.reason.unconscious", lang) in _shown(row)


async def test_english_holds_on_the_department_pages_the_report_and_the_review(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(client, session)
    listing = await client.get("/department/facilities?lang=en")
    assert listing.cookies.get("vnehr_lang") == "en"
    shown = _shown(listing.text)
    assert text("web.department.title", "en") in shown
    assert text("web.department.state.registered", "en") in shown
    assert text("web.department.state.registered", "vi") not in shown
    assert "Sign out" in shown
    assert "Đăng xuất" not in shown
    assert 'id="lang-switch"' in listing.text  # and the way back to Vietnamese

    # the cookie carries the choice to the other pages
    for address in (f"/department/facilities/{code}", "/review", "/department/report"):
        page = await client.get(address)
        assert page.status_code == 200, address
        assert '<html lang="en">' in page.text, address
        assert "Đăng xuất" not in page.text, address
    review = _shown((await client.get("/review")).text)
    assert text("web.review.title", "en") in review
    assert text("web.review.emergencies", "en") in review

    report = await client.get("/department/report?period=2026H2")
    shown = _shown(report.text)
    assert text("web.report.title", "en", {"period": "2026H2"}) in shown
    # the period as dd/mm/yyyy, the province by name, the wards by name in the filter
    assert f"{date(2026, 7, 1):%d/%m/%Y} – {date(2026, 12, 31):%d/%m/%Y}" in shown
    assert "2026-07-01" not in shown
    assert "tỉnh/thành phố 01" not in shown
    province = await catalogs.lookup(session, "province", "01")
    ward = await catalogs.lookup(session, "ward", WARD)
    assert province.title_vi
    assert province.title_vi in shown
    choices = report.text[report.text.index('name="ward"') :]
    choices = choices[: choices.index("</select>")]
    assert f'<option value="{WARD}"' in choices
    assert ward.title_vi
    assert ward.title_vi in choices
    assert text("web.report.download", "en") in shown
    assert "Tải về" not in shown

    # and back: Vietnamese on every page again
    back = await client.get("/department/report?period=2026H2&lang=vi")
    assert "Đăng xuất" in back.text
    assert text("web.report.title", "vi", {"period": "2026H2"}) in _shown(back.text)
    assert "01/07/2026 – 31/12/2026" in _shown(back.text)


async def test_a_refused_registration_says_what_is_wrong_in_words_and_keeps_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(client, session)  # (signs the department in)
    typed = {
        "name": "P",  # too short
        "kind": "polyclinic",
        "level": "basic",
        "ownership": "private",
        "province_code": "1",  # not two digits
        "ward_code": WARD,
        "address": "12 Hàng Bông",
        "code": "",
    }
    for lang in ("vi", "en"):
        csrf = _hidden((await client.get(f"/department/facilities?lang={lang}")).text)["csrf"]
        refused = await client.post("/department/facilities", data={"csrf": csrf, **typed})
        assert refused.status_code == 422, lang
        shown = _shown(refused.text)
        for raw in ("Input should be", "String should", "province_code", "pattern"):
            assert raw not in shown, (lang, raw)
        name = text(
            "web.problem.too_short", lang, {"field": text("web.department.name", lang), "min": 2}
        )
        province = text("web.problem.format", lang, {"field": text("web.province", lang)})
        assert name in shown, lang
        assert province in shown, lang
        # the registry's page again, with the form as it was sent
        form = refused.text[refused.text.index('method="post" action="/department/facilities"') :]
        form = form[: form.index("</form>")]
        assert re.search(r'name="name"[^>]*value="P"', form), lang
        assert re.search(r'name="province_code"[^>]*value="1"', form), lang
        assert re.search(rf'name="ward_code"[^>]*value="{WARD}"', form), lang
        assert re.search(r'name="address"[^>]*value="12 Hàng Bông"', form), lang
        assert re.search(r'<option value="polyclinic"\s+selected', form), lang
        assert re.search(r'<option value="private"\s+selected', form), lang
        assert 'id="lang-switch"' in refused.text
    # a refusal of the registry itself (a code already taken) shows there too, the form kept
    csrf = _hidden((await client.get("/department/facilities?lang=vi")).text)["csrf"]
    taken = await client.post(
        "/department/facilities",
        data={"csrf": csrf, **typed, "name": "Phòng khám Mới", "province_code": "01", "code": code},
    )
    assert taken.status_code == 409, _shown(taken.text)[-400:]
    assert text("FAC-0002", "vi", {"code": code}) in _shown(taken.text)
    assert re.search(r'name="name"[^>]*value="Phòng khám Mới"', taken.text)
    assert re.search(rf'name="code"[^>]*value="{code}"', taken.text)
