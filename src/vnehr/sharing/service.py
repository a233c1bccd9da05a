"""Who may read a citizen's record besides the citizen, and how much of it (D35).

A clinician (a person holding the ``clinician`` role at a facility connected to the exchange,
``acting_facility``) reads a patient's record when, at the moment of the read:
1. an emergency access they opened for that patient at that facility is in force (break-glass:
   the full record, time-boxed, the citizen told at once, reviewed by a supervisor), or
2. the citizen's sharing directive for that facility (or for every facility) is in force:
   the summary only, or the full record;
3. otherwise the default policy applies (``VNEHR_SHARING_DEFAULT``: ``none``, or ``summary``
   for facilities that have treated the patient).
Sensitive categories (HIV care XML6, TB XML15, mental health ICD-10 F, sexual and reproductive
health) are never shown unless the citizen named them in a directive in force. Every read leaves
one audit row naming the basis.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, facilities, healthbook, identity, records
from vnehr.kit.auth import Forbidden, Subject
from vnehr.kit.clock import VIETNAM, today_in_vietnam, utcnow
from vnehr.kit.db import TURNS_VIEWED, take_turns
from vnehr.kit.outbox import new_event
from vnehr.kit.paging import decode_moment_cursor, encode_moment_cursor
from vnehr.sharing import errors
from vnehr.sharing.models import ConsentDirective, EmergencyAccess, ReceptionCode
from vnehr.sharing.repository import UNJUSTIFIED, SharingRepository

SENSITIVE = records.SENSITIVE
REASONS = ("unconscious", "life-threatening", "urgent-treatment", "other")
#: A review's finding on an emergency access; the second ends it.
OUTCOMES = ("justified", UNJUSTIFIED)
#: The shortest break-glass reason text (characters, blanks aside).
MIN_REASON = 5
#: The audit action of a break-glass attempt refused by the bar (``EmergencyBarred``): in the
#: patient's access log (``audit.READS``), as an opening is (D228).
BARRED = "emergency.barred"
#: How long a directive may last, in days (None: until revoked).
MIN_DAYS, MAX_DAYS = 1, 3650
#: The sensitive categories a visit touches (the health book leaves them out for some readers
#: too, so the classification lives with the records).
categories = records.sensitive_categories


# ------------------------------------------------------------------ the citizen's directives


async def whose(
    session: AsyncSession, subject: Subject, personal_id: str | None = None
) -> identity.Holder:
    """The person whose sharing the caller manages: themselves, or (``personal_id``) a person
    they represent today (``healthbook.holder``: anyone else, an adult child included, is
    ``NotYourWard``). Not a person who may be 16 or more (``records.confiding``): from then the
    young person decides whom their record is shared with (D132), so their representative
    neither lists, makes nor revokes their shares, nor makes their reception code."""
    holder = await healthbook.holder(session, subject, personal_id)
    if records.confiding(holder, today_in_vietnam()):
        raise errors.SharesThemselves(name=holder.full_name)
    return holder


def _acts(
    subject: Subject, holder: identity.Holder, action: str, kind: str, what: str, **detail: Any
) -> audit.AuditEvent:
    """The audit row of a sharing act: the caller's about the holder, and as whom when the
    caller represents them (as a representative's reads are)."""
    if holder.relation is not None:
        detail["as"] = holder.relation
    return audit.audit_event(
        actor=subject.label,
        action=action,
        object_type=kind,
        object_id=what,
        person_id=holder.id,
        detail=detail or None,
    )


async def create_directive(
    session: AsyncSession,
    subject: Subject,
    *,
    grantee: str,
    scope: str,
    sensitive: list[str],
    days: int | None,
    personal_id: str | None = None,
) -> ConsentDirective:
    """Share my record (or, with ``personal_id``, the record of a person I represent, as
    ``whose``) with one facility of the registry ("01001") or every facility ("*"), for
    ``days`` days (1..3650) or, with None, until it is revoked. Checked here, not only in the
    API's schema: a form's "0" must not turn into "until revoked". The same share in force
    already (``_same_share``: a form sent twice) is answered instead of a second one."""
    holder = await whose(session, subject, personal_id)
    for name in sensitive:
        if name not in SENSITIVE:
            raise errors.BadCategory(value=name)
    if days is not None and not MIN_DAYS <= days <= MAX_DAYS:
        raise errors.BadDays(days=days, minimum=MIN_DAYS, maximum=MAX_DAYS)
    if grantee != "*" and grantee not in await facilities.directory(session, [grantee]):
        raise errors.UnknownFacility(facility=grantee)
    repo = SharingRepository(session)
    await repo.take_turns_sharing(holder.id)
    now = utcnow()
    row = ConsentDirective(
        person_id=holder.id,
        grantee=grantee,
        scope=scope,
        sensitive=sorted(set(sensitive)),
        valid_from=now,
        valid_to=now + timedelta(days=days) if days is not None else None,
        created_at=now,
        created_by=subject.label,
    )
    kept = await repo.directives_of([holder.id], newest_first=True)
    same = next((d for d in kept if _same_share(d, row, now)), None)
    if same is not None:  # sent twice (a form sent again, a double click): the one there
        return same
    await repo.add(row)
    what = {"grantee": grantee, "scope": scope, "sensitive": row.sensitive}
    session.add(_acts(subject, holder, "consent.created", "consent_directive", str(row.id), **what))
    return row


def _same_share(row: ConsentDirective, wanted: ConsentDirective, now: datetime) -> bool:
    """Whether a share in force is the one asked for again: the person's own (not a reception
    code's), the same facility, scope and sensitive categories, until revoked or ending the
    same day in Vietnam (as the sharing page shows it)."""
    if not in_force(row, now) or row.created_by.startswith("reception-code:"):
        return False
    if (row.grantee, row.scope, sorted(row.sensitive)) != (
        wanted.grantee,
        wanted.scope,
        wanted.sensitive,
    ):
        return False
    if row.valid_to is None or wanted.valid_to is None:
        return row.valid_to is None and wanted.valid_to is None
    return row.valid_to.astimezone(VIETNAM).date() == wanted.valid_to.astimezone(VIETNAM).date()


async def directives(
    session: AsyncSession, subject: Subject, personal_id: str | None = None
) -> list[ConsentDirective]:
    """My directives (or those of a person I represent, as ``whose``), newest first, revoked
    ones too."""
    holder = await whose(session, subject, personal_id)
    return await SharingRepository(session).directives_of([holder.id], newest_first=True)


async def directives_of(session: AsyncSession, person_ids: list[int]) -> list[ConsentDirective]:
    return await SharingRepository(session).directives_of(person_ids, newest_first=False)


async def revoke(
    session: AsyncSession, subject: Subject, directive_id: int, personal_id: str | None = None
) -> ConsentDirective:
    """Revoke a directive of mine (or of a person I represent, as ``whose``): in force no
    more, from this moment."""
    holder = await whose(session, subject, personal_id)
    row = await SharingRepository(session).directive(directive_id)
    if row is None or row.person_id != holder.id:
        raise errors.UnknownDirective(id=directive_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(_acts(subject, holder, "consent.revoked", "consent_directive", str(row.id)))
        await session.flush()
    return row


def in_force(row: ConsentDirective, now: datetime) -> bool:
    return (
        row.revoked_at is None
        and row.valid_from <= now
        and (row.valid_to is None or now < row.valid_to)
    )


# ------------------------------------------------------------------ the clinician's access


def clinician_facility(subject: Subject, facility: str | None) -> str:
    """The facility a clinician acts for (the one named, or their only one)."""
    mine = sorted({g.facility_code for g in subject.grants_for("clinician") if g.facility_code})
    if facility is not None:
        if facility not in mine:
            raise errors.NotAClinician(facility=facility)
        return facility
    if not mine:
        raise errors.NoClinicianRole()
    if len(mine) > 1:
        raise errors.ChooseFacility(facilities=", ".join(mine))
    return mine[0]


async def acting_facility(session: AsyncSession, subject: Subject, facility: str | None) -> str:
    """The facility a clinician acts for (``clinician_facility``), if it is connected: the
    records of real patients go only to connected facilities, as real visits come only from
    them (D19, D67). A suspended facility's clinicians (``FacilitySuspended``) and those of a
    facility still onboarding (``FacilityNotConnected``) neither read, nor break the glass,
    nor use a reception code; both are told to call the department."""
    code = clinician_facility(subject, facility)
    place = (await facilities.directory(session, [code])).get(code)
    if place is not None and place.status == facilities.State.connected:
        return code
    name = place.name if place is not None else code
    if place is not None and place.status == facilities.State.suspended:
        raise errors.FacilitySuspended(facility=code, name=name)
    raise errors.FacilityNotConnected(facility=code, name=name)


@dataclass(frozen=True, slots=True)
class Basis:
    kind: str  # emergency | consent | default
    scope: str  # summary | full
    #: the sensitive categories the visits opened at ``scope`` may touch
    sensitive: frozenset[str]
    reference: int | None  # the directive or emergency access
    #: the sensitive categories the summary may draw on (any directive in force names them)
    summary_sensitive: frozenset[str] = frozenset()


async def basis(
    session: AsyncSession, person_id: int, facility_code: str, clinician: str, default: str
) -> Basis:
    """Why this clinician may read this patient's record now, or ``NoConsent``.

    A category counts only for the scope of the directive that names it: "mental" named in a
    summary directive lets the summary draw on those visits, never opens them in full under
    another directive's full scope (the full visits keep only the categories full directives
    name)."""
    now = utcnow()
    repo = SharingRepository(session)
    emergency = await repo.emergency_in_force(person_id, facility_code, clinician, now)
    found = [d for d in await repo.directives_for(person_id, facility_code) if in_force(d, now)]
    anywhere = frozenset(name for d in found for name in d.sensitive)
    in_full = frozenset(name for d in found if d.scope == "full" for name in d.sensitive)
    if emergency is not None:
        return Basis("emergency", "full", in_full, emergency.id, anywhere)
    if found:
        best = max(found, key=lambda d: d.scope == "full")
        opened = in_full if best.scope == "full" else anywhere
        return Basis("consent", best.scope, opened, best.id, anywhere)
    if default == "summary" and await _treated(session, person_id, facility_code):
        return Basis("default", "summary", frozenset(), None)
    raise errors.NoConsent()


async def _treated(session: AsyncSession, person_id: int, facility_code: str) -> bool:
    return any(
        e.facility_code == facility_code for e in await records.entries_of(session, [person_id])
    )


async def _patient(session: AsyncSession, personal_id: str) -> int:
    person_id = await identity.person_id_of(session, personal_id)
    if person_id is None:
        raise errors.UnknownPatient(personal_id=personal_id)
    return person_id


def _keep(allowed: frozenset[str]) -> Any:
    return lambda tables: categories(tables) <= allowed


async def settle_read(session: AsyncSession, row: audit.AuditEvent) -> None:
    """Write a clinician read's audit row and tell the citizen their record was viewed: once a
    day per facility (an emergency access has told them already)."""
    session.add(row)
    detail = row.detail or {}
    if detail.get("basis") == "emergency" or row.person_id is None:
        return
    await notice_viewed(session, row.person_id, str(detail.get("facility") or ""))


async def notice_viewed(session: AsyncSession, person_id: int, facility: str) -> None:
    """A "your record was viewed" notification for the citizen (one per facility and day,
    even for two reads at once: the second waits for the first's commit and finds its
    notice)."""
    key = f"viewed:{person_id}:{facility}:{today_in_vietnam().isoformat()}"
    repository = SharingRepository(session)
    if await repository.event_exists(key):
        return
    await take_turns(session, TURNS_VIEWED, key)
    if await repository.event_exists(key):  # (told by a read that committed meanwhile)
        return
    names = await facilities.directory(session, [facility])
    session.add(
        new_event(
            "record.viewed",
            key,
            {
                "person_id": person_id,
                "params": {"facility": names[facility].name if facility in names else facility},
            },
        )
    )


def _read_audit(
    subject: Subject, person_id: int, found: Basis, facility: str, purpose: str, what: str
) -> audit.AuditEvent:
    return audit.audit_event(
        actor=subject.label,
        action="clinical.read",
        object_type="record",
        object_id=what,
        person_id=person_id,
        detail={
            "facility": facility,
            "purpose": purpose,
            "basis": found.kind,
            "scope": found.scope,
            "reference": found.reference,
        },
    )


async def patient_record(
    session: AsyncSession,
    subject: Subject,
    personal_id: str,
    *,
    facility: str | None,
    purpose: str,
    default: str,
) -> tuple[Basis, healthbook.schemas.Summary, list[healthbook.schemas.TimelineItem], Any]:
    """What a clinician sees of a patient: the summary, and the visits when the scope is full;
    with the audit row the read owes."""
    code = await acting_facility(session, subject, facility)
    person_id = await _patient(session, personal_id)
    found = await basis(session, person_id, code, subject.label, default)
    summary, visits = await healthbook.clinical_summary(
        session, person_id, found.summary_sensitive, listed=found.sensitive
    )
    if found.scope != "full":
        visits = []
    return (
        found,
        summary,
        visits,
        _read_audit(subject, person_id, found, code, purpose, personal_id),
    )


async def patient_visit(
    session: AsyncSession,
    subject: Subject,
    personal_id: str,
    visit_id: int,
    *,
    facility: str | None,
    purpose: str,
    default: str,
) -> tuple[Basis, healthbook.schemas.Visit, Any]:
    code = await acting_facility(session, subject, facility)
    person_id = await _patient(session, personal_id)
    found = await basis(session, person_id, code, subject.label, default)
    if found.scope != "full":
        raise errors.NoConsent()
    visit = await healthbook.clinical_visit(session, person_id, visit_id, _keep(found.sensitive))
    return found, visit, _read_audit(subject, person_id, found, code, purpose, f"visit/{visit_id}")


# ------------------------------------------------------------------ break-glass


async def break_glass(
    session: AsyncSession,
    subject: Subject,
    personal_id: str,
    *,
    facility: str | None,
    reason_code: str,
    reason_text: str,
    hours: int,
    bar_days: int,
) -> EmergencyAccess:
    """Open a patient's record in an emergency: time-boxed, the citizen is told at once (an
    outbox event their inbox consumes), the facility's and department's queue lists it. A
    clinician whose access to this patient was found unjustified less than ``bar_days`` days
    ago opens none (``EmergencyBarred``, wherever they work): otherwise the finding that ends
    an access at once would last one request. Another clinician still opens it."""
    if reason_code not in REASONS:
        raise errors.BadReason(codes=", ".join(REASONS))
    if len(reason_text.strip()) < MIN_REASON:  # the API's schema and the page's form alike
        raise errors.ReasonTooShort(minimum=MIN_REASON)
    code = await acting_facility(session, subject, facility)
    person_id = await _patient(session, personal_id)
    now = utcnow()
    if bar_days > 0:
        barred = await SharingRepository(session).unjustified_since(
            person_id, subject.label, now - timedelta(days=bar_days)
        )
        if barred is not None and barred.reviewed_at is not None:
            until = barred.reviewed_at + timedelta(days=bar_days)
            # the attempt is in the patient's access log, though refused (D228)
            session.add(
                audit.audit_event(
                    actor=subject.label,
                    action=BARRED,
                    object_type="person",
                    object_id=str(person_id),
                    person_id=person_id,
                    detail={
                        "facility": code,
                        "reason": reason_code,
                        "text": reason_text.strip()[:1000],
                        "unjustified": barred.id,
                    },
                    kept=True,
                )
            )
            raise errors.EmergencyBarred(
                days=bar_days,
                reviewed=barred.reviewed_at.astimezone(VIETNAM).strftime("%d/%m/%Y"),
                until=until.astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y"),
            )
    row = EmergencyAccess(
        person_id=person_id,
        facility_code=code,
        clinician=subject.label,
        reason_code=reason_code,
        reason_text=reason_text.strip()[:1000],
        opened_at=now,
        expires_at=now + timedelta(hours=hours),
        status="open",
    )
    await SharingRepository(session).add(row)
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="emergency.opened",
            object_type="emergency_access",
            object_id=str(row.id),
            person_id=person_id,
            detail={"facility": code, "reason": reason_code, "text": row.reason_text},
        )
    )
    session.add(
        new_event(
            "emergency.access",
            f"person:{person_id}",
            {"person_id": person_id, "params": {"facility": code, "reason": reason_code}},
        )
    )
    return row


