"""Issuing, reading, revoking and verifying electronic papers.

Papers inside a visit file are issued in the intake's transaction (``from_visit``); the others
through the papers API (``issue``). Every paper is signed at issue (a SMART Health Card); its
PDF is rendered and signed on demand. Verification checks the card's signature with the hub's
key and the paper's status in the database (so a revocation counts at once)."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from cryptography import x509
from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, facilities, identity, records
from vnehr.kit.auth import Forbidden, MissingScope, Subject, require_scope
from vnehr.kit.clock import parse_moment, today_in_vietnam, utcnow
from vnehr.kit.db import TURNS_PAPERS, copy_objects, make_row, take_turns
from vnehr.kit.errors import InvalidCursor, VnehrError
from vnehr.kit.i18n import texts
from vnehr.kit.outbox import new_event
from vnehr.kit.paging import decode_cursor, encode_cursor
from vnehr.kit.settings import Settings
from vnehr.papers import card, content, errors, numbers, pdf, rules, shc
from vnehr.papers.models import FIRST_VERSION, Paper

WRITE_SCOPE = "paper.write"
#: A facility system reads its facility's papers with one of these.
READ_SCOPES = (WRITE_SCOPE, "record.read")


#: The national table's field format rules for one row of a paper table sent without its
#: visit file: (table, row, the visit's first day) -> issues in the intake's shape. They are
#: the intake's own (``vnehr.submissions``), handed in by the composition root: papers sits
#: below submissions and imports nothing of it.
RowCheck = Callable[[str, dict[str, str], date | None], list[dict[str, Any]]]


@dataclass(frozen=True)
class PaperKeys:
    """The hub issuer's card key, its public URL (the ``iss`` of every card) and the PDF
    signing authority; and the keys of the previous secrets (``VNEHR_PREVIOUS_SECRET_KEYS``),
    which sign nothing but still vouch for the cards and PDFs they signed."""

    card: shc.IssuerKey
    issuer_url: str
    signing: pdf.SignerSource
    previous: tuple[shc.IssuerKey, ...] = ()
    previous_signing: tuple[pdf.SignerSource, ...] = ()

    @property
    def cards(self) -> tuple[shc.IssuerKey, ...]:
        """Every card key a verifier may meet: the current one first."""
        return (self.card, *self.previous)

    @property
    def public_keys(self) -> dict[str, Any]:
        return {key.kid: key.public for key in self.cards}

    @property
    def trusted_roots(self) -> list[x509.Certificate]:
        """The roots a paper's PDF signatures are checked against: the current authority's
        and the previous ones'."""
        return [root for source in (self.signing, *self.previous_signing) for root in source.roots]


@lru_cache(maxsize=4)
def _keys(secret: str, previous: tuple[str, ...], url: str) -> PaperKeys:
    return PaperKeys(
        shc.IssuerKey.from_secret(secret),
        url,
        pdf.HubAuthority(secret),
        tuple(shc.IssuerKey.from_secret(old) for old in previous),
        tuple(pdf.HubAuthority(old) for old in previous),
    )


def keys_for(settings: Settings) -> PaperKeys:
    """The papers' keys of these settings: signing with the current secret, verifying with
    it and the previous ones."""
    return _keys(
        settings.secret_key.get_secret_value(),
        settings.previous_secrets,
        settings.public_url.rstrip("/"),
    )


class _Issues:
    """Collects rule findings in the intake's shape (for the papers API)."""

    def __init__(self) -> None:
        self.found: list[dict[str, Any]] = []

    def _add(
        self,
        severity: str,
        code: str,
        table: str | None,
        row: int | None,
        field_: str | None,
        params: dict[str, Any],
    ) -> None:
        where = {"table": table or "", "row": row or "", "field": field_ or ""}
        self.found.append(
            {
                "code": code,
                "severity": severity,
                "table": table,
                "row": row,
                "field": field_,
                "message": texts(code, {**where, **params}),
                "detail": {k: str(v) for k, v in params.items()},
            }
        )

    def error(
        self,
        code: str,
        table: str | None = None,
        row: int | None = None,
        field_: str | None = None,
        **params: Any,
    ) -> None:
        self._add("error", code, table, row, field_, params)

    def warning(
        self,
        code: str,
        table: str | None = None,
        row: int | None = None,
        field_: str | None = None,
        **params: Any,
    ) -> None:
        self._add("warning", code, table, row, field_, params)

    def raise_if_rejected(self) -> None:
        if any(i["severity"] == "error" for i in self.found):
            raise errors.PaperRejected(detail={"issues": self.found})


@dataclass(frozen=True, slots=True)
class Issued:
    """A paper's first version issued by a batch that adds it to the six-monthly report
    itself (D113): its ``paper.issued`` event says ``counted``, so that the report's consumer
    skips it."""

    facility_code: str
    kind: str
    issued_at: datetime


def status_of(paper: Paper, today: date) -> str:
    """valid | used | revoked | expired | not_yet (the stored status, and the validity window
    read on ``today``)."""
    if paper.status != "valid":
        return paper.status
    if paper.valid_until is not None and today > paper.valid_until:
        return "expired"
    if today < paper.valid_from and paper.kind == "sick_leave":
        return "valid"  # a leave may be certified before it begins
    return "valid"


