"""The citizen downloads their whole health book: a PDF to print or show a doctor (the holder,
the summary, every visit newest first) and the record as a FHIR R4 Bundle to move to another
app; a parent downloads a child's, under the same rules as reading it (D132, audited)."""

from __future__ import annotations

import html
import io
import re
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.exchange.test_push_privacy import represent
from tests.fhir.test_api import check_model
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import STRANGER, visit_of, who
from tests.healthbook.test_confided import _young_person_with_two_visits
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from tests.web.test_browser import browser, server  # noqa: F401  (the fixtures)
from tests.web.test_phone_layout import OVERFLOW_JS
from vnehr import identity
from vnehr.fhir.validate import validate
from vnehr.kit.clock import VIETNAM, today_in_vietnam, utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

PDF = "/api/v1/me/book.pdf"
JSON = "/api/v1/me/book.json"
FHIR = "/fhir/R4"


def _text(response: httpx.Response) -> str:
    """The PDF's text with every run of white space one space (a table cell wraps)."""
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/pdf"
    pages = PdfReader(io.BytesIO(response.content)).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


def _words(value: str) -> str:
    return " ".join(value.split())


def _day(moment: str) -> str:
    """A moment of the API as the PDF prints its day (Vietnam time)."""
    return (
        datetime.fromisoformat(moment.replace("Z", "+00:00"))
        .astimezone(VIETNAM)
        .strftime("%d/%m/%Y")
    )


def _attachment(response: httpx.Response, suffix: str) -> None:
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;"), disposition
    assert f"{today_in_vietnam().isoformat()}{suffix}" in disposition, disposition
    assert response.headers["cache-control"] == "private, no-store"