async def emergency_queue(
    session: AsyncSession,
    subject: Subject,
    status: str | None,
    *,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[EmergencyAccess], str | None]:
    """Emergency accesses to review, newest first, ``limit`` at a time, with the cursor of the
    next page (None on the last; a cursor this function did not write is ``InvalidCursor``):
    a facility administrator sees their facility's, a department its province's
    facilities', a national administrator all of them."""
    after = decode_moment_cursor(cursor) if cursor else None
    codes: list[str] | None = None
    if not subject.is_national_admin():
        facilities_run = {
            g.facility_code for g in subject.grants_for("facility_admin") if g.facility_code
        }
        for province in {g.province_code for g in subject.grants_for("department_admin")}:
            facilities_run |= {f.code for f in await facilities.registry(session, province)}
        if not facilities_run and not subject.is_department_admin():
            raise Forbidden(action="review emergency accesses")
        codes = sorted(facilities_run)
    rows = await SharingRepository(session).emergencies(codes, status, after=after, limit=limit + 1)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_moment_cursor(rows[-1].opened_at, rows[-1].id)


async def review(
    session: AsyncSession, subject: Subject, access_id: int, note: str, outcome: str | None
) -> EmergencyAccess:
    """Close an emergency access with the reviewer's note and finding (both required: the
    review is the record of why the access was or was not justified). ``unjustified`` ends the
    access at once; ``justified`` lets it run its time, as the patient may still be in the
    emergency room. The finding goes out as an ``emergency.reviewed`` event (the citizen's
    inbox tells an unjustified one). A second review changes nothing, even one made at the
    same moment (it waits for the first and tells nothing). Nobody reviews an
    access they opened (``ReviewsOwnAccess``, after the right to review: to others it is
    ``UnknownEmergency`` still)."""
    if not note.strip():
        raise errors.NoteMissing()
    # locked: of two reviews at once the second waits and finds it reviewed (D182)
    row = await SharingRepository(session).emergency(access_id, lock=True)
    if row is None:
        raise errors.UnknownEmergency(id=access_id)
    place = (await facilities.directory(session, [row.facility_code])).get(row.facility_code)
    if not (  # a person answers for the review, never the facility's own system
        (
            subject.kind == "person"
            and subject.acts_for_facility(row.facility_code, ("facility_admin",))
        )
        or (place is not None and subject.is_department_admin(place.province_code))
        or subject.is_national_admin()
    ):
        raise errors.UnknownEmergency(id=access_id)
    if row.clinician == subject.label:  # someone else's look at it, whatever roles they hold
        raise errors.ReviewsOwnAccess(id=access_id)
    if outcome not in OUTCOMES:  # the page's form as the API's schema
        raise errors.OutcomeMissing(outcomes=", ".join(OUTCOMES))
    if row.status != "reviewed":
        row.status = "reviewed"
        row.reviewed_by = subject.label
        row.reviewed_at = utcnow()
        row.review_note = note.strip()[:1000]
        row.review_outcome = outcome
        session.add(
            audit.audit_event(
                actor=subject.label,
                action="emergency.reviewed",
                object_type="emergency_access",
                object_id=str(row.id),
                person_id=row.person_id,
                detail={"outcome": outcome},
            )
        )
        # the citizen's inbox is told of a finding that the access was not justified (a
        # justified one is not: the opening was told); the event says which, the inbox decides
        session.add(
            new_event(
                "emergency.reviewed",
                f"person:{row.person_id}",
                {
                    "person_id": row.person_id,
                    "outcome": outcome,
                    "params": {
                        "facility": row.facility_code,
                        "opened": row.opened_at.astimezone(VIETNAM).date().isoformat(),
                    },
                },
            )
        )
        await session.flush()
    return row