def _sha(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class HeldPaper:
    """A paper taken out of a book: its notice in the inbox names it by kind and number."""

    paper_id: str
    kind: str
    number: str
    facility_code: str
    visit_key: str | None


@dataclass(frozen=True, slots=True)
class ToIssueAgain:
    """A paper issued through the papers API that a correction of its visit revoked
    (``VISIT_MOVED``): the intake's receipt names it, by kind and number, for the facility to
    issue again for the visit's patient (never naming whose it was)."""

    paper_id: str
    kind: str
    number: str


#: What papers leaving a person's book set off in the contexts above papers (their notices
#: in the inbox go), in the same transaction: given the person and the papers.
LeftBook = Callable[[AsyncSession, int, list[HeldPaper]], Awaitable[object]]
_ON_LEAVING_BOOK: dict[str, LeftBook] = {}
#: The audit action of a paper version taken out of its holder's book by a later version
#: naming another holder (or none).
MOVED = "paper.moved"
#: Why a paper is revoked when a correction says the visit it was issued for is not its
#: holder's (another patient's, or held out of every book): nothing the facility sent
#: replaces it, so it is to be issued again for the visit's patient.
VISIT_MOVED = "visit_moved"


def on_leaving_book(name: str, hook: LeftBook) -> None:
    """Run ``hook`` when papers leave a person's book because a correction gave them another
    holder (``_leave_book``). The inbox sits above papers, so the composition root hands the
    hook down (``name``: one hook of that name, however often the app is built)."""
    _ON_LEAVING_BOOK[name] = hook


async def _versions(
    session: AsyncSession, facility_code: str, kind: str, number: str
) -> list[Paper]:
    """Every version of a paper that is in someone's book."""
    rows = await session.scalars(
        select(Paper).where(
            Paper.facility_code == facility_code,
            Paper.kind == kind,
            Paper.number == number,
            Paper.person_id.is_not(None),
        )
    )
    return list(rows)


async def _leave_book(
    session: AsyncSession, versions: Sequence[Paper], holder: int | None, actor: str
) -> None:
    """The versions held by someone other than ``holder`` (the holder the paper has now; None
    when it is nobody's) leave that person's book: a correction said the paper, and the
    visit it came with, are another person's, so its earlier versions (the first holder's
    name, the other person's diagnoses) are nobody's, as a paper held at issue is (D150).
    They stay as they were otherwise (revoked: their QR verifies as such). The person's
    notices of them go (``on_leaving_book``); the audit row about each says only that it
    went to another holder, never who."""
    left: dict[int, list[HeldPaper]] = {}
    for paper in versions:
        if paper.person_id is None or paper.person_id == holder:
            continue
        session.add(
            audit.audit_event(
                actor=actor,
                action=MOVED,
                object_type="paper",
                object_id=paper.id,
                person_id=paper.person_id,
                detail={"reason": "another_holder"},
            )
        )
        left.setdefault(paper.person_id, []).append(
            HeldPaper(paper.id, paper.kind, paper.number, paper.facility_code, paper.visit_key)
        )
        paper.person_id = None
    for person_id, gone in left.items():
        for hook in _ON_LEAVING_BOOK.values():
            await hook(session, person_id, gone)


async def _store(
    session: AsyncSession,
    keys: PaperKeys,
    body: dict[str, Any],
    *,
    facility_code: str,
    visit_key: str | None,
    source: str,
    person_id: int | None,
    actor: str,
    issued: list[Issued] | None = None,
) -> tuple[Paper, str]:
    """Add a paper, or its next version when the content changed; (paper, outcome) where the
    outcome is issued | replaced | unchanged. With ``issued``, a first version is added to it
    (the caller counts it in the report) and its event says so."""
    await numbers_in_turn(session, [(facility_code, body["kind"], body["number"])])
    digest = _sha(body)
    current = (
        await session.scalars(
            select(Paper)
            .where(
                Paper.facility_code == facility_code,
                Paper.kind == body["kind"],
                Paper.number == body["number"],
            )
            .order_by(Paper.version.desc())
            .limit(1)
        )
    ).first()
    if (
        current is not None
        and current.content_sha256 == digest
        and current.revoke_reason not in ("withdrawn", VISIT_MOVED)
    ):
        # (a paper withdrawn by a correction, or revoked when its visit moved, comes back anew)
        return current, "unchanged"
    now = utcnow()
    if (
        current is not None
        and source == "api"
        and (
            current.visit_key != visit_key
            or (
                current.personal_id != body["holder"].get("personal_id")
                # issued again for the patient a correction gave its visit: its next version
                and current.revoke_reason != VISIT_MOVED
            )
        )
    ):
        # another visit's or another holder's paper: a correction only ever changes one's own
        raise errors.DuplicatePaper(number=body["number"], kind=body["kind"])
    if current is not None and current.status != "revoked":
        current.status, current.revoked_at = "revoked", now
        current.revoked_by, current.revoke_reason = actor, "replaced"
    if current is not None:
        # a correction naming another holder: the earlier versions are not the first one's
        found = await _versions(session, facility_code, body["kind"], body["number"])
        await _leave_book(session, found, person_id, actor)
    paper, event, audit_row = _new_rows(
        keys,
        body,
        digest,
        now,
        facility_code=facility_code,
        visit_key=visit_key,
        source=source,
        person_id=person_id,
        actor=actor,
        replaces=current,
        counted=issued is not None and current is None,
    )
    if issued is not None and current is None:
        issued.append(Issued(facility_code, body["kind"], now))
    session.add_all([paper, event, audit_row])
    return paper, ("replaced" if current else "issued")


def _new_rows(
    keys: PaperKeys,
    body: dict[str, Any],
    digest: str,
    now: datetime,
    *,
    facility_code: str,
    visit_key: str | None,
    source: str,
    person_id: int | None,
    actor: str,
    replaces: Paper | None,
    plain: bool = False,
    counted: bool = False,
) -> tuple[Paper, Any, Any]:
    """A paper's next version (the first when ``replaces`` is None), signed, with its
    ``paper.issued`` event and audit row; nothing added to a session. ``plain``: rows for
    ``copy_objects`` only (D53), not mapped instances; ``counted``: the batch writing it adds
    it to the report (D113)."""
    current = replaces
    paper_id = str(uuid.uuid4())
    rid = keys.card.rid(paper_id)
    jws = keys.card.sign(keys.issuer_url, int(now.timestamp()), card.bundle(body), rid)
    paper = make_row(
        Paper,
        plain,
        id=paper_id,
        kind=body["kind"],
        number=body["number"],
        version=(current.version + 1) if current else 1,
        facility_code=facility_code,
        visit_key=visit_key,
        source=source,
        person_id=person_id,
        personal_id=body["holder"].get("personal_id"),
        signed_on=date.fromisoformat(body["signed_on"]),
        valid_from=date.fromisoformat(body["valid_from"]),
        valid_until=date.fromisoformat(body["valid_until"]) if body.get("valid_until") else None,
        status="valid",
        content=body,
        content_sha256=digest,
        jws=jws,
        rid=rid,
        issued_at=now,
        issued_by=actor,
    )
    title = card.KIND_TITLES[body["kind"]]
    payload: dict[str, Any] = {
        "person_id": person_id,
        "paper_id": paper_id,
        "kind": body["kind"],
        "facility_code": facility_code,
        "version": paper.version,
        "issued_at": now.isoformat(),
        "params": {
            "facility": body["facility"].get("name") or facility_code,
            "kind": {"vi": title[0], "en": title[1]},
            "number": body["number"],
        },
    }
    if counted:  # in the report already, by the batch that wrote it
        payload["counted"] = True
    # the citizen's inbox (when the holder is known) and the report's counts
    event = new_event("paper.issued", f"paper:{paper_id}", payload, plain=plain)
    audit_row = audit.audit_event(
        actor=actor,
        action="paper.issued",
        object_type="paper",
        object_id=paper_id,
        person_id=person_id,
        detail={
            "kind": body["kind"],
            "number": body["number"],
            "replaces": current.id if current else None,
        },
        plain=plain,
    )
    return paper, event, audit_row


async def _facility(session: AsyncSession, code: str) -> dict[str, str]:
    found = await facilities.directory(session, [code])
    return {"code": code, "name": found[code].name if code in found else code}


async def from_visit(
    session: AsyncSession,
    keys: PaperKeys,
    *,
    facility_code: str,
    visit_key: str,
    tables: dict[str, list[dict[str, str]]],
    person_id: int | None,
    actor: str,
    issued: list[Issued] | None = None,
) -> list[tuple[Paper, str]]:
    """Issue the papers a stored visit carries (in the intake's transaction); with
    ``issued``, the first versions are added to it (see ``_store``)."""
    found: list[tuple[Paper, str]] = []
    wanted = [t for t in rules.TABLE_KINDS if tables.get(t)]
    if not wanted:
        return found
    facility = await _facility(session, facility_code)
    xml1 = tables["XML1"][0]
    for table in wanted:
        kind = rules.TABLE_KINDS[table]
        for row in tables[table]:
            body = content.from_table(kind, row, xml1, facility=facility)
            if body is None:
                continue
            found.append(
                await _store(
                    session,
                    keys,
                    body,
                    facility_code=facility_code,
                    visit_key=visit_key,
                    source="visit",
                    person_id=await _holder_id(session, body, xml1, person_id, actor),
                    actor=actor,
                    issued=issued,
                )
            )
    return found


#: The fields of a birth certificate's row (XML9) naming its holder, the mother or carer, by
#: what ``identity.PatientMatch.differs`` compares.
BIRTH_HOLDER_FIELDS = {"full_name": "HO_TEN_NND", "birth": "NGAYSINH_NND"}
#: The same, of a driver's certificate sent to the papers API.
DRIVER_HOLDER_FIELDS = {"full_name": "holder.name", "birth": "holder.birth_date"}


def _names_another(body: dict[str, Any], xml1: dict[str, str]) -> bool:
    """A birth certificate naming someone other than the visit's patient (D42)."""
    return bool(
        body["kind"] == "birth" and body["holder"].get("personal_id") != xml1.get("SO_CCCD")
    )


async def _holder_id(
    session: AsyncSession,
    body: dict[str, Any],
    xml1: dict[str, str],
    patient_id: int | None,
    actor: str,
    *,
    refuse: bool = False,
) -> int | None:
    """Whose health book shows the paper: the visit's patient, except a birth certificate
    naming someone else, the mother or carer (D42), whether it came in the visit file or after
    it through the papers API. When she has signed in with VNeID and the paper's name or birth
    date for her differ from what VNeID confirmed (D150), the paper is nobody's (in a visit
    file, like a visit held out of the book: the receipt says so, ``unconfirmed_holders``), or
    with ``refuse`` (the papers API) it is refused: ``NotTheHolder``."""
    if not _names_another(body, xml1):
        return patient_id
    return await _holder(session, body["holder"], actor, BIRTH_HOLDER_FIELDS if refuse else None)


def _birth_of(holder: dict[str, Any]) -> tuple[date | None, str | None]:
    """A paper's birth date: a day, or only the year or the month ("1995", "1995-03"): what the
    paper says (D106)."""
    born = holder.get("birth_date") or ""
    return (date.fromisoformat(born) if len(born) == 10 else None), (
        born if born and len(born) < 10 else None
    )


async def _holder(
    session: AsyncSession,
    holder: dict[str, Any],
    actor: str,
    refuse: dict[str, str] | None = None,
) -> int | None:
    """The person a paper's holder names by personal ID (created, pending confirmation, when
    unknown: D23); None when the paper names no personal ID, or names its holder otherwise than
    VNeID confirmed of them (D150). With ``refuse`` (the paper's field of each detail), that is
    ``NotTheHolder`` instead, and its audit row is added to the session: the caller commits it
    although the answer is an error (trying names against an ID leaves a trace), so nothing
    else may have been written before."""
    personal_id = holder.get("personal_id") or ""
    if identity.classify_document_number(personal_id) != "personal_id":
        return None
    born, partial = _birth_of(holder)
    found = await identity.check_patient(
        session,
        personal_id=personal_id,
        full_name=holder.get("name") or "",
        birth_date=born,
        sex=holder.get("sex"),
        source=actor,
        birth_partial=partial,
    )
    differs = found.differs(holder.get("name") or "", born, partial)
    if not differs:
        return found.person_id
    if refuse is None:
        return None
    fields = [refuse[d] for d in differs]
    session.add(
        audit.audit_event(
            actor=actor,
            action="patient.not_confirmed",
            object_type="person",
            object_id=str(found.person_id),
            person_id=None,  # about no one's record, like a visit held out of the book
            detail={"fields": fields, "via": "papers"},
        )
    )
    raise errors.NotTheHolder(fields=", ".join(fields), detail={"fields": fields})


def _other_holders(
    tables: dict[str, list[dict[str, str]]],
) -> Iterator[tuple[str, int, dict[str, Any], str]]:
    """(table, row, content, personal ID) of each of a visit's birth certificates naming by
    personal ID a holder other than the visit's patient: the mother or carer (D42)."""
    table = rules.KINDS["birth"][0] or ""
    if not tables.get(table):
        return
    xml1 = tables["XML1"][0]
    for position, row in enumerate(tables[table], start=1):
        body = content.from_table("birth", row, xml1, facility={})
        if body is None or not _names_another(body, xml1):
            continue
        personal_id = body["holder"].get("personal_id") or ""
        if identity.classify_document_number(personal_id) == "personal_id":
            yield table, position, body, personal_id


def holders_named(tables: dict[str, list[dict[str, str]]]) -> set[str]:
    """The personal IDs of the persons a visit's papers go to besides its patient: the mothers
    (or carers) its birth certificates name, matched while its papers are issued. A write
    matching them after the visit's patient takes their writer's locks with the patient's
    first (D200). Reads nothing."""
    return {personal_id for _, _, _, personal_id in _other_holders(tables)}


async def unconfirmed_holders(
    session: AsyncSession, tables: dict[str, list[dict[str, str]]]
) -> list[tuple[str, int, str]]:
    """(table, row, field) of each detail of a visit's birth certificates that keeps one out of
    the book of the mother it names (``_holder_id``): for the receipt to say so, before the
    papers are issued. Reads only."""
    found: list[tuple[str, int, str]] = []
    for table, position, body, personal_id in _other_holders(tables):
        holder = await identity.confirmed_patient(session, personal_id)
        if holder is None:
            continue
        differs = holder.differs(body["holder"].get("name") or "", *_birth_of(body["holder"]))
        found += [(table, position, BIRTH_HOLDER_FIELDS[d]) for d in differs]
    return found


async def cite(
    session: AsyncSession,
    *,
    facility_code: str,
    visit_key: str,
    number: str,
    person_id: int | None,
    visit_day: date | None,
) -> Paper | None:
    """A visit cites a paper (XML1 GIAY_CHUYEN_TUYEN): a re-exam appointment of the same person
    at this facility is used once, by the first visit that cites it (D39)."""
    number = number.strip()
    if not number or person_id is None:
        return None
    paper = (
        await session.scalars(
            select(Paper)
            .where(
                Paper.number == number,
                Paper.kind == "re_exam",
                Paper.status == "valid",
                Paper.facility_code == facility_code,
                Paper.person_id == person_id,
            )
            .with_for_update()
        )
    ).first()
    if paper is None or (visit_day and paper.valid_until and visit_day > paper.valid_until):
        return None
    if paper.visit_key == visit_key:
        return None  # the visit that issued it
    paper.status, paper.used_at = "used", utcnow()
    paper.used_by = f"{facility_code}:{visit_key}"[:120]
    return paper


@dataclass(slots=True)
class VisitPapers:
    """One stored visit of a batch whose papers ``from_visits`` issues; ``replaces``: it is a
    new version of a visit stored before (its earlier versions' papers are looked at)."""

    facility_code: str
    visit_key: str
    tables: dict[str, list[dict[str, str]]]
    person_id: int | None
    actor: str
    replaces: bool = False


async def from_visits(
    session: AsyncSession,
    keys: PaperKeys,
    visits: Sequence[VisitPapers],
    *,
    issued: list[Issued] | None = None,
) -> list[list[ToIssueAgain]]:
    """``from_visit`` then ``cite`` for each of these stored visits, with the same outcome as
    one visit after another in this order (the intake's group commit and the bulk import,
    D50). Papers new to the hub, each number once in the batch, are written together
    (COPY on PostgreSQL); a visit with a paper number the hub has seen, a number twice in the
    batch, or a birth paper naming someone other than the visit's patient goes through
    ``from_visit``. A visit cites only papers of visits before it. A new version of a visit
    withdraws the papers of its earlier versions that it no longer carries. With ``issued``,
    every first version issued is added to it, and its event says ``counted``: the caller
    adds them to the report in this transaction (D113). Returns, for each visit in order, the
    papers issued through the API that its correction revoked, to be issued again (D180)."""
    codes = {v.facility_code for v in visits if any(v.tables.get(t) for t in rules.TABLE_KINDS)}
    names = await facilities.names_now(session, codes)
    planned: list[list[dict[str, Any]]] = []
    for visit in visits:
        bodies: list[dict[str, Any]] = []
        wanted = [t for t in rules.TABLE_KINDS if visit.tables.get(t)]
        if wanted:
            code = visit.facility_code
            facility = {"code": code, "name": names.get(code, code)}
            xml1 = visit.tables["XML1"][0]
            for table in wanted:
                kind = rules.TABLE_KINDS[table]
                for row in visit.tables[table]:
                    body = content.from_table(kind, row, xml1, facility=facility)
                    if body is not None:
                        bodies.append(body)
        planned.append(bodies)
    again: list[list[ToIssueAgain]] = []
    for visit, bodies in zip(visits, planned, strict=True):
        again.append(
            await _withdraw(session, visit, {(b["kind"], b["number"]) for b in bodies})
            if visit.replaces
            else []
        )
    counted = Counter(
        (v.facility_code, b["kind"], b["number"])
        for v, bodies in zip(visits, planned, strict=True)
        for b in bodies
    )
    await numbers_in_turn(session, counted)
    seen = await _known_numbers(session, list(counted))
    alone: set[int] = set()
    rows: list[Any] = []
    appointed: dict[tuple[str, str], int] = {}  # (facility, re-exam number) -> issuing position
    now = utcnow()
    for position, (visit, bodies) in enumerate(zip(visits, planned, strict=True)):
        patient = visit.tables["XML1"][0].get("SO_CCCD")
        if any(
            (visit.facility_code, b["kind"], b["number"]) in seen
            or counted[(visit.facility_code, b["kind"], b["number"])] > 1
            or (b["kind"] == "birth" and b["holder"].get("personal_id") != patient)
            for b in bodies
        ):
            alone.add(position)
            continue
        for body in bodies:
            rows += _new_rows(
                keys,
                body,
                _sha(body),
                now,
                facility_code=visit.facility_code,
                visit_key=visit.visit_key,
                source="visit",
                person_id=visit.person_id,
                actor=visit.actor,
                replaces=None,
                plain=True,
                counted=issued is not None,
            )
            if issued is not None:
                issued.append(Issued(visit.facility_code, body["kind"], now))
            if body["kind"] == "re_exam":
                appointed[(visit.facility_code, body["number"])] = position
    if rows:
        await copy_objects(session, rows)
    for position, visit in enumerate(visits):
        if position in alone:
            await from_visit(
                session,
                keys,
                facility_code=visit.facility_code,
                visit_key=visit.visit_key,
                tables=visit.tables,
                person_id=visit.person_id,
                actor=visit.actor,
                issued=issued,
            )
        xml1 = visit.tables["XML1"][0]
        number = (xml1.get("GIAY_CHUYEN_TUYEN") or "").strip()
        if not number or appointed.get((visit.facility_code, number), -1) >= position:
            continue  # nothing cited, or a paper of this visit or a later one of the batch
        begun = parse_moment((xml1.get("NGAY_VAO") or "").strip())
        await cite(
            session,
            facility_code=visit.facility_code,
            visit_key=visit.visit_key,
            number=number,
            person_id=visit.person_id,
            visit_day=begun.date() if begun else None,
        )
    return again


async def _withdraw(
    session: AsyncSession, visit: VisitPapers, kept: set[tuple[str, str]]
) -> list[ToIssueAgain]:
    """Revoke ("withdrawn") the valid papers the visit's earlier versions issued and its new
    version no longer carries: an appointment dropped from the corrected file, or given
    another number, must not stay valid. Those it still carries are left to ``_store`` (the
    same content: unchanged; changed: replaced); papers issued through the API are not the
    file's to take back. When the new version is another person's (or nobody's), every paper
    of the visit whose holder was the visit's patient leaves their book (``_leave_book``),
    whatever its status; one issued through the API that is still valid is revoked
    (``VISIT_MOVED``: nothing the facility sent replaces it, the facility issues it again for
    the visit's patient; returned, for the receipt). A birth certificate names its holder
    itself, and keeps her."""
    rows = await session.scalars(
        select(Paper)
        .where(Paper.facility_code == visit.facility_code, Paper.visit_key == visit.visit_key)
        .with_for_update()
    )
    now = utcnow()
    moved: dict[tuple[str, str], Paper] = {}
    again: list[ToIssueAgain] = []
    for paper in rows:
        if (paper.kind, paper.number) in kept:
            continue
        elsewhere = paper.kind != "birth" and paper.person_id not in (None, visit.person_id)
        if paper.status == "valid" and paper.source == "visit":
            _revoke_for(session, paper, visit.actor, "withdrawn", now)
        elif paper.status == "valid" and elsewhere:
            _revoke_for(session, paper, visit.actor, VISIT_MOVED, now)
            again.append(ToIssueAgain(paper.id, paper.kind, paper.number))
        if elsewhere:
            moved.setdefault((paper.kind, paper.number), paper)
    for paper in moved.values():
        found = await _versions(session, paper.facility_code, paper.kind, paper.number)
        await _leave_book(session, found, visit.person_id, visit.actor)
    return again


def _revoke_for(
    session: AsyncSession, paper: Paper, actor: str, reason: str, now: datetime
) -> None:
    """Revoke a paper because of what a correction of its visit says, audited about its holder
    (never about whom the visit is now said to be of)."""
    paper.status, paper.revoked_at = "revoked", now
    paper.revoked_by, paper.revoke_reason = actor, reason
    session.add(
        audit.audit_event(
            actor=actor,
            action="paper.revoked",
            object_type="paper",
            object_id=paper.id,
            person_id=paper.person_id,
            detail={"reason": reason, "visit_key": paper.visit_key},
        )
    )


async def numbers_in_turn(session: AsyncSession, numbers: Iterable[tuple[str, str, str]]) -> None:
    """Those who issue a facility's paper of one kind and number do it one at a time: two
    visits (or two API calls) carrying one number at once no longer both find it free and
    write it twice, one of them meeting the unique key at its commit (a 500). The second now
    finds the first's paper and is answered as if it came afterwards. In sorted order, so that
    two batches sharing several numbers never wait for each other."""
    for facility_code, kind, number in sorted(set(numbers)):
        await take_turns(session, TURNS_PAPERS, f"{facility_code}|{kind}|{number}")


async def _known_numbers(
    session: AsyncSession, wanted: list[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which (facility, kind, number) have a paper already."""
    found: set[tuple[str, str, str]] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = await session.execute(
            select(Paper.facility_code, Paper.kind, Paper.number)
            .where(Paper.number.in_({n for _, _, n in chunk}))
            .distinct()
        )
        asked = set(chunk)
        found.update((f, k, n) for f, k, n in rows if (f, k, n) in asked)
    return found


# ------------------------------------------------------------------ the papers API


async def issue_driver(
    session: AsyncSession, keys: PaperKeys, subject: Subject, data: dict[str, Any]
) -> tuple[Paper, str]:
    """A driver's health certificate (TT 36/2024), valid 12 months from the exam."""
    code = await _issuer_facility(session, subject, data.get("facility_code"))
    examined: date = data["examined_on"]
    found = _Issues()
    rules.check_driver(
        found,
        examined=examined,
        today=today_in_vietnam(),
        classes=data["classes"],
        drug_test=data["drug_test"],
        alcohol=data["alcohol"],
        conclusion=data["conclusion"],
    )
    found.raise_if_rejected()
    holder = {
        "name": data["holder"]["name"],
        "birth_date": data["holder"]["birth_date"].isoformat(),
        "sex": data["holder"].get("sex"),
        "personal_id": data["holder"]["personal_id"],
    }
    # before the number is taken: a refusal writes nothing but its audit row
    person_id = await _holder(session, holder, subject.label, DRIVER_HOLDER_FIELDS)
    number = await _driver_number(session, code, data.get("number"), examined)
    body = {
        "kind": "driver",
        "number": number,
        "table": None,
        "facility": await _facility(session, code),
        "holder": holder,
        "doctor": {"id": data.get("doctor_id"), "name": data.get("doctor_name")},
        "head": None,
        "signed_on": examined.isoformat(),
        "valid_from": examined.isoformat(),
        "valid_until": rules.driver_valid_until(examined).isoformat(),
        "facts": {
            "examined_on": examined.isoformat(),
            "classes": sorted(set(data["classes"])),
            "drug_test": data["drug_test"],
            "alcohol": data["alcohol"],
            "conclusion": data["conclusion"],
            "conditions": data.get("conditions"),
        },
    }
    return await _store(
        session,
        keys,
        body,
        facility_code=code,
        visit_key=None,
        source="api",
        person_id=person_id,
        actor=subject.label,
    )


async def _driver_number(
    session: AsyncSession, code: str, given: str | None, examined: date
) -> str:
    """``given`` (held so that no one else gives or makes it meanwhile), or the facility's
    next ``{code}.KSK.{serial}.{yy}`` from its counter for the exam's year."""
    if given:
        await numbers.hold_given_number(session, code, given)
        return given
    return await numbers.next_driver_number(session, code, examined)


async def issue_for_visit(
    session: AsyncSession,
    keys: PaperKeys,
    subject: Subject,
    data: dict[str, Any],
    check_row: RowCheck,
) -> tuple[Paper, str]:
    """A paper of a national table issued after its visit was sent (``fields`` is the table
    row, checked against the table's field formats like a visit file's, then by the paper
    rules); the holder and the visit facts come from the stored visit."""
    code = await _issuer_facility(session, subject, data.get("facility_code"))
    kind, visit_key = data["kind"], data["visit_key"]
    # the visit's write lock, as the intake takes it: a correction giving the visit another
    # patient either commits first (its patient is read here) or waits for this paper and
    # takes it out of the first one's book (D180)
    await records.lock_visits(session, [(code, visit_key)])
    stored = await records.current_version(session, code, visit_key)
    if stored is None or stored.test_mode:
        raise errors.UnknownVisit(facility=code, visit_key=visit_key)
    table = rules.KINDS[kind][0] or ""
    row = {k: str(v) for k, v in data["fields"].items()}
    row.setdefault("MA_LK", visit_key)
    tables: dict[str, list[dict[str, str]]] = {"XML1": stored.tables["XML1"], table: [row]}
    xml1 = tables["XML1"][0]
    begun = parse_moment((xml1.get("NGAY_VAO") or "").strip())
    found = _Issues()
    found.found += check_row(table, row, begun.date() if begun else None)
    rules.check_visit_papers(found, tables, code)
    found.raise_if_rejected()
    body = content.from_table(kind, row, xml1, facility=await _facility(session, code))
    if body is None:
        raise errors.PaperRejected(detail={"issues": found.found})
    return await _store(
        session,
        keys,
        body,
        facility_code=code,
        visit_key=visit_key,
        source="api",
        person_id=await _holder_id(
            session, body, xml1, stored.person_id, subject.label, refuse=True
        ),
        actor=subject.label,
    )


async def _issuer_facility(session: AsyncSession, subject: Subject, wanted: str | None) -> str:
    """The facility issuing for ``subject``: its system (``paper.write``) or its clinicians
    and administrators; connected (a facility onboarding or suspended issues nothing)."""
    if subject.kind == "facility_system":
        require_scope(subject, WRITE_SCOPE)
        code = subject.facility_code or ""
    elif wanted and subject.acts_for_facility(wanted, ("clinician", "facility_admin")):
        code = wanted
    else:
        raise Forbidden(action="issue papers")
    state = await facilities.state_of(session, code)
    if state != facilities.State.connected:
        raise errors.FacilityMayNotIssue(facility=code, status=state.value if state else "unknown")
    return code


async def revoke(session: AsyncSession, subject: Subject, paper_id: str, reason: str) -> Paper:
    paper = await session.get(Paper, paper_id, with_for_update=True)
    if paper is None:
        raise errors.UnknownPaper(id=paper_id)
    if not (
        subject.acts_for_facility(paper.facility_code, ("clinician", "facility_admin"))
        and (subject.kind != "facility_system" or WRITE_SCOPE in subject.scopes)
    ):
        raise errors.NotIssuer(facility=paper.facility_code)
    if paper.status == "revoked":
        raise errors.AlreadyRevoked(id=paper_id)
    paper.status, paper.revoked_at = "revoked", utcnow()
    paper.revoked_by, paper.revoke_reason = subject.label, reason
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="paper.revoked",
            object_type="paper",
            object_id=paper_id,
            person_id=paper.person_id,
            detail={"reason": reason},
        )
    )
    return paper


async def readable(session: AsyncSession, subject: Subject, paper_id: str) -> Paper:
    """A paper for its holder (or their representative) or its issuing facility (its staff, or
    its systems that issue papers or read records: a check-in kiosk does not); audited when
    read by anyone but the holder: the issuing facility's staff and systems too, as their FHIR
    reads are (the holder sees it under "who looked")."""
    paper = await session.get(Paper, paper_id)
    if paper is None:
        raise errors.UnknownPaper(id=paper_id)
    if subject.acts_for_facility(paper.facility_code, ("clinician", "facility_admin")):
        if subject.kind == "facility_system" and not subject.scopes & set(READ_SCOPES):
            raise MissingScope(scope=" or ".join(READ_SCOPES))
        if paper.person_id is not None:
            _audit_read(session, subject, paper, paper.person_id, {"facility": paper.facility_code})
        return paper
    if subject.kind == "person":
        try:
            holders = await identity.book_holders(session, subject)
        except VnehrError:
            holders = []
        for holder in holders:
            if paper.person_id == holder.id:
                if await _withheld(session, holder, [paper]):
                    break  # answered as a paper that does not exist
                if holder.relation is not None:
                    _audit_read(session, subject, paper, holder.id, {"as": holder.relation})
                return paper
    raise errors.UnknownPaper(id=paper_id)  # never say whose it is


def _audit_read(
    session: AsyncSession, subject: Subject, paper: Paper, person_id: int, detail: dict[str, Any]
) -> None:
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="paper.read",
            object_type="paper",
            object_id=paper.id,
            person_id=person_id,
            detail=detail,
        )
    )


