"""The downloaded book in English (D209, as amended): a citizen reading in English (``?lang=en``,
or the language the portal remembers) gets the PDF's headings and labels in English, the
clinical text as the facilities recorded it; Vietnamese stays the default, and a
representative's download is audited as before."""

from __future__ import annotations

from datetime import date, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.exchange.test_push_privacy import represent
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_book_download import PDF, _an_with_an_allergy, _text, _words
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.settings import Settings
from vnehr.submissions import synth
from vnehr.web.pages import LANG_COOKIE

#: Headings and labels of the Vietnamese PDF, none of which an English one prints.
VIETNAMESE = ("SỔ SỨC KHỎE ĐIỆN TỬ", "Họ và tên", "Tóm tắt sức khỏe", "Dị ứng", "In lúc",
              "Bệnh mạn tính", "Thuốc đang dùng", "Các lượt khám", "giờ Việt Nam")  # fmt: skip
ENGLISH = ("ELECTRONIC HEALTH BOOK", "Full name", "Date of birth", "Health summary",
           "Allergies", "Long-term conditions", "Current medicines", "Risk factors", "Visits",
           "Printed at", "Vietnam time", "Printed from the electronic health book")  # fmt: skip


def _english(text: str) -> None:
    for label in ENGLISH:
        assert label in text, label
    for label in VIETNAMESE:
        assert label not in text, label


async def test_a_citizen_reading_in_english_downloads_the_book_in_english(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person, items = await _an_with_an_allergy(client, session, settings)
    text = _text(await client.get(PDF, params={"lang": "en"}))
    _english(text)
    assert person[1] in text
    assert "Penicillin — high risk" in text  # the substance as recorded, its risk in English
    for item in items:  # each visit's diagnosis and care type by their English titles
        assert item["main_diagnosis"]["en"], item
        assert _words(item["main_diagnosis"]["en"]) in text
        if item["care_type"]["en"]:
            assert _words(item["care_type"]["en"]) in text
    # the medicines as the facility wrote them (their doses stay Vietnamese)
    summary = (await client.get("/api/v1/me/summary")).json()
    assert summary["current_medicines"]
    for medicine in summary["current_medicines"]:
        assert _words(medicine["name"]) in text

    # Vietnamese stays the default, and is asked for by name
    for params in ({}, {"lang": "vi"}):
        vietnamese = _text(await client.get(PDF, params=params))
        assert "SỔ SỨC KHỎE ĐIỆN TỬ" in vietnamese
        assert "ELECTRONIC HEALTH BOOK" not in vietnamese
    error(await client.get(PDF, params={"lang": "fr"}), 422, "KIT-0422")


async def test_the_language_the_portal_remembers_is_the_pdfs(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await _an_with_an_allergy(client, session, settings)
    client.cookies.set(LANG_COOKIE, "en")
    _english(_text(await client.get(PDF)))
    # asked for by name, the language wins over the remembered one
    assert "SỔ SỨC KHỎE ĐIỆN TỬ" in _text(await client.get(PDF, params={"lang": "vi"}))
    client.cookies.set(LANG_COOKIE, "xx")  # (not a language: the default)
    assert "SỔ SỨC KHỎE ĐIỆN TỬ" in _text(await client.get(PDF))

    # the book's page in English, then its download link: the same English book
    client.cookies.delete(LANG_COOKIE)
    page = await client.get("/portal/book", params={"lang": "en"})
    assert page.status_code == 200
    _english(_text(await client.get("/portal/book/download.pdf")))
    await client.get("/portal/book", params={"lang": "vi"})
    assert "SỔ SỨC KHỎE ĐIỆN TỬ" in _text(await client.get("/portal/book/download.pdf"))


async def test_a_parent_downloads_the_childs_book_in_english_and_it_is_in_the_childs_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    child_visit = visit_of(code, 23, datetime(2026, 10, 3, 9, 0), age_group=0)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([child_visit], code))).status_code == 201
    child = who(child_visit)
    await represent(session, AN, child[0], "parent", date(2020, 1, 1))
    await sign_in_as(client, session, settings, child)

    as_person(client, settings, AN[0])
    text = _text(await client.get(PDF, params={"for": child[0], "lang": "en"}))
    _english(text)
    assert child[1] in text
    assert AN[1] not in text

    await sign_in_as(client, session, settings, child)
    log = (await client.get("/api/v1/me/access-log")).json()
    [download] = [e for e in log if e["action"] == "book.exported"]
    assert download["who"]["name"] == AN[1]
    assert download["relation"] == "parent"