async def emergency_reviews(
    session: AsyncSession, person_ids: Collection[int], access_ids: Collection[int]
) -> dict[int, healthbook.EmergencyReview]:
    """What the review of each of these emergency accesses (to these persons' records) found,
    for the citizen's access log: pending until reviewed, then the finding and when (an access
    reviewed before findings were recorded, D159, is ``reviewed``). Nothing of the reviewer."""
    rows = await SharingRepository(session).reviews_of(sorted(person_ids), sorted(access_ids))
    found = {}
    for access_id, status, reviewed_at, outcome in rows:
        review = healthbook.EmergencyReview(state="pending")
        if status == "reviewed":
            review = healthbook.EmergencyReview(
                state="justified" if outcome == "justified" else
                      "unjustified" if outcome == UNJUSTIFIED else "reviewed",
                reviewed_at=reviewed_at,
            )  # fmt: skip
        found[access_id] = review
    return found


def emergency_running(row: EmergencyAccess, now: datetime) -> bool:
    """Whether the access still opens the record (as ``basis`` reads it): not expired, not
    found unjustified."""
    return now < row.expires_at and row.review_outcome != UNJUSTIFIED


# ------------------------------------------------------------------ show at reception

RECEPTION_MINUTES = 15
RECEPTION_ACCESS_HOURS = 24
#: Wrong codes entered for a patient before their open code stops working (a 6-digit code
#: must not be guessable: five tries give one chance in 200,000).
RECEPTION_TRIES = 5