async def of_holder(
    session: AsyncSession, subject: Subject, for_: str | None = None
) -> tuple[identity.Holder, list[Paper]]:
    """The papers in a health book (the caller's, or a represented person's), newest first."""
    holders = await identity.book_holders(session, subject)
    who = holders[0]
    if for_ is not None:
        match = [h for h in holders if h.personal_id == for_]
        if not match:
            raise errors.UnknownPaper(id=for_)
        who = match[0]
        session.add(
            audit.audit_event(
                actor=subject.label,
                action="paper.list",
                object_type="health_book",
                object_id=for_,
                person_id=who.id,
                detail={"as": who.relation},
            )
        )
    rows = await session.scalars(
        select(Paper).where(Paper.person_id == who.id).order_by(Paper.issued_at.desc()).limit(200)
    )
    found = list(rows)
    hidden = await _withheld(session, who, found)
    return who, [p for p in found if p.id not in hidden]


async def _withheld(session: AsyncSession, who: identity.Holder, found: list[Paper]) -> set[str]:
    """The papers a representative of a person who may be 16 or more does not see: issued
    with a visit ``records.withheld`` leaves out of the book (or one that cannot be found),
    and birth certificates (a mother's reproductive health, D35)."""
    today = today_in_vietnam()
    if not records.confiding(who, today):
        return set()
    hidden = set()
    for paper in found:
        if paper.kind == "birth":
            hidden.add(paper.id)
        elif paper.visit_key:
            visit = await records.current_version(session, paper.facility_code, paper.visit_key)
            tables = visit.tables if visit is not None and visit.person_id == who.id else None
            if records.withheld(who, tables, today):
                hidden.add(paper.id)
    return hidden


