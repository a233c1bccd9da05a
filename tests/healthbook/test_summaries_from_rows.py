"""The book's summary (``/api/v1/me/summary`` and the book's page) and the clinician's summary of
a patient read what each visit's timeline row keeps, and open only the visits whose medicines
they show (D231, D233): they give exactly what reading every visit in full gives the same
reader (the parent of a 17-year-old without the sensitive visits, D132; the clinician within
the sharing's categories, D35), lab trends included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_confided import FHIR, _young_person_with_two_visits
from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DOCTOR
from tests.submissions.test_intake import facility_with_token, send
from vnehr import catalogs, healthbook, identity, records
from vnehr.healthbook import service, view
from vnehr.kit.auth import Subject
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

SUMMARY = "/api/v1/me/summary"
Person = tuple[str, str, str, str]


def _subject(personal_id: str) -> Subject:
    return Subject(kind="person", id=personal_id, name="x", assurance_level=2)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M")


def _glucose(one: synth.SynthVisit, values: list[tuple[str, str, str]]) -> None:
    """Add glucose results (value, unit, NGAY_KQ) to a visit's XML4, after its own rows (an
    index no synthetic visit has)."""
    rows = one.tables["XML4"]
    model = rows[0]
    for value, unit, at in values:
        row = dict(model)
        row.update(
            STT=str(len(rows) + 1), MA_CHI_SO="GLUX", TEN_CHI_SO="(Thử) Glucose", GIA_TRI=value,
            DON_VI_DO=unit, NGAY_KQ=at, MO_TA="", KET_LUAN="",
        )  # fmt: skip
        rows.append(row)


async def patient_with_results(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[Person, int, str, dict[str, str]]:
    """An adult with seven visits at facility A over a year and a half (chronic care, drugs
    within and before the last 90 days, one visit of nine glucose results in a day, units
    written two ways, results at one time, one without a number) and a mental-health visit at
    facility B, with an allergy recorded in it and one recorded in no visit: the person, their
    id, facility A's code and its system's headers (it reads records)."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    other, other_headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    first = visit_of(code, 131, now - timedelta(days=500), care_type="01", age_group=3)
    visits = [first]
    for seed, days, care in ((132, 400, "07"), (133, 300, "03"), (134, 200, "02"),
                             (135, 100, "07"), (136, 40, "01"), (137, 4, "01")):  # fmt: skip
        visits.append(
            visit_of(code, seed, now - timedelta(days=days), first, care_type=care, age_group=3,
                     insured=True)
        )  # fmt: skip
    stay = visits[2]  # an inpatient stay: nine glucose results, two at one time
    start = datetime.strptime(stay.tables["XML1"][0]["NGAY_VAO"], "%Y%m%d%H%M")  # noqa: DTZ007
    _glucose(
        stay,
        [(f"{5 + n * 0.4:.1f}", "mmol/L", _at(start + timedelta(hours=2 + n))) for n in range(8)]
        + [("7.9", "mmol / L", _at(start + timedelta(hours=9))), ("high", "mmol/L", "")],
    )
    _glucose(visits[4], [("6.1", "mmol/L", ""), ("110", "mg/dL", "")])
    _glucose(visits[5], [("6.4", "mmol/L", visits[5].tables["XML4"][0]["NGAY_KQ"])])
    visits[-1].tables["XML1"][0]["NHOM_MAU"] = ""
    answer = await send(client, headers, synth.envelope(visits, code))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "accepted", answer.text
    mental = visit_of(other, 138, now - timedelta(days=20), first, care_type="01", age_group=3)
    for rows in mental.tables.values():
        for row in rows:
            if "MA_BENH_CHINH" in row:
                row["MA_BENH_CHINH"], row["MA_BENH_KT"] = "F32.2", ""
    mental.tables.pop("XML6", None)
    mental.tables.pop("XML15", None)
    answer = await send(client, other_headers, synth.envelope([mental], other))
    assert answer.json()["status"] == "accepted", answer.text
    person = who(first)
    await sign_in_as(client, session, settings, person)
    person_id = await identity.person_id_of(session, person[0])
    assert person_id is not None
    items = (await client.get("/api/v1/me/timeline")).json()["items"]
    [mental_id] = [i["id"] for i in items if i["main_diagnosis"]["code"] == "F32.2"]
    cookies = dict(client.cookies)
    client.cookies.clear()
    for substance, where, by in (("Penicillin", None, headers),
                                 ("Sertraline", mental_id, other_headers)):  # fmt: skip
        allergy: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": substance},
            "patient": {"reference": f"Patient/{person_id}"},
        }
        if where is not None:
            allergy["encounter"] = {"reference": f"Encounter/{where}"}
        written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=by)
        assert written.status_code == 201, written.text
    client.cookies.update(cookies)
    return person, person_id, code, headers


