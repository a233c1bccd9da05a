"""The report for a caller: who may see which province, the inputs besides the counters
(registry, population, declared visits, notes), the consistency check, and the inputs' upkeep."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs, facilities, identity
from vnehr.kit.auth import Forbidden, Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.db import TURNS_NOTES, take_turns
from vnehr.reporting import errors, report, rollup
from vnehr.reporting.metrics import CATEGORIES, Period
from vnehr.reporting.models import DeclaredVisits, ReportNote, WardPopulation

Source = Literal["rollups", "recount"]


def period_of(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise errors.BadPeriod(period=text) from exc


def check_province(province: str | None) -> None:
    """A province code is two digits (the API checks the same pattern): the command line and
    the dashboard take any text, and a code that matches nothing would give an empty report
    that looks real."""
    if province is not None and not re.fullmatch(r"[0-9]{2}", province):
        raise errors.BadProvince(province=province[:20])


def require_reader(subject: Subject, province: str | None) -> None:
    """The department of the province, or a national administrator (the whole country)."""
    if province is None:
        if not subject.is_national_admin():
            raise Forbidden(action="see the national report")
    elif not subject.is_department_admin(province):
        raise Forbidden(action=f"see the report of province {province}")


async def _ward_names(session: AsyncSession, wards: set[str], on: date) -> dict[str, str]:
    """The wards' names on ``on`` (a code unknown then is left out), from one read of the
    catalogue: a lookup per ward queried the database once for each of a province's wards."""
    book = await catalogs.codebook(session)
    found = {ward: book.in_force("ward", ward.strip(), on) for ward in wards if ward}
    return {ward: v.title_vi or "" for ward, v in found.items() if v is not None}


async def build(
    session: AsyncSession,
    subject: Subject,
    period_text: str,
    *,
    province: str | None,
    ward: str | None = None,
    facility: str | None = None,
    cost_per_record: int,
    source: Source = "rollups",
) -> dict[str, Any]:
    check_province(province)
    require_reader(subject, province)
    return await figures(
        session,
        period_of(period_text),
        province=province,
        ward=ward,
        facility=facility,
        cost_per_record=cost_per_record,
        source=source,
    )


async def figures(
    session: AsyncSession,
    period: Period,
    *,
    province: str | None,
    ward: str | None = None,
    facility: str | None = None,
    cost_per_record: int,
    source: Source = "rollups",
) -> dict[str, Any]:
    """The report (no caller check: the command line and the tests). The figures are worked
    out in a thread: with thousands of facilities they take a CPU for a while, and on the
    event loop every other request of the process (intake too) would wait."""
    check_province(province)
    scope = report.Scope(period, province, ward, facility)
    if source == "rollups":
        counts = await rollup.summed(session, period, province, ward=ward, facility=facility)
    else:
        counts = await rollup.recount(session, period, province)
    # the registry as it was at the end of the period (registered by then, connected then)
    states = await facilities.states_at(session, province, period.bounds_utc()[1])
    registry = [
        report.FacilityRow(
            f.code,
            f.name,
            f.ownership.value,
            f.ward_code or "",
            states[f.code] == facilities.State.connected,
        )
        for f in await facilities.registry(session, province)
        if f.code in states
    ]
    in_scope = {f.code for f in registry if scope.keeps(f.ward, f.code)}
    population = {
        row.ward_code: row.population
        for row in await session.scalars(
            select(WardPopulation).where(
                *([WardPopulation.province == province] if province else [])
            )
        )
    }
    declared: dict[tuple[str, str], int] = defaultdict(int)
    for row in await session.scalars(
        select(DeclaredVisits).where(DeclaredVisits.period == period.name)
    ):
        if row.facility_code in in_scope:
            declared[(row.category, "insured" if row.insured else "uninsured")] += row.visits
    note = await session.scalar(
        select(ReportNote.text).where(
            ReportNote.period == period.name, ReportNote.province == (province or "")
        )
    )
    wards = {f.ward for f in registry} | set(population) | {k[2] for k in counts} | {ward or ""}
    ward_names = await _ward_names(session, wards, period.end)
    return await anyio.to_thread.run_sync(
        functools.partial(
            report.build,
            scope,
            counts,
            registry,
            population=population,
            declared=declared,
            notes=note or "",
            cost_per_record=cost_per_record,
            ward_names=ward_names,
        )
    )


@dataclass(frozen=True, slots=True)
class Checked:
    """The check of a period: every counter that differs, and how many events the report's
    consumer has not taken yet (their counts are in the comparison)."""

    differences: list[dict[str, Any]]
    waiting: int