def _code_hash(person_id: int, code: str) -> str:
    return hashlib.sha256(f"{person_id}:{code}".encode()).hexdigest()


async def reception_code(
    session: AsyncSession, subject: Subject, personal_id: str | None = None
) -> tuple[str, datetime]:
    """A fresh one-time 6-digit code for the citizen (or, with ``personal_id``, a person they
    represent, as ``whose``) to show at reception (valid 15 minutes); the codes made before it
    and not used stop working (one code open at a time). A representative's code is audited
    as the representative's act about the person."""
    holder = await whose(session, subject, personal_id)
    person_id = holder.id
    code = f"{secrets.randbelow(10**6):06d}"
    now = utcnow()
    expires = now + timedelta(minutes=RECEPTION_MINUTES)
    repo = SharingRepository(session)
    # one code open at a time, two asked at once too (D253): the second replaces the first
    await repo.take_turns_sharing(person_id)
    for older in await repo.open_codes(person_id, now, lock=True):
        older.used_at, older.used_by = now, "replaced"
    row = ReceptionCode(
        person_id=person_id,
        code_hash=_code_hash(person_id, code),
        created_at=now,
        expires_at=expires,
    )
    await repo.add(row)
    if holder.relation is not None:
        session.add(_acts(subject, holder, "reception_code.made", "reception_code", str(row.id)))
    return code, expires


