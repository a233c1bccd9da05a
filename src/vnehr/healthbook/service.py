"""Reading the health book: whose book the caller may open, the timeline, one visit, the summary.

Reads run on the read engine. A read of someone else's book (a parent reading a child's) is
clinical data read by someone other than its owner: it yields audit rows that the caller writes
in a write transaction before the answer leaves (``Read.audit``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, catalogs, facilities, identity, records
from vnehr.healthbook import errors, view
from vnehr.healthbook import schemas as s
from vnehr.kit.auth import Subject
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.db import Database
from vnehr.kit.errors import VnehrError
from vnehr.kit.paging import decode_cursor, decode_moment_cursor, encode_cursor

T = TypeVar("T")


@dataclass(slots=True)
class Read(Generic[T]):
    """What a read returns, with the audit rows it owes (empty when the owner reads)."""

    value: T
    audit: list[audit.AuditEvent] = field(default_factory=list)
    holder: identity.Holder | None = None  # whose book was read


#: Reads a person's current allergies (their FHIR AllergyIntolerance resources, newest first);
#: with visit ids, only those recorded in none of the person's visits or in one of these.
AllergyReader = Callable[[AsyncSession, int, Collection[int] | None], Awaitable[list[s.Allergy]]]
_READERS: dict[str, AllergyReader] = {}


def read_allergies_with(reader: AllergyReader) -> None:
    """Allergies reach the book only as FHIR AllergyIntolerance (D29), which the FHIR context
    keeps; it sits above the health book, so the composition root hands its reader down here
    (as it hands the intake's row check to papers). Without one, the list stays empty."""
    _READERS["allergies"] = reader


async def _allergies(
    session: AsyncSession, person_id: int, kept_visits: Collection[int] | None = None
) -> list[s.Allergy]:
    reader = _READERS.get("allergies")
    return await reader(session, person_id, kept_visits) if reader is not None else []


async def holder(
    session: AsyncSession, subject: Subject, personal_id: str | None
) -> identity.Holder:
    """The person whose book is read: the caller by default, or someone they represent today."""
    holders = await _holders(session, subject)
    if personal_id is None or personal_id == holders[0].personal_id:
        return holders[0]
    for candidate in holders[1:]:
        if candidate.personal_id == personal_id:
            return candidate
    raise errors.NotYourWard(personal_id=personal_id)


async def _holders(session: AsyncSession, subject: Subject) -> list[identity.Holder]:
    try:
        return await identity.book_holders(session, subject)
    except VnehrError as exc:
        if exc.code == "ID-0102":  # a person never signed in has no book
            raise errors.NoBookYet() from exc
        raise


def _audit(subject: Subject, who: identity.Holder, action: str, what: str) -> list[Any]:
    if who.relation is None:
        return []
    return [
        audit.audit_event(
            actor=subject.label,
            action=action,
            object_type="health_book",
            object_id=what,
            person_id=who.id,
            detail={"as": who.relation},
        )
    ]


async def _headers(
    session: AsyncSession, entries: Sequence[Any]
) -> tuple[list[view.Header], dict[str, facilities.Facility]]:
    names = await facilities.directory(session, {e.facility_code for e in entries})
    headers = [
        view.Header(
            id=e.id,
            facility=s.FacilityRef(
                code=e.facility_code,
                name=names[e.facility_code].name if e.facility_code in names else None,
            ),
            care_type=e.care_type,
            main_diagnosis=e.main_diagnosis,
            outcome=e.outcome,
            insured=e.insured,
            started_at=e.started_at,
            ended_at=e.ended_at,
            version=e.version,
        )
        for e in entries
    ]
    return headers, names


async def timeline(
    db: Database,
    subject: Subject,
    *,
    personal_id: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> Read[tuple[list[dict[str, Any]], str | None]]:
    """One page of the book's visits (dicts shaped as ``schemas.TimelineItem``), newest first;
    the cursor of the next page or None.

    The citizen's own book is the hot read: one statement (the person found inside it by
    personal ID), through the asyncpg pool on PostgreSQL, titles and facility names from
    per-process copies. A represented person's book first checks the representation."""
    if subject.kind != "person":
        raise errors.NoBookYet()
    identity.require_book_level(subject)  # the fast path skips book_holders, not D12
    key = _timeline_key(cursor) if cursor else None
    who: identity.Holder | None = None
    if (personal_id is None or personal_id == subject.id) and db.fast_reads is not None:
        rows = await records.own_timeline(
            None, db.fast_reads, subject.id, after=key, limit=limit + 1
        )
    else:
        async with db.read_session() as session:
            if personal_id is None or personal_id == subject.id:
                rows = await records.own_timeline(
                    session, None, subject.id, after=key, limit=limit + 1
                )
            else:
                who = await holder(session, subject, personal_id)
                rows = await _represented_page(session, who, key, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    titles = await catalogs.recent_codebook(db)
    # rows are read by position, in records.TIMELINE_COLUMNS order (facility 2, ended 8, id 0)
    names = await facilities.names(db, {r[2] for r in rows})
    items = view.timeline_rows(rows, titles, names)
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode_cursor((last[8].isoformat() if last[8] else "", last[0]))
    if who is None:
        return Read((items, next_cursor))
    return Read((items, next_cursor), _audit(subject, who, "timeline.read", str(who.id)), who)


async def _represented_page(
    session: AsyncSession, who: identity.Holder, key: tuple[datetime | None, int] | None, want: int
) -> list[Any]:
    """Up to ``want`` timeline rows of a represented person's book after ``key``: of a person
    who may be 16 or more, without the visits ``records.withheld`` keeps from a representative.
    The database leaves out the rows known to touch a sensitive category (one statement
    however many there are); a row that does not know its version's categories (not yet
    filled, or corrected by the previous release) has its visit opened to judge it, a page
    at a time, as before those were kept on the row."""
    today = today_in_vietnam()
    if not records.confiding(who, today):
        return await records.timeline_page(session, [who.id], after=key, limit=want)
    kept: list[Any] = []
    while len(kept) < want:
        rows = await records.timeline_page(session, [who.id], after=key, limit=want, confided=True)
        # rows are read by position, in records.TIMELINE_COLUMNS order (id 0, ended 8,
        # version 10), then whether the row does not know its version's categories (11)
        versions = await records.versions_by_ids(session, [r[10] for r in rows if r[11]])
        kept += [
            r
            for r in rows
            if not r[11]
            or not records.withheld(who, getattr(versions.get(r[10]), "tables", None), today)
        ]
        if len(rows) < want:
            break
        key = (rows[-1][8], rows[-1][0])
    return kept[:want]


def _timeline_key(cursor: str) -> tuple[datetime | None, int]:
    """The (end of visit, id) of the last row a timeline cursor saw; ``InvalidCursor`` unless
    the end is an aware moment a database column holds, or "" (a visit without an end, as
    ``timeline`` writes it). A cursor is the caller's text: a naive or out-of-range date must
    be refused here, not by the database."""
    ended, last_id = decode_cursor(cursor, (str, int))
    if ended == "":
        return None, int(last_id)
    return decode_moment_cursor(cursor)


async def _entry_in_book(
    session: AsyncSession, subject: Subject, visit_id: int
) -> tuple[Any, identity.Holder]:
    entry = await records.entry(session, visit_id)
    if entry is None or entry.person_id is None:
        raise errors.NotInYourBook(id=visit_id)
    for who in await _holders(session, subject):
        if who.id == entry.person_id:
            return entry, who
    raise errors.NotInYourBook(id=visit_id)


async def visit(session: AsyncSession, subject: Subject, visit_id: int) -> Read[s.Visit]:
    """Everything of one visit of a book the caller may read."""
    entry, who = await _entry_in_book(session, subject, visit_id)
    version = await records.version_by_id(session, entry.version_id)
    if version is None:  # pragma: no cover - the timeline points at a stored version
        raise errors.NotInYourBook(id=visit_id)
    if records.withheld(who, version.tables, today_in_vietnam()):
        # answered as a visit that does not exist: a refusal would tell that it does (D109)
        raise errors.NotInYourBook(id=visit_id)
    headers, _ = await _headers(session, [entry])
    titles = await catalogs.codebook(session)
    result = view.visit(headers[0], version.tables, titles, received_at=version.received_at)
    return Read(result, _audit(subject, who, "visit.read", str(version.id)), who)


async def summary(
    session: AsyncSession, subject: Subject, *, personal_id: str | None = None
) -> Read[s.Summary]:
    """The one-page summary of a book: long-term conditions, current medicines, blood group,
    weights, lab trends, last visits. A representative of a person who may be 16 or more reads
    it without the visits ``records.withheld`` leaves out, and without the allergies recorded
    in them. Read from the timeline's rows (``_summary_visits``), not from every visit."""
    who = await holder(session, subject, personal_id)
    result = await _book_summary(session, who)
    return Read(result, _audit(subject, who, "summary.read", str(who.id)), who)


async def printed_summary(session: AsyncSession, who: identity.Holder) -> s.Summary:
    """The summary the downloaded book prints (D209): ``summary``'s for the same reader
    (``who``, from ``holder``) without the lab trends, which the PDF does not print, and
    without its audit row (the download writes its own)."""
    return await _book_summary(session, who, trends=False)


async def _book_summary(
    session: AsyncSession, who: identity.Holder, *, trends: bool = True
) -> s.Summary:
    today = today_in_vietnam()
    now = utcnow()
    confiding = records.confiding(who, today)
    # a person who may be 16 or more confides in no representative the visits touching a
    # sensitive category (``records.withheld``)
    keep = _touching_none if confiding else None
    visits = await _summary_visits(session, who.id, keep, now=now, trends=trends)
    titles = await catalogs.codebook(session)
    pairs = [(header, tables) for header, tables, _, _ in visits]
    measured = [(header.id, labs) for header, _, labs, _ in visits]
    result = view.summary(who.full_name, who.personal_id, pairs, titles, now=now, measured=measured)
    kept = {header.id for header, _ in pairs} if confiding else None
    result.allergies = await _allergies(session, who.id, kept)
    return result


#: What a visit measured for the lab trends (``records.measured``).
_Measured = Mapping[records.Series, records.Measured]


def _touching_none(touched: frozenset[str]) -> bool:
    return not touched


#: Stored visits a summary opens at a time: what it holds at once stays bounded however many
#: visits it opens.
OPEN_AT_ONCE = 100


async def _summary_visits(
    session: AsyncSession,
    person_id: int,
    keep: Callable[[frozenset[str]], bool] | None,
    *,
    now: datetime,
    trends: bool = True,
) -> list[tuple[view.Header, dict[str, Any], _Measured, frozenset[str] | None]]:
    """The visits a summary of the person reads, newest first: each with what ``view.summary``
    reads of its tables (the XML1 fields, and the medicines of a visit whose medicines may be
    current), what it measured for the lab trends (``records.measured``; nothing without
    ``trends``) and the sensitive categories it touches. With ``keep``, only the visits it
    lets through (given those categories; a visit that cannot be judged, without stored
    tables, is left out); without, every visit (categories None).

    Read from what each visit's timeline row keeps (``records.row_facts``,
    ``records.row_categories``: one small row per visit), not from every stored visit (D231,
    D233): only the visits with medicines of the last 90 days are opened, and those whose row
    does not know its version (stored before 0030, corrected by the previous release, kept in
    an older form), ``OPEN_AT_ONCE`` at a time."""
    rows = []
    touched: dict[int, frozenset[str]] = {}
    judged: set[int] = set()  # rows whose visit decides whether ``keep`` lets it through
    for row in await records.summary_rows(session, [person_id]):
        if keep is not None:
            categories = records.row_categories(row)
            if categories is None:
                judged.add(row.id)
            elif not keep(categories):
                continue  # known to be left out: never opened
            else:
                touched[row.id] = categories
        rows.append(row)
    facts: dict[int, records.Facts] = {}
    for row in rows:
        found = records.row_facts(row, trends=trends, times=False)
        if found is not None:
            facts[row.id] = found
    opened = [
        row
        for row in rows
        if row.id in judged or row.id not in facts or _current(facts[row.id], now)
    ]
    drugs: dict[int, list[Any]] = {}  # the XML2 rows of the visits whose medicines may count
    left: set[int] = set()
    for start in range(0, len(opened), OPEN_AT_ONCE):
        part = opened[start : start + OPEN_AT_ONCE]
        stored = await records.tables_by_ids(session, [row.version_id for row in part])
        for row in part:
            tables = stored.get(row.version_id)
            if not isinstance(tables, dict):
                left.add(row.id)  # no stored version: cannot be read, nor judged (D98)
                continue
            if keep is not None and row.id in judged:
                touched[row.id] = frozenset(records.sensitive_categories(tables))
                if not keep(touched[row.id]):
                    left.add(row.id)
                    continue
            if row.id not in facts:
                facts[row.id] = records.visit_facts(tables, row.started_at, row.ended_at)
            if _current(facts[row.id], now):
                drugs[row.id] = tables.get("XML2") or []
        del stored  # (only the medicines are held on)
    kept = [row for row in rows if row.id not in left]
    headers, _ = await _headers(session, kept)
    return [
        (
            header,
            {"XML1": [facts[row.id].xml1], "XML2": drugs.get(row.id, [])},
            facts[row.id].labs if trends else {},
            touched.get(row.id),
        )
        for header, row in zip(headers, kept, strict=True)
    ]


def _current(found: records.Facts, now: datetime) -> bool:
    """Whether some medicine of the visit may be current (``view.CURRENT_MEDICINES``)."""
    until = found.drugs_until
    return until is not None and not now - until > view.CURRENT_MEDICINES


# ------------------------------------------------------------------ for a clinician (sharing)


async def clinical_summary(
    session: AsyncSession,
    person_id: int,
    shown: Collection[str],
    *,
    listed: Collection[str] | None = None,
) -> tuple[s.Summary, list[s.TimelineItem]]:
    """A person's summary and visits as a treating clinician sees them: the summary from the
    visits touching no sensitive category but those in ``shown``, the visit list from those
    also touching none but those in ``listed`` (default ``shown``): the sharing rules decide,
    and a category shared for the summary only stays out of the visits. Read from the
    timeline's rows as the book's summary is (``_summary_visits``)."""
    person = (await identity.persons(session, [person_id])).get(person_id)
    if person is None:
        raise errors.NotInYourBook(id=person_id)
    now = utcnow()
    allowed = frozenset(shown)
    visits = await _summary_visits(session, person_id, allowed.issuperset, now=now)
    titles = await catalogs.codebook(session)
    pairs = [(header, tables) for header, tables, _, _ in visits]
    measured = [(header.id, labs) for header, _, labs, _ in visits]
    result = view.summary(
        person.full_name, person.personal_id, pairs, titles, now=now, measured=measured
    )
    # an allergy recorded in a visit the rules leave out is left out with it (D35: the visit
    # is left out whole; its facility and date may tell what care it was), and so is one
    # whose visit cannot be told (the FHIR context reads the references)
    result.allergies = await _allergies(session, person_id, {h.id for h, _ in pairs})
    listing = allowed if listed is None else frozenset(listed)
    shown_visits = [h for h, _, _, touched in visits if touched is not None and touched <= listing]
    return result, [view.timeline_item(h, titles) for h in shown_visits]


async def clinical_visit(
    session: AsyncSession, person_id: int, visit_id: int, keep: Callable[[Any], bool]
) -> s.Visit:
    entry = await records.entry(session, visit_id)
    version = await records.version_by_id(session, entry.version_id) if entry else None
    if entry is None or version is None or entry.person_id != person_id or not keep(version.tables):
        raise errors.NotInYourBook(id=visit_id)
    headers, _ = await _headers(session, [entry])
    titles = await catalogs.codebook(session)
    return view.visit(headers[0], version.tables, titles, received_at=version.received_at)