async def of_visit(session: AsyncSession, facility_code: str, visit_key: str) -> list[Paper]:
    rows = await session.scalars(
        select(Paper)
        .where(Paper.facility_code == facility_code, Paper.visit_key == visit_key)
        .order_by(Paper.kind, Paper.version.desc())
    )
    return list(rows)


# ------------------------------------------------------------------ verification


def open_qr(keys: PaperKeys, text: str) -> dict[str, Any]:
    """Everything a verification decides without the database: the card's signature and
    issuer, and its facts. Raises ``shc.BadCard``."""
    jws = shc.jws_from_qr(text)
    found = shc.open_card(jws, keys.public_keys)
    if found.issuer != keys.issuer_url:
        raise shc.BadCard("unknown_issuer")
    try:
        facts = card.read(found.bundle)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise shc.BadCard("not_a_health_card") from exc
    facts["rid"] = found.rid
    return facts


def verdict(
    facts: dict[str, Any] | None, status: str | None, reason: str | None, today: date
) -> dict[str, Any]:
    """The answer of ``/verify``: authentic or not and why, the status, and only the facts a
    verifier needs (no diagnosis is ever in a card)."""
    if facts is None:
        return {
            "authentic": False,
            "valid": False,
            "reason": reason,
            "status": None,
            "checked_on": today.isoformat(),
        }
    return {
        "authentic": True,
        "valid": status == "valid",
        "status": status,
        "reason": reason,
        "checked_on": today.isoformat(),
        "paper": {k: v for k, v in facts.items() if k != "rid"},
    }


