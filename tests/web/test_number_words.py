"""Numbers as their readers write them: a Vietnamese page groups thousands with dots and writes
decimals with a comma (1.234.567 đồng, 65,5 kg), an English page with commas and a point
(1,234,567 VND, 65.5 kg); a laboratory value keeps the decimals the facility sent ("5.60" is
"5,60", never "5,6"); the visit's PDF and the six-monthly report are Vietnamese. The JSON API
keeps its numbers as they were."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from decimal import Decimal

import httpx
from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.reporting.test_report import PERIOD
from tests.submissions.test_intake import facility_with_token, send
from vnehr import reporting
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings
from vnehr.reporting import report
from vnehr.submissions import synth

LAB_VALUE = "5.60"  # two decimals as the facility sent them
WEIGHT = "65.5"


def _shown(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&nbsp;", " ")


def _section(html: str, label: str) -> str:
    start = html.index(f'aria-label="{label}"')
    return _shown(html[start : html.index("</table>", start)])


def _written(amount: str, thousands: str, point: str) -> str:
    """How a reader writes an amount of money sent as "253400.00": whole đồng without
    decimals, else two."""
    value = Decimal(amount)
    written = f"{int(value):,}".replace(",", thousands)
    if value != int(value):
        written += point + f"{value:.2f}".split(".")[1]
    return written


async def _visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[synth.SynthVisit, int]:
    """A visit with a weight of 65.5 kg and a laboratory result of 5.60, in its patient's book
    (signed in)."""
    code, headers = await facility_with_token(client, session, settings)
    ended = utcnow().replace(tzinfo=None) - timedelta(days=3)
    one = visit_of(code, 41, ended, care_type="01", age_group=3, insured=True)
    one.tables["XML1"][0]["CAN_NANG"] = WEIGHT
    lab = next(row for row in one.tables.get("XML4", []) if row.get("GIA_TRI"))
    lab["GIA_TRI"] = LAB_VALUE
    sent = await send(client, headers, synth.envelope([one], code))
    assert sent.json()["status"] != "rejected", sent.text
    await sign_in_as(client, session, settings, who(one))
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]
    return one, item["id"]


async def test_a_vietnamese_visit_page_groups_money_with_dots_and_writes_a_decimal_comma(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    one, visit_id = await _visit(client, session, settings)
    xml1 = one.tables["XML1"][0]
    assert Decimal(xml1["T_TONGCHI_BV"]) >= 1000  # so that grouping shows
    page = (await client.get(f"/portal/book/visits/{visit_id}?lang=vi")).text
    shown = _shown(page)
    assert "65,5 kg" in shown
    assert "65.5" not in shown
    results = _section(page, "results")
    assert " 5,60 " in results  # the facility's two decimals kept
    assert "5.60" not in results
    costs = _section(page, "costs")
    assert f"{_written(xml1['T_TONGCHI_BV'], '.', ',')} đồng" in costs
    assert f"{_written(xml1['T_BHTT'], '.', ',')} đồng" in costs
    patient = str(Decimal(xml1["T_BNTT"]) + Decimal(xml1["T_BNCCT"]))
    assert f"{_written(patient, '.', ',')} đồng" in costs
    drug = one.tables["XML2"][0]
    assert f"{_written(drug['DON_GIA'], '.', ',')} đồng" in _section(page, "drugs")

    # the API a machine reads keeps its numbers as they were
    api = (await client.get(f"/api/v1/me/visits/{visit_id}")).json()
    assert api["weight_kg"] == WEIGHT
    assert LAB_VALUE in [r["value"] for r in api["results"]]
    assert "costs" not in api


async def test_an_english_visit_page_groups_with_commas_and_writes_a_decimal_point(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    one, visit_id = await _visit(client, session, settings)
    xml1 = one.tables["XML1"][0]
    page = (await client.get(f"/portal/book/visits/{visit_id}?lang=en")).text
    assert "65.5 kg" in _shown(page)
    assert " 5.60 " in _section(page, "results")
    costs = _section(page, "costs")
    assert f"{_written(xml1['T_TONGCHI_BV'], ',', '.')} VND" in costs
    assert "đồng" not in costs


async def test_the_visit_pdf_writes_numbers_the_vietnamese_way(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    one, visit_id = await _visit(client, session, settings)
    xml1 = one.tables["XML1"][0]
    pdf = await client.get(f"/api/v1/me/visits/{visit_id}.pdf")
    assert pdf.status_code == 200, pdf.text
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    text = re.sub(r"\s+", " ", text)
    assert "65,5 kg" in text
    assert "5,60" in text
    assert "5.60" not in text
    assert f"{_written(xml1['T_TONGCHI_BV'], '.', ',')} đồng" in text


def test_the_vietnamese_report_groups_counts_in_its_tables_and_on_its_charts() -> None:
    """A province of 1,200 facilities sending 6,000 visits: the report's tables write 1.200,
    never 1200, and its charts (as the PDF draws them) count visits in whole steps written
    1.600, never 1600 or 1600.0."""
    month = date(2026, 8, 1)
    codes = [f"{n:05d}" for n in range(1, 1201)]
    counts = {}
    for code in codes:
        counts[(month, "01", "", code, "visits_sent", "outpatient_exam", "insured")] = 5
        counts[(month, "01", "", code, "lag", "120", "")] = 5
    registry = [report.FacilityRow(code, f"CS {code}", "public", "", True) for code in codes]
    figures = report.build(
        report.Scope(PERIOD, "01"),
        counts,
        registry,
        population={},
        declared={},
        notes="",
        cost_per_record=5000,
    )
    body = reporting.html(figures, {}, fragment=True)
    facilities = _section(body, "facilities")
    assert "1.200" in facilities
    assert "1200" not in facilities
    drawn = reporting.charts(figures, "svg")
    words = re.findall(r"<text[^>]*>([^<]*)</text>", drawn["lag"].decode())
    words += re.findall(r"<!-- ([^>]*) -->", drawn["lag"].decode())
    ticks = [w.strip() for w in words if re.fullmatch(r"[\d.,]+", w.strip())]
    assert any(re.fullmatch(r"\d{1,3}(\.\d{3})+", t) for t in ticks), ticks  # 1.600
    assert not [t for t in ticks if re.fullmatch(r"\d{4,}|\d+\.\d|.*,.*", t)], ticks
