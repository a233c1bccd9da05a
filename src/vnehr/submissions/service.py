"""Intake of visit files: read safely, validate once, store every accepted visit with its
outbox events and audit row in the caller's transaction, and build the receipt.

``analyse`` is pure (no database): the same checks serve ``POST /submissions/validate``,
``vnehr validate`` and ``submit``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import zstandard
from sqlalchemy import func, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs, facilities, identity, papers, records
from vnehr.audit import AuditEvent, audit_event
from vnehr.kit.auth import MissingScope, Subject, require_scope
from vnehr.kit.clock import VIETNAM, utcnow, vietnam_moment
from vnehr.kit.db import (
    TURNS_CHECKINS,
    compress,
    copy_objects,
    hot_add,
    hot_fetch,
    new_row,
    pack_json,
    take_turns,
    unpack_json,
)
from vnehr.kit.errors import InvalidCursor
from vnehr.kit.i18n import texts
from vnehr.kit.metrics import INTAKE_FILES, INTAKE_VISITS
from vnehr.kit.outbox import OutboxEvent, add_event, new_event
from vnehr.kit.paging import Page, decode_cursor, encode_cursor
from vnehr.submissions import errors, signature
from vnehr.submissions.models import REJECTED, CheckinEntry, Submission
from vnehr.submissions.rules import (
    CodeBook,
    Findings,
    birth_of,
    check_checkin,
    check_visit,
    parse_number,
    patient_named,
)
from vnehr.submissions.spec import TABLES_IN_ENVELOPE
from vnehr.submissions.xmlio import (
    Limits,
    b64decode,
    read_checkin,
    read_envelope,
    read_table,
    variant_for,
    write_envelope,
    write_table,
)

#: (card, name, birth dd/MM/yyyy) -> the portal's result code, or None when it cannot answer.
CardCheck = Callable[[str, str, str], Awaitable[str | None]]
#: Adds the six-monthly report's counts of what a batch wrote together: its visits' first
#: versions, the payloads of its ``visit.rejected`` events (D113) and the papers its visits
#: issued. Their events say ``counted``, so that the report's consumers skip them.
BatchCounter = Callable[
    [AsyncSession, list[records.VisitData], list[dict[str, Any]], list[papers.Issued]],
    Awaitable[None],
]
#: What a batch counts itself: visits, ``visit.rejected`` payloads, papers (``BatchCounter``).
_Counted = tuple[list[records.VisitData], list[dict[str, Any]], list[papers.Issued]]
#: A system reads its own receipts if it may send files or read records.
RECEIPT_SCOPES = ("submission.write", "checkin.write", "record.read")


@dataclass(slots=True)
class VisitAnalysis:
    index: int  # 1-based position of the HOSO in the file
    visit_key: str | None
    tables: dict[str, list[dict[str, str]]]
    findings: Findings
    content_sha256: str = ""
    #: The tables packed for storing (``kit.db.pack_json``), when prepared; else empty.
    packed: bytes = b""
    #: The BHXH card lookup already answered for this visit (its issues are in ``findings``):
    #: a batch retried file by file asks the portal once and lists each answer once.
    cards_checked: bool = False

    @property
    def status(self) -> str:
        if self.findings.rejected:
            return "rejected"
        return "accepted_with_warnings" if self.findings.issues else "accepted"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent from the import's parse processes: the tables (hundreds of small strings) as
        # one packed JSON document, ten times quicker to pickle than the dictionaries.
        packed = self.packed or pack_json(self.tables)
        return _visit_analysis, (self.index, self.visit_key, packed, self.findings,
                                 self.content_sha256, bool(self.packed))  # fmt: skip


def _visit_analysis(
    index: int, visit_key: str | None, packed: bytes, findings: Findings, sha256: str, kept: bool
) -> VisitAnalysis:
    tables = unpack_json(packed)
    return VisitAnalysis(index, visit_key, tables, findings, sha256, packed if kept else b"")


@dataclass(slots=True)
class Analysis:
    facility_code: str
    visits: list[VisitAnalysis] = field(default_factory=list)
    signed: bool = False
    #: The raw file's SHA-256 and zstd copy, when worked out with the analysis (``prepare``:
    #: in the parse thread or process, not in the writer); empty: worked out when stored.
    raw_sha256: str = ""
    raw_zstd: bytes = b""


def _by_stt(row: dict[str, str]) -> tuple[int, int]:
    number = row.get("STT") or ""
    return (0, int(number)) if number.isdigit() and number.isascii() else (1, 0)


def canonical_sha256(tables: dict[str, list[dict[str, str]]]) -> str:
    """Hash of a visit's content, independent of whitespace, element order, base64 line breaks,
    empty fields (``<MAHUYEN_CU_TRU/>`` or no element say the same) and the order of a table's
    rows when their STT numbers them: the same visit sent twice, as XML or as FHIR, hashes the
    same. (Rows without a number keep their place, after the numbered ones.)"""
    content = {  # (most rows have no empty field: kept as they are, not copied)
        name: [
            row if all(row.values()) else {k: v for k, v in row.items() if v}
            for row in sorted(rows, key=_by_stt)
        ]
        for name, rows in tables.items()
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def analyse(data: bytes, *, codes: CodeBook, limits: Limits) -> Analysis:
    """Read a GIAMDINHHS file and check every visit. File-level problems raise ``FileRefused``;
    a bad visit only marks that visit."""
    envelope = read_envelope(data, limits)
    analysis = Analysis(
        facility_code=envelope.facility_code,
        signed=envelope.root is not None and signature.is_signed(envelope.root),
    )
    seen_keys: dict[str, int] = {}
    for position, entries in enumerate(envelope.records, start=1):
        found = Findings()
        tables: dict[str, list[dict[str, str]]] = {}
        variants: dict[str, str] = {}
        unknown: list[tuple[str, int, str]] = []
        checked: dict[str, list[tuple[str, ...] | None]] = {}
        for entry in entries:
            if entry.kind not in TABLES_IN_ENVELOPE:
                found.error("SUB-0103", entry.kind or None, value=entry.kind)
                continue
            if entry.kind in tables:
                found.error("SUB-0105", entry.kind)
                continue
            try:
                doc = read_table(entry.kind, b64decode(entry.content, what=entry.kind), limits)
            except errors.BadBase64:
                found.error("SUB-0101", entry.kind)
                continue
            except errors.FileRefused as exc:
                reason = {k: f"{exc.code} {v}" for k, v in exc.messages().items()}
                found.error("SUB-0102", entry.kind, reason=reason)
                continue
            tables[entry.kind] = doc.rows
            for code, row, tag in doc.unreadable:
                found.error(code, entry.kind, None if row is None else row + 1, tag)
            variants[entry.kind] = doc.variant
            unknown += [(entry.kind, row, tag) for row, tag in doc.unknown]
            if doc.checked is not None:
                checked[entry.kind] = doc.checked
        if tables:
            result = check_visit(
                tables,
                envelope_facility=envelope.facility_code,
                codes=codes,
                variants=variants,
                unknown_fields=unknown,
                checked=checked,
            )
            found.issues += result.issues
        elif not found.issues:
            found.error("SUB-0104", "XML1")
        visit_key = ((tables.get("XML1") or [{}])[0].get("MA_LK") or "").strip() or None
        if visit_key is not None:
            if visit_key in seen_keys:
                found.error("SUB-0140", "XML1", 1, "MA_LK", value=visit_key)
            seen_keys[visit_key] = position
        analysis.visits.append(
            VisitAnalysis(position, visit_key, tables, found, canonical_sha256(tables))
        )
    return analysis


def prepare(data: bytes, *, codes: CodeBook, limits: Limits) -> Analysis:
    """``analyse`` for a file that will be stored: also the raw file's digest and its zstd
    copy, and each visit's tables packed for storing, so that the writer (one per process,
    holding the transaction) does less."""
    analysis = analyse(data, codes=codes, limits=limits)
    analysis.raw_sha256 = hashlib.sha256(data).hexdigest()
    analysis.raw_zstd = compress(data)
    for visit in analysis.visits:
        if not visit.findings.rejected:
            visit.packed = pack_json(visit.tables)
    return analysis


# ------------------------------------------------------------------ receipts


def _visit_receipt(visit: VisitAnalysis, **extra: Any) -> dict[str, Any]:
    return {
        "index": visit.index,
        "visit_key": visit.visit_key,
        "status": visit.status,
        "issues": [i.as_dict() for i in visit.findings.issues],
        **extra,
    }


def _file_status(statuses: list[str]) -> str:
    if all(s == "rejected" for s in statuses):
        return "rejected"
    if any(s == "rejected" for s in statuses):
        return "partially_accepted"
    if any(s == "accepted_with_warnings" for s in statuses):
        return "accepted_with_warnings"
    return "accepted"


def validation_report(analysis: Analysis) -> dict[str, Any]:
    """What ``/submissions/validate`` answers: the receipt that would be given, nothing stored."""
    visits = [_visit_receipt(v) for v in analysis.visits]
    return {
        "facility_code": analysis.facility_code,
        "status": _file_status([v["status"] for v in visits]),
        "visits": visits,
    }


async def validation_report_for(
    session: AsyncSession,
    subject: Subject,
    data: bytes,
    analysis: Analysis,
    options: IntakeOptions,
) -> dict[str, Any]:
    """``validation_report`` after the file-level checks a submission makes (sender, facility,
    signature; ``FileRefused`` as there), with the file's warnings and whether it would be
    kept apart as a test submission. Reads only."""
    code, test_mode, file_warnings = await _admit(session, subject, data, analysis, options)
    await _check_paper_numbers(session, [(code, v) for v in analysis.visits])
    return {**validation_report(analysis), "test_mode": test_mode, "warnings": file_warnings}


async def staff_report(
    session: AsyncSession,
    subject: Subject,
    facility: str,
    data: bytes,
    analysis: Analysis,
    options: IntakeOptions,
) -> dict[str, Any]:
    """``validation_report_for`` for a facility's administrator (a person, on the facility's
    page) checking a file of facility ``facility`` before its system sends it; reads only.
    The same checks, but a facility that may not send yet (still onboarding, suspended) gets
    its visits checked all the same, with the refusal its system would meet (``refusal``: the
    SUB-0010 error) rather than that refusal alone. Another facility's file is SUB-0009;
    whoever does not administer the facility (or is not its province's department) SUB-0023."""
    _require_reader(subject, facility, ("submission.write",))
    if analysis.facility_code != facility:
        raise errors.FacilityMismatch(found=analysis.facility_code, expected=facility)
    state, certificates = await facilities.intake_context(session, facility)
    file_warnings = await signature.check(
        data, analysis.signed, certificates, options.require_signature
    )
    await _check_paper_numbers(session, [(facility, v) for v in analysis.visits])
    refusal = None
    if state is None or state not in facilities.MAY_CONNECT:
        status = state.value if state else "unknown"
        refusal = errors.FacilityNotAllowed(code=facility, status=status)
    return {
        **validation_report(analysis),
        "test_mode": state != facilities.State.connected,
        "warnings": file_warnings,
        "refusal": refusal,
    }


# ------------------------------------------------------------------ intake


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    limits: Limits
    require_signature: bool = False
    #: The BHXH card lookup (card, name, birth dd/MM/yyyy) -> result code; None: not checked.
    card_check: CardCheck | None = None
    #: The keys papers are signed with; None: papers in the file are not issued (tools that
    #: only load visits, such as benchmarks).
    papers: papers.PaperKeys | None = None
    #: The report's counter of the visits ``accept_many`` writes together, called once per
    #: batch as its last statement; None: the report's consumers count them from the events.
    count: BatchCounter | None = None


async def submit(
    session: AsyncSession,
    subject: Subject,
    data: bytes,
    options: IntakeOptions,
    *,
    persons: Collection[str] = (),
) -> dict[str, Any]:
    """Receive a file from a facility system; returns the receipt (the caller commits before
    handing it out). ``persons``: as ``accept`` takes them."""
    require_sender(subject)
    codes = await catalogs.codebook(session)
    analysis = analyse(data, codes=codes, limits=options.limits)
    return await accept(session, subject, data, analysis, options, persons=persons)


def require_sender(subject: Subject) -> None:
    """Only a facility's own system with ``submission.write`` sends visit files."""
    require_scope(subject, "submission.write")
    if subject.kind != "facility_system" or subject.facility_code is None:
        raise errors.SenderNotAFacilitySystem()


async def admitted(session: AsyncSession, subject: Subject) -> tuple[str, bool]:
    """The sending facility's code, and whether what it sends now is kept apart (test mode:
    onboarding); a facility that may not connect (registered, trained, suspended) is refused
    with SUB-0010. For senders outside the XML intake (FHIR writes); the intake reads the state
    together with the certificates (``_admit``)."""
    require_sender(subject)
    code = subject.facility_code or ""
    state = await facilities.state_of(session, code)
    if state is None or state not in facilities.MAY_CONNECT:
        raise errors.FacilityNotAllowed(code=code, status=state.value if state else "unknown")
    return code, state != facilities.State.connected


#: A facility's receipts being written (``_start_receipts``): a shared advisory lock per
#: facility code (seed 151; the visits' locks use 130), then the database's clock. A listing
#: reads who holds it (``_horizon``).
_RECEIPTS_PG = text(
    "SELECT clock_timestamp() FROM (SELECT"
    " count(pg_advisory_xact_lock_shared(hashtextextended(k, 151))) FROM"
    " (SELECT k FROM unnest(CAST(:codes AS text[])) WITH ORDINALITY AS u(k, n) ORDER BY n)"
    " AS s) AS held"
)
#: Who writes a facility's receipts now (``_horizon``): the sessions holding its shared lock
#: (the key's two 32-bit halves, either sign), and the moment this statement reached the
#: server (``statement_timestamp()``: taken before it runs, so before ``pg_locks`` is read).
#: The transaction's snapshot of the sessions' activity is dropped, so that
#: ``_WRITERS_SINCE_PG`` reads it after this.
_HOLDERS_PG = text(
    "SELECT statement_timestamp(), array_agg(l.pid), pg_stat_clear_snapshot()"
    " FROM pg_locks l"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(:code, 151)"
    " AND l.pid <> pg_backend_pid()"
)
#: When the oldest transaction of these sessions began, of those in one now; and whether one
#: of them may be in one unseen: another role's, whose activity this role may not read
#: (``state`` NULL without ``pg_read_all_stats``), or one not reporting it
#: (``track_activities`` off). A session in no transaction has ended the one that held the
#: lock: its activity is reported from the start of each transaction to its end.
_WRITERS_SINCE_PG = text(
    "SELECT min(a.xact_start),"
    " coalesce(bool_or(a.xact_start IS NULL AND (a.state IS NULL OR a.state = 'disabled')),"
    " false)"
    " FROM pg_stat_activity a WHERE a.pid = ANY(CAST(:pids AS integer[]))"
)


async def _horizon(session: AsyncSession, code: str) -> datetime:
    """Where a listing of facility ``code``'s receipts stops on PostgreSQL (D172, D173): every
    receipt stamped before it is committed, or will never be. Nobody waits: a listing holds
    back no writer. Three statements, each after the one before:

    1. ``_HOLDERS_PG``: the moment ``t0`` it reached the server, then who holds the lock;
    2. ``_WRITERS_SINCE_PG``: when those sessions' present transactions began;
    3. the page, whose snapshot (a new one: READ COMMITTED) has every transaction that
       committed before it.

    The horizon is the earliest of ``t0`` and those starts. A writer stamps after it took the
    lock, from the same clock (``_start_receipts``). So a receipt stamped before the horizon,
    thus before ``t0``, is of a writer that held the lock before step 1 read the locks. Had it
    ended by then, its commit is in step 3's snapshot (a transaction leaves the list of those
    running before it lets go of its locks). Otherwise step 1 saw it, and in step 2 it is
    either still in that transaction, begun before its stamp, which is then not before the
    horizon, or it has ended (no transaction now, one begun after ``t0``, or the session is
    gone) and its commit is in step 3's snapshot too. So every receipt a page leaves out is
    stamped at or after the horizon: after the last it shows. Before, one statement read the
    clock after the locks (a writer that took the lock just after that read could stamp
    below it unseen, and a cursor went past its receipt) and the activity before them (a
    writer begun between the two reads showed no transaction: SUB-0026). A session seen
    holding the lock that may be in a transaction this role cannot see makes it
    ``ReceiptsUnsure`` (SUB-0026)."""
    [(began, holders, _)] = (await session.execute(_HOLDERS_PG, {"code": code})).all()
    if not holders:
        return cast(datetime, began)
    [(oldest, unseen)] = (await session.execute(_WRITERS_SINCE_PG, {"pids": holders})).all()
    if unseen:
        raise errors.ReceiptsUnsure()
    return cast(datetime, began if oldest is None else min(began, oldest))


@dataclass(frozen=True, slots=True)
class _Clock:
    """The clock a transaction stamps its receipts with, from ``_start_receipts``."""

    at: datetime
    taken: float  # time.monotonic() then

    def now(self) -> datetime:
        return self.at + timedelta(seconds=time.monotonic() - self.taken)


async def _start_receipts(session: AsyncSession, codes: list[str]) -> _Clock:
    """Mark this transaction, until it ends, as writing receipts of these facilities, and start
    the clock it stamps them with, so that a listing's cursor (received at, id) never passes a
    receipt that commits later (D172). On PostgreSQL writers of a facility go side by side (a
    shared lock), and a listing of it stops before the start of the oldest of those in
    progress (their stamps come after it): every receipt it does not show is stamped after
    what it shows. The clock is the database's, one for every API process whatever their
    machines' clocks say. SQLite's
    writers take turns (``BEGIN IMMEDIATE``, taken here if no statement has begun the
    transaction yet): each commits before the next is stamped."""
    if session.get_bind().dialect.name != "postgresql":
        await session.connection()
        return _Clock(utcnow(), time.monotonic())
    [(at,)] = await hot_fetch(session, _RECEIPTS_PG, {"codes": sorted(set(codes))})
    return _Clock(at, time.monotonic())


async def accept(
    session: AsyncSession,
    subject: Subject,
    data: bytes,
    analysis: Analysis,
    options: IntakeOptions,
    *,
    clock: _Clock | None = None,
    persons: Collection[str] = (),
) -> dict[str, Any]:
    """Store an analysed file (facility, signature, visits) and return its receipt. ``clock``:
    when the caller (``accept_many``) has started its receipts already. ``persons``: the
    personal IDs of other persons the caller matches after the file in this transaction (a
    FHIR transaction's other Patients), whose writer's locks are taken with the file's (D200;
    none in test mode, where nobody is matched)."""
    code, test_mode, file_warnings = await _admit(session, subject, data, analysis, options)
    standalone = clock is None
    if clock is None:
        clock = await _start_receipts(session, [code])
    # every visit of the file locked at once, in one order (one at a time, two files naming
    # the same visits in other orders could wait on each other)
    await records.lock_visits(
        session, [(code, v.visit_key) for v in analysis.visits if v.visit_key is not None]
    )
    if standalone:  # (within ``accept_many``, every batch has locked its persons already)
        named = _patients_named(subject, analysis, test_mode)
        named |= _holders_named(analysis, test_mode, options)
        if not test_mode:
            named |= set(persons)
        await identity.lock_patients(session, named)
    await _check_paper_numbers(session, [(code, v) for v in analysis.visits])
    received = clock.now()
    submission_id = str(uuid.uuid4())
    visits: list[dict[str, Any]] = []
    accepted = 0
    for visit in analysis.visits:
        if options.card_check is not None and not visit.findings.rejected:
            await _check_cards(session, visit, options.card_check)
        if visit.findings.rejected or visit.visit_key is None:
            visits.append(_visit_receipt(visit))
            if not test_mode:  # for the report's quality figures
                await hot_add(session, _rejected_event(code, visit, received, submission_id))
            continue
        stored = await _store_visit(
            session, subject, visit, submission_id, received, test_mode, options.papers
        )
        accepted += 1
        visits.append(_stored_receipt(visit, stored))
    receipt, row = _finish(
        subject,
        data,
        analysis,
        submission_id,
        received,
        test_mode,
        file_warnings,
        visits,
        accepted,
    )
    await hot_add(session, row)
    if test_mode and accepted:
        await facilities.test_submission_passed(session, code, subject.label)
    await session.flush()
    return receipt


async def accept_many(
    session: AsyncSession,
    files: list[tuple[Subject, bytes, Analysis]],
    options: IntakeOptions,
) -> list[dict[str, Any] | errors.FileRefused]:
    """``accept`` for many files in one transaction, with the same rows, receipts and events
    as if they came one after another in this order (the bulk import, D48). A file refused
    whole gets its error in its place and writes nothing.

    Files whose visits are all new to the hub (no version of their MA_LK yet, each MA_LK once
    in the batch) from connected facilities are written together: persons in one insert,
    versions, timeline rows, events, audit rows and submissions with COPY on PostgreSQL. The
    others (corrections, resubmissions, test mode, card checks) go through ``accept`` one by
    one, each in a savepoint. Either way the writer's locks of the persons the batch names are
    taken first, all at once, as ``accept`` takes those of a file (D200)."""
    results: list[dict[str, Any] | errors.FileRefused | None] = [None] * len(files)
    admitted: list[tuple[int, str, bool, list[dict[str, Any]]]] = []
    known: dict[str, tuple[facilities.State | None, list[facilities.SigningCertificate]]] = {}
    for index, (subject, data, analysis) in enumerate(files):
        try:
            admitted.append(
                (index, *await _admit(session, subject, data, analysis, options, known))
            )
        except errors.FileRefused as exc:
            results[index] = exc
    if not admitted:
        return [r for r in results if r is not None]
    clock = await _start_receipts(session, [code for _, code, _, _ in admitted])

    # (before the visits are sorted into runs: a visit refused here is no new visit)
    await _check_paper_numbers(
        session, [(code, v) for index, code, _, _ in admitted for v in files[index][2].visits]
    )

    def new_keys(index: int, code: str) -> list[tuple[str, str]]:
        return [
            (code, v.visit_key)
            for v in files[index][2].visits
            if v.visit_key is not None and not v.findings.rejected
        ]

    seen = Counter(key for index, code, _, _ in admitted for key in new_keys(index, code))
    counted: _Counted = ([], [], [])
    # (locked first: a visit another transaction is writing now is seen once it commits)
    await records.lock_visits(session, list(seen))
    existing = await records.current_keys(session, list(seen))
    # In arrival order, as runs: files written together, then one written alone, then
    # together again... (a paper issued by an earlier file, a person's details from their
    # first visit, the order of the received-at times: as if they came one after another)
    runs: list[tuple[bool, list[tuple[int, str, bool, list[dict[str, Any]]]]]] = []
    for item in admitted:
        index, code, test_mode, _ = item
        keys = new_keys(index, code)
        alone = (
            test_mode
            or options.card_check is not None
            or any(seen[key] > 1 or key in existing for key in keys)
        )
        if runs and runs[-1][0] == alone:
            runs[-1][1].append(item)
        else:
            runs.append((alone, [item]))
    # then, before any person is matched, the persons the batch's visits name, all at once
    # (D200): the patients, and the mothers their birth certificates name (matched visit by
    # visit after the patients, as their papers are issued). Every batch takes them, even one
    # written together in one run, which matches its patients in one statement: its row locks
    # follow the persons' ids, while a batch written file by file, holding these locks, takes
    # the rows in its files' order, and the two orders met in a circle.
    named: set[str] = set()
    for index, _, test_mode, _ in admitted:
        subject, _, analysis = files[index]
        named |= _patients_named(subject, analysis, test_mode)
        named |= _holders_named(analysis, test_mode, options)
    await identity.lock_patients(session, named)
    for alone, items in runs:
        if not alone:
            together = await _accept_together(session, files, items, options, counted, clock)
            for index, receipt in together:
                results[index] = receipt
            continue
        for index, _, _, _ in items:
            subject, data, analysis = files[index]
            try:
                async with session.begin_nested():
                    results[index] = await accept(
                        session, subject, data, analysis, options, clock=clock
                    )
            except errors.FileRefused as exc:
                results[index] = exc
    if options.count is not None and any(counted):
        # last: the counters (a facility's month, shared with other writers) stay locked only
        # until the commit that follows, and are taken in one order (no deadlock, D113)
        await options.count(session, *counted)
    done = [r for r in results if r is not None]
    if len(done) != len(files):
        raise RuntimeError("accept_many left a file without an answer")
    return done


async def _accept_together(
    session: AsyncSession,
    files: list[tuple[Subject, bytes, Analysis]],
    admitted: list[tuple[int, str, bool, list[dict[str, Any]]]],
    options: IntakeOptions,
    counted: _Counted,
    clock: _Clock,
) -> list[tuple[int, dict[str, Any]]]:
    """The files of ``accept_many`` whose visits are all new, from connected facilities; with a
    report counter, what they write for the report is added to ``counted``."""
    received = clock.now()
    counting = options.count is not None
    patients = []
    for index, _, _, _ in admitted:
        subject, _, analysis = files[index]
        for visit in analysis.visits:
            if not visit.findings.rejected and visit.visit_key is not None:
                found = _patient(subject, visit, test_mode=False)
                if found is not None:
                    patients.append(found)
    matches = await identity.check_patients(session, patients)
    plans: list[tuple[int, str, list[tuple[VisitAnalysis, records.VisitData | None]]]] = []
    datas = []
    rows: list[Any] = []
    for index, _, _, _ in admitted:
        subject, _, analysis = files[index]
        submission_id = str(uuid.uuid4())
        planned: list[tuple[VisitAnalysis, records.VisitData | None]] = []
        for visit in analysis.visits:
            if visit.findings.rejected or visit.visit_key is None:
                planned.append((visit, None))
                continue
            patient = _patient(subject, visit, test_mode=False)
            person_id = (
                None
                if patient is None
                else _book_of(visit, patient, matches[patient["personal_id"]])
            )
            if options.papers is not None:
                await _papers_held(session, visit)
            data = _visit_data(subject, visit, submission_id, received, False, person_id)
            datas.append(data)
            planned.append((visit, data))
        plans.append((index, submission_id, planned))
    stored = iter(await records.store_new_many(session, datas))
    answers = []
    issue = []  # visits whose papers are issued after the rows exist
    for (index, submission_id, planned), (_, code, _, file_warnings) in zip(
        plans, admitted, strict=True
    ):
        subject, data_bytes, analysis = files[index]
        visits = []
        for visit, planned_data in planned:  # the rows in the order one by one would write them
            if planned_data is None:
                event = _rejected_event(code, visit, received, submission_id, counting)
                if counting:
                    counted[1].append(event.payload)
                rows.append(event)
                visits.append(_visit_receipt(visit))
                continue
            data = planned_data
            kept = next(stored)
            rows += _accepted_rows(
                subject, visit, kept, submission_id, data.person_id, False, counted=counting
            )
            if counting:
                counted[0].append(data)
            visits.append(_stored_receipt(visit, kept))
            issue.append((subject, visit, data.person_id, kept.outcome == "changed"))
        accepted = sum(1 for _, data in planned if data is not None)
        receipt, row = _finish(
            subject,
            data_bytes,
            analysis,
            submission_id,
            received,
            False,
            file_warnings,
            visits,
            accepted,
        )
        rows.append(row)
        answers.append((index, receipt))
    await copy_objects(session, rows)
    if options.papers is not None:
        # (every visit here is new: no correction revokes a paper, nothing to warn of)
        await papers.from_visits(
            session,
            options.papers,
            [_visit_papers(s, v, p, r) for s, v, p, r in issue],
            issued=counted[2] if counting else None,
        )
    return answers


async def _admit(
    session: AsyncSession,
    subject: Subject,
    data: bytes,
    analysis: Analysis,
    options: IntakeOptions,
    known: dict[str, tuple[facilities.State | None, list[facilities.SigningCertificate]]]
    | None = None,
) -> tuple[str, bool, list[dict[str, Any]]]:
    """The file-level checks: sender, facility (connected, or onboarding: test mode), signature.
    Returns (facility code, test mode, file warnings); raises ``FileRefused``. ``known`` keeps
    the facilities already read in this transaction."""
    require_sender(subject)
    code = subject.facility_code or ""
    if analysis.facility_code != code:
        raise errors.FacilityMismatch(found=analysis.facility_code, expected=code)
    found = known.get(code) if known is not None else None
    if found is None:
        found = await facilities.intake_context(session, code)
        if known is not None:
            known[code] = found
    state, certificates = found
    if state is None or state not in facilities.MAY_CONNECT:
        raise errors.FacilityNotAllowed(code=code, status=state.value if state else "unknown")
    test_mode = state != facilities.State.connected
    file_warnings = await signature.check(
        data, analysis.signed, certificates, options.require_signature
    )
    return code, test_mode, file_warnings


def _rejected_event(
    code: str,
    visit: VisitAnalysis,
    received: datetime,
    submission_id: str,
    counted: bool = False,
) -> OutboxEvent:
    payload: dict[str, Any] = {
        "facility_code": code,
        "visit_key": visit.visit_key,
        "codes": sorted({i.code for i in visit.findings.issues if i.severity == "error"}),
        "received_at": received.isoformat(),
        "submission_id": submission_id,
    }
    if counted:  # in the report already, by the batch that wrote it (D113)
        payload["counted"] = True
    return new_event("visit.rejected", f"{code}:{visit.visit_key or '-'}", payload, plain=True)


def _stored_receipt(visit: VisitAnalysis, stored: records.Stored) -> dict[str, Any]:
    extra = {"same_as_version": stored.same_as} if stored.same_as is not None else {}
    return _visit_receipt(
        visit,
        version=stored.version,
        outcome=stored.outcome,
        first_receipt=stored.submission_id if stored.outcome == "unchanged" else None,
        **extra,  # (an old content sent again: it undoes what came after it, D63)
    )


def _finish(
    subject: Subject,
    data: bytes,
    analysis: Analysis,
    submission_id: str,
    received: datetime,
    test_mode: bool,
    file_warnings: list[dict[str, Any]],
    visits: list[dict[str, Any]],
    accepted: int,
) -> tuple[dict[str, Any], Submission]:
    """The receipt and the submission row that keeps it with the raw file."""
    code = subject.facility_code or ""
    status = _file_status([v["status"] for v in visits])
    INTAKE_FILES.labels(status).inc()
    for entry in visits:
        INTAKE_VISITS.labels(entry["status"]).inc()
    receipt = {
        "id": submission_id,
        "received_at": received.isoformat(),
        "facility_code": code,
        "status": status,
        "test_mode": test_mode,
        "warnings": file_warnings,
        "visits": visits,
    }
    row = new_row(
        Submission,
        id=submission_id,
        kind="giamdinhhs",
        facility_code=code,
        client_id=subject.id,
        received_at=received,
        status=status,
        test_mode=test_mode,
        visits=len(visits),
        accepted=accepted,
        rejected=len(visits) - accepted,
        raw_sha256=analysis.raw_sha256 or hashlib.sha256(data).hexdigest(),
        raw_size=len(data),
        raw_zstd=analysis.raw_zstd or compress(data),
        receipt=receipt,
    )
    return receipt, row


def _patients_named(subject: Subject, analysis: Analysis, test_mode: bool) -> set[str]:
    """The personal IDs of the persons a file's accepted visits go to (``_patient``)."""
    named = set()
    for visit in analysis.visits:
        if not visit.findings.rejected and visit.visit_key is not None:
            patient = _patient(subject, visit, test_mode)
            if patient is not None:
                named.add(patient["personal_id"])
    return named


def _holders_named(analysis: Analysis, test_mode: bool, options: IntakeOptions) -> set[str]:
    """The personal IDs of the persons a file's accepted visits issue papers to besides their
    patients (the mothers their birth certificates name): none in test mode or when papers are
    not issued (``IntakeOptions.papers``), where no one is matched for them."""
    if test_mode or options.papers is None:
        return set()
    named: set[str] = set()
    for visit in analysis.visits:
        if not visit.findings.rejected and visit.visit_key is not None:
            named |= papers.holders_named(visit.tables)
    return named


def _patient(subject: Subject, visit: VisitAnalysis, test_mode: bool) -> dict[str, Any] | None:
    """The person the visit's XML1 names, as ``identity.match_patient`` takes them (None: no
    personal ID, or test mode, where nobody is created)."""
    xml1 = visit.tables["XML1"][0]
    personal_id = (xml1.get("SO_CCCD") or "").strip()
    if identity.classify_document_number(personal_id) != "personal_id" or test_mode:
        return None
    # a day of 00 (yyyymm00) or a month of 00 (yyyy0000): known to the month or year only
    full_name, birth_date, partial = patient_named(xml1)
    return {
        "personal_id": personal_id,
        "full_name": full_name,
        "birth_date": birth_date,
        "birth_partial": partial,
        "sex": {"1": "male", "2": "female"}.get((xml1.get("GIOI_TINH") or "").strip()),
        "source": f"intake:{subject.facility_code}",
    }


#: The fields of XML1 compared with what VNeID confirmed of the person SO_CCCD names.
_CONFIRMED_FIELDS = {"full_name": "HO_TEN", "birth": "NGAY_SINH"}
#: The warning that a visit is held out of the health book of the person its SO_CCCD names.
HELD = "SUB-0170"


def _book_of(
    visit: VisitAnalysis, patient: dict[str, Any], found: identity.PatientMatch
) -> int | None:
    """Whose health book the visit goes into: the person its SO_CCCD names, unless its HO_TEN
    or NGAY_SINH are not what VNeID confirmed of them. Then it is most likely someone else's
    visit under a mistyped ID: it is kept (and relayed) without a person, and the receipt
    names each field that differs (SUB-0170), never what VNeID has (D23, as amended)."""
    differs = found.differs(patient["full_name"], patient["birth_date"], patient["birth_partial"])
    for name in differs:
        field_ = _CONFIRMED_FIELDS[name]
        # (a batch retried file by file analyses nothing again: warn once)
        if not any(i.code == HELD and i.field == field_ for i in visit.findings.issues):
            visit.findings.warning(HELD, "XML1", 1, field_)
    return None if differs else found.person_id


#: The warning that a paper of a visit is kept out of the book of the person it names.
PAPER_HELD = "SUB-0171"


async def _papers_held(session: AsyncSession, visit: VisitAnalysis) -> None:
    """Warn (SUB-0171) for each field of the visit's birth certificates that keeps one out of
    the book of the mother it names, as for a visit (D150): she signed in with VNeID, and the
    paper's name or birth date for her are not what VNeID confirmed. The paper is issued with
    no holder (``papers.from_visits``); the receipt names the field, never what VNeID has."""
    for table, row, field_ in await papers.unconfirmed_holders(session, visit.tables):
        # (a batch retried file by file analyses nothing again: warn once)
        if not any(
            i.code == PAPER_HELD and (i.table, i.row, i.field) == (table, row, field_)
            for i in visit.findings.issues
        ):
            visit.findings.warning(PAPER_HELD, table, row, field_)


def _visit_data(
    subject: Subject,
    visit: VisitAnalysis,
    submission_id: str,
    received: datetime,
    test_mode: bool,
    person_id: int | None,
) -> records.VisitData:
    xml1 = visit.tables["XML1"][0]
    personal_id = (xml1.get("SO_CCCD") or "").strip()
    return records.VisitData(
        facility_code=subject.facility_code or "",
        visit_key=visit.visit_key or "",
        tables=visit.tables,
        content_sha256=visit.content_sha256,
        submission_id=submission_id,
        received_at=received,
        test_mode=test_mode,
        person_id=person_id,
        personal_id=personal_id or None,
        care_type=(xml1.get("MA_LOAI_KCB") or "").strip() or None,
        insured=bool((xml1.get("MA_THE_BHYT") or "").strip()),
        main_diagnosis=(xml1.get("MA_BENH_CHINH") or "").strip()[:10] or None,
        outcome=(xml1.get("KET_QUA_DTRI") or "").strip()[:2] or None,
        started_at=vietnam_moment(xml1.get("NGAY_VAO")),
        ended_at=vietnam_moment(xml1.get("NGAY_RA")),
        total_hospital_cost=parse_number(xml1.get("T_TONGCHI_BV") or ""),
        has_summary="XML8" in visit.tables,
        warnings=[i.as_dict() for i in visit.findings.issues] or None,
        packed_tables=visit.packed,
    )


def _accepted_rows(
    subject: Subject,
    visit: VisitAnalysis,
    stored: records.Stored,
    submission_id: str,
    person_id: int | None,
    test_mode: bool,
    *,
    counted: bool = False,
) -> tuple[OutboxEvent, AuditEvent]:
    """The ``visit.accepted`` event and the audit row of a new or changed version; ``counted``:
    the batch that writes it adds it to the report (D113)."""
    payload: dict[str, Any] = {
        "submission_id": submission_id,
        "facility_code": subject.facility_code,
        "visit_key": visit.visit_key,
        "version": stored.version,
        "version_id": stored.version_id,
        "person_id": person_id,
        "test_mode": test_mode,
    }
    if counted:
        payload["counted"] = True
    if stored.new_in_book:
        # a correction put the visit in this person's book: the inbox tells them (D175)
        payload["new_in_book"] = True
    key = f"{subject.facility_code}:{visit.visit_key}"
    return new_event("visit.accepted", key, payload, plain=True), audit_event(
        actor=subject.label,
        action="visit.received",
        object_type="visit_version",
        object_id=str(stored.version_id),
        person_id=person_id,
        detail={"submission_id": submission_id, "outcome": stored.outcome},
        plain=True,
    )


async def _store_visit(
    session: AsyncSession,
    subject: Subject,
    visit: VisitAnalysis,
    submission_id: str,
    received: datetime,
    test_mode: bool,
    paper_keys: papers.PaperKeys | None = None,
) -> records.Stored:
    patient = _patient(subject, visit, test_mode)
    person_id = None
    if patient is not None:
        person_id = _book_of(visit, patient, await identity.check_patient(session, **patient))
    if paper_keys is not None and not test_mode:
        await _papers_held(session, visit)
    stored = await records.store(
        session, _visit_data(subject, visit, submission_id, received, test_mode, person_id)
    )
    if stored.outcome != "unchanged":
        await hot_add(
            session,
            *_accepted_rows(subject, visit, stored, submission_id, person_id, test_mode),
        )
        if paper_keys is not None and not test_mode:
            [again] = await papers.from_visits(
                session,
                paper_keys,
                [_visit_papers(subject, visit, person_id, stored.outcome == "changed")],
            )
            _issue_again(visit, again)
    return stored


#: The warning that a correction revoked a paper the facility issued for the visit through the
#: papers API: the visit is now another patient's (or nobody's), the paper is to be issued again.
ISSUE_AGAIN = "SUB-0172"


def _issue_again(visit: VisitAnalysis, again: list[papers.ToIssueAgain]) -> None:
    """Warn (SUB-0172) of each paper issued through the papers API for this visit that its
    correction revoked because the visit is now another patient's (D180): nothing in the file
    replaces it, so the facility issues it again for the visit's patient. Named by kind and
    number, never by whose it was."""
    for paper in again:
        # (a batch retried file by file analyses nothing again: warn once)
        if any(
            i.code == ISSUE_AGAIN and i.params.get("paper_id") == paper.paper_id
            for i in visit.findings.issues
        ):
            continue
        visit.findings.warning(
            ISSUE_AGAIN,
            paper_id=paper.paper_id,
            kind=paper.kind,
            number=paper.number,
            title=texts(f"web.paper_kind.{paper.kind}"),
        )


def _visit_papers(
    subject: Subject, visit: VisitAnalysis, person_id: int | None, replaces: bool
) -> papers.VisitPapers:
    """What ``papers.from_visits`` needs of a stored visit: its papers are issued and the
    appointment it cites is used, in the intake's transaction (the receipt comes after both).
    ``replaces``: a new version of a stored visit, whose dropped papers are withdrawn (a first
    version, the usual case, costs no look-up)."""
    return papers.VisitPapers(
        subject.facility_code or "",
        visit.visit_key or "",
        visit.tables,
        person_id,
        subject.label,
        replaces,
    )


async def receipt(session: AsyncSession, subject: Subject, submission_id: str) -> dict[str, Any]:
    """A receipt again, for the facility that sent the file (or the department). Anyone else
    is answered as for an id that does not exist (SUB-0015), so that ids cannot be tried to
    learn which exist (D172)."""
    row = await session.get(Submission, submission_id)
    if row is None or not _may_read(subject, row.facility_code, RECEIPT_SCOPES):
        raise errors.UnknownSubmission(id=submission_id)
    return row.receipt


def _may_read(subject: Subject, facility_code: str, scopes: tuple[str, ...]) -> bool:
    """The province's department, the facility's administrators, or one of the facility's own
    systems holding one of ``scopes`` (``MissingScope`` for a system of the facility without
    them)."""
    if subject.is_department_admin(facility_code[:2]):
        return True
    if subject.acts_for_facility(facility_code, ("facility_admin",)):
        if subject.kind == "facility_system" and not subject.scopes & set(scopes):
            raise MissingScope(scope=" or ".join(scopes))
        return True
    return False


def _require_reader(
    subject: Subject, facility_code: str, scopes: tuple[str, ...] = ("record.read",)
) -> None:
    """``_may_read`` or SUB-0023, which names the facility."""
    if not _may_read(subject, facility_code, scopes):
        raise errors.NotYourFacilityData(facility=facility_code)


#: What a listed receipt is of (its ``kind``): the submission's stored kind -> the listing's.
RECEIPT_KINDS = {"giamdinhhs": "visit_file", "checkin": "checkin"}


def _receipt_cursor(received_at: datetime, submission_id: str) -> str:
    return encode_cursor((_iso(received_at) or "", submission_id))


def _after_receipt(cursor: str) -> tuple[datetime, str]:
    """The (received at, id) a listing's cursor goes on after; ``InvalidCursor`` for anything
    that is not a cursor the listing gave (it must not reach the query)."""
    moment, submission_id = decode_cursor(cursor, (str, str))
    try:
        found = datetime.fromisoformat(str(moment))
        if found.tzinfo is None or len(str(submission_id)) > 36:
            raise ValueError("not a cursor of the listing")
        return found.astimezone(UTC), str(submission_id)
    except (ValueError, OverflowError) as exc:  # OverflowError: past year 9999 in UTC
        raise InvalidCursor(cursor=cursor[:64]) from exc


async def listing(
    session: AsyncSession,
    subject: Subject,
    *,
    primary: AsyncSession,
    facility: str | None,
    since: datetime | None,
    limit: int,
    kind: str | None = None,
    cursor: str | None = None,
    newest_first: bool = False,
) -> Page[dict[str, Any]]:
    """Receipts of a facility received at or after ``since``, oldest first, ``limit`` at a
    time, each with its ``kind`` (``visit_file`` or ``checkin``; ``kind`` lists one of them
    only); ``next_cursor`` (None on the last page) goes on after the page's last receipt
    (the facility's systems and admins, the department). Oldest first, so that a system that
    lost answers (D49) reads on from where it was, however many receipts came since; receipts
    written in one transaction share their moment, and the cursor tells them apart by id.
    ``newest_first``: the latest first, the cursor going on to older ones (the facility
    administrator's page); a receipt committed after a page was read is on the next first
    page, never behind that page's cursor (the same horizon).

    ``session`` reads on the read engine; on PostgreSQL the page is read on ``primary`` (the
    primary database: a replica cannot tell what is being written) and stops before the
    receipts of the facility still being written (``_horizon``), which come on a later
    page: a receipt committed after the page never falls behind its cursor, and nobody waits
    (``_start_receipts``, D172)."""
    code = facility or subject.facility_code
    if code is None:
        raise errors.FacilityNotNamed()
    _require_reader(subject, code, RECEIPT_SCOPES)
    columns = (Submission.id, Submission.kind, Submission.received_at, Submission.receipt)
    stmt = select(*columns).where(Submission.facility_code == code)
    if since is not None:
        stmt = stmt.where(Submission.received_at >= since)
    if kind is not None:
        stored = [k for k, shown in RECEIPT_KINDS.items() if shown == kind]
        stmt = stmt.where(Submission.kind.in_(stored))
    if cursor and newest_first:
        at, last_id = _after_receipt(cursor)
        stmt = stmt.where(
            Submission.received_at <= at,
            or_(Submission.received_at < at, Submission.id < last_id),
        )
    elif cursor:
        at, last_id = _after_receipt(cursor)
        stmt = stmt.where(
            Submission.received_at >= at,
            or_(Submission.received_at > at, Submission.id > last_id),
        )
    if primary.get_bind().dialect.name == "postgresql":
        session = primary
        stmt = stmt.where(Submission.received_at < await _horizon(session, code))
    if newest_first:
        stmt = stmt.order_by(Submission.received_at.desc(), Submission.id.desc())
    else:
        stmt = stmt.order_by(Submission.received_at, Submission.id)
    stmt = stmt.limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[dict[str, Any]](
        items=[{"kind": RECEIPT_KINDS.get(row.kind, row.kind), **row.receipt} for row in rows],
        next_cursor=_receipt_cursor(rows[-1].received_at, rows[-1].id) if more else None,
    )


async def awaiting_visits(
    session: AsyncSession,
    subject: Subject,
    *,
    facility: str | None,
    older_than: timedelta,
    within: timedelta = timedelta(days=30),
    limit: int,
) -> list[dict[str, Any]]:
    """The facility's visits checked in more than ``older_than`` ago but within the last
    ``within`` whose file never came (no version stored outside test mode): visits made but
    not sent, oldest first (D65). The window bounds the query to a range of the facility's
    check-ins (``ix_checkin_entry_facility_received``), not all it ever made."""
    code = facility or subject.facility_code
    if code is None:
        raise errors.FacilityNotNamed()
    _require_reader(subject, code, RECEIPT_SCOPES)
    sent = records.stored_visit_exists(CheckinEntry.facility_code, CheckinEntry.visit_key)
    now = utcnow()
    rows = await session.execute(
        select(
            CheckinEntry.visit_key,
            func.min(CheckinEntry.began_at),
            func.min(CheckinEntry.first_cost_at),
            func.min(CheckinEntry.received_at),
        )
        .where(
            CheckinEntry.facility_code == code,
            CheckinEntry.received_at <= now - older_than,
            CheckinEntry.received_at >= now - within,
            ~sent,
        )
        .group_by(CheckinEntry.visit_key)
        .order_by(func.min(CheckinEntry.received_at), CheckinEntry.visit_key)
        .limit(limit)
    )
    return [
        {
            "facility_code": code,
            "visit_key": key,
            "began_at": _iso(began),
            "first_cost_at": _iso(cost),
            "checked_in_at": _iso(received),
        }
        for key, began, cost, received in rows
    ]


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


async def check_in(
    session: AsyncSession,
    subject: Subject,
    data: bytes,
    options: IntakeOptions,
    codes: CodeBook,
) -> dict[str, Any]:
    """Receive an XML0 check-in (D62): the facility may send (connected; onboarding: test
    mode, kept apart and not relayed), the signature, every row's checks; a stored receipt,
    and the file relayed to the BHXH portal as it came when no row is rejected (it is signed:
    rows cannot be taken out of it). The same bytes again get the first receipt that did not
    reject them; after a rejection they are checked again."""
    require_scope(subject, "checkin.write")
    if subject.kind != "facility_system" or subject.facility_code is None:
        raise errors.SenderNotAFacilitySystem()
    code = subject.facility_code
    doc = read_checkin(data, options.limits)
    if not doc.rows:
        raise errors.NoVisits()
    state, certificates = await facilities.intake_context(session, code)
    if state is None or state not in facilities.MAY_CONNECT:
        raise errors.FacilityNotAllowed(code=code, status=state.value if state else "unknown")
    test_mode = state != facilities.State.connected
    file_warnings = await signature.check(data, doc.signed, certificates, options.require_signature)
    digest = hashlib.sha256(data).hexdigest()
    # the same check-in resent while the first is still being written (a vendor's timeout):
    # the second waits, then gets the first's receipt; relayed to BHXH once
    await take_turns(session, TURNS_CHECKINS, f"{code}:{digest}")
    earlier = await session.scalar(
        select(Submission.receipt)
        .where(
            Submission.raw_sha256 == digest,
            Submission.kind == "checkin",
            Submission.facility_code == code,
            Submission.test_mode.is_(test_mode),
            # a rejection is not reused: the clock and the catalogues in force may have
            # changed since, and the same bytes may pass now
            Submission.status != "rejected",
        )
        .order_by(Submission.received_at)
        .limit(1)
    )
    if earlier is not None:  # a retry (vendors resend until answered): no second relay
        return dict(earlier)
    found = check_checkin(doc, facility=code, codes=codes)
    status = (
        "rejected" if found.rejected else "accepted_with_warnings" if found.issues else "accepted"
    )
    keys = [(row.get("MA_LK") or "").strip() for row in doc.rows]
    received = (await _start_receipts(session, [code])).now()
    receipt = {
        "id": str(uuid.uuid4()),
        "received_at": received.isoformat(),
        "facility_code": code,
        "status": status,
        "test_mode": test_mode,
        "rows": len(doc.rows),
        "visit_keys": keys,
        "warnings": file_warnings,
        "issues": [i.as_dict() for i in found.issues],
    }
    session.add(
        Submission(
            id=receipt["id"],
            kind="checkin",
            facility_code=code,
            client_id=subject.id,
            received_at=received,
            status=status,
            test_mode=test_mode,
            visits=len(doc.rows),
            accepted=0 if found.rejected else len(doc.rows),
            rejected=len(doc.rows) if found.rejected else 0,
            raw_sha256=digest,
            raw_size=len(data),
            raw_zstd=compress(data),
            receipt=receipt,
        )
    )
    if not found.rejected and not test_mode:
        session.add_all(
            CheckinEntry(
                submission_id=receipt["id"],
                facility_code=code,
                visit_key=key,
                began_at=vietnam_moment(row.get("NGAY_VAO")),
                first_cost_at=vietnam_moment(row.get("NGAY_YL")),
                received_at=received,
            )
            for key, row in zip(keys, doc.rows, strict=True)
        )
        # one file, sent once under its first visit's key; every other visit's files wait
        # behind it too (D256): the portal hears of a visit's check-in before its file
        await add_event(
            session,
            new_event(
                "checkin.received",
                f"{code}:{keys[0]}",
                {"submission_id": receipt["id"], "facility_code": code, "visit_keys": keys},
            ),
            also_keys=[f"{code}:{key}" for key in keys[1:]],
        )
    await session.flush()
    return receipt


async def received_digests(session: AsyncSession, digests: list[str]) -> set[str]:
    """Which of these SHA-256 digests of raw files the import skips, so that an interrupted
    import resumes where it stopped: visit files received before with no visit rejected (a
    rejection is checked again: the catalogues or the clock may let it pass now), for real,
    or in test mode while their facility is still onboarding (once it is connected, they are
    to be loaded for real)."""
    if not digests:
        return set()
    rows = await session.execute(
        select(Submission.raw_sha256, Submission.facility_code, Submission.test_mode)
        .where(
            Submission.raw_sha256.in_(digests),
            Submission.kind == "giamdinhhs",
            Submission.rejected == 0,
        )
        .distinct()
    )
    found: set[str] = set()
    onboarding: dict[str, bool] = {}
    for digest, code, test_mode in rows:
        if test_mode:
            if code not in onboarding:
                state = await facilities.state_of(session, code)
                onboarding[code] = state != facilities.State.connected
            if not onboarding[code]:
                continue
        found.add(digest)
    return found


async def import_file(
    session: AsyncSession, data: bytes, options: IntakeOptions
) -> dict[str, Any] | None:
    """Operator's bulk import of a file as if its facility had sent it; None when the same bytes
    were received before (so an interrupted import resumes where it stopped)."""
    if await received_digests(session, [hashlib.sha256(data).hexdigest()]):
        return None
    facility = read_envelope(data, options.limits).facility_code
    importer = Subject(
        kind="facility_system",
        id="import",
        name="vnehr import",
        scopes=frozenset({"submission.write"}),
        facility_code=facility,
    )
    return await submit(session, importer, data, options)


async def export_visit(
    session: AsyncSession, subject: Subject, facility_code: str, visit_key: str
) -> bytes:
    """The current version of a stored visit as a GIAMDINHHS file again (for the facility, the
    department, and the BHXH relay): the same rows, normalised (standard field order, CDATA)."""
    _require_reader(subject, facility_code)
    current = await records.current_version(session, facility_code, visit_key)
    if current is None:
        raise errors.UnknownVisit(facility=facility_code, visit_key=visit_key)
    # Clinical data read by someone other than the citizen: audited, in the caller's transaction.
    session.add(
        audit_event(
            actor=subject.label,
            action="visit.exported",
            object_type="visit_version",
            object_id=str(current.id),
            person_id=current.person_id,
            detail={
                "facility_code": facility_code,
                "visit_key": visit_key,
                # who read: the department, or the facility (its system or administrator),
                # which a representative of a person of 16 or more is not told (D109)
                **(
                    {"department": facility_code[:2]}
                    if subject.is_department_admin(facility_code[:2])
                    else {"facility": facility_code}
                ),
            },
        )
    )
    return render_visit(facility_code, current.tables, current.received_at)


def render_visit(facility_code: str, tables: dict[str, Any], received_at: datetime) -> bytes:
    """A stored visit's tables as a GIAMDINHHS file (normalised: standard field order, CDATA)."""
    inner: dict[str, bytes] = {}
    for name, rows in tables.items():
        variant = variant_for(name, (f for r in rows for f in r))
        inner[name] = write_table(name, rows, variant)
    created = received_at.astimezone(VIETNAM).strftime("%Y%m%d")
    return write_envelope(facility_code, created, [inner])


async def _check_paper_numbers(
    session: AsyncSession, visits: list[tuple[str, VisitAnalysis]]
) -> None:
    """A visit naming a paper number that a paper of another visit of its facility holds (in
    the hub, or a visit before it in these files) is refused, PAP-0130: it would otherwise take
    that paper over as its correction, another patient's perhaps (D69). One query, and none
    when no visit carries a paper."""
    cited = [
        (code, visit, found)
        for code, visit in visits
        if visit.visit_key is not None and not visit.findings.rejected
        for found in papers.carried(visit.tables)
    ]
    if not cited:
        return
    numbers = [(code, found.kind, found.number) for code, _, found in cited]
    # (two files naming one number for two visits at once: the second waits for the first's
    # commit and finds its paper, instead of both storing it and one meeting the unique key)
    await papers.numbers_in_turn(session, numbers)
    held = await papers.number_holders(session, numbers)
    first: dict[tuple[str, str, str], str | None] = {}
    for code, visit, found in cited:
        key = (code, found.kind, found.number)
        if key in held:
            owner = held[key]
        elif key in first:
            owner = first[key]
        else:
            first[key] = visit.visit_key
            continue
        if owner != visit.visit_key:
            visit.findings.error(
                "PAP-0130", found.table, found.row, found.field,
                number=found.number, other=owner or "API",
            )  # fmt: skip


#: Card-lookup result codes that are no verdict on the card: the portal's server errors
#: (100, 101), our request's format (205), our account or token (401), the hub's lookup
#: officer not registered (054, 055). Like a code the catalogue does not know, they mean the
#: portal could not answer.
_NO_VERDICT = frozenset({"054", "055", "100", "101", "205", "401"})


async def _check_cards(session: AsyncSession, visit: VisitAnalysis, check: CardCheck) -> None:
    """Ask the portal about each card of an insured visit: an invalid card (by the BHXH result
    codes) is an error, an old card replaced by a new one a warning, an unreachable portal a
    warning (the portal checks again at appraisal) — and so is an answer that says nothing
    of the card (a portal or caller error, a code not in the catalogue): a valid card never
    rejects a visit because the portal failed."""
    if visit.cards_checked:
        return
    xml1 = visit.tables["XML1"][0]
    born = birth_of(xml1.get("NGAY_SINH") or "")
    if born is None:
        return
    birth = born[1].strftime("%d/%m/%Y") if born[1] else str(born[0])
    snapshot = await catalogs.codebook(session)
    # (the answers are kept once every card is answered: a lookup that fails midway leaves
    # the visit to be asked about again when its file is retried)
    answers: list[tuple[str, str, dict[str, Any]]] = []
    for card in [c.strip() for c in (xml1.get("MA_THE_BHYT") or "").split(";") if c.strip()]:
        code = await check(card, xml1.get("HO_TEN") or "", birth)
        entry = (
            None
            if code is None or code in _NO_VERDICT
            else snapshot.in_force("card-check-result", code, utcnow().date())
        )
        if code is None or entry is None:  # the portal cannot answer: appraisal checks later
            unanswered = {"card": card} if code is None else {"card": card, "result": code}
            answers.append(("warning", "SUB-0161", unanswered))
            continue
        valid = bool(entry.attrs and entry.attrs.get("valid_card"))
        meaning = {"vi": entry.title_vi or code, "en": entry.title_en or code}
        params = {"card": card, "result": code, "meaning": meaning}
        if not valid:
            answers.append(("error", "SUB-0160", params))
        elif code != "000":
            answers.append(("warning", "SUB-0162", params))
    for severity, issue, params in answers:
        add = visit.findings.error if severity == "error" else visit.findings.warning
        add(issue, "XML1", 1, "MA_THE_BHYT", **params)
    visit.cards_checked = True


async def raw_file(session: AsyncSession, submission_id: str) -> bytes | None:
    """The bytes of a received file, as they came (for relays and re-processing)."""
    row = await session.get(Submission, submission_id)
    if row is None:
        return None
    return zstandard.ZstdDecompressor().decompress(row.raw_zstd, max_output_size=row.raw_size)


async def rejections(
    session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    *,
    page_size: int = 500,
    facilities: Any | None = None,
) -> AsyncIterator[tuple[str, datetime, list[str]]]:
    """Every rejected visit of files received in [start, end) (not test submissions):
    (facility, received at, the error codes) in the order received, read from the receipts a
    page of files at a time (a receipt lists every visit of its file): the reports' recount.
    ``facilities``: only files of the facilities this subquery selects. Each page goes on from
    the last (received at, id) in the rejected files' index, so a page reads only its own rows
    (paging by id walked every rejected file of the table on every page, D103)."""
    stmt = select(
        Submission.id, Submission.facility_code, Submission.received_at, Submission.receipt
    ).where(REJECTED, Submission.test_mode.is_(False))
    if facilities is not None:
        stmt = stmt.where(Submission.facility_code.in_(facilities))
    if start is not None and end is not None:
        stmt = stmt.where(Submission.received_at >= start, Submission.received_at < end)
    stmt = stmt.order_by(Submission.received_at, Submission.id).limit(page_size)
    page_stmt = stmt
    while True:
        page = (await session.execute(page_stmt)).all()
        for _, code, received_at, receipt in page:
            for visit in receipt.get("visits") or []:
                if visit.get("status") == "rejected":
                    codes = sorted(
                        {i["code"] for i in visit.get("issues") or [] if i["severity"] == "error"}
                    )
                    yield code, received_at, codes
        if len(page) < page_size:
            return
        last = page[-1]
        page_stmt = stmt.where(
            tuple_(Submission.received_at, Submission.id) > (last.received_at, last.id)
        )
