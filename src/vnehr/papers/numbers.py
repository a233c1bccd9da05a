"""Papers' numbers. A paper's number belongs to one visit: a visit file naming a number that a
paper of another visit of the same facility holds (or one issued through the papers API) is
refused, rather than taking that paper over as if it were a correction of it (D69). The
numbers the hub makes for driver's certificates come from a counter per facility and year."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.kit.db import insert_for
from vnehr.papers.models import Paper, PaperCounter
from vnehr.papers.rules import KINDS, TABLE_KINDS

#: A driver's certificate number the hub makes: facility, serial in the exam's year, year.
DRIVER_NUMBER = re.compile(
    r"(?P<facility>[0-9A-Z]{5})\.KSK\.(?P<serial>[0-9]{6,9})\.(?P<yy>[0-9]{2})"
)


@dataclass(frozen=True, slots=True)
class Cited:
    """A paper number a visit carries: where, and of which kind."""

    kind: str
    number: str
    table: str
    row: int  # 1-based, as the intake's issues count rows
    field: str


def carried(tables: Mapping[str, list[dict[str, str]]]) -> list[Cited]:
    """The paper numbers in a visit's paper tables (pure; nothing when it has none)."""
    found: list[Cited] = []
    for table, kind in TABLE_KINDS.items():
        rows = tables.get(table)
        if not rows:
            continue
        field = KINDS[kind][1] or ""
        for index, row in enumerate(rows, start=1):
            number = (row.get(field) or "").strip()
            if number:
                found.append(Cited(kind, number, table, index, field))
    return found


async def holders(
    session: AsyncSession, wanted: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str | None]:
    """For (facility, kind, number): the visit (MA_LK; None for a paper issued through the
    API) whose paper holds that number, for those some paper holds."""
    found: dict[tuple[str, str, str], str | None] = {}
    asked = set(wanted)
    numbers = sorted({number for _, _, number in asked})
    for start in range(0, len(numbers), 500):
        rows = await session.execute(
            select(Paper.facility_code, Paper.kind, Paper.number, Paper.visit_key).where(
                Paper.number.in_(numbers[start : start + 500])
            )
        )
        for facility, kind, number, visit_key in rows:
            if (facility, kind, number) in asked:
                found.setdefault((facility, kind, number), visit_key)
    return found


def driver_number(facility_code: str, serial: int, year: int) -> str:
    return f"{facility_code}.KSK.{serial:06d}.{year % 100:02d}"


async def _take(
    session: AsyncSession, facility_code: str, kind: str, year: int, *, at_least: int | None = None
) -> int:
    """Raise the counter by one, or (``at_least``) to at least that, and return it, in one
    statement that locks the counter's row to the end of the transaction (PostgreSQL; on
    SQLite the writer already holds the database): concurrent issues of the facility in that
    year wait for each other."""
    insert = insert_for(session)
    if at_least is None:
        first, raised = 1, PaperCounter.last_serial + 1
    else:
        first = at_least
        raised = case(
            (PaperCounter.last_serial < at_least, at_least), else_=PaperCounter.last_serial
        )
    statement = (
        insert(PaperCounter)
        .values(facility_code=facility_code, kind=kind, year=year, last_serial=first)
        .on_conflict_do_update(
            index_elements=["facility_code", "kind", "year"], set_={"last_serial": raised}
        )
        .returning(PaperCounter.last_serial)
    )
    return int((await session.execute(statement)).scalar_one())


async def next_driver_number(session: AsyncSession, facility_code: str, examined: date) -> str:
    """The facility's next driver's certificate number, ``{facility}.KSK.{serial}.{yy}`` in
    the year of the exam: one after the last the counter gave that year, past any number
    already held (a facility may give numbers of this shape itself). The counter is raised
    in the caller's transaction: a rollback gives the number back, so the series has no
    gaps, and two issues never get the same number."""
    while True:
        serial = await _take(session, facility_code, "driver", examined.year)
        number = driver_number(facility_code, serial, examined.year)
        taken = await session.scalar(
            select(Paper.id)
            .where(
                Paper.number == number,
                Paper.kind == "driver",
                Paper.facility_code == facility_code,
            )
            .limit(1)
        )
        if taken is None:
            return number


async def hold_given_number(session: AsyncSession, facility_code: str, number: str) -> None:
    """Before a number given by the facility is stored: one issue of a given number of the
    facility at a time (PostgreSQL: a lock to the end of the transaction; SQLite's writers
    take turns); a number of the hub's shape for this facility also moves the year's counter
    up to it (waiting for the hub's numbering that year), so that the hub goes on after it
    and never makes it while it is being given."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 131))"),
            {"key": f"paper.driver:{facility_code}"},
        )
    shape = DRIVER_NUMBER.fullmatch(number)
    if shape is not None and shape["facility"] == facility_code:
        year, serial = 2000 + int(shape["yy"]), int(shape["serial"])
        await _take(session, facility_code, "driver", year, at_least=serial)
