"""Diagnoses on Vietnamese pages are named in Vietnamese: the demo's codes have their
Vietnamese titles, and a code the catalogue names only in English is named by the facility's
own words in the visit (CHAN_DOAN_RV), never by the English title."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.catalogs.loaders import read_titles_csv
from vnehr.demo import demo_icd10_titles
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth
from vnehr.submissions.synth import _catalog

ENGLISH = "Bacterial pneumonia, unspecified"  # J15.9 in the catalogue; no Vietnamese title
STATED = "Viêm phổi do vi khuẩn"


def _shown(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_diagnosis_of_the_demo_has_its_vietnamese_title() -> None:
    titles = read_titles_csv(demo_icd10_titles())
    written = {d.code for d in _catalog.DIAGNOSES.values()}
    written |= set(_catalog.SECONDARY_OLDER) | set(_catalog.SECONDARY_YOUNGER)
    assert sorted(code for code in written if not titles.get(code)) == []
    for code in ("J18.9", "J20.9", "K21.9", "I63.9", "M17.9"):
        assert not titles[code].isascii(), code  # Vietnamese, with its diacritics


async def test_a_diagnosis_without_a_vietnamese_title_is_named_in_the_facility_s_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    visit = visit_of(code, 31, utcnow().replace(tzinfo=None) - timedelta(days=3), care_type="01")
    xml1 = visit.tables["XML1"][0]
    xml1["MA_BENH_CHINH"] = "J15.9"
    xml1["MA_BENH_KT"] = "I10"
    xml1["CHAN_DOAN_RV"] = f"{STATED}; Bệnh lý tăng huyết áp"
    sent = await send(client, headers, synth.envelope([visit], code))
    assert sent.json()["status"] != "rejected", sent.text
    await sign_in_as(client, session, settings, who(visit))
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]
    assert item["main_diagnosis"]["en"] == ENGLISH  # the catalogue knows it in English only
    assert item["main_diagnosis"]["vi"] is None

    page = await client.get(f"/portal/book/visits/{item['id']}?lang=vi")
    listed = page.text[page.text.index('id="diagnoses"') :]
    listed = _shown(listed[: listed.index("</ul>")])
    assert f"J15.9 {STATED} —" in listed
    assert ENGLISH not in _shown(page.text)
    for address in ("/portal/book", "/portal/book/summary"):
        shown = _shown((await client.get(address)).text)
        assert "J15.9" in shown, address
        assert ENGLISH not in shown, address

    english = _shown((await client.get(f"/portal/book/visits/{item['id']}?lang=en")).text)
    assert f"J15.9 {ENGLISH}" in english
    api = await client.get(f"/api/v1/me/visits/{item['id']}")
    assert api.json()["diagnoses"][0]["stated"] == STATED
