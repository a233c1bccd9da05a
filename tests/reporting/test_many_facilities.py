"""The report of a province with thousands of facilities: counters written straight into the
rollups (as the intake and the consumers leave them), and every figure that is kept per
facility checked: who is sending, by ward, and the ten slowest facilities in their order
(D43, D70: beyond a year first, then the longest median, then the most visits, then the
code). How fast it is made is measured by ``python -m bench report-facilities``."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import sign_in_as
from tests.reporting.test_report import DEPARTMENT, JANUARY, PERIOD
from vnehr import reporting
from vnehr.facilities.models import Facility, OnboardingEvent
from vnehr.kit.settings import Settings
from vnehr.reporting.models import ReportCount

FACILITIES = 3_000
WARDS = ("00004", "00070", "00097")
JULY, AUGUST, DECEMBER = date(2026, 7, 1), date(2026, 8, 1), date(2026, 12, 1)
JUNE = date(2026, 6, 1)  # the previous period


def code(n: int) -> str:
    return f"T{n:04d}"


#: The facilities that differ from the rest, by number: {month: {lag bucket: visits}}.
SLOW: dict[int, dict[date, dict[str, int]]] = {
    2871: {JULY: {"more": 3}},  # all beyond a year: slowest, 3 visits
    17: {JULY: {"more": 2}, DECEMBER: {"more": 3}},  # beyond a year, 5 visits: before 2871
    1203: {DECEMBER: {"525600": 4}},  # within a year
    44: {JULY: {"60": 2}, AUGUST: {"43200": 3}},  # median in the 30-day bucket
    2999: {JULY: {"5": 1, "10080": 1}, DECEMBER: {"10080": 1}},  # median: 7 days
    # 2 hours, as most facilities, but more visits than them: ranked by visits
    1500: {JULY: {"120": 6}, AUGUST: {"120": 6}},
    333: {JULY: {"120": 5}, AUGUST: {"120": 5}},
    1: {JULY: {"120": 5}, AUGUST: {"120": 5}},  # as 333: by code
    2500: {JULY: {"120": 4}, AUGUST: {"120": 4}},
}
#: The order of the ten slowest: (facility number, median, visits). The tenth is the first
#: by code of the facilities with two visits at two hours.
EXPECTED = [
    (17, "more", 5),
    (2871, "more", 3),
    (1203, 525600, 4),
    (44, 43200, 5),
    (2999, 10080, 3),
    (1500, 120, 12),
    (1, 120, 10),
    (333, 120, 10),
    (2500, 120, 8),
    (0, 120, 2),
]
#: Sends nothing in the period: slow only in June (not counted), no visit since.
SILENT = 2222


def counters_of(n: int) -> list[dict[str, Any]]:
    months = SLOW.get(n, {JULY: {"120": 1}, AUGUST: {"120": 1}})
    if n == SILENT:
        months = {JUNE: {"more": 9}}
    ward = WARDS[n % len(WARDS)]
    rows = []
    for month, lags in months.items():
        for bucket, visits in lags.items():
            rows.append(counter(month, ward, code(n), "lag", bucket, "", visits))
        rows.append(
            counter(
                month,
                ward,
                code(n),
                "visits_sent",
                "outpatient_exam",
                "insured",
                sum(lags.values()),
            )
        )
    return rows


def counter(
    month: date, ward: str, facility: str, metric: str, dim1: str, dim2: str, value: int
) -> dict[str, Any]:
    return {
        "month": month,
        "province": "01",
        "ward": ward,
        "facility": facility,
        "metric": metric,
        "dim1": dim1,
        "dim2": dim2,
        "value": value,
    }


async def many_facilities(session: AsyncSession) -> None:
    """``FACILITIES`` facilities of Hanoi connected since January, with their counters."""
    facilities = [
        {
            "code": code(n),
            "name": f"Phòng khám {n}",
            "kind": "polyclinic",
            "level": "basic",
            "ownership": "private" if n % 2 else "public",
            "ward_code": WARDS[n % len(WARDS)],
            "province_code": "01",
            "status": "connected",
            "issued": False,
            "created_at": JANUARY,
            "created_by": "test",
        }
        for n in range(FACILITIES)
    ]
    events = [
        {"facility_code": f["code"], "to_state": "connected", "actor": "test", "at": JANUARY}
        for f in facilities
    ]
    counters = [row for n in range(FACILITIES) for row in counters_of(n)]
    for table, rows in ((Facility, facilities), (OnboardingEvent, events), (ReportCount, counters)):
        for start in range(0, len(rows), 500):
            await session.execute(insert(table), rows[start : start + 500])


def slowest(figures: dict[str, Any]) -> list[tuple[str, Any, int]]:
    return [
        (s["facility"], s["median_minutes"], s["visits"]) for s in figures["timeliness"]["slowest"]
    ]


async def test_the_figures_of_thousands_of_facilities(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await many_facilities(session)
    figures = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)

    assert slowest(figures) == [(code(n), median, visits) for n, median, visits in EXPECTED]
    assert figures["timeliness"]["slowest"][0]["name"] == "Phòng khám 17"
    facilities = figures["facilities"]
    assert (facilities["with_code"], facilities["connected"]) == (FACILITIES, FACILITIES)
    assert facilities["sending"] == FACILITIES - 1  # all but the silent one
    assert facilities["by_ownership"]["public"]["sending"] == FACILITIES // 2 - 1  # 2222 is even
    by_ward = {w["ward"]: w for w in facilities["by_ward"]}
    assert {w: (x["with_code"], x["sending"]) for w, x in by_ward.items()} == {
        "00004": (1000, 1000),
        "00070": (1000, 1000),
        "00097": (1000, 999),  # 2222 % 3 == 2
    }
    sent = 2 * (FACILITIES - 1 - len(SLOW)) + sum(
        v for months in SLOW.values() for lags in months.values() for v in lags.values()
    )
    assert figures["totals"]["sent"] == sent
    histogram = {h["up_to_minutes"]: h["visits"] for h in figures["timeliness"]["histogram"]}
    assert histogram[None] == 8  # beyond a year: 17 and 2871; not June's 9
    assert figures["timeliness"]["median_minutes"] == 120

    # narrowed to a ward, or to a facility, only theirs are ranked
    ward = await reporting.figures(
        session, PERIOD, province="01", ward="00097", cost_per_record=5000
    )
    assert slowest(ward)[:4] == [
        (code(17), "more", 5),
        (code(44), 43200, 5),
        (code(2999), 10080, 3),
        (code(2), 120, 2),
    ]
    assert (ward["facilities"]["with_code"], ward["facilities"]["sending"]) == (1000, 999)
    one = await reporting.figures(
        session, PERIOD, province="01", facility=code(44), cost_per_record=5000
    )
    assert slowest(one) == [(code(44), 43200, 5)]
    assert one["totals"]["sent"] == 5

    # the department reads the same through the API
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    answer = await client.get("/api/v1/reports/2026H2?province=01")
    assert answer.status_code == 200, answer.text
    assert slowest(answer.json()) == [(code(n), median, visits) for n, median, visits in EXPECTED]