async def redeem(
    session: AsyncSession, subject: Subject, personal_id: str, code: str, facility: str | None
) -> ConsentDirective:
    """A clinician enters the code the patient shows: the full record for this visit, for a
    day, to the clinician's facility (a directive the citizen sees and can revoke)."""
    facility_code = await acting_facility(session, subject, facility)
    person_id = await _patient(session, personal_id)
    now = utcnow()
    repo = SharingRepository(session)
    codes = await repo.open_codes(person_id, now, lock=True)
    wanted = _code_hash(person_id, code.strip())
    found = next((c for c in codes if c.code_hash == wanted), None)
    if found is None:
        await _wrong_code(session, subject, person_id, personal_id, facility_code, codes)
        raise errors.BadReceptionCode()
    directive = ConsentDirective(
        person_id=person_id,
        grantee=facility_code,
        scope="full",
        sensitive=[],
        valid_from=now,
        valid_to=now + timedelta(hours=RECEPTION_ACCESS_HOURS),
        created_at=now,
        created_by=f"reception-code:{subject.label}",
    )
    await repo.add(directive)
    found.used_at, found.used_by, found.directive_id = now, subject.label, directive.id
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="consent.reception",
            object_type="consent_directive",
            object_id=str(directive.id),
            person_id=person_id,
            detail={"facility": facility_code},
        )
    )
    return directive


async def _wrong_code(
    session: AsyncSession,
    subject: Subject,
    person_id: int,
    personal_id: str,
    facility_code: str,
    codes: list[ReceptionCode],
) -> None:
    """Record a wrong code (the caller commits it although the answer is an error); after
    ``RECEPTION_TRIES`` wrong codes since the patient's open code was made, that code stops
    working and the patient makes a new one."""
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="consent.reception_failed",
            object_type="reception_code",
            object_id=personal_id,
            person_id=person_id,
            detail={"facility": facility_code},
        )
    )
    await session.flush()
    if not codes:
        return
    since = min(c.created_at for c in codes)
    tries = await audit.count_since(session, person_id, "consent.reception_failed", since)
    if tries >= RECEPTION_TRIES:
        now = utcnow()
        for c in codes:
            c.used_at, c.used_by = now, "too many wrong codes"
        await session.flush()