async def verify(session: AsyncSession, keys: PaperKeys, text: str) -> dict[str, Any]:
    """Verify a scanned or pasted QR: signature (hub key), then the paper's status now."""
    today = today_in_vietnam()
    try:
        facts = open_qr(keys, text)
    except shc.BadCard as bad:
        return verdict(None, None, bad.reason, today)
    row = (
        await session.execute(
            select(
                Paper.status, Paper.valid_until, Paper.revoke_reason, Paper.used_at, Paper.rid
            ).where(Paper.rid == facts["rid"])
        )
    ).first()
    if row is None or row.rid != facts["rid"]:
        return verdict(facts, "unknown", "not_on_record", today)
    status, reason = _status_today(row.status, row.valid_until, row.revoke_reason, today)
    return verdict(facts, status, reason, today)


def _status_today(
    status: str, valid_until: date | None, revoke_reason: str | None, today: date
) -> tuple[str, str | None]:
    if status == "valid" and valid_until is not None and today > valid_until:
        status = "expired"
    return status, (revoke_reason if status == "revoked" else None)


async def status_now(session: AsyncSession, paper_id: str) -> tuple[str, str | None]:
    """(status today, why when revoked) of a paper, as ``verify`` says it of its QR: for the
    paper id a signed PDF carries; ("unknown", "not_on_record") for no such paper."""
    row = (
        await session.execute(
            select(Paper.status, Paper.valid_until, Paper.revoke_reason).where(Paper.id == paper_id)
        )
    ).first()
    if row is None:
        return "unknown", "not_on_record"
    return _status_today(row.status, row.valid_until, row.revoke_reason, today_in_vietnam())


