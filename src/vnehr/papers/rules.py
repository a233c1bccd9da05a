"""The rules of the electronic papers: validity windows, single use, limits, number formats.
Pure: no database, no clock (the day is always passed in). Used twice: by the intake, on the
paper tables of a visit file (XML7, XML9, XML11, XML13, XML14), and by the papers API.

Every finding has a stable code (``PAP-01xx``) whose Vietnamese and English texts are in the
catalogues; the choices where the national rules are unclear are decisions D37-D42.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Any, Protocol

import holidays

from vnehr.kit.clock import parse_day, parse_moment

Rows = Mapping[str, list[dict[str, str]]]

#: Paper kinds, their tables and the field holding the paper's number.
KINDS: Mapping[str, tuple[str | None, str | None]] = {
    "driver": (None, None),  # TT 36/2024: no XML table, its own API
    "referral": ("XML13", "GIAY_CHUYEN_TUYEN"),
    "re_exam": ("XML14", "SO_GIAYHEN_KL"),
    "sick_leave": ("XML11", "SO_CT"),
    "birth": ("XML9", "SO"),
    "discharge": ("XML7", "SO_LUU_TRU"),
}
TABLE_KINDS = {table: kind for kind, (table, _) in KINDS.items() if table}

#: A referral is valid this many working days after the day it is signed (D38).
REFERRAL_WORKING_DAYS = 10
#: An appointment may be attended up to this many working days after its date (D39).
RE_EXAM_GRACE_WORKING_DAYS = 10
#: Sick leave, outpatient: at most this many days per certificate ...
SICK_LEAVE_DAYS = 30
#: ... longer only for these cases (ICD-10 prefix -> days): pregnancy losses and TB (D40).
SICK_LEAVE_LONGER: Mapping[str, int] = {
    **{f"O0{n}": 50 for n in range(9)},  # O00-O08: pregnancy with abortive outcome
    **{f"A{n}": 180 for n in range(15, 20)},  # A15-A19: tuberculosis
}
#: Care types (MA_LOAI_KCB) that are inpatient; sick-leave certificates are outpatient only.
INPATIENT_CARE = frozenset({"03", "04", "09"})
#: Driving-licence classes of the 2024 road traffic law (from 2025-01-01).
LICENCE_CLASSES = frozenset(
    {"A1", "A", "B1", "B", "C1", "C", "D1", "D2", "D", "BE", "C1E", "CE", "D1E", "D2E", "DE"}
)
DRIVER_VALID_MONTHS = 12
#: Birth certificates from TT 22/2025 (2025-10-01): ``XXXXX.GCS.ZZZZZ.YY``.
BIRTH_NUMBER = re.compile(r"^(\d{5})\.GCS\.([0-9A-Z]{5})\.(\d{2})$")
BIRTH_NUMBER_FROM = date(2025, 10, 1)


class Sink(Protocol):
    """Where findings go (the intake's ``Findings``, or a list in the papers API)."""

    def error(
        self,
        code: str,
        table: str | None = None,
        row: int | None = None,
        field_: str | None = None,
        **params: Any,
    ) -> None: ...

    def warning(
        self,
        code: str,
        table: str | None = None,
        row: int | None = None,
        field_: str | None = None,
        **params: Any,
    ) -> None: ...


# ------------------------------------------------------------------ calendar


@cache
def _calendar(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off, Saturdays and Sundays worked) of a year: the government moves a day off
    next to a holiday and has a weekend day worked in its place (Sat 2025-04-26 for Fri 2 May)."""
    found = holidays.country_holidays("VN", years=year)
    return frozenset(found.keys()), frozenset(found.weekend_workdays)


def load_calendar(today: date) -> None:
    """Load this year's and next year's holidays now (the first call loads the ``holidays``
    package's Vietnamese calendar: about 0.2 s), so that no visit's request pays for it."""
    _calendar(today.year)
    _calendar(today.year + 1)


def is_working_day(day: date) -> bool:
    """Monday to Friday that is not a Vietnamese public holiday (Tết and the rest, with the
    days off the government moves), or a weekend day the government has worked in exchange
    (from the ``holidays`` library's calendar, as its own ``is_working_day``)."""
    off, worked = _calendar(day.year)
    return day in worked if day.weekday() >= 5 else day not in off


def add_working_days(start: date, count: int) -> date:
    """The ``count``-th working day after ``start`` (``start`` itself is not counted: a period
    in days begins the day after the event, Civil Code art. 147)."""
    day = start
    left = count
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the last day of the month when it has fewer days)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ referral


@cache
def _chronic() -> tuple[str, ...]:
    raw = resources.files("vnehr.papers").joinpath("data/chronic_referral.json").read_text()
    return tuple(sorted(json.loads(raw)["icd10_prefixes"]))


def chronic_referral(codes: list[str]) -> bool:
    """A referral for a disease of the chronic list is valid one year (D38)."""
    prefixes = _chronic()
    return any(code.strip().upper().startswith(prefixes) for code in codes if code.strip())


def referral_valid_until(signed: date, diagnoses: list[str]) -> date:
    if chronic_referral(diagnoses):
        return add_months(signed, 12) - timedelta(days=1)
    return add_working_days(signed, REFERRAL_WORKING_DAYS)


def re_exam_valid_until(appointment: date) -> date:
    return add_working_days(appointment, RE_EXAM_GRACE_WORKING_DAYS)


def sick_leave_limit(diagnoses: list[str]) -> int:
    limit = SICK_LEAVE_DAYS
    for code in diagnoses:
        for prefix, days in SICK_LEAVE_LONGER.items():
            if code.strip().upper().startswith(prefix):
                limit = max(limit, days)
    return limit


def driver_valid_until(examined: date) -> date:
    return add_months(examined, DRIVER_VALID_MONTHS) - timedelta(days=1)


# ------------------------------------------------------------------ the paper tables of a visit


@dataclass(frozen=True, slots=True)
class Window:
    """The days a paper can be used (``until`` None: it does not expire)."""

    signed: date
    valid_from: date
    until: date | None


def _codes(xml1: Mapping[str, str]) -> list[str]:
    main = (xml1.get("MA_BENH_CHINH") or "").strip()
    other = [c for c in (xml1.get("MA_BENH_KT") or "").split(";") if c.strip()]
    return [main, *other] if main else other


def _day(value: str | None) -> date | None:
    if not value:
        return None
    return parse_day(value.strip()) or (m.date() if (m := parse_moment(value.strip())) else None)


def window(kind: str, row: Mapping[str, str], xml1: Mapping[str, str]) -> Window | None:
    """When a paper of a visit is valid; None when its dates cannot be read (the format rules
    have already said why)."""
    ended = _day(xml1.get("NGAY_RA")) or _day(xml1.get("NGAY_VAO"))
    signed = _day(row.get("NGAY_CT")) or ended
    if signed is None:
        return None
    if kind == "referral":  # XML13 has no signing date: the referral is signed at discharge
        return Window(signed, signed, referral_valid_until(signed, _codes(xml1)))
    if kind == "re_exam":
        appointment = _day(row.get("NGAY_HEN_KL"))
        if appointment is None:
            return None
        return Window(signed, signed, re_exam_valid_until(appointment))
    if kind == "sick_leave":
        start, end = _day(row.get("TU_NGAY")), _day(row.get("DEN_NGAY"))
        if start is None or end is None:
            return None
        return Window(signed, start, end)
    return Window(signed, signed, None)  # birth, discharge: records, they do not expire


def check_visit_papers(found: Sink, tables: Rows, facility: str) -> None:
    """The paper rules over the paper tables of one visit."""
    xml1 = (tables.get("XML1") or [{}])[0]
    for index, row in enumerate(tables.get("XML11") or [], start=1):
        _check_sick_leave(found, index, row, xml1)
    for index, row in enumerate(tables.get("XML14") or [], start=1):
        _check_re_exam(found, index, row, xml1, facility)
    for index, row in enumerate(tables.get("XML13") or [], start=1):
        _check_referral(found, index, row, xml1, facility)
    for index, row in enumerate(tables.get("XML9") or [], start=1):
        _check_birth(found, index, row, facility)
    for index, row in enumerate(tables.get("XML7") or [], start=1):
        _check_discharge(found, index, row)


def _check_sick_leave(
    found: Sink, index: int, row: Mapping[str, str], xml1: Mapping[str, str]
) -> None:
    care = (xml1.get("MA_LOAI_KCB") or "").strip()
    if care in INPATIENT_CARE:
        found.error("PAP-0101", "XML11", index, "MA_LK", care=care)
    start, end = _day(row.get("TU_NGAY")), _day(row.get("DEN_NGAY"))
    days = (row.get("SO_NGAY_NGHI") or "").strip()
    if start is None or end is None or not days.isdigit():
        return  # the format rules name the field
    if end < start:
        found.error("PAP-0102", "XML11", index, "DEN_NGAY", start=start, end=end)
        return
    if (end - start).days + 1 != int(days):
        found.error(
            "PAP-0103", "XML11", index, "SO_NGAY_NGHI", days=days, counted=(end - start).days + 1
        )
    limit = sick_leave_limit(_codes(xml1))
    if int(days) > limit:
        found.error("PAP-0104", "XML11", index, "SO_NGAY_NGHI", days=days, limit=limit)
    visited = _day(xml1.get("NGAY_VAO"))
    if visited is not None and start != visited:
        found.error("PAP-0105", "XML11", index, "TU_NGAY", start=start, visited=visited)
    born = _day(xml1.get("NGAY_SINH"))
    if (
        born is not None
        and add_months(born, 7 * 12) > start
        and not ((row.get("HO_TEN_CHA") or "").strip() or (row.get("HO_TEN_ME") or "").strip())
    ):
        found.error("PAP-0106", "XML11", index, "HO_TEN_ME")
    mau = (row.get("MAU_SO") or "").strip()
    if mau and mau != "CT07":
        found.error("PAP-0107", "XML11", index, "MAU_SO", value=mau)


def _check_re_exam(
    found: Sink, index: int, row: Mapping[str, str], xml1: Mapping[str, str], facility: str
) -> None:
    issuer = (row.get("MA_CSKCB") or "").strip()
    if issuer and issuer != facility:
        found.error("PAP-0108", "XML14", index, "MA_CSKCB", value=issuer, expected=facility)
    appointment = parse_moment((row.get("NGAY_HEN_KL") or "").strip())
    ended = parse_moment((xml1.get("NGAY_RA") or "").strip())
    if appointment and ended and appointment < ended:
        found.error(
            "PAP-0109",
            "XML14",
            index,
            "NGAY_HEN_KL",
            appointment=row["NGAY_HEN_KL"],
            ended=xml1["NGAY_RA"],
        )
    signed, visited = _day(row.get("NGAY_CT")), _day(xml1.get("NGAY_VAO"))
    if signed and visited and signed < visited:
        found.error("PAP-0110", "XML14", index, "NGAY_CT", signed=signed, visited=visited)


def _check_referral(
    found: Sink, index: int, row: Mapping[str, str], xml1: Mapping[str, str], facility: str
) -> None:
    issuer = (row.get("MA_CSKCB") or "").strip()
    if issuer and issuer != facility:
        found.error("PAP-0108", "XML13", index, "MA_CSKCB", value=issuer, expected=facility)
    for name in ("MA_NOI_DEN", "MA_BENH_CHINH", "NGAY_RA"):
        mine, summary = (row.get(name) or "").strip(), (xml1.get(name) or "").strip()
        if mine and mine != summary:
            found.error("PAP-0111", "XML13", index, name, value=mine, expected=summary)
    destination = (row.get("MA_NOI_DEN") or xml1.get("MA_NOI_DEN") or "").strip()
    if destination == facility:
        found.error("PAP-0112", "XML13", index, "MA_NOI_DEN", value=destination)


def _check_birth(found: Sink, index: int, row: Mapping[str, str], facility: str) -> None:
    signed = _day(row.get("NGAY_CT"))
    number = (row.get("SO") or "").strip()
    if signed is None or signed < BIRTH_NUMBER_FROM or not number:
        return
    match = BIRTH_NUMBER.match(number)
    if match is None:
        found.error("PAP-0113", "XML9", index, "SO", value=number)
    elif match.group(2) != facility or match.group(3) != f"{signed.year % 100:02d}":
        found.error(
            "PAP-0114",
            "XML9",
            index,
            "SO",
            value=number,
            facility=facility,
            year=f"{signed.year % 100:02d}",
        )
    born = parse_moment((row.get("NGAY_SINH_CON") or "").strip())
    if born is not None and born.date() > signed:
        found.error("PAP-0115", "XML9", index, "NGAY_SINH_CON", born=born.date(), signed=signed)


def _check_discharge(found: Sink, index: int, row: Mapping[str, str]) -> None:
    leave = ("SO_NGAY_NGHI", "NGOAITRU_TUNGAY", "NGOAITRU_DENNGAY")
    given = [name for name in leave if (row.get(name) or "").strip()]
    if given and len(given) != len(leave):
        missing = next(name for name in leave if name not in given)
        found.error("PAP-0116", "XML7", index, missing)
    if (row.get("MA_DINH_CHI_THAI") or "").strip() == "1":
        for name in ("NGUYENNHAN_DINHCHI", "THOIGIAN_DINHCHI", "TUOI_THAI"):
            if not (row.get(name) or "").strip():
                found.error("PAP-0117", "XML7", index, name)
        weeks = (row.get("TUOI_THAI") or "").strip()
        if weeks.isdigit() and not 1 <= int(weeks) <= 42:
            found.error("PAP-0118", "XML7", index, "TUOI_THAI", value=weeks)


# ------------------------------------------------------------------ driver's health certificate


def check_driver(
    found: Sink,
    *,
    examined: date,
    today: date,
    classes: list[str],
    drug_test: str,
    alcohol: str,
    conclusion: str,
) -> None:
    """TT 36/2024: the licence classes exist, the exam is not in the future nor so old that the
    certificate (valid 12 months from it) has already expired, and a positive drug or alcohol
    test cannot end in "fit to drive"."""
    for value in classes:
        if value not in LICENCE_CLASSES:
            found.error("PAP-0120", field_="classes", value=value)
    if not classes:
        found.error("PAP-0120", field_="classes", value="")
    if examined > today:
        found.error("PAP-0121", field_="examined_on", value=examined)
    elif driver_valid_until(examined) < today:
        until = driver_valid_until(examined)
        found.error("PAP-0123", field_="examined_on", value=examined, until=until)
    if conclusion == "fit" and (drug_test == "positive" or alcohol == "positive"):
        found.error("PAP-0122", field_="conclusion")