async def _from_every_visit(
    session: AsyncSession,
    person_id: int,
    name: str,
    personal_id: str | None,
    keep: Callable[[Any], bool],
    *,
    clinician: bool = False,
) -> dict[str, Any]:
    """The summary as reading every stored visit of the person in full makes it, with the
    visits ``keep`` lets through (and the allergies recorded in none or in one of those)."""
    entries = await records.entries_of(session, [person_id])
    versions = await records.versions_by_ids(session, [e.version_id for e in entries])
    kept = [e for e in entries if keep(versions[e.version_id].tables)]
    headers, _ = await service._headers(session, kept)
    pairs = [(h, versions[e.version_id].tables) for h, e in zip(headers, kept, strict=True)]
    titles = await catalogs.codebook(session)
    made = view.summary(name, personal_id, pairs, titles, now=utcnow())
    every = len(kept) == len(entries) and not clinician
    made.allergies = await service._allergies(
        session, person_id, None if every else {h.id for h, _ in pairs}
    )
    return orjson.loads(made.model_dump_json())


def _trend(summary: dict[str, Any], code: str, unit: str) -> dict[str, Any]:
    [found] = [t for t in summary["lab_trends"] if t["code"] == code and t["unit"] == unit]
    return found


async def test_the_book_summary_is_what_every_visit_makes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person, person_id, _, _ = await patient_with_results(client, session, settings)
    answer = await client.get(SUMMARY)
    assert answer.status_code == 200, answer.text
    given = answer.json()
    assert given == await _from_every_visit(
        session, person_id, person[1], person[0], lambda _: True
    )
    # (a summary with something in every part: the comparison compares something)
    # the newest six over the visits: one of each later visit (one without a time: the end of
    # its visit), then the stay's newest four (one unit written with a space; not the mg/dL)
    glucose = _trend(given, "GLUX", "mmol/L")
    assert [p["value"] for p in glucose["points"]] == [6.4, 6.1, 7.9, 7.8, 7.4, 7.0]
    assert len(given["lab_trends"]) == view.TRENDS_SHOWN
    assert {a["substance"] for a in given["allergies"]} == {"Penicillin", "Sertraline"}
    for part in ("current_medicines", "chronic_conditions", "measurements", "blood_group",
                 "risk_factors"):  # fmt: skip
        assert given[part], part
    assert "F32.2" in {v["main_diagnosis"]["code"] for v in given["last_visits"]}
    page = await client.get("/portal/book/summary")
    assert page.status_code == 200, page.text
    for trend in given["lab_trends"]:
        assert trend["name"] in page.text


async def test_a_parent_of_a_seventeen_year_old_gets_the_summary_without_what_is_withheld(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, _, _, _ = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 17)
    person_id = await identity.person_id_of(session, young[0])
    assert person_id is not None
    who_ = await healthbook.holder(session, _subject(AN[0]), young[0])
    today = today_in_vietnam()
    as_person(client, settings, AN[0])
    given = (await client.get(SUMMARY, params={"for": young[0]})).json()
    assert given == await _from_every_visit(
        session,
        person_id,
        who_.full_name,
        who_.personal_id,
        lambda tables: not records.withheld(who_, tables, today),
    )
    assert "Sertraline" not in orjson.dumps(given).decode()
    assert len(given["last_visits"]) == 1
    as_person(client, settings, young[0])
    own = (await client.get(SUMMARY)).json()
    assert "Sertraline" in orjson.dumps(own).decode()
    assert len(own["last_visits"]) == 2


@pytest.mark.parametrize("shared", [[], ["mental"]])
async def test_the_clinicians_summary_is_what_every_visit_shared_makes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, shared: list[str]
) -> None:
    person, person_id, _, _ = await patient_with_results(client, session, settings)
    reader, _ = await facility_with_token(client, session, settings)
    made = await client.post(
        "/api/v1/me/consents",
        json={"facility": reader, "scope": "full", "sensitive": shared},
    )
    assert made.status_code == 201, made.text
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": reader}
    )
    view_ = (await client.get(f"/api/v1/patients/{person[0]}/record")).json()
    allowed = frozenset(shared)
    assert view_["summary"] == await _from_every_visit(
        session,
        person_id,
        person[1],
        person[0],
        lambda tables: records.sensitive_categories(tables) <= allowed,
        clinician=True,
    )
    mine = {i["id"] for i in (await _timeline(client, session, settings, person))}
    listed = {v["id"] for v in view_["visits"]}
    if shared:
        assert listed == mine
        assert "Sertraline" in orjson.dumps(view_["summary"]).decode()
    else:
        assert len(listed) == len(mine) - 1
        assert "Sertraline" not in orjson.dumps(view_["summary"]).decode()
    assert _trend(view_["summary"], "GLUX", "mmol/L")["points"]


