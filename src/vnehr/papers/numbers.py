"""A paper's number belongs to one visit: a visit file naming a number that a paper of another
visit of the same facility holds (or one issued through the papers API) is refused, rather
than taking that paper over as if it were a correction of it (D69)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.papers.models import Paper
from vnehr.papers.rules import KINDS, TABLE_KINDS


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
