"""A report narrowed to a ward or a facility, downloaded as a file, says so: in its name, in
the form's title, on the notes sheet and on every CSV line. A department that forwards the
file of one facility can never take it, or send it on, as the province's report."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import httpx
import openpyxl
import pypdf
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import sign_in_as
from tests.reporting.test_report import DEPARTMENT, JANUARY, deliver, onboarded_on
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


async def two_facilities_sending(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> tuple[str, str]:
    """Two facilities of Hanoi with a visit each in 2026H2; the department signed in."""
    codes = []
    for number in (910, 920):
        code, headers = await facility_with_token(client, session, settings)
        await onboarded_on(session, code, JANUARY)
        one = visit_of(code, number, datetime(2026, 8, 3, 10, 0), care_type="01")  # noqa: DTZ001
        assert (await send(client, headers, synth.envelope([one], code))).json()["status"] != (
            "rejected"
        )
        codes.append(code)
    await deliver(db)
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    return codes[0], codes[1]


def file_name(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    return disposition.split('filename="', 1)[1].rstrip('"')


def csv_lines(answer: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))


async def test_a_facility_s_files_name_the_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    mine, other = await two_facilities_sending(client, session, settings, db)

    whole = await client.get("/api/v1/reports/2026H2.xlsx?province=01")
    narrowed = await client.get(f"/api/v1/reports/2026H2.xlsx?province=01&facility={mine}")
    assert file_name(whole) == "sskdt-2026H2-01.xlsx"
    assert file_name(narrowed) == f"sskdt-2026H2-01-coso{mine}.xlsx"

    form = openpyxl.load_workbook(io.BytesIO(whole.content))["Biểu báo cáo"]
    assert form["A2"].value.endswith("tỉnh/thành phố 01")
    assert form["A3"].value is None  # the province's report: no scope line
    book = openpyxl.load_workbook(io.BytesIO(narrowed.content))
    form = book["Biểu báo cáo"]
    assert f"cơ sở KCB {mine} Bệnh viện thử" in form["A2"].value
    assert "không phải báo cáo của cả tỉnh/thành phố 01" in form["A3"].value
    assert form["A3"].font.bold
    totals = next(r for r in form.iter_rows(min_row=6, values_only=True) if r[1] == "Tổng cộng")
    assert totals[3] + totals[6] == 1  # one facility's visit, not the province's two
    notes = book["Khó khăn, kiến nghị"]
    assert f"cơ sở KCB {mine}" in " ".join(str(c.value) for c in notes[2] if c.value)

    lines = csv_lines(await client.get(f"/api/v1/reports/2026H2.csv?province=01&facility={mine}"))
    assert {(x["province"], x["ward"], x["facility"]) for x in lines} == {("01", "", mine)}
    sent = sum(int(x["value"]) for x in lines if (x["section"], x["item"]) == ("matrix", "sent"))
    assert sent == 1
    lines = csv_lines(await client.get("/api/v1/reports/2026H2.csv?province=01"))
    assert {(x["province"], x["ward"], x["facility"]) for x in lines} == {("01", "", "")}

    pdf = await client.get(f"/api/v1/reports/2026H2.pdf?province=01&facility={other}")
    assert file_name(pdf) == f"sskdt-2026H2-01-coso{other}.pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert "không phải báo cáo của cả tỉnh/thành phố 01" in text


async def test_a_ward_s_files_name_the_ward(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    mine, _ = await two_facilities_sending(client, session, settings, db)
    query = f"province=01&ward=00004&facility={mine}"
    xlsx = await client.get(f"/api/v1/reports/2026H2.xlsx?{query}")
    assert file_name(xlsx) == f"sskdt-2026H2-01-phuongxa00004-coso{mine}.xlsx"
    form = openpyxl.load_workbook(io.BytesIO(xlsx.content))["Biểu báo cáo"]
    assert "phường/xã 00004 Phường Ba Đình" in form["A2"].value
    assert f"cơ sở KCB {mine}" in form["A2"].value
    lines = csv_lines(await client.get(f"/api/v1/reports/2026H2.csv?{query}"))
    assert {(x["ward"], x["facility"]) for x in lines} == {("00004", mine)}
    ward = await client.get("/api/v1/reports/2026H2.csv?province=01&ward=00004")
    assert file_name(ward) == "sskdt-2026H2-01-phuongxa00004.csv"
