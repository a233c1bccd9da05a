"""Moments no clock gives: .NET's ``DateTime.MinValue`` written yyyyMMddHHmm (``000101010000``,
an HIS's "no date") is refused at intake with its place; a visit stored before that rule with
such a moment is still read, the moment left out, on every route that shows it."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import book, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send, visit
from vnehr.kit.settings import Settings
from vnehr.records.models import VisitVersion
from vnehr.submissions import synth

MIN_VALUE = "000101010000"  # DateTime.MinValue, 0001-01-01 00:00, as some HIS write "no date"


def _issues(response: httpx.Response) -> list[tuple[str, str, str | None, int | None, str | None]]:
    return [
        (i["code"], i["severity"], i["table"], i["row"], i["field"])
        for entry in response.json()["visits"]
        for i in entry["issues"]
    ]


async def test_an_order_dated_year_1_is_refused_with_its_table_row_and_field(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, care_type="03")
    one.tables["XML2"][0]["NGAY_YL"] = MIN_VALUE
    one.tables["XML3"][-1]["NGAY_YL"] = MIN_VALUE
    response = await send(client, headers, synth.envelope([one], code))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected", response.text
    found = _issues(response)
    assert ("SUB-0119", "error", "XML2", 1, "NGAY_YL") in found
    assert ("SUB-0119", "error", "XML3", len(one.tables["XML3"]), "NGAY_YL") in found
    [message] = [
        i["message"]
        for i in response.json()["visits"][0]["issues"]
        if (i["code"], i["table"]) == ("SUB-0119", "XML2")
    ]
    for text in (message["vi"], message["en"]):
        for part in ("XML2", "NGAY_YL", MIN_VALUE, "1900-01-01"):
            assert part in text


async def test_a_stored_visit_with_moments_no_clock_gives_is_read_on_every_route(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Rows stored before the rule: the citizen reads the visit, its PDF, the summary, the
    pages and FHIR; the impossible moments are left out, the rest is shown."""
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    newest = (await client.get("/api/v1/me/timeline")).json()["items"][0]
    stored = (
        await session.scalars(select(VisitVersion).where(VisitVersion.visit_key == visits[2].ma_lk))
    ).one()
    tables = {name: [dict(row) for row in rows] for name, rows in stored.tables.items()}
    for name, fields in {
        "XML2": ("NGAY_YL", "NGAY_TH_YL"),
        "XML3": ("NGAY_YL", "NGAY_TH_YL", "NGAY_KQ"),
        "XML4": ("NGAY_KQ",),
        "XML5": ("THOI_DIEM_DBLS",),
    }.items():
        for row in tables.get(name, []):
            for field in fields:
                row[field] = MIN_VALUE
    assert tables["XML2"]
    assert tables["XML3"]
    await session.execute(
        update(VisitVersion).where(VisitVersion.id == stored.id).values(tables=tables)
    )

    read = await client.get(f"/api/v1/me/visits/{newest['id']}")
    assert read.status_code == 200, read.text
    drugs = read.json()["drugs"]
    assert [d["name"] for d in drugs] == [r["TEN_THUOC"] for r in tables["XML2"]]
    assert all(d["ordered_at"] is None for d in drugs)
    for path in (
        f"/api/v1/me/visits/{newest['id']}.pdf",
        "/api/v1/me/summary",
        f"/portal/book/visits/{newest['id']}",
        "/portal/book/summary",
        "/fhir/R4/Encounter",
        "/fhir/R4/MedicationRequest",
        "/fhir/R4/Observation",
        "/fhir/R4/Procedure",
    ):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    requests = [
        e["resource"] for e in (await client.get("/fhir/R4/MedicationRequest")).json()["entry"]
    ]
    undated = [r for r in requests if "authoredOn" not in r]
    assert len(undated) == len(tables["XML2"])  # the others' dates are still there
    assert len(requests) > len(undated)
