"""The six-monthly report as the department gets it: a small province with a public and a
private facility, visits of every kind sent through the intake (one rejected, one in the
previous half-year), papers, citizens opening accounts, ward populations and the visits the
facilities declared. The rollups the event consumers keep give the same report as a recount of
the stored rows; every figure is checked against what was sent; the files carry the same
figures."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime
from typing import Any

import httpx
import openpyxl
import pypdf
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange, identity, reporting
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.records.models import VisitVersion
from vnehr.reporting.metrics import CATEGORY_OF, Period
from vnehr.submissions import synth

PERIOD = Period.parse("2026H2")
DEPARTMENT = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
ADMIN = Subject(
    kind="person", id="rep", name="rep", grants=(Grant("department_admin", province_code="01"),)
)
CARE = ["01", "01", "02", "03", "04", "07", "09", "02", "01", "03"]


async def deliver(db: Database) -> None:
    consumers = {topic: {"report": handler} for topic, handler in reporting.consumers().items()}
    while await exchange.deliver_once(db, consumers, exchange.Policy(), limit=200):
        pass


async def world(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> dict[str, Any]:
    """Two facilities of Hanoi (public connected, private in test... then connected), ten
    visits in 2026H2, one in 2026H1, one rejected; one visit sent late."""
    public, headers = await facility_with_token(client, session, settings)
    private, private_headers = await facility_with_token(client, session, settings)
    made: list[synth.SynthVisit] = []
    for index, care in enumerate(CARE):
        ended = datetime(2026, 7 + index % 5, 3 + index, 10, 0)  # noqa: DTZ001
        code = private if index % 3 == 0 else public
        one = visit_of(
            code,
            300 + index,
            ended,
            care_type=care,
            insured=index % 4 != 0,
            appointment=False,
            referral=False,
        )
        if index == 4:
            one.tables.pop("XML8", None)
        sender = private_headers if code == private else headers
        assert (await send(client, sender, synth.envelope([one], code))).json()["status"] != (
            "rejected"
        )
        made.append(one)
    old = visit_of(public, 399, datetime(2026, 5, 5, 9, 0), care_type="01")  # noqa: DTZ001
    await send(client, headers, synth.envelope([old], public))
    september = datetime(2026, 9, 9, 9, 0)  # noqa: DTZ001
    bad = synth.make_visit(
        random.Random(77), facility_code=public, defect="bad_icd", ended=september
    )
    rejected = (await send(client, headers, synth.envelope([bad], public))).json()
    assert rejected["status"] == "rejected"
    codes = sorted({i["code"] for i in rejected["visits"][0]["issues"] if i["severity"] == "error"})
    # the lag is measured from the end of the visit to receipt: these were sent months later;
    # make the first one "on time" (received one hour after it ended)
    first = made[0].tables["XML1"][0]
    await session.execute(
        update(VisitVersion)
        .where(VisitVersion.visit_key == first["MA_LK"])
        .values(lag_seconds=3600)
    )
    return {"public": public, "private": private, "visits": made, "codes": codes}


def expected_matrix(visits: list[synth.SynthVisit]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for one in visits:
        xml1 = one.tables["XML1"][0]
        flag = "insured" if xml1["MA_THE_BHYT"] else "uninsured"
        key = (CATEGORY_OF[xml1["MA_LOAI_KCB"]], flag)
        found[key] = found.get(key, 0) + 1
    return found


async def test_the_report_from_rollups_equals_the_recount_and_what_was_sent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    made = await world(client, session, settings)
    # citizens open accounts; the department loads the population and a facility declares
    people = [who(v) for v in made["visits"][:3]]
    for person, ward in zip(people, ["00004", "00004", "00070"], strict=True):
        await sign_in_as(client, session, settings, person)
        await identity.set_residence(session, ADMIN, person[0], ward)
        assert (await client.post("/api/v1/me/account")).status_code in (200, 201)
    await reporting.load_population(session, "ward_code,population\n00004,20000\n00070,18000\n")
    await reporting.declare(
        session,
        ADMIN,
        "2026H2",
        made["public"],
        {("outpatient_exam", True): 40, ("inpatient", True): 6},
    )
    await deliver(db)

    assert await reporting.check(session, PERIOD, "01") == []
    kept = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    counted = await reporting.figures(
        session, PERIOD, province="01", cost_per_record=5000, source="recount"
    )
    assert kept == counted

    matrix = {
        (r["category"], flag): r[flag]["sent"]
        for r in kept["matrix"]
        for flag in ("insured", "uninsured")
        if r[flag]["sent"]
    }
    assert matrix == expected_matrix(made["visits"])
    assert kept["totals"]["sent"] == len(CARE)
    assert kept["records"] == {"created": 10, "integrated": 10, "share": 1.0}
    exam = next(r for r in kept["matrix"] if r["category"] == "outpatient_exam")
    assert exam["insured"]["made"] == 40
    assert kept["totals"]["made"] == 46
    assert kept["facilities"]["with_code"] == 2
    assert kept["facilities"]["connected"] == 2
    assert kept["facilities"]["sending"] == 2
    assert kept["quality"]["rejected_visits"] == 1
    assert [c["code"] for c in kept["quality"]["by_code"]] == made["codes"]
    assert kept["quality"]["rejection_rate"] == round(1 / 11, 4)
    assert kept["quality"]["with_summary"] == 9  # one visit came without XML8
    assert kept["timeliness"]["within_24h"] == 0.1  # only the first one
    assert kept["timeliness"]["median_minutes"] is not None
    assert kept["people"]["accounts"] == 3
    wards = {w["ward"]: w for w in kept["people"]["by_ward"]}
    assert (wards["00004"]["accounts"], wards["00004"]["population"]) == (2, 20000)
    assert wards["00004"]["share"] == 0.0001
    assert wards["00004"]["name"]  # the ward's name from the catalogue
    assert kept["savings"]["total"] == 10 * 5000
    assert kept["period"] == "2026H2"

    # a ward and a facility filter narrow every figure
    private = await reporting.figures(
        session, PERIOD, province="01", cost_per_record=5000, facility=made["private"]
    )
    ours = [v for i, v in enumerate(made["visits"]) if i % 3 == 0]
    assert private["totals"]["sent"] == len(ours)
    assert private["facilities"]["with_code"] == 1
    assert private["quality"]["rejected_visits"] == 0
    first_half = await reporting.figures(
        session, Period.parse("2026H1"), province="01", cost_per_record=5000
    )
    assert first_half["totals"]["sent"] == 1

    # a change behind the consumers' back is caught by the check
    await session.execute(
        update(VisitVersion)
        .where(VisitVersion.visit_key == made["visits"][1].ma_lk)
        .values(care_type="03")
    )
    differences = await reporting.check(session, PERIOD, "01")
    assert {d["metric"] for d in differences} >= {"visits_sent"}
    await reporting.rebuild(session)
    assert await reporting.check(session, PERIOD, "01") == []


async def test_the_files_carry_the_same_figures(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    made = await world(client, session, settings)
    await deliver(db)
    await reporting.set_notes(session, ADMIN, "2026H2", "01", "Một số cơ sở tư nhân chưa kết nối.")
    figures = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    assert figures["notes"] == "Một số cơ sở tư nhân chưa kết nối."

    book = openpyxl.load_workbook(io.BytesIO(reporting.to_xlsx(figures)))
    form = book["Biểu báo cáo"]
    assert form["A1"].value == "BÁO CÁO KẾT QUẢ TRIỂN KHAI SỔ SỨC KHỎE ĐIỆN TỬ"
    rows = {r[1]: r for r in form.iter_rows(min_row=6, values_only=True) if r[1]}
    for row in figures["matrix"]:
        line = rows[row["title"][0]]
        assert (line[3], line[6]) == (row["insured"]["sent"], row["uninsured"]["sent"])
    assert rows["Tổng cộng"][3] == 10
    assert book["Khó khăn, kiến nghị"]["A2"].value == figures["notes"]
    codes = [r[0] for r in book["Chất lượng"].iter_rows(min_row=4, values_only=True)]
    assert codes == made["codes"]

    lines = list(csv.reader(io.StringIO(reporting.to_csv(figures).decode("utf-8-sig"))))
    assert lines[0] == ["period", "province", "section", "item", "dim1", "dim2", "value"]
    sent = [int(v[-1]) for v in lines[1:] if v[2:4] == ["matrix", "sent"]]
    assert sum(sent) == figures["totals"]["sent"]

    text = "".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(reporting.to_pdf(figures))).pages
    )
    assert "BÁO CÁO KẾT QUẢ TRIỂN KHAI SỔ SỨC KHỎE ĐIỆN TỬ" in text
    assert "Khám bệnh ngoại trú" in text
    assert "Một số cơ sở tư nhân chưa kết nối." in text


async def test_only_the_department_reads_its_report(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    response = await client.get("/api/v1/reports/2026H2?province=01")
    assert response.status_code == 200, response.text
    assert response.json()["period"] == "2026H2"
    xlsx = await client.get("/api/v1/reports/2026H2.xlsx?province=01")
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    error(await client.get("/api/v1/reports/2026H3?province=01"), 422, "REP-0001")
    error(await client.get("/api/v1/reports/2026H2?province=79"), 403, "AUTH-0002")
    error(await client.get("/api/v1/reports/2026H2"), 403, "AUTH-0002")  # not national
    await sign_in_as(
        client, session, settings, ("001199000001", "Người Khác", "1999-01-01", "female")
    )
    error(await client.get("/api/v1/reports/2026H2?province=01"), 403, "AUTH-0002")