async def checked(session: AsyncSession, period: Period, province: str | None) -> Checked:
    """Every counter whose rollup, with what the events not delivered yet will add, differs
    from the recount of the stored rows (none: the rollups are right, or will be once those
    events are delivered), read in one snapshot (D141). First in its transaction."""
    check_province(province)
    await rollup.one_snapshot(session)
    kept = await rollup.stored(session, period, province)
    waiting, coming = await rollup.waiting(session, period, province)
    counted = await rollup.recount(session, period, province)
    found = []
    for key in sorted(set(kept) | set(coming) | set(counted)):
        if kept.get(key, 0) + coming.get(key, 0) != counted.get(key, 0):
            month, prov, ward, fac, metric, dim1, dim2 = key
            found.append(
                {
                    "month": month.isoformat(),
                    "province": prov,
                    "ward": ward,
                    "facility": fac,
                    "metric": metric,
                    "dim1": dim1,
                    "dim2": dim2,
                    "rollup": kept.get(key, 0),
                    "waiting": coming.get(key, 0),
                    "recount": counted.get(key, 0),
                }
            )
    return Checked(found, waiting)


async def check(
    session: AsyncSession, period: Period, province: str | None
) -> list[dict[str, Any]]:
    """Every counter whose rollup differs from the recount of the stored rows, counting what
    the events not delivered yet will add (empty: the rollups are right)."""
    return (await checked(session, period, province)).differences


# ------------------------------------------------------------------ inputs


async def set_notes(
    session: AsyncSession, subject: Subject, period_text: str, province: str | None, text: str
) -> None:
    check_province(province)
    require_reader(subject, province)
    period = period_of(period_text)
    # the first notes of a period sent twice at once: the second waits, then updates the row
    await take_turns(session, TURNS_NOTES, f"notes:{period.name}:{province or ''}")
    row = await session.scalar(
        select(ReportNote).where(
            ReportNote.period == period.name, ReportNote.province == (province or "")
        )
    )
    if row is None:
        row = ReportNote(
            period=period.name, province=province or "", text="", updated_at=utcnow(), updated_by=""
        )
        session.add(row)
    row.text, row.updated_at, row.updated_by = text, utcnow(), subject.label


async def declare(
    session: AsyncSession,
    subject: Subject,
    period_text: str,
    facility_code: str,
    counts: dict[tuple[str, bool], int],
) -> int:
    """The visits a facility made in a period (its own figures), by care category and
    insured/uninsured; its staff, its system (scope ``report.write``) or its department."""
    period = period_of(period_text)
    [info] = (await facilities.directory(session, [facility_code])).values() or [None]
    if info is None:
        raise facilities.UnknownFacility(code=facility_code)
    allowed = subject.acts_for_facility(facility_code, ("facility_admin",)) and (
        subject.kind != "facility_system" or "report.write" in subject.scopes
    )
    if not allowed and not subject.is_department_admin(info.province_code):
        raise Forbidden(action="declare this facility's visits")
    # a declaration sent twice at once: the second waits, then updates the rows the first made
    await take_turns(session, TURNS_NOTES, f"declared:{period.name}:{facility_code}")
    for (category, insured), visits in counts.items():
        if category not in CATEGORIES:
            raise errors.BadCategory(category=category)
        row = await session.scalar(
            select(DeclaredVisits).where(
                DeclaredVisits.period == period.name,
                DeclaredVisits.facility_code == facility_code,
                DeclaredVisits.category == category,
                DeclaredVisits.insured.is_(insured),
            )
        )
        if row is None:
            row = DeclaredVisits(
                period=period.name,
                facility_code=facility_code,
                category=category,
                insured=insured,
                visits=0,
                declared_at=utcnow(),
                declared_by="",
            )
            session.add(row)
        row.visits, row.declared_at, row.declared_by = visits, utcnow(), subject.label
    return len(counts)


async def load_population(session: AsyncSession, text: str) -> int:
    """Ward populations from a CSV with a header ``ward_code,population[,as_of]`` (the
    province is read from the ward catalogue). Replaces the wards it names. Every line is
    checked before it is stored: ASCII digits only (``str.isdigit`` takes "²" and "٣٠"), a
    population that fits the column, a real date, a ward in force (a ward without a province
    would count in no province's report)."""
    loaded = 0
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        ward = (row.get("ward_code") or "").strip()
        people = (row.get("population") or "").strip()
        if not re.fullmatch(r"[0-9]{5}", ward) or not re.fullmatch(r"[0-9]{1,12}", people):
            raise errors.BadPopulation(line=line)
        as_of_text = (row.get("as_of") or "").strip()
        try:
            as_of = date.fromisoformat(as_of_text) if as_of_text else None
        except ValueError as exc:
            raise errors.BadPopulationDate(line=line, as_of=as_of_text[:30]) from exc
        province = await identity.province_of_ward(session, ward)
        if not province:
            raise errors.UnknownPopulationWard(line=line, ward=ward)
        found = await session.get(WardPopulation, ward)
        if found is None:
            found = WardPopulation(ward_code=ward, province=province, population=0)
            session.add(found)
        found.province, found.population, found.as_of = province, int(people), as_of
        loaded += 1
    return loaded
