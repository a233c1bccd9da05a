"""Who looked at my record: the citizen's access log (from the audit log), "I don't recognise
this" cases, and the health department's queue of those cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, facilities, identity, records
from vnehr.healthbook import errors
from vnehr.healthbook.schemas import FacilityRef
from vnehr.kit.auth import Forbidden, Subject
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.db import TURNS_CASES, take_turns
from vnehr.kit.paging import Page, decode_moment_cursor, encode_moment_cursor


class Reader(BaseModel):
    kind: str = Field(
        description="person | facility_system | other; facility: a medical facility not named"
        " (a representative's view of a person of 16 or more)"
    )
    name: str | None = None
    facility: FacilityRef | None = None


class EmergencyReview(BaseModel):
    """What became of the emergency access a read was made under (D159): who reviewed it is
    not told, the finding and its time are."""

    state: Literal["pending", "justified", "unjustified", "reviewed"] = Field(
        description="pending: not reviewed yet; justified | unjustified: the review's finding"
        " (an unjustified access ended when it was reviewed); reviewed: reviewed before"
        " findings were recorded"
    )
    reviewed_at: datetime | None = None


#: The reviews of these emergency accesses of these persons, by access id. The accesses are
#: the sharing context's, which sits above the book: the composition root hands its reader
#: down (``read_emergency_reviews_with``), as it hands the allergies' reader.
ReviewReader = Callable[
    [AsyncSession, Collection[int], Collection[int]], Awaitable[dict[int, EmergencyReview]]
]
_REVIEWS: dict[str, ReviewReader] = {}


def read_emergency_reviews_with(reader: ReviewReader) -> None:
    """Use ``reader`` for the review of each access-log entry made under an emergency access
    (without one, no entry says anything of a review)."""
    _REVIEWS["emergency"] = reader


def _emergency_of(row: audit.AuditEvent) -> int | None:
    """The emergency access a read was made under: the opening's own row names it, a read
    under it carries it as the reference of its basis (``sharing``'s, FHIR's)."""
    if row.action == "emergency.opened" and row.object_type == "emergency_access":
        return int(row.object_id) if row.object_id.isdigit() else None
    detail = row.detail or {}
    reference = detail.get("reference")
    if detail.get("basis") != "emergency" or isinstance(reference, bool):
        return None
    return reference if isinstance(reference, int) else None


async def _reviews(
    session: AsyncSession, person_ids: Collection[int], rows: list[audit.AuditEvent]
) -> dict[int, EmergencyReview]:
    """The review of each row made under an emergency access, by audit row id: one look-up
    for the page, however many rows it holds."""
    under = {row.id: access for row in rows if (access := _emergency_of(row)) is not None}
    reader = _REVIEWS.get("emergency")
    if not under or reader is None:
        return {}
    found = await reader(session, person_ids, sorted(set(under.values())))
    return {row_id: found[access] for row_id, access in under.items() if access in found}


class AccessEntry(BaseModel):
    id: int = Field(description="The audit entry")
    at: Any
    who: Reader
    action: str
    what: str
    person_name: str = Field(description="Whose record was read (you, or a child you act for)")
    relation: str | None = Field(default=None, description="parent / guardian when it was you")
    disputed: bool = False
    review: EmergencyReview | None = Field(
        default=None,
        description="Made under an emergency access: whether its review is pending or what it"
        " found (None for any other read)",
    )


class Dispute(BaseModel):
    id: int
    audit_event_id: int
    status: str
    reason: str | None
    opened_at: Any
    closed_at: Any = None
    finding: str | None = None
    link_id: int | None = Field(
        default=None,
        description="The representation link the person says is wrong (the case is about its"
        " recording); None: the case is about a read of their record",
    )


#: The audit action of a representation link's recording (``identity.add_representative``,
#: and ``identity.add_newborn`` for the mother's link, D245; the link's id its object): a
#: person who says the link is wrong opens a case about that row.
LINK_RECORDED = "representative.added"


def _link_of(event: audit.AuditEvent | None) -> int | None:
    """The representation link whose recording ``event`` is; None for any other row."""
    if (
        event is None
        or event.action != LINK_RECORDED
        or event.object_type != "representative"
        or not event.object_id.isdigit()
    ):
        return None
    return int(event.object_id)


def _dispute(row: audit.AccessDispute, event: audit.AuditEvent | None = None) -> Dispute:
    """A case as it is answered; ``event``: the audit row it is about (names its link)."""
    return Dispute(
        id=row.id,
        audit_event_id=row.audit_event_id,
        status=row.status,
        reason=row.reason,
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        finding=row.finding,
        link_id=_link_of(event),
    )


async def _readers(session: AsyncSession, actors: set[str]) -> dict[str, Reader]:
    persons = [a.split(":", 1)[1] for a in actors if a.startswith("person:")]
    clients = [a.split(":", 1)[1] for a in actors if a.startswith("facility_system:")]
    names = await identity.names_by_personal_id(session, persons)
    client_codes = await facilities.client_facilities(session, clients)
    directory = await facilities.directory(session, set(client_codes.values()))
    found: dict[str, Reader] = {}
    for actor in actors:
        kind, _, ident = actor.partition(":")
        if kind == "person":
            found[actor] = Reader(kind="person", name=names.get(ident))
        elif kind == "facility_system" and ident in client_codes:
            code = client_codes[ident]
            name = directory[code].name if code in directory else None
            found[actor] = Reader(
                kind="facility_system", name=name, facility=FacilityRef(code=code, name=name)
            )
        else:
            found[actor] = Reader(kind="other", name=actor)
    return found


async def access_log(
    session: AsyncSession,
    subject: Subject,
    *,
    limit: int = 100,
    before: int | None = None,
    personal_id: str | None = None,
) -> list[AccessEntry]:
    """Reads of my record and of the records of those I represent, by anyone but me; with
    ``personal_id``, of that one person's record alone (mine, or of someone I represent today:
    ``NotYourWard`` otherwise), as the book of that person links to it. Of a person of 16 or
    more whom I represent, a read by anyone but their representatives, the person and the
    department (``names_reader``) is "a medical facility", with no object: the young person
    may have chosen that care in confidence. Of a minor's (``records.confiding``), no read
    names its object (it may be a visit left out of their book). A read made under an
    emergency access carries that access's review (pending, or its finding and when), to
    every reader of the log alike: the review names no facility and no reviewer."""
    holders = {h.id: h for h in await identity.book_holders(session, subject)}
    if personal_id is not None:
        holders = {i: h for i, h in holders.items() if h.personal_id == personal_id}
        if not holders:
            raise errors.NotYourWard(personal_id=personal_id)
    rows = await audit.reads_about(
        session, list(holders), not_by=subject.label, limit=limit, before_id=before
    )
    readers = await _readers(session, {r.actor for r in rows})
    disputed = await audit.disputed(session, [r.id for r in rows])
    reviews = await _reviews(session, list(holders), rows)
    today = today_in_vietnam()
    confiding = {i for i, h in holders.items() if h.relation is not None and h.confides(today)}
    entries = []
    for row in rows:
        relation = (row.detail or {}).get("as")
        who, what = readers[row.actor], f"{row.object_type}/{row.object_id}"
        if row.person_id in confiding:
            # a representative reading the log of a person of 16 or more: that a facility
            # looked, and when, but not which one (its name, its staff's, may tell what care
            # the young person chose in confidence); of a minor's, what was read by its type
            # (the department's copy of a visit left out would name it)
            holder = holders[row.person_id]
            if records.confiding(holder, today):
                what = row.object_type
            if not names_reader(row, holder):
                what = row.object_type
                who = _A_FACILITY
        entries.append(
            AccessEntry(
                id=row.id,
                at=row.at,
                who=who,
                action=row.action,
                what=what,
                person_name=holders[row.person_id].full_name if row.person_id in holders else "",
                relation=relation,
                disputed=row.id in disputed,
                review=reviews.get(row.id),
            )
        )
    return entries


#: Who looked, as a representative of a person of 16 or more reads it.
_A_FACILITY = Reader(kind="facility")


def names_reader(row: audit.AuditEvent, holder: identity.Holder) -> bool:
    """Whether a representative of ``holder``, once the person confides (16 or more, D109),
    still reads who wrote this audit row about them: a representative acting as such, the
    person themselves, or the health department (a department's export says so in its
    detail; a person's cards and roles only a department reads). Anyone else reading a record
    is a medical facility or its staff."""
    detail = row.detail or {}
    return (
        detail.get("as") is not None
        or "department" in detail
        or row.action in audit.BY_DEPARTMENT
        or (holder.personal_id is not None and row.actor == f"person:{holder.personal_id}")
    )


async def dispute(
    session: AsyncSession, subject: Subject, event_id: int, reason: str | None
) -> Dispute:
    """Open a case about one read of my record (or return the one already open), or about
    the recording of a representation link of mine (``contest_link``)."""
    holders = {h.id for h in await identity.book_holders(session, subject)}
    event = await audit.event(session, event_id)
    if (
        event is None
        or event.person_id not in holders
        or (event.action not in audit.READS and _link_of(event) is None)
        or event.actor == subject.label
    ):
        raise errors.NotInYourLog(id=event_id)
    return await _open_case(session, subject, event, reason)


async def contest_link(
    session: AsyncSession, subject: Subject, link_id: int, reason: str | None
) -> Dispute:
    """Not right? Tell the health department: open a case about a representation link of
    mine or of a person I act for today (a parent may report the other parent's link of their
    child), or return the one already open about it. The case is about the link's recording
    (``LINK_RECORDED``), in the department's queue with the reads disputed; a link of anyone
    else, or none, is ``NotYourLink`` (the two not told apart). A level-1 identity reports
    none, as it reads no links (``LevelTooLow``)."""
    holders = [h.id for h in await identity.book_holders(session, subject)]
    found = await audit.events_of_objects(
        session, holders, LINK_RECORDED, "representative", [str(link_id)]
    )
    if not found:
        raise errors.NotYourLink(link=link_id)
    return await _open_case(session, subject, found[0], reason)


async def _open_case(
    session: AsyncSession, subject: Subject, event: audit.AuditEvent, reason: str | None
) -> Dispute:
    """A case about ``event``, which the caller may dispute: the one open already, else new
    (two sent at once, by a double submit or by both parents, make one: the second waits)."""
    event_id = event.id
    await take_turns(session, TURNS_CASES, str(event_id))
    existing = await audit.dispute_of(session, event_id)
    if existing is not None:
        return _dispute(existing, event)
    row = audit.AccessDispute(
        audit_event_id=event_id,
        person_id=event.person_id or 0,
        opened_by=subject.label,
        reason=(reason or "").strip()[:1000] or None,
        opened_at=utcnow(),
        status="open",
    )
    session.add(row)
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="dispute.opened",
            object_type="audit_event",
            object_id=str(event_id),
            person_id=event.person_id,
        )
    )
    await session.flush()
    return _dispute(row, event)


async def link_disputes(
    session: AsyncSession, subject: Subject, link_ids: Collection[int]
) -> dict[int, Dispute | None]:
    """Of these representation links of the caller and of those they act for today (others
    left out), by link id, each one a case may be opened about (``contest_link``: its
    recording is on record, a mother's link made with her newborn's provisional identity too,
    D245), with the case opened about it, None while there is none."""
    holders = [h.id for h in await identity.book_holders(session, subject)]
    rows = await audit.events_of_objects(
        session, holders, LINK_RECORDED, "representative", [str(i) for i in link_ids]
    )
    cases = await audit.disputes_of(session, [row.id for row in rows])
    found: dict[int, Dispute | None] = {}
    for row in rows:
        case, link = cases.get(row.id), _link_of(row)
        if link is not None:
            found[link] = _dispute(case, row) if case is not None else None
    return found


def _require_department(subject: Subject) -> None:
    if not subject.is_department_admin():
        raise Forbidden(action="handle access disputes")


async def _answers_for(session: AsyncSession, subject: Subject, person_ids: list[int]) -> set[int]:
    """The persons whose cases this department handles: those living in its provinces (a
    national administrator: everyone)."""
    if subject.is_national_admin():
        return set(person_ids)
    provinces = await identity.residence_provinces(session, person_ids)
    return {
        p for p, province in provinces.items() if province and subject.is_department_admin(province)
    }


async def disputes(
    session: AsyncSession,
    subject: Subject,
    status: str | None,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[Dispute]:
    """The department's queue (newest first): the cases of the people living in its
    provinces, ``limit`` at a time; ``next_cursor`` (None on the last page) gives the rest.
    A cursor that is not one this function wrote is ``InvalidCursor``."""
    _require_department(subject)
    after = decode_moment_cursor(cursor) if cursor else None
    residents = None
    if not subject.is_national_admin():
        provinces = [g.province_code for g in subject.grants_for("department_admin")]
        residents = await identity.residents_query(session, [p for p in provinces if p])
    rows = await audit.disputes(session, status, residents, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    about = await audit.events(session, [row.audit_event_id for row in rows])
    return Page[Dispute](
        items=[_dispute(row, about.get(row.audit_event_id)) for row in rows],
        next_cursor=encode_moment_cursor(last.opened_at, last.id) if last else None,
    )


async def close_dispute(
    session: AsyncSession, subject: Subject, dispute_id: int, finding: str
) -> Dispute:
    """Close a citizen's case with the department's finding (required, from the API and the
    review page alike: the finding is the citizen's answer). The same finding again is
    answered as done; another one for a case closed meanwhile (another reviewer's page) is
    ``CaseClosed``, naming the finding the citizen read: nothing is overwritten."""
    _require_department(subject)
    if not finding.strip():
        raise errors.FindingMissing()
    row = await audit.dispute(session, dispute_id, to_change=True)
    if row is None or row.person_id not in await _answers_for(session, subject, [row.person_id]):
        raise errors.UnknownDispute(id=dispute_id)
    if row.status == "closed" and (row.finding or "") != finding.strip()[:1000]:
        raise errors.CaseClosed(id=dispute_id, finding=row.finding or "")
    if row.status != "closed":
        row.status = "closed"
        row.closed_by = subject.label
        row.closed_at = utcnow()
        row.finding = finding.strip()[:1000]
        session.add(
            audit.audit_event(
                actor=subject.label,
                action="dispute.closed",
                object_type="access_dispute",
                object_id=str(row.id),
                person_id=row.person_id,
            )
        )
        await session.flush()
    return _dispute(row, await audit.event(session, row.audit_event_id))


@dataclass(frozen=True, slots=True)
class ContestedLink:
    """What a case about a representation link is about, as the department reads it: the
    person represented, by name, and the link (the agent by name, relation, period, what it
    is today); ``link`` None when it is no longer listed (its agent merged into another)."""

    person_name: str
    link: identity.Link | None


async def contested_links(
    session: AsyncSession, subject: Subject, cases: Collection[Dispute]
) -> dict[int, ContestedLink]:
    """For the department's review page: of these cases, those about a representation link
    of a person it handles (``_answers_for``), by case id."""
    _require_department(subject)
    wanted = [c for c in cases if c.link_id is not None]
    rows = await audit.events(session, [c.audit_event_id for c in wanted])
    persons = sorted({r.person_id for r in rows.values() if r.person_id is not None})
    mine = await _answers_for(session, subject, persons) if persons else set()
    names = await identity.persons(session, sorted(mine))
    links = {
        person: {x.id: x for x in await identity.representation_links(session, person)}
        for person in sorted(mine)
    }
    found: dict[int, ContestedLink] = {}
    for case in wanted:
        row = rows.get(case.audit_event_id)
        if row is None or row.person_id not in mine:
            continue
        named = names.get(row.person_id)
        found[case.id] = ContestedLink(
            named.full_name if named is not None else "",
            links[row.person_id].get(case.link_id or 0),
        )
    return found


async def end_contested_link(
    session: AsyncSession,
    subject: Subject,
    dispute_id: int,
    *,
    ends_on: date | None,
    reason: str,
) -> Dispute:
    """The department ends the representation link a case is about
    (``identity.end_representative``, the reviewer its registrar: the same rules, refusals and
    notices) and closes the case with the reason as its finding, which the person reads. A
    case it does not handle is ``UnknownDispute``; one about a read, ``NotALinkCase``; one
    closed meanwhile with another finding, ``CaseClosed`` (the same end again: as it is)."""
    _require_department(subject)
    row = await audit.dispute(session, dispute_id, to_change=True)
    if row is None or row.person_id not in await _answers_for(session, subject, [row.person_id]):
        raise errors.UnknownDispute(id=dispute_id)
    link_id = _link_of(await audit.event(session, row.audit_event_id))
    if link_id is None:
        raise errors.NotALinkCase(id=dispute_id)
    if row.status == "closed":
        # a page left open: the same end sent again changes nothing; another reviewer's
        # answer meanwhile (the link is right, say) is not overturned from a stale form
        if (row.finding or "") == reason.strip()[:1000]:
            return _dispute(row, await audit.event(session, row.audit_event_id))
        raise errors.CaseClosed(id=dispute_id, finding=row.finding or "")
    await identity.end_representative(session, subject, link_id, ends_on=ends_on, reason=reason)
    return await close_dispute(session, subject, dispute_id, reason)
