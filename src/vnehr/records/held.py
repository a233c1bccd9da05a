"""Visits filed to a person, read back to be compared with what VNeID confirmed of them at
their first sign-in, and those that name someone else taken out of their book (D167)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
import zstandard
from sqlalchemy import LargeBinary, bindparam, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.kit.db import unpack_json
from vnehr.records.models import TimelineEntry, VisitVersion

log = structlog.get_logger(__name__)

#: Visits read, and rows written, per statement: a person with thousands of visits is read a
#: page at a time, never whole.
PAGE = 500
#: How much of a visit's tables is unpacked to find its XML1 row, which comes first (the rest
#: is most of the time, D167); the whole when it is not within.
_HEAD_BYTES = 16384
_XML1_HEAD = b'{"XML1":['


@dataclass(frozen=True, slots=True)
class Filed:
    """A visit in a person's book, as its current version has it."""

    entry_id: int
    version_id: int
    facility_code: str
    visit_key: str
    version: int
    submission_id: str
    test_mode: bool
    care_type: str | None
    insured: bool
    ended_at: datetime | None
    received_at: datetime
    #: the version's XML1 row: who the visit says its patient is (None: its stored tables
    #: cannot be read, and it is left as filed; a sign-in never fails over one visit)
    xml1: dict[str, Any] | None


async def filed_to(
    session: AsyncSession, person_id: int, *, after: int = 0, limit: int = PAGE
) -> list[Filed]:
    """The visits in the person's book (their timeline rows, with the current version), in
    the order of the rows' ids after ``after``, ``limit`` at a time."""
    t, v = TimelineEntry, VisitVersion
    rows = await session.execute(
        select(
            t.id,
            v.id,
            v.facility_code,
            v.visit_key,
            v.version,
            v.submission_id,
            v.test_mode,
            v.care_type,
            v.insured,
            v.ended_at,
            v.received_at,
            type_coerce(v.tables, LargeBinary),
        )
        .join(v, v.id == t.version_id)
        .where(t.person_id == person_id, t.id > after)
        .order_by(t.id)
        .limit(limit)
    )
    unpacking = zstandard.ZstdDecompressor()
    return [
        Filed(
            entry_id=int(entry_id),
            version_id=int(version_id),
            facility_code=facility_code,
            visit_key=visit_key,
            version=int(version),
            submission_id=submission_id,
            test_mode=bool(test_mode),
            care_type=care_type,
            insured=bool(insured),
            ended_at=ended_at,
            received_at=received_at,
            xml1=_xml1(unpacking, bytes(tables)),
        )
        for (
            entry_id,
            version_id,
            facility_code,
            visit_key,
            version,
            submission_id,
            test_mode,
            care_type,
            insured,
            ended_at,
            received_at,
            tables,
        ) in rows
    ]


def _xml1(unpacking: zstandard.ZstdDecompressor, packed: bytes) -> dict[str, Any] | None:
    """The XML1 row of a visit's packed tables (None: they cannot be read)."""
    try:
        return _xml1_of(unpacking, packed)
    except (zstandard.ZstdError, orjson.JSONDecodeError, TypeError, ValueError):
        log.warning("visit_tables_unreadable", size=len(packed))
        return None


def _xml1_of(unpacking: zstandard.ZstdDecompressor, packed: bytes) -> dict[str, Any]:
    """The XML1 row of a visit's packed tables, from the head of the document when it is
    there: XML1's rows hold only texts, so the first ``}],"`` after its start ends them, or
    falls inside a text (``"...}],"``), and then what it cuts is no JSON. Else the whole
    document is read (D51)."""
    with unpacking.stream_reader(packed) as reader:
        head = reader.read(_HEAD_BYTES)
    if head.startswith(_XML1_HEAD):
        end = head.find(b'}],"', len(_XML1_HEAD))
        try:
            rows = orjson.loads(head[len(_XML1_HEAD) - 1 : end + 2]) if end > 0 else None
        except orjson.JSONDecodeError:
            rows = None
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            return rows[0]
    tables = unpack_json(packed) or {}
    return dict((tables.get("XML1") or [{}])[0])


async def hold_out(
    session: AsyncSession, person_id: int, held: Sequence[tuple[Filed, list[dict[str, Any]]]]
) -> None:
    """Take these visits out of the person's book, as the intake files a visit whose patient
    is not who VNeID confirmed (D150): their timeline rows and current versions name no
    person, and each version keeps the warnings given (added to its own)."""
    for start in range(0, len(held), PAGE):
        part = held[start : start + PAGE]
        await session.execute(
            update(TimelineEntry)
            .where(
                TimelineEntry.id.in_([filed.entry_id for filed, _ in part]),
                TimelineEntry.person_id == person_id,
            )
            .values(person_id=None)
            .execution_options(synchronize_session=False)
        )
        versions: Any = VisitVersion.__table__
        found = await session.execute(
            select(versions.c.id, versions.c.warnings).where(
                versions.c.id.in_([filed.version_id for filed, _ in part])
            )
        )
        before: dict[int, list[Any]] = {int(i): list(w or []) for i, w in found}
        await session.execute(
            update(versions)
            .where(versions.c.id == bindparam("version_id"))
            .values(person_id=None, warnings=bindparam("new_warnings")),
            [
                {
                    "version_id": filed.version_id,
                    "new_warnings": [*before.get(filed.version_id, []), *added],
                }
                for filed, added in part
            ],
        )