async def _timeline(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, person: Person
) -> list[dict[str, Any]]:
    await sign_in_as(client, session, settings, person)
    items: list[dict[str, Any]] = (
        await client.get("/api/v1/me/timeline", params={"limit": 100})
    ).json()["items"]
    return items


# ------------------------------------------------------------------ what is opened


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the database receives, with its parameters (the app runs on the
    test's connection)."""
    seen: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        seen.append((str(args[2]), args[3]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def opened(seen: list[tuple[str, Any]]) -> set[int]:
    """The stored visits (version ids) whose tables the statements read."""
    found: set[int] = set()
    for statement, params in seen:
        if statement.lstrip().upper().startswith("SELECT") and "visit_version.tables" in statement:
            values = params.values() if isinstance(params, dict) else params or ()
            found |= {p for p in values if isinstance(p, int) and not isinstance(p, bool)}
    return found


async def old_visits(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, count: int
) -> tuple[Person, dict[str, str], str]:
    """An adult with ``count`` visits at one facility, all before the last 90 days, each with
    results, services and the same diagnoses, none with a weight (0); signed in."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    first = visit_of(code, 300, now - timedelta(days=400), care_type="02", age_group=3)
    made = [first] + [
        visit_of(code, 301 + n, now - timedelta(days=390 - 10 * n), first, care_type="02",
                 age_group=3, insured=True)
        for n in range(count - 1)
    ]  # fmt: skip
    for one in made:
        for rows in one.tables.values():
            for row in rows:
                if "MA_BENH_CHINH" in row:
                    row.update(MA_BENH_CHINH="I10", MA_BENH_KT="E11.9",
                               CHAN_DOAN_RV="Tăng huyết áp; Đái tháo đường")  # fmt: skip
                if "CAN_NANG" in row:
                    row["CAN_NANG"] = "0"
        assert one.tables.get("XML4")
        assert one.tables.get("XML3")
    answer = await send(client, headers, synth.envelope(made, code))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "accepted", answer.text
    person = who(first)
    await sign_in_as(client, session, settings, person)
    return person, headers, code


async def test_the_summaries_open_no_visit_without_a_current_medicine(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[tuple[str, Any]],
) -> None:
    person, _, _ = await old_visits(client, session, settings, 12)
    reader, _ = await facility_with_token(client, session, settings)
    made = await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "full"})
    assert made.status_code == 201, made.text
    statements.clear()
    summary = await client.get(SUMMARY)
    assert summary.status_code == 200, summary.text
    assert summary.json()["lab_trends"]  # read from the rows
    assert opened(statements) == set()
    statements.clear()
    page = await client.get("/portal/book/summary")
    assert page.status_code == 200, page.text
    assert opened(statements) == set()
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": reader}
    )
    statements.clear()
    record = await client.get(f"/api/v1/patients/{person[0]}/record")
    assert record.status_code == 200, record.text
    assert len(record.json()["visits"]) == 12
    assert opened(statements) == set()


async def test_a_row_that_does_not_know_its_visit_has_it_opened(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[tuple[str, Any]],
) -> None:
    """A row stored before 0030 or kept in an older form of the facts (FORM 1: no results)
    has its visit opened, and the summary is still what every visit makes."""
    from sqlalchemy import update

    from vnehr.records.models import TimelineEntry

    person, person_id, _, _ = await patient_with_results(client, session, settings)
    rows = sorted(await records.entries_of(session, [person_id]), key=lambda r: r.id)
    t = TimelineEntry
    older = rows[2].summary_facts
    assert older is not None
    assert older.startswith("2|")
    await session.execute(
        update(t).where(t.id == rows[2].id).values(summary_facts="1|" + older[2:])
    )
    await session.execute(update(t).where(t.id == rows[3].id).values(summary_facts=None))
    await session.flush()
    statements.clear()
    given = (await client.get(SUMMARY)).json()
    assert {rows[2].version_id, rows[3].version_id} <= opened(statements)
    assert given == await _from_every_visit(
        session, person_id, person[1], person[0], lambda _: True
    )
