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
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pypdf
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange, facilities, identity, reporting
from vnehr.facilities.models import Facility, OnboardingEvent
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import VIETNAM, today_in_vietnam
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.records.models import VisitVersion
from vnehr.reporting import report
from vnehr.reporting.errors import BadProvince
from vnehr.reporting.metrics import CATEGORY_OF, Period
from vnehr.submissions import service, synth

PERIOD = Period.parse("2026H2")
DEPARTMENT = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
ADMIN = Subject(
    kind="person", id="rep", name="rep", grants=(Grant("department_admin", province_code="01"),)
)
NATIONAL = Subject(kind="person", id="nat", name="nat", grants=(Grant("department_admin"),))
CARE = ["01", "01", "02", "03", "04", "07", "09", "02", "01", "03"]
#: Where the facilities of these tests were registered and onboarded (they are made today).
JANUARY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def this_half() -> Period:
    """The period we are in: accounts opened now count in it."""
    today = today_in_vietnam()
    return Period.parse(f"{today.year}H{1 if today.month <= 6 else 2}")


async def onboarded_on(session: AsyncSession, code: str, when: datetime) -> None:
    """Move a facility's registration and its onboarding history so far back to ``when``."""
    await session.execute(update(Facility).where(Facility.code == code).values(created_at=when))
    await session.execute(
        update(OnboardingEvent).where(OnboardingEvent.facility_code == code).values(at=when)
    )


async def deliver(db: Database) -> None:
    consumers = {topic: {"report": handler} for topic, handler in reporting.consumers().items()}
    while await exchange.deliver_once(db, consumers, exchange.Policy(), limit=200):
        pass


def _received_at(clock: pytest.MonkeyPatch, at: datetime) -> None:
    """The intake stamps its receipts as received at ``at``: its clock (the database's on
    PostgreSQL, D172) set there, its lock still taken."""
    started = service._start_receipts

    async def at_then(session: AsyncSession, codes: list[str]) -> Any:
        await started(session, codes)
        return service._Clock(at, time.monotonic())

    clock.setattr(service, "_start_receipts", at_then)


