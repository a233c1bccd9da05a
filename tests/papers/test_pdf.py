"""A paper's PDF as a verifier and a holder meet it: a page painted over after the signatures is
not authentic (and the answer says why), a revoked paper's PDF is still genuinely signed but
not valid, the download keeps a number with Vietnamese letters or quotes, and long or listed
signer names still make a signed PDF."""

from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import unquote

import httpx
import pypdf
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.papers.test_api import SCOPES, driver_body, local_now
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import synth


def paint_over(body: bytes, words: bytes = b"FORGED PAPER") -> bytes:
    """An incremental update after the signatures: a white box over the page, new words."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(body))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    paint = b"q 1 1 1 rg 0 0 600 850 re f Q BT /F1 30 Tf 100 700 Td (" + words + b") Tj ET"
    added = writer.add_object(generic.StreamObject(stream_data=paint))
    font = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Font"),
        generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
        generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
    })  # fmt: skip
    fonts = generic.DictionaryObject({generic.NameObject("/F1"): writer.add_object(font)})
    page[generic.NameObject("/Resources")] = generic.DictionaryObject(
        {generic.NameObject("/Font"): fonts}
    )
    contents = page["/Contents"]
    if not isinstance(contents, generic.ArrayObject):
        contents = generic.ArrayObject([page.raw_get("/Contents")])
    contents.append(added)
    page[generic.NameObject("/Contents")] = contents
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_a_pdf_painted_over_after_its_signatures_is_not_authentic(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    body = (await client.get(f"/api/v1/papers/{paper['id']}.pdf", headers=headers)).content
    genuine = (await client.post("/api/v1/papers/verify-pdf", content=body)).json()
    assert (genuine["authentic"], genuine["reason"]) == (True, None)

    forged = paint_over(body)
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(forged)).pages)
    assert "FORGED PAPER" in text
    checked = (await client.post("/api/v1/papers/verify-pdf", content=forged)).json()
    assert checked["authentic"] is False
    assert checked["valid"] is False
    assert checked["reason"] == "changed_after_signing"
    # each signature on its own is still intact and trusted: what it signed was not changed
    assert all(s["intact"] and s["trusted"] for s in checked["signatures"])


async def test_a_revoked_papers_pdf_is_genuinely_signed_but_not_valid(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    body = (await client.get(f"/api/v1/papers/{paper['id']}.pdf", headers=headers)).content
    before = (await client.post("/api/v1/papers/verify-pdf", content=body)).json()
    assert (before["authentic"], before["valid"], before["status"]) == (True, True, "valid")
    assert before["paper_id"] == paper["id"]

    revoked = await client.post(
        f"/api/v1/papers/{paper['id']}/revoke", json={"reason": "Cấp nhầm người"}, headers=headers
    )
    assert revoked.status_code == 200, revoked.text
    after = (await client.post("/api/v1/papers/verify-pdf", content=body)).json()
    assert (after["authentic"], after["valid"], after["status"]) == (True, False, "revoked")
    assert after["reason"] == "Cấp nhầm người"


async def test_a_number_with_vietnamese_letters_and_quotes_downloads(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    number = 'GKSK-Số 12/Đà "A"'
    made = await client.post("/api/v1/papers", json=driver_body(number=number), headers=headers)
    assert made.status_code == 201, made.text
    response = await client.get(f"/api/v1/papers/{made.json()['id']}.pdf", headers=headers)
    assert response.status_code == 200, response.text
    header = response.headers["content-disposition"]
    assert header.isascii()
    plain, _, encoded = header.partition("; filename*=UTF-8''")
    assert plain.startswith('attachment; filename="')
    assert plain.count('"') == 2
    assert unquote(encoded) == 'driver-GKSK-Số 12-Đà "A".pdf'


async def test_a_long_doctor_name_and_a_list_of_doctors_still_sign_the_pdf(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    name = "BS.CKII. Nguyễn Thị Phương Thảo Hoàng Lan Anh - Khoa Khám bệnh theo yêu cầu số 2"
    assert len(name) > 64
    made = await client.post("/api/v1/papers", json=driver_body(doctor_name=name), headers=headers)
    assert made.status_code == 201, made.text
    response = await client.get(f"/api/v1/papers/{made.json()['id']}.pdf", headers=headers)
    assert response.status_code == 200, response.text
    checked = (await client.post("/api/v1/papers/verify-pdf", content=response.content)).json()
    assert checked["authentic"] is True
    assert "Nguyễn Thị Phương Thảo" in checked["signatures"][0]["signer"]

    # an appointment signed by several doctors (MA_BAC_SI "a;b;..."): the first one signs
    one = visit_of(
        code, 57, local_now() - timedelta(days=5), care_type="01", insured=True, appointment=True
    )
    row = one.tables["XML14"][0]
    first = row["MA_BAC_SI"]
    row["MA_BAC_SI"] = ";".join([first] * 6)
    assert len(row["MA_BAC_SI"]) > 64
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["status"] != "rejected", receipt
    [paper] = (
        await session.scalars(
            select(Paper).where(Paper.facility_code == code, Paper.kind == "re_exam")
        )
    ).all()
    response = await client.get(f"/api/v1/papers/{paper.id}.pdf", headers=headers)
    assert response.status_code == 200, response.text
    checked = (await client.post("/api/v1/papers/verify-pdf", content=response.content)).json()
    assert checked["authentic"] is True
    assert first in checked["signatures"][0]["signer"]
