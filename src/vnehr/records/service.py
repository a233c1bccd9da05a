"""Storing visits: versions per (facility, MA_LK), the timeline index, and reading them back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import orjson
from sqlalchemy import (
    ColumnElement,
    Date,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.kit.db import FastReads, Packed, copy_objects, hot_fetch, new_row
from vnehr.records import facts
from vnehr.records.models import TimelineEntry, VisitVersion
from vnehr.records.sensitive import as_kept, kept_prefix

Outcome = Literal["new", "changed", "unchanged"]
_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class VisitData:
    facility_code: str
    visit_key: str
    tables: dict[str, Any]
    content_sha256: str
    submission_id: str
    received_at: datetime
    test_mode: bool = False
    person_id: int | None = None
    personal_id: str | None = None
    care_type: str | None = None
    insured: bool = False
    main_diagnosis: str | None = None
    outcome: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    total_hospital_cost: Decimal | None = None
    has_summary: bool = False
    warnings: list[Any] | None = None
    #: ``tables`` already packed (``kit.db.pack_json``), when the caller has it: the bulk path
    #: stores it as it is.
    packed_tables: bytes = b""

    @property
    def lag_seconds(self) -> int | None:
        """Seconds from the end of the visit to its arrival (the timeliness report)."""
        if self.ended_at is None:
            return None
        return int((self.received_at - self.ended_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Stored:
    version_id: int
    version: int
    outcome: Outcome
    submission_id: str  # for "unchanged": the submission that first brought this content
    #: For "changed": an earlier version with this very content (an old file sent again after
    #: its correction undoes the correction), else None.
    same_as: int | None = None
    #: For "changed": the visit is in a person's book it was not in before (a correction gave
    #: it another patient, or one to a visit held out of every book, D150): told as new.
    new_in_book: bool = False


async def current_version(
    session: AsyncSession, facility_code: str, visit_key: str, *, lock: bool = False
) -> VisitVersion | None:
    """The visit's current version; a test-mode one only when it has no real one (D60)."""
    stmt = (
        select(VisitVersion)
        .where(
            VisitVersion.facility_code == facility_code,
            VisitVersion.visit_key == visit_key,
            VisitVersion.current.is_(True),
        )
        .order_by(VisitVersion.test_mode)
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


def _hot_statements() -> dict[str, Any]:
    """The statements of ``store``, built once (``kit.db.hot_fetch`` runs them)."""
    versions: Any = VisitVersion.__table__
    timeline: Any = TimelineEntry.__table__
    v = versions.c
    t = timeline.c
    version_columns = [
        "facility_code", "visit_key", "version", "current", "test_mode", "submission_id",
        "content_sha256", "person_id", "personal_id", "care_type", "insured", "main_diagnosis",
        "outcome", "started_at", "ended_at", "received_at", "lag_seconds",
        "total_hospital_cost", "has_summary", "tables", "warnings",
    ]  # fmt: skip
    timeline_columns = [
        "person_id", "facility_code", "visit_key", "version_id", "care_type", "main_diagnosis",
        "outcome", "insured", "started_at", "ended_at", "version", "updated_at",
        "insurance_cards", "insurance_cards_version", "sensitive_categories",
        "sensitive_version", "summary_facts", "summary_version",
    ]  # fmt: skip
    found = {
        "current": select(v.id, v.version, v.content_sha256, v.submission_id)
        .where(
            v.facility_code == bindparam("facility_code"),
            v.visit_key == bindparam("visit_key"),
            v.current.is_(True),
            v.test_mode == bindparam("test_mode"),
        )
        .with_for_update(),
        "supersede": update(versions)
        .where(v.id == bindparam("superseded_id"))
        .values(current=bindparam("not_current")),
        "version": insert(versions)
        .values({name: bindparam(f"v_{name}", type_=v[name].type) for name in version_columns})
        .returning(v.id),
    }
    for dialect, make in (("postgresql", pg_insert), ("sqlite", sqlite_insert)):
        upsert = make(timeline).values(
            {name: bindparam(f"t_{name}", type_=t[name].type) for name in timeline_columns}
        )
        keep = {n: upsert.excluded[n] for n in timeline_columns if n not in _TIMELINE_KEY}
        found[f"timeline:{dialect}"] = upsert.on_conflict_do_update(
            index_elements=list(_TIMELINE_KEY), set_=keep
        )
    return found


_TIMELINE_KEY = ("facility_code", "visit_key")
_STORE = _hot_statements()

#: What a visit leaving a person's book by a correction sets off in the contexts above records
#: (their inbox notices of it go), in the same transaction: given the person and the visits
#: (facility, MA_LK).
LeftBook = Callable[[AsyncSession, int, list[tuple[str, str]]], Awaitable[object]]
_ON_LEAVING_BOOK: dict[str, LeftBook] = {}


def on_leaving_book(name: str, hook: LeftBook) -> None:
    """Run ``hook`` when a correction gives a visit another patient, or none (D171). The inbox
    sits above records, so the composition root hands the hook down (``name``: one hook of
    that name, however often the app is built)."""
    _ON_LEAVING_BOOK[name] = hook


async def store(session: AsyncSession, data: VisitData) -> Stored:
    """Keep a visit: the same content again changes nothing; changed content becomes a new
    version that supersedes the old one (which is kept). This is the hot path of intake:
    statements built once and run through ``hot_fetch`` (no ORM, no per-call compiling).

    Test-mode versions (a facility still onboarding) are kept apart: numbered -1, -2, ... and
    never the history of the real visit, whose first version is 1 (D60). The caller holds the
    visit's lock (``lock_visits``, taken for all of a file's visits at once)."""
    found = next(
        iter(
            await hot_fetch(
                session,
                _STORE["current"],
                {
                    "facility_code": data.facility_code,
                    "visit_key": data.visit_key,
                    "test_mode": data.test_mode,
                },
            )
        ),
        None,
    )
    if found is not None and found[2] == data.content_sha256:
        return Stored(found[0], found[1], "unchanged", found[3])
    same_as = None
    new_in_book = False
    if found is not None:
        await hot_fetch(
            session, _STORE["supersede"], {"superseded_id": found[0], "not_current": False}
        )
    if found is not None and not data.test_mode:
        # (a correction is rare: more looks, off the hot path of new visits)
        with session.no_autoflush:
            before = await session.scalar(
                select(TimelineEntry.person_id).where(
                    TimelineEntry.facility_code == data.facility_code,
                    TimelineEntry.visit_key == data.visit_key,
                )
            )
            if before is not None and before != data.person_id:
                # the facility now says it is another person's visit (or nobody's in a book,
                # D150): what told the first one of it goes with it (D171)
                for hook in _ON_LEAVING_BOOK.values():
                    await hook(session, int(before), [(data.facility_code, data.visit_key)])
            new_in_book = data.person_id is not None and before != data.person_id
            same_as = await session.scalar(
                select(func.min(VisitVersion.version)).where(
                    VisitVersion.facility_code == data.facility_code,
                    VisitVersion.visit_key == data.visit_key,
                    VisitVersion.test_mode.is_(False),
                    VisitVersion.content_sha256 == data.content_sha256,
                )
            )
    step = -1 if data.test_mode else 1
    version = (found[1] + step) if found is not None else step
    values = _version_values(data, version)
    [(version_id,)] = await hot_fetch(
        session, _STORE["version"], {f"v_{k}": value for k, value in values.items()}
    )
    if not data.test_mode:
        entry = _timeline_values(data, version_id, version)
        dialect = session.get_bind().dialect.name
        await hot_fetch(
            session,
            _STORE[f"timeline:{dialect}"],
            {f"t_{k}": value for k, value in entry.items()},
        )
    return Stored(
        version_id,
        version,
        "changed" if found is not None else "new",
        data.submission_id,
        same_as,
        new_in_book,
    )


async def current_keys(session: AsyncSession, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (facility, MA_LK) already have a real version (test ones aside, D60)."""
    if not keys:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        # one statement text whatever the count (prepared once), the keys as two arrays
        rows = await hot_fetch(
            session,
            _CURRENT_KEYS_PG,
            {"facilities": [f for f, _ in keys], "keys": [k for _, k in keys]},
        )
    else:
        v = VisitVersion.__table__.c
        rows = list(
            await session.execute(
                select(v.facility_code, v.visit_key).where(
                    v.current.is_(True),
                    v.test_mode.is_(False),
                    tuple_(v.facility_code, v.visit_key).in_(keys),
                )
            )
        )
    return {(facility, key) for facility, key in rows}


_CURRENT_KEYS_PG = text(
    "SELECT v.facility_code, v.visit_key FROM visit_version v"
    " JOIN unnest(CAST(:facilities AS text[]), CAST(:keys AS text[]))"
    " AS k(facility_code, visit_key)"
    " ON v.facility_code = k.facility_code AND v.visit_key = k.visit_key"
    " WHERE v.current AND NOT v.test_mode"
)
#: One transaction at a time writes a given visit: held to the end of the transaction, taken
#: in sorted order (two batches never wait on each other in a circle). Without it, two
#: corrections of one visit at once both read the same current version, and the second
#: failed on the version's unique key (a 500, or a whole import batch lost).
_LOCK_VISITS_PG = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 130))) FROM"
    " (SELECT k FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS u(k, n) ORDER BY n) AS s"
)


async def lock_visits(session: AsyncSession, keys: list[tuple[str, str]]) -> None:
    """Take the write lock of these visits (facility, MA_LK) until the transaction ends.
    PostgreSQL only: SQLite's writers already take turns (``BEGIN IMMEDIATE``)."""
    if keys and session.get_bind().dialect.name == "postgresql":
        ordered = sorted({f"{facility}\x1f{key}" for facility, key in keys})
        await hot_fetch(session, _LOCK_VISITS_PG, {"keys": ordered})


async def store_new_many(session: AsyncSession, visits: list[VisitData]) -> list[Stored]:
    """``store`` for visits whose (facility, MA_LK) have no version yet (the caller checked,
    with ``current_keys``, and gives each key once): all are "new", version 1. On PostgreSQL
    the ids are drawn from the sequence in one query and the rows written with COPY."""
    if not visits:
        return []
    if session.get_bind().dialect.name != "postgresql":
        return [await store(session, data) for data in visits]
    ids = await session.scalars(
        text(
            "SELECT nextval(pg_get_serial_sequence('visit_version', 'id'))"
            " FROM generate_series(1, :n)"
        ),
        {"n": len(visits)},
    )
    rows: list[Any] = []
    timeline: list[Any] = []
    for version_id, data in zip(ids, visits, strict=True):
        values = _version_values(data, 1)
        if data.packed_tables:  # these objects are only copied, never read back
            values["tables"] = Packed(data.packed_tables)
        rows.append(new_row(VisitVersion, id=version_id, **values))
        if not data.test_mode:
            timeline.append(new_row(TimelineEntry, **_timeline_values(data, version_id, 1)))
    await copy_objects(session, rows)
    await copy_objects(session, timeline)
    return [Stored(row.id, 1, "new", row.submission_id) for row in rows]


def _version_values(data: VisitData, version: int) -> dict[str, Any]:
    """The columns of a new current version of the visit."""
    return {
        "facility_code": data.facility_code,
        "visit_key": data.visit_key,
        "version": version,
        "current": True,
        "test_mode": data.test_mode,
        "submission_id": data.submission_id,
        "content_sha256": data.content_sha256,
        "person_id": data.person_id,
        "personal_id": data.personal_id,
        "care_type": data.care_type,
        "insured": data.insured,
        "main_diagnosis": data.main_diagnosis,
        "outcome": data.outcome,
        "started_at": data.started_at,
        "ended_at": data.ended_at,
        "received_at": data.received_at,
        "lag_seconds": data.lag_seconds,
        "total_hospital_cost": data.total_hospital_cost,
        "has_summary": data.has_summary,
        "tables": data.tables,
        "warnings": data.warnings,
    }


def _timeline_values(data: VisitData, version_id: int, version: int) -> dict[str, Any]:
    """The columns of the visit's timeline row (the health book's index)."""
    return {
        "person_id": data.person_id,
        "facility_code": data.facility_code,
        "visit_key": data.visit_key,
        "version_id": version_id,
        "care_type": data.care_type,
        "main_diagnosis": data.main_diagnosis,
        "outcome": data.outcome,
        "insured": data.insured,
        "started_at": data.started_at,
        "ended_at": data.ended_at,
        "version": version,
        "updated_at": data.received_at,
        # (with the version they come from: a row the previous release corrects keeps the
        # cards of an older version, and the reader then opens the visit, D114)
        "insurance_cards": insurance_cards(data.tables),
        "insurance_cards_version": version_id,
        # (so too the sensitive categories: a representative's page leaves those rows out
        # without opening their visits, D132)
        "sensitive_categories": as_kept(data.tables),
        "sensitive_version": version_id,
        # (and what the downloaded book's summary reads of it: the PDF reads the rows, not
        # every visit, D209)
        "summary_facts": facts.as_kept(facts.facts(data.tables, data.started_at, data.ended_at)),
        "summary_version": version_id,
    }


def insurance_cards(tables: dict[str, Any]) -> str | None:
    """A visit's insurance cards as its timeline row keeps them: XML1 MA_THE_BHYT (one card, or
    several separated by ";"), each trimmed, ";"-separated; None without one."""
    xml1 = (tables.get("XML1") or [{}])[0]
    cards = [c.strip() for c in (xml1.get("MA_THE_BHYT") or "").split(";") if c.strip()]
    return ";".join(cards) or None


async def versions(session: AsyncSession, facility_code: str, visit_key: str) -> list[VisitVersion]:
    """The real visit's versions, oldest first (test-mode ones are not its history, D60)."""
    stmt = (
        select(VisitVersion)
        .where(
            VisitVersion.facility_code == facility_code,
            VisitVersion.visit_key == visit_key,
            VisitVersion.test_mode.is_(False),
        )
        .order_by(VisitVersion.version)
    )
    return list(await session.scalars(stmt))


def stored_visit_exists(facility_code: Any, visit_key: Any) -> ColumnElement[bool]:
    """An SQL condition: the record holds a version (not a test one) of the visit these
    columns or values name."""
    return (
        select(VisitVersion.id)
        .where(
            VisitVersion.facility_code == facility_code,
            VisitVersion.visit_key == visit_key,
            VisitVersion.test_mode.is_(False),
        )
        .exists()
    )


def names_another_patient(
    personal_id: Any, facility_code: Any, visit_key: Any
) -> ColumnElement[bool]:
    """An SQL condition (each argument a column or value of the caller's statement): the
    visit's current version (not a test one) names another patient than ``personal_id``, or
    none: a correction gave the visit to someone else."""
    return (
        select(VisitVersion.id)
        .where(
            VisitVersion.facility_code == facility_code,
            VisitVersion.visit_key == visit_key,
            VisitVersion.current.is_(True),
            VisitVersion.test_mode.is_(False),
            VisitVersion.personal_id.is_distinct_from(personal_id),
        )
        .exists()
    )


async def version_by_id(session: AsyncSession, version_id: int) -> VisitVersion | None:
    """A stored version of the record; a facility's test submission is not one (D60)."""
    version = await session.get(VisitVersion, version_id)
    return None if version is None or version.test_mode else version


# ------------------------------------------------------------------ reading the health book


#: The columns of a timeline row, in this order (readers may go by position).
TIMELINE_COLUMNS = (
    "id",
    "person_id",
    "facility_code",
    "care_type",
    "main_diagnosis",
    "outcome",
    "insured",
    "started_at",
    "ended_at",
    "version",
    "version_id",
)


#: Where a timeline page starts: after the row with this (end of visit, id); the end is None
#: for a visit without one.
TimelineKey = tuple[datetime | None, int]


def _after_key(ended: Any, last_id: Any, after_open: bool) -> ColumnElement[bool]:
    """The keyset condition for the order ``ended_at DESC NULLS FIRST, id DESC``: after a visit
    without an end (``after_open``), the other open ones with a smaller id, then every ended
    one; after an ended one, those that ended earlier (or then, with a smaller id)."""
    t = TimelineEntry.__table__.c
    if after_open:
        return or_(t.ended_at.is_not(None), and_(t.ended_at.is_(None), t.id < last_id))
    return or_(t.ended_at < ended, and_(t.ended_at == ended, t.id < last_id))


def _newest_first() -> tuple[Any, Any]:
    # NULLS FIRST is PostgreSQL's own order for DESC (its index on (person_id, ended_at, id)
    # still serves it); said aloud so SQLite, which puts NULLs last, pages the same way.
    t = TimelineEntry.__table__.c
    return t.ended_at.desc().nulls_first(), t.id.desc()


async def timeline_page(
    session: AsyncSession,
    persons: list[int] | Any,
    *,
    after: TimelineKey | None,
    limit: int,
    confided: bool = False,
) -> list[Any]:
    """Visits of these persons (a list of ids, or a scalar subquery giving one), newest first
    (by end of visit, a visit without an end first, then id); keyset paging with ``after`` =
    (ended_at, id) of the last row seen. Core rows with the timeline's columns: this is the
    health book's hot read.

    ``confided``: without the rows known to touch a sensitive category (their version's, kept
    on the row), each row with one more column after those: true when the row does not know
    its version's categories (``records.row_categories`` is None), whose visit is to be opened."""
    t = TimelineEntry.__table__.c
    stmt = select(*[t[name] for name in TIMELINE_COLUMNS])
    if confided:
        known = and_(
            t.sensitive_version == t.version_id, t.sensitive_categories.startswith(kept_prefix())
        )
        unjudged = case((known, literal_column("0")), else_=literal_column("1"))
        stmt = stmt.add_columns(unjudged.label("unjudged")).where(
            or_(
                t.sensitive_version.is_(None),
                t.sensitive_version != t.version_id,
                t.sensitive_categories.is_(None),
                not_(t.sensitive_categories.startswith(kept_prefix())),
                t.sensitive_categories == kept_prefix(),
            )
        )
    if isinstance(persons, list):
        stmt = stmt.where(t.person_id.in_(persons))
    else:
        stmt = stmt.where(t.person_id == persons)
    if after is not None:
        stmt = stmt.where(_after_key(after[0], after[1], after[0] is None))
    stmt = stmt.order_by(*_newest_first()).limit(limit)
    return list((await session.execute(stmt)).all())


def known_plain(person_id: Any, facility_code: Any, visit_key: Any) -> ColumnElement[bool]:
    """In SQL (each argument a column or value of the caller's statement): the person's visit
    has a timeline row that knows its current version touches no sensitive category (by
    today's classification, ``records.row_categories`` an empty set). False for a visit
    known to touch one, one not known (a row not filled, or kept by an older version or
    classification) and one that is not there: what a representative of a person of 16 or
    17 may be told of (D132)."""
    t = TimelineEntry.__table__.c
    return exists().where(
        t.person_id == person_id,
        t.facility_code == facility_code,
        t.visit_key == visit_key,
        t.sensitive_version == t.version_id,
        t.sensitive_categories == kept_prefix(),
    )


def _own_timeline(paged: str | None) -> Any:
    """The citizen's own timeline in one statement (the person found by personal ID inside
    it), as the hot path runs it; ``paged`` ("ended" or "open", what the last row seen was)
    adds the keyset condition."""
    t = TimelineEntry.__table__.c
    stmt = select(*[t[name] for name in TIMELINE_COLUMNS]).where(
        t.person_id == identity.person_id_query(bindparam("personal_id"))
    )
    if paged is not None:
        ended = bindparam("ended", type_=t.ended_at.type)
        stmt = stmt.where(_after_key(ended, bindparam("last_id"), paged == "open"))
    return stmt.order_by(*_newest_first()).limit(bindparam("limit"))


_OWN_FIRST = _own_timeline(None)
_OWN_NEXT = _own_timeline("ended")
_OWN_AFTER_OPEN = _own_timeline("open")


async def own_timeline(
    session: AsyncSession | None,
    fast: FastReads | None,
    personal_id: str,
    *,
    after: TimelineKey | None,
    limit: int,
) -> list[Any]:
    """A person's own timeline page by personal ID; through the asyncpg pool when there is one
    (PostgreSQL), else the session. Rows as ``timeline_page`` gives them, to be read by
    position (``TIMELINE_COLUMNS``): asyncpg records have no attributes."""
    params: dict[str, Any] = {"personal_id": personal_id, "limit": limit}
    statement = _OWN_FIRST
    if after is not None and after[0] is None:
        statement = _OWN_AFTER_OPEN
        params["last_id"] = after[1]
    elif after is not None:
        statement = _OWN_NEXT
        params |= {"ended": after[0], "last_id": after[1]}
    if fast is not None:
        return await fast.fetch_tuples(statement, **params)
    if session is None:
        raise ValueError("own_timeline needs a session or the asyncpg pool")
    return list((await session.execute(statement, params)).all())


async def entry(session: AsyncSession, entry_id: int) -> TimelineEntry | None:
    return await session.get(TimelineEntry, entry_id)


async def entries_of(session: AsyncSession, person_ids: list[int]) -> list[TimelineEntry]:
    """Every visit of these persons, newest first (for summaries and FHIR compartments)."""
    t = TimelineEntry
    stmt = select(t).where(t.person_id.in_(person_ids)).order_by(t.ended_at.desc(), t.id.desc())
    return list(await session.scalars(stmt))


async def entries_by_facility(
    session: AsyncSession, facility_code: str, *, limit: int, after_id: int | None = None
) -> list[TimelineEntry]:
    """Visits a facility sent, by id (for the facility's own systems)."""
    t = TimelineEntry
    stmt = select(t).where(t.facility_code == facility_code)
    if after_id is not None:
        stmt = stmt.where(t.id > after_id)
    return list(await session.scalars(stmt.order_by(t.id).limit(limit)))


async def filed_a_visit_of(session: AsyncSession, facility_code: str, person_id: int) -> bool:
    """Whether a visit the facility sent is in the person's record now (a visit held out of
    the book, D150, or a test one, D67, is in no one's)."""
    t = TimelineEntry
    stmt = select(t.id).where(t.person_id == person_id, t.facility_code == facility_code)
    return (await session.scalar(stmt.limit(1))) is not None


#: The columns of a person's rows ``summary_rows`` gives: the timeline's, then what they keep
#: of their version (its sensitive categories, the summaries' facts, its insurance cards) and
#: the visit's key.
SUMMARY_COLUMNS = (
    *TIMELINE_COLUMNS,
    "sensitive_categories",
    "sensitive_version",
    "summary_facts",
    "summary_version",
    "insurance_cards",
    "insurance_cards_version",
    "visit_key",
)


async def summary_rows(session: AsyncSession, person_ids: Sequence[int]) -> list[Any]:
    """Every visit of these persons as their timeline rows keep it (``SUMMARY_COLUMNS``: read
    with ``records.row_facts`` and ``records.row_categories``), newest first as ``entries_of``
    orders them: what the summaries read instead of the visits (D209, D233)."""
    if not person_ids:
        return []
    t = TimelineEntry.__table__.c
    stmt = (
        select(*[t[name] for name in SUMMARY_COLUMNS])
        .where(t.person_id.in_(list(person_ids)))
        .order_by(t.ended_at.desc(), t.id.desc())
    )
    return list((await session.execute(stmt)).all())


async def tables_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Any]:
    """The stored tables of these versions, by version id (test submissions' are none): read
    as plain rows, so the caller holds them only while it uses them (the session keeps no
    copy)."""
    if not ids:
        return {}
    v = VisitVersion.__table__.c
    rows = await session.execute(
        select(v.id, v.tables).where(v.id.in_(list(ids)), v.test_mode.is_(False))
    )
    return {row.id: row.tables for row in rows}


async def versions_by_ids(session: AsyncSession, ids: list[int]) -> dict[int, VisitVersion]:
    if not ids:
        return {}
    rows = await session.scalars(select(VisitVersion).where(VisitVersion.id.in_(ids)))
    return {row.id: row for row in rows}


async def entry_by_key(
    session: AsyncSession, facility_code: str, visit_key: str
) -> TimelineEntry | None:
    stmt = select(TimelineEntry).where(
        TimelineEntry.facility_code == facility_code, TimelineEntry.visit_key == visit_key
    )
    return (await session.scalars(stmt)).first()


def _first_in(start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
    """First versions (not test submissions) that ended in [start, end), or without an end,
    were received then."""
    v = VisitVersion
    found: list[ColumnElement[bool]] = [v.version == 1, v.test_mode.is_(False)]
    if start is not None and end is not None:
        found.append(
            or_(
                and_(v.ended_at >= start, v.ended_at < end),
                and_(v.ended_at.is_(None), v.received_at >= start, v.received_at < end),
            )
        )
    return found


async def first_versions(
    session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    *,
    before: datetime | None = None,
    facilities: Any | None = None,
) -> list[Any]:
    """The first version of every visit (not test submissions) that ended in [start, end), or
    without an end, was received then: the columns the reports count (rows with attributes
    facility_code, care_type, insured, ended_at, received_at, lag_seconds, has_summary,
    person_id). ``before``: only those that ended (or without an end, were received) before
    it (what ``first_version_tallies`` leaves out); ``facilities``: only those of the
    facilities this subquery selects."""
    v = VisitVersion
    stmt = select(
        v.facility_code,
        v.care_type,
        v.insured,
        v.ended_at,
        v.received_at,
        v.lag_seconds,
        v.has_summary,
        v.person_id,
    ).where(*_first_in(start, end))
    if before is not None:
        stmt = stmt.where(func.coalesce(v.ended_at, v.received_at) < before)
    if facilities is not None:
        stmt = stmt.where(v.facility_code.in_(facilities))
    return list(await session.execute(stmt.order_by(v.id)))


#: Vietnam has kept UTC+7 since 13 June 1975 (tzdata): from then on a moment's Vietnamese day
#: is its UTC time plus seven hours, which both databases can compute (SQLite knows no time
#: zones). Visits that ended (or were received) earlier are left to ``first_versions``.
UTC7_SINCE = datetime(1976, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class VisitTally:
    """First versions alike for the reports: the same facility, month (Vietnam time) of their
    end (or of receipt, without one), care type, insurance and lag bucket (the index of the
    first bound the lag is within; the number of bounds beyond them all; None without a lag),
    with how many of them were linked to a person, had a summary (XML8), a lag within
    ``quick_seconds``, and were received by the end of their last day on time."""

    facility_code: str
    month: date
    care_type: str | None
    insured: bool
    lag_bucket: int | None
    visits: int
    in_book: int
    with_summary: int
    quick: int
    on_time: int


def _utc7(session: AsyncSession, moment: Any, unit: Literal["day", "month"]) -> Any:
    """The Vietnamese day (or the first day of the month) of a moment, in SQL: a date on
    PostgreSQL, ``YYYY-MM-DD`` text on SQLite. (No bound parameters: the expression is
    repeated in GROUP BY, where PostgreSQL needs it identical.)"""
    if session.get_bind().dialect.name == "postgresql":
        local = func.timezone(literal_column("'UTC'"), moment) + literal_column(
            "interval '7 hours'"
        )
        return cast(func.date_trunc(literal_column(f"'{unit}'"), local), Date)
    pattern = "'%Y-%m-%d'" if unit == "day" else "'%Y-%m-01'"
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' and its date functions round that to the
    # millisecond: 23:59:59.9996 would be the next day. Whole seconds first (D103).
    seconds = func.substr(moment, literal_column("1"), literal_column("19"))
    return func.strftime(literal_column(pattern), seconds, literal_column("'+7 hours'"))


async def first_version_tallies(
    session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    *,
    lag_bounds: Sequence[int],
    quick_seconds: int,
    last_day_on_time: Callable[[date], date],
    facilities: Any | None = None,
) -> AsyncIterator[VisitTally]:
    """The first versions that ``first_versions`` would list, from ``UTC7_SINCE`` on, counted
    by the database (GROUP BY) and streamed: what is held does not grow with the visits.
    ``last_day_on_time`` gives, for a Vietnamese day a visit ended, the last day (Vietnam time)
    it may be received on time; ``facilities``: only the facilities this subquery selects."""
    v = VisitVersion
    postgres = session.get_bind().dialect.name == "postgresql"
    where = [*_first_in(start, end), func.coalesce(v.ended_at, v.received_at) >= UTC7_SINCE]
    if facilities is not None:
        where.append(v.facility_code.in_(facilities))
    ended_day = _utc7(session, v.ended_at, "day")
    if start is not None and end is not None:
        first = (max(start, UTC7_SINCE) + timedelta(hours=7)).date()
        last = (end + timedelta(hours=7) - timedelta(microseconds=1)).date()
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    else:
        found = await session.scalars(
            select(ended_day).distinct().where(*where, v.ended_at.is_not(None))
        )
        days = [d if isinstance(d, date) else date.fromisoformat(d) for d in found]
    # the last day on time of every day a visit may have ended: one JSON parameter made a
    # table (a few hundred days for a period; every day with a visit for a rebuild), built
    # once (MATERIALIZED: SQLite then indexes it for the join instead of scanning it per visit)
    table = orjson.dumps({d.isoformat(): last_day_on_time(d).isoformat() for d in days}).decode()
    parameter = bindparam("deadlines", table, String)
    if postgres:
        pairs = func.jsonb_each_text(cast(parameter, JSONB)).table_valued("key", "value")
        columns = [cast(pairs.c.key, Date).label("day"), cast(pairs.c.value, Date).label("last")]
    else:
        pairs = func.json_each(parameter).table_valued("key", "value")
        columns = [pairs.c.key.label("day"), pairs.c.value.label("last")]
    deadline = select(*columns).cte("deadline").prefix_with("MATERIALIZED")
    lag_bucket = case(
        (v.lag_seconds.is_(None), literal_column("-1")),
        *[(v.lag_seconds <= literal_column(str(int(b))), literal_column(str(i))) for i, b in
          enumerate(lag_bounds)],
        else_=literal_column(str(len(lag_bounds))),
    )  # fmt: skip
    month = _utc7(session, func.coalesce(v.ended_at, v.received_at), "month")

    def tally(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0))

    keys = (v.facility_code, month, v.care_type, v.insured, lag_bucket)
    stmt = (
        select(
            *keys,
            func.count(),
            tally(v.person_id.is_not(None)),
            tally(v.has_summary.is_(True)),
            tally(v.lag_seconds <= quick_seconds),
            tally(_utc7(session, v.received_at, "day") <= deadline.c.last),
        )
        .select_from(v)
        .outerjoin(deadline, deadline.c.day == ended_day)
        .where(*where)
        .group_by(*keys)
    )
    result = await session.stream(stmt)
    async for code, month_of, care_type, insured, bucket, n, book, summary, quick, timely in result:
        yield VisitTally(
            facility_code=code,
            month=month_of if isinstance(month_of, date) else date.fromisoformat(month_of),
            care_type=care_type,
            insured=bool(insured),
            lag_bucket=None if int(bucket) < 0 else int(bucket),
            visits=int(n),
            in_book=int(book or 0),
            with_summary=int(summary or 0),
            quick=int(quick or 0),
            on_time=int(timely or 0),
        )