async def world(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> dict[str, Any]:
    """Two facilities of Hanoi (public connected, private in test... then connected), ten
    visits in 2026H2, one in 2026H1, one rejected; one visit sent late."""
    public, headers = await facility_with_token(client, session, settings)
    private, private_headers = await facility_with_token(client, session, settings)
    for code in (public, private):
        await onboarded_on(session, code, JANUARY)
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
        with pytest.MonkeyPatch.context() as clock:
            if index == 0:  # the first one is "on time": received one hour after it ended
                sent_at = (ended.replace(tzinfo=VIETNAM) + timedelta(hours=1)).astimezone(UTC)
                _received_at(clock, sent_at)
            answer = await send(client, sender, synth.envelope([one], code))
        assert answer.json()["status"] != "rejected"
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
    # the lag is measured from the end of the visit to receipt: the others were sent months
    # later
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
    assert rows["Tổng cộng"][3] + rows["Tổng cộng"][6] == 10  # sent: insured + uninsured
    assert book["Khó khăn, kiến nghị"]["A2"].value == figures["notes"]
    codes = [r[0] for r in book["Chất lượng"].iter_rows(min_row=4, values_only=True)]
    assert codes == made["codes"]

    lines = list(csv.reader(io.StringIO(reporting.to_csv(figures).decode("utf-8-sig"))))
    assert lines[0] == [
        "period", "province", "ward", "facility", "section", "item", "dim1", "dim2", "value"
    ]  # fmt: skip
    sent = [int(v[-1]) for v in lines[1:] if v[4:6] == ["matrix", "sent"]]
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


async def test_account_opened_before_the_residence_is_recorded(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A citizen opens the book through VNeID before anyone recorded where she lives; the
    department records it afterwards: the account counts in her ward (D43)."""
    person = ("001190001234", "Phạm Thị Hoa", "1990-02-02", "female")
    await sign_in_as(client, session, settings, person)
    assert (await client.post("/api/v1/me/account")).status_code in (200, 201)
    await identity.set_residence(session, ADMIN, person[0], "00004")
    await deliver(db)

    now = this_half()
    figures = await reporting.figures(session, now, province="01", cost_per_record=5000)
    assert figures["people"]["accounts"] == 1
    assert {w["ward"]: w["accounts"] for w in figures["people"]["by_ward"]} == {"00004": 1}
    assert await reporting.check(session, now, None) == []


async def test_account_moves_to_another_province(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A Hanoi resident with a health account moves to Ho Chi Minh City: the account leaves
    Hanoi's count for HCMC's, and closing it afterwards takes it off HCMC's."""
    person = ("001190001235", "Phạm Thị Hoa", "1990-02-02", "female")
    await sign_in_as(client, session, settings, person)
    await identity.set_residence(session, ADMIN, person[0], "00004")
    assert (await client.post("/api/v1/me/account")).status_code in (200, 201)
    await deliver(db)
    now = this_half()

    async def accounts(province: str) -> int:
        figures = await reporting.figures(session, now, province=province, cost_per_record=1)
        return int(figures["people"]["accounts"])

    assert (await accounts("01"), await accounts("79")) == (1, 0)
    await identity.set_residence(session, NATIONAL, person[0], "25747")
    await deliver(db)
    assert (await accounts("01"), await accounts("79")) == (0, 1)
    assert await reporting.check(session, now, None) == []

    assert (await client.post("/api/v1/me/account/close", json={})).status_code == 200
    await deliver(db)
    assert (await accounts("01"), await accounts("79")) == (0, 0)
    assert await reporting.check(session, now, None) == []


async def test_xlsx_totals_row(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """The form's "Tổng cộng" row sums each column: insured C..E, uninsured F..H."""
    code, headers = await facility_with_token(client, session, settings)
    await onboarded_on(session, code, JANUARY)
    for i, insured in enumerate([True, True, False]):
        ended = datetime(2026, 8, 3 + i, 10, 0)  # noqa: DTZ001
        one = visit_of(code, 800 + i, ended, care_type="01", insured=insured)
        sent = await send(client, headers, synth.envelope([one], code))
        assert sent.json()["status"] != "rejected", sent.text
    await deliver(db)
    await reporting.declare(
        session,
        ADMIN,
        "2026H2",
        code,
        {("outpatient_exam", True): 10, ("outpatient_exam", False): 5},
    )
    figures = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    form = openpyxl.load_workbook(io.BytesIO(reporting.to_xlsx(figures)))["Biểu báo cáo"]
    total = next(r for r in form.iter_rows(min_row=6, values_only=True) if r[1] == "Tổng cộng")
    assert total[2:8] == (10, 2, 2, 5, 1, 1)


async def test_facility_system_declares_with_report_write(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility's system declares the visits it made with a token of scope report.write
    (docs/report.md); a token without it may not."""
    body = [{"category": "outpatient_exam", "insured": True, "visits": 3}]
    code, headers = await facility_with_token(client, session, settings)
    error(
        await client.put(f"/api/v1/reports/2026H2/declared/{code}", json=body, headers=headers),
        403,
        "AUTH-0002",
    )
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "report.write")
    )
    await onboarded_on(session, code, JANUARY)
    put = await client.put(f"/api/v1/reports/2026H2/declared/{code}", json=body, headers=headers)
    assert put.status_code == 204, put.text
    figures = await reporting.figures(
        session, PERIOD, province="01", facility=code, cost_per_record=5000
    )
    assert figures["totals"]["made"] == 3


async def test_connected_is_the_state_at_the_end_of_the_period(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A facility connected since January and sending in 2026H1 is suspended today: 2026H1
    still counts it connected. A facility registered after 2026H1 is not in 2026H1's count."""
    code, headers = await facility_with_token(client, session, settings)
    await onboarded_on(session, code, JANUARY)
    one = visit_of(code, 700, datetime(2026, 5, 3, 10, 0), insured=True)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).json()["status"] != (
        "rejected"
    )
    await deliver(db)
    await facility_with_token(client, session, settings)  # registered and connected today
    await facilities.move(session, ADMIN, code, facilities.State.suspended, "vi phạm")

    def counted(figures: dict[str, Any]) -> tuple[int, int, int]:
        f = figures["facilities"]
        return f["with_code"], f["connected"], f["sending"]

    first_half = Period.parse("2026H1")
    assert counted(
        await reporting.figures(session, first_half, province="01", cost_per_record=1)
    ) == (1, 1, 1)
    assert counted(
        await reporting.figures(session, this_half(), province="01", cost_per_record=1)
    ) == (2, 1, 0)
    assert counted(
        await reporting.figures(session, Period.parse("2025H2"), province="01", cost_per_record=1)
    ) == (0, 0, 0)


async def test_bad_population_files_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Each bad line is refused with its line number, never stored, never a 500."""
    await sign_in_as(client, session, settings, DEPARTMENT, {"role": "department_admin"})
    header = "ward_code,population,as_of\n"
    for line, code in [
        ("00004,\u00b2,", "REP-0003"),  # a superscript two: str.isdigit says yes
        ("00004,\u0663\u0660,", "REP-0003"),  # Arabic-Indic digits
        ("00004,99999999999999999999999,", "REP-0003"),  # more than a BIGINT
        ("1111111111111111111111111111111111111111,10,", "REP-0003"),
        ("abcde,10,", "REP-0003"),
        ("99999,10,", "REP-0005"),  # no such ward: it would count in no province
        ("00004,10,2026-13-01", "REP-0006"),
    ]:
        answer = await client.post(
            "/api/v1/reports/population", content=(header + line + "\n").encode()
        )
        assert error(answer, 422, code)["detail"]["line"] == 2
    answer = await client.post(
        "/api/v1/reports/population", content=(header + "00004,20000,2026-01-01\n").encode()
    )
    assert answer.json() == {"loaded": 1}


async def test_a_bad_period_or_province_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Out-of-range years and province codes that are not two digits get a clear 422 from the
    API, the dashboard and the service the command line uses, not a 500 or an empty report."""
    await sign_in_as(client, session, settings, DEPARTMENT, {"role": "department_admin"})
    for url in [
        "/api/v1/reports/9999H2?province=01",
        "/api/v1/reports/9999H2.pdf?province=01",
        "/api/v1/reports/0001H1.csv?province=01",
        "/api/v1/reports/1999H2?province=01",
        "/api/v1/reports/%E0%A5%A8%E0%A5%A6%E0%A5%A8%E0%A5%ACH1?province=01",  # Devanagari
    ]:
        error(await client.get(url), 422, "REP-0001")
    page = await client.get("/department/report?period=9999H2")
    assert page.status_code == 422
    assert "REP-0001" in page.text
    page = await client.get("/department/report?period=2026H2&province=zz")
    assert page.status_code == 422
    assert "REP-0004" in page.text
    for province in ("1", "001", "zz"):
        with pytest.raises(BadProvince):
            await reporting.figures(session, PERIOD, province=province, cost_per_record=1)
    assert (await client.get("/api/v1/reports/2100H2?province=01")).status_code == 200


def pure_figures(lags: dict[str, str], notes: str = "") -> dict[str, Any]:
    """A report built from counters alone: five visits per facility, at the given lag bucket."""
    month = date(2026, 8, 1)
    counts = {}
    for code, bucket in lags.items():
        counts[(month, "01", "", code, "visits_sent", "outpatient_exam", "insured")] = 5
        counts[(month, "01", "", code, "lag", bucket, "")] = 5
    registry = [report.FacilityRow(code, f"CS {code}", "public", "", True) for code in lags]
    return report.build(
        report.Scope(PERIOD, "01"),
        counts,
        registry,
        population={},
        declared={},
        notes=notes,
        cost_per_record=5000,
    )


def test_visits_more_than_a_year_late_are_the_slowest() -> None:
    """A facility whose visits all come more than a year late is ranked slowest and shown as
    such, not as "no data" after a facility at two hours."""
    figures = pure_figures({"0100A": "120", "0100B": "more"})
    timeliness = figures["timeliness"]
    assert [s["facility"] for s in timeliness["slowest"]] == ["0100B", "0100A"]
    assert timeliness["slowest"][0]["median_minutes"] == report.BEYOND
    assert timeliness["p90_minutes"] == report.BEYOND
    assert "&gt; 1 năm" in reporting.html(figures, {}, fragment=True)
    sheet = openpyxl.load_workbook(io.BytesIO(reporting.to_xlsx(figures)))["Kịp thời"]
    values = {r[0]: r[1] for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert values["Bách phân vị 90 (phút, cận trên)"] == "> 525600"
    assert pure_figures({})["timeliness"]["median_minutes"] is None  # no visits: no lag


def test_notes_are_text_not_formulas() -> None:
    """The department's text is written as text, even when it starts with "="."""
    notes = "=Cần bổ sung kinh phí cho 12 trạm y tế"
    book = openpyxl.load_workbook(io.BytesIO(reporting.to_xlsx(pure_figures({}, notes))))
    cell = book["Khó khăn, kiến nghị"]["A2"]
    assert (cell.value, cell.data_type) == (notes, "s")
