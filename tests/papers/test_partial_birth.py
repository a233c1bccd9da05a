"""A paper's holder born in a known year or month only (NGAY_SINH ``yyyy00000000`` /
``yyyymm000000``, D106): the SMART Health Card's Patient, the PDF and the verification page say
what is known, as the book does (D111), never an invented day."""

from __future__ import annotations

import io
from datetime import timedelta

import httpx
import pypdf
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import as_person
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_partial_birth import _born_in
from tests.papers.test_api import SCOPES, local_now, verify
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


@pytest.mark.parametrize(
    ("ngay_sinh", "fhir", "vi", "en"),
    [
        ("198000000000", "1980", "năm 1980", "1980 (year only)"),
        ("198005000000", "1980-05", "tháng 05/1980", "05/1980 (month only)"),
        ("198005140000", "1980-05-14", "14/05/1980", "14/05/1980"),
    ],
)
async def test_a_papers_card_pdf_and_verification_show_the_birth_as_known(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    ngay_sinh: str,
    fhir: str,
    vi: str,
    en: str,
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 41, local_now() - timedelta(days=5), care_type="01", insured=True, appointment=True
    )
    _born_in(1980, ngay_sinh)(one)
    answer = await send(client, headers, synth.envelope([one], code))
    assert [v["status"] for v in answer.json()["visits"]] == ["accepted"], answer.text
    as_person(client, settings, who(one)[0])
    [paper] = (await client.get("/api/v1/me/papers")).json()["papers"]

    checked = await verify(client, paper["qr"])  # the facts come from the signed card
    assert checked["authentic"] is True
    assert checked["paper"]["holder"]["birth_date"] == fhir

    body = (await client.get(f"/api/v1/papers/{paper['id']}.pdf")).content
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages)
    assert f"Ngày sinh: {vi}" in " ".join(text.split())

    for lang, words in (("vi", vi), ("en", en)):
        page = await client.post("/verify", data={"qr": paper["qr"]}, params={"lang": lang})
        assert page.status_code == 200, page.text
        assert f"({words})" in page.text, lang


def test_a_birth_papers_mother_born_in_a_known_month_is_that_month_in_the_card() -> None:
    """NGAYSINH_NND ``yyyymm00``: the mother holding the birth certificate (D42) is born in
    that month, in a card that is still valid FHIR R4."""
    from tests.papers.test_card import FACILITY, ROWS, XML1
    from vnehr.fhir.validate import validate
    from vnehr.papers import card, content

    row = {**ROWS["birth"], "NGAYSINH_NND": "19950300"}
    made = content.from_table("birth", row, XML1, facility=FACILITY)
    assert made is not None
    assert made["holder"]["birth_date"] == "1995-03"
    bundle = card.bundle(made)
    assert bundle["entry"][0]["resource"]["birthDate"] == "1995-03"
    assert validate(bundle) == []