async def _an_with_an_allergy(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[tuple[str, str, str, str], list[dict[str, Any]]]:
    """An adult with three visits at one facility and an allergy it sent through FHIR, signed
    in: the person and their timeline."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    first = visit_of(code, 11, now - timedelta(days=365), care_type="01", age_group=3)
    visits = [
        first,
        visit_of(code, 12, now - timedelta(days=60), first, care_type="07", age_group=3),
        visit_of(code, 13, now - timedelta(days=30), first, care_type="01", age_group=3),
    ]
    answer = await send(client, headers, synth.envelope(visits, code))
    assert answer.status_code == 201, answer.text
    person = who(first)
    await sign_in_as(client, session, settings, person)
    person_id = await identity.person_id_of(session, person[0])
    allergy = {
        "resourceType": "AllergyIntolerance",
        "code": {"text": "Penicillin"},
        "criticality": "high",
        "patient": {"reference": f"Patient/{person_id}"},
    }
    cookies = dict(client.cookies)
    client.cookies.clear()
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=headers)
    assert written.status_code == 201, written.text
    client.cookies.update(cookies)
    items = (await client.get("/api/v1/me/timeline")).json()["items"]
    assert len(items) == 3
    return person, items


async def test_a_citizen_downloads_their_book_as_a_pdf(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person, items = await _an_with_an_allergy(client, session, settings)
    response = await client.get(PDF)
    text = _text(response)
    _attachment(response, ".pdf")
    assert "SỔ SỨC KHỎE ĐIỆN TỬ" in text
    assert person[1] in text
    born = date.fromisoformat(person[2]).strftime("%d/%m/%Y")
    assert born in text
    assert "Penicillin" in text
    assert "Dị ứng" in text
    # every visit, newest first, its diagnosis and care type in words, its facility named
    dates = [_day(i["ended_at"]) for i in items]
    at = [text.index(d) for d in dates]
    assert at == sorted(at), dates
    for item in items:
        diagnosis = item["main_diagnosis"]
        assert diagnosis["vi"], diagnosis
        assert _words(diagnosis["vi"]) in text
        assert _words(item["care_type"]["vi"]) in text
    assert "Bệnh viện thử" in text
    assert "In lúc" in text
    assert "lượt khám gần nhất" not in text  # every visit is in it: none left to the portal


async def test_a_book_with_more_visits_than_the_pdf_holds_says_the_rest_is_on_the_portal(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vnehr.healthbook import book

    _, items = await _an_with_an_allergy(client, session, settings)
    monkeypatch.setattr(book, "BOOK_VISITS", 2)
    monkeypatch.setattr(book, "PAGE", 1)  # paged through the timeline, a visit at a time
    text = _text(await client.get(PDF))
    for item in items[:2]:
        assert _words(item["main_diagnosis"]["vi"]) in text
    oldest = _day(items[2]["ended_at"])
    assert oldest not in text
    assert "2 lượt khám gần nhất" in text
    assert "Sổ sức khỏe điện tử trên VNeID" in text


async def test_a_parent_downloads_the_childs_book_and_the_child_reads_it_in_the_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    child_visit = visit_of(code, 21, datetime(2026, 10, 1, 9, 0), age_group=0)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([child_visit], code))).status_code == 201
    child = who(child_visit)
    await represent(session, AN, child[0], "parent", date(2020, 1, 1))
    await sign_in_as(client, session, settings, child)
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]

    as_person(client, settings, AN[0])
    text = _text(await client.get(PDF, params={"for": child[0]}))
    assert child[1] in text
    assert AN[1] not in text
    assert _words(item["main_diagnosis"]["vi"]) in text
    bundle = await client.get(JSON, params={"for": child[0]})
    assert bundle.status_code == 200, bundle.text
    assert {e["resource"]["id"] for e in bundle.json()["entry"]
            if e["resource"]["resourceType"] == "Encounter"} == {str(item["id"])}  # fmt: skip

    await sign_in_as(client, session, settings, child)
    log = (await client.get("/api/v1/me/access-log")).json()
    downloads = [e for e in log if e["action"] == "book.exported"]
    assert len(downloads) == 2, log
    assert all(e["who"]["name"] == AN[1] and e["relation"] == "parent" for e in downloads)
    page = await client.get("/portal/book/access-log")
    assert "Tải sổ sức khỏe" in page.text
    # the parent's own download is nobody else's read: no row
    as_person(client, settings, AN[0])
    assert (await client.get(PDF)).status_code == 200
    mine = (await client.get("/api/v1/me/access-log")).json()
    assert [e for e in mine if e["person_name"] == AN[1]] == []


async def test_a_sixteen_year_olds_sensitive_visit_is_in_their_download_not_the_parents(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, _, plain_id, secret_id = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 17)
    as_person(client, settings, young[0])
    items = {i["id"]: i for i in (await client.get("/api/v1/me/timeline")).json()["items"]}
    # (the demo's titles have none for F32.2: the Vietnamese copy shows the code alone)
    secret = items[secret_id]["main_diagnosis"]["code"]
    plain = _words(items[plain_id]["main_diagnosis"]["vi"])

    own = _text(await client.get(PDF))
    assert secret in own
    assert "F32" in own
    assert "Sertraline" in own
    assert plain in own
    own_bundle = (await client.get(JSON)).json()
    assert f"Encounter/{secret_id}" in str(own_bundle)

    as_person(client, settings, AN[0])
    parent = _text(await client.get(PDF, params={"for": young[0]}))
    assert young[1] in parent
    assert plain in parent
    assert secret not in parent
    assert "F32" not in parent
    assert "Sertraline" not in parent
    bundle = await client.get(JSON, params={"for": young[0]})
    assert bundle.status_code == 200, bundle.text
    assert "F32" not in bundle.text
    assert "Sertraline" not in bundle.text
    assert f"Encounter/{secret_id}" not in bundle.text
    assert f"Encounter/{plain_id}" in bundle.text


async def test_nobody_downloads_the_book_of_someone_they_do_not_act_for(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person, _ = await _an_with_an_allergy(client, session, settings)
    await sign_in_as(client, session, settings, STRANGER)
    error(await client.get(PDF, params={"for": person[0]}), 403, "HB-0002")
    error(await client.get(JSON, params={"for": person[0]}), 403, "HB-0002")
    error(await client.get(PDF, params={"for": "12345"}), 422, "KIT-0422")
    # their own book is theirs alone: empty, and says so
    text = _text(await client.get(PDF))
    assert STRANGER[1] in text
    assert person[1] not in text
    assert "Penicillin" not in text
    assert "Chưa có lượt khám" in text
    own = (await client.get(JSON)).json()
    assert [e["resource"]["resourceType"] for e in own["entry"]].count("Encounter") == 0
    client.cookies.clear()
    error(await client.get(PDF), 401, "AUTH-0001")
    error(await client.get(JSON), 401, "AUTH-0001")
    await sign_in_as(client, session, settings, STRANGER, level=1)
    error(await client.get(PDF), 403, "ID-0101")
    error(await client.get(JSON), 403, "ID-0101")


async def test_the_data_file_is_a_valid_fhir_bundle_of_the_whole_record(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person, items = await _an_with_an_allergy(client, session, settings)
    response = await client.get(JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    _attachment(response, ".json")
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert validate(bundle) == []
    check_model(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    for resource in resources:
        check_model(resource)
    assert resources[0]["resourceType"] == "Patient"
    assert resources[0]["name"][0]["text"] == person[1]
    encounters = {r["id"] for r in resources if r["resourceType"] == "Encounter"}
    assert encounters == {str(i["id"]) for i in items}
    types = {r["resourceType"] for r in resources}
    assert types >= {"Condition", "MedicationRequest", "AllergyIntolerance", "Organization"}
    assert "link" not in bundle  # the whole record in one file, not a page of it
    everything = (
        await client.get(f"{FHIR}/Patient/{resources[0]['id']}/$everything", params={"_count": 500})
    ).json()
    assert {e["fullUrl"] for e in everything["entry"]} == {e["fullUrl"] for e in bundle["entry"]}


async def test_the_book_page_offers_both_downloads_in_the_readers_language(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    child_visit = visit_of(code, 22, datetime(2026, 10, 2, 9, 0), age_group=0)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([child_visit], code))).status_code == 201
    child = who(child_visit)
    await represent(session, AN, child[0], "parent", date(2020, 1, 1))
    await sign_in_as(client, session, settings, AN)

    page = await client.get("/portal/book", params={"lang": "vi"})
    assert page.status_code == 200
    assert "Tải sổ sức khỏe" in page.text
    assert 'href="/portal/book/download.pdf"' in page.text
    assert 'href="/portal/book/download.json"' in page.text
    assert "in hoặc đưa bác sĩ xem" in page.text
    assert "chuyển hồ sơ sang ứng dụng khác" in page.text
    english = await client.get("/portal/book", params={"lang": "en"})
    assert "Download my health book" in english.text
    assert "another app" in english.text
    assert (await client.get("/portal/book/download.pdf")).headers[
        "content-type"
    ] == "application/pdf"

    # the child's book: the links name the child by reference, never by personal ID
    own = (await client.get("/portal/book")).text
    tab = re.search(r'href="(/portal/book\?p=[^"]+)"', own)
    assert tab is not None, own
    theirs = await client.get(html.unescape(tab[1]))
    assert theirs.status_code == 200
    links = re.findall(r'href="(/portal/book/download\.(?:pdf|json)[^"]*)"', theirs.text)
    assert len(links) == 2, links
    assert all("p=" in link and child[0] not in link for link in links)
    pdf_link, json_link = (html.unescape(link) for link in links)
    text = _text(await client.get(pdf_link))
    assert child[1] in text
    data = await client.get(json_link)
    assert data.status_code == 200, data.text
    assert data.json()["entry"][0]["resource"]["name"][0]["text"] == child[1]
    # a reference made for someone else downloads nothing of the child's
    await sign_in_as(client, session, settings, STRANGER)
    other = await client.get(pdf_link, follow_redirects=False)
    assert other.headers.get("content-type") != "application/pdf"
    assert child[1] not in other.text


@pytest.mark.e2e
async def test_the_downloads_fit_a_phone_and_save_files(
    server: str,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    """On a phone (390 px, a real browser): the section fits the screen in both languages, and
    each link saves a file, of the child's book too."""
    context = await browser.new_context(
        locale="vi-VN", viewport={"width": 390, "height": 844}, accept_downloads=True
    )
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/portal/book")
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    await expect(page).to_have_url(server + "/portal/book")
    for lang in ("vi", "en"):
        await page.goto(f"{server}/portal/book?lang={lang}")
        section = page.locator("#download")
        await expect(section).to_be_visible()
        assert await page.evaluate(OVERFLOW_JS) == []
        assert await page.evaluate("document.documentElement.scrollWidth") == 390
    await page.goto(f"{server}/portal/book?lang=vi")
    async with page.expect_download() as saving:
        await page.get_by_role("link", name="Tải bản PDF").click()
    saved = await saving.value
    assert saved.suggested_filename.startswith("so-suc-khoe-nguyen-van-an-")
    assert saved.suggested_filename.endswith(".pdf")
    async with page.expect_download() as saving:
        await page.get_by_role("link", name="Tải tệp dữ liệu (FHIR)").click()
    assert (await saving.value).suggested_filename.endswith(".json")
    # the child's book (the demo's Hoàng Minh Khang): his file, named by his name
    await page.get_by_role("navigation", name="books").get_by_role("link").first.click()
    await expect(page.locator("#download h2")).to_contain_text("Tải sổ sức khỏe của")
    async with page.expect_download() as saving:
        await page.get_by_role("link", name="Tải bản PDF").click()
    assert (await saving.value).suggested_filename.startswith("so-suc-khoe-hoang-minh-khang-")
    await context.close()