#: How long after a revocation is stamped it may still commit: the longest revoking
#: transaction (an intake batch, an import batch) and the clock differences between the
#: processes. A revocation older than this is settled: none can still appear before it.
SETTLE = timedelta(minutes=15)
#: The most revocations one page of the list holds.
PAGE_MAX = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LAST_MICROSECOND = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICROSECOND


async def revocation_version(session: AsyncSession, now: datetime) -> int:
    """The version of the revocation list (SMART Health Cards ``crlVersion`` and ``ctr``),
    from the newest revocation alone (one row of an index, however many papers are
    revoked): twice its time in microseconds, plus one once it is settled. It grows with
    every newer revocation; a revocation committed late with an earlier stamp (a slow
    transaction) moves it at the latest when the newest one settles, so a verifier that read
    the list before that commit reads it again."""
    newest = await session.scalar(
        select(Paper.revoked_at)
        .where(Paper.revoked_at.is_not(None))
        .order_by(Paper.revoked_at.desc())
        .limit(1)
    )
    if newest is None:
        return 0
    return 2 * ((newest - _EPOCH) // _MICROSECOND) + (1 if now - newest >= SETTLE else 0)


async def revoked_after(
    session: AsyncSession, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[datetime, str]]:
    """(revoked at, rid) of the revocations after ``after``, in order, at most ``limit``
    (a range of the ``ix_paper_revocations`` index)."""
    stmt = select(Paper.revoked_at, Paper.rid).where(Paper.revoked_at.is_not(None))
    if after is not None:
        at, rid = after
        stmt = stmt.where(Paper.revoked_at >= at, or_(Paper.revoked_at > at, Paper.rid > rid))
    rows = await session.execute(stmt.order_by(Paper.revoked_at, Paper.rid).limit(limit))
    return [(at, rid) for at, rid in rows if at is not None]


@dataclass(frozen=True, slots=True)
class RevocationPage:
    """One page of the revocation list. ``next`` is where the next read goes on from: past
    the settled revocations of the page only, so those not settled yet come again (with any
    revocation that commits late before them). ``more``: a full page, every revocation of it
    settled; such a page never changes."""

    rids: list[str]
    next: str
    more: bool


def _cursor(key: tuple[datetime, str]) -> str:
    return encode_cursor(((key[0] - _EPOCH) // _MICROSECOND, key[1]))


def _after(cursor: str) -> tuple[datetime, str]:
    micros, rid = decode_cursor(cursor, (int, str))
    if not 0 <= int(micros) <= _LAST_MICROSECOND:
        raise InvalidCursor(cursor=cursor[:64])
    return _EPOCH + int(micros) * _MICROSECOND, str(rid)


async def revocations_since(
    session: AsyncSession, since: str | None, limit: int, now: datetime
) -> RevocationPage:
    """The revocations after the cursor ``since`` (from the first without), at most
    ``limit``, for verifiers that keep a copy of the list up to date."""
    after = _after(since) if since else None
    rows = await revoked_after(session, after, limit)
    settled = [row for row in rows if now - row[0] >= SETTLE]  # a prefix: rows are in order
    # past the settled ones only; nothing settled: where it was (or the start)
    following = _cursor(settled[-1]) if settled else (since or _cursor((_EPOCH, "")))
    return RevocationPage(
        rids=[rid for _, rid in rows],
        next=following,
        more=len(rows) == limit and len(settled) == len(rows),
    )


def expires_soon(paper: Paper, today: date, days: int = 30) -> bool:
    return paper.valid_until is not None and today <= paper.valid_until <= today + timedelta(
        days=days
    )


def issued_label(paper: Paper) -> datetime:
    return paper.issued_at


async def first_issues(
    session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    *,
    page_size: int = 5000,
    facilities: Any | None = None,
) -> AsyncIterator[tuple[str, str, datetime]]:
    """(facility, kind, issued at) of every paper's first version issued in [start, end), in
    the order issued, a page at a time (the reports' recount). ``facilities``: only papers of
    the facilities this subquery selects. Each page goes on from the last (issued at, id) in
    the first versions' index (D103)."""
    stmt = select(Paper.id, Paper.facility_code, Paper.kind, Paper.issued_at).where(FIRST_VERSION)
    if facilities is not None:
        stmt = stmt.where(Paper.facility_code.in_(facilities))
    if start is not None and end is not None:
        stmt = stmt.where(Paper.issued_at >= start, Paper.issued_at < end)
    stmt = stmt.order_by(Paper.issued_at, Paper.id).limit(page_size)
    page_stmt = stmt
    while True:
        page = (await session.execute(page_stmt)).all()
        for _, code, kind, issued_at in page:
            yield code, kind, issued_at
        if len(page) < page_size:
            return
        last = page[-1]
        page_stmt = stmt.where(tuple_(Paper.issued_at, Paper.id) > (last.issued_at, last.id))


async def of_persons(session: AsyncSession, person_ids: list[int]) -> list[Paper]:
    """Every paper (every version) held by these persons, newest first (FHIR compartments)."""
    if not person_ids:
        return []
    rows = await session.scalars(
        select(Paper).where(Paper.person_id.in_(person_ids)).order_by(Paper.issued_at.desc())
    )
    return list(rows)


async def by_id(session: AsyncSession, paper_id: str) -> Paper | None:
    return await session.get(Paper, paper_id)
