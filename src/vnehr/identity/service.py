"""Rules of the identity context: persons from VNeID sign-in, health accounts (self-service and
assisted), insurance-card history, representatives and provisional newborns, role grants."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, NotRequired, TypedDict, Unpack

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, catalogs
from vnehr.identity import accounts_errors as errors
from vnehr.identity.models import (
    AccountEvent,
    HealthAccount,
    InsuranceCard,
    Person,
    Representative,
    RoleGrant,
)
from vnehr.identity.numbers import Sex, check_insurance_card, check_personal_id
from vnehr.identity.repository import (
    CONFIDENTIAL_AGE,
    Confirmed,
    IdentityRepository,
    of_age,
    of_age_from,
    represents,
)
from vnehr.kit.auth import Forbidden, Grant, Subject
from vnehr.kit.clock import VIETNAM, today_in_vietnam, utcnow
from vnehr.kit.db import TURNS_GRANTS, take_turns
from vnehr.kit.errors import VnehrError
from vnehr.kit.outbox import OutboxEvent, held_event, new_event
from vnehr.kit.paging import decode_cursor, encode_cursor
from vnehr.kit.text import fold, fold_words


def _sex(value: object) -> Sex | None:
    if value == "male":
        return "male"
    if value == "female":
        return "female"
    return None


def _person_event(
    subject: Subject, action: str, person: Person, detail: dict[str, Any] | None = None
) -> audit.AuditEvent:
    """The audit row of ``subject``'s ``action`` on ``person`` (a read of ``audit.READS`` is
    in their access log, and kept when a later check refuses the request: what was looked up
    may already be told, D228)."""
    return audit.audit_event(
        actor=subject.label,
        action=action,
        object_type="person",
        object_id=str(person.id),
        person_id=person.id,
        detail=detail,
        kept=action in audit.READS,
    )


ROLES = ("department_admin", "ward_officer", "facility_admin", "clinician")
REQUIRED_LEVEL = 2
#: The audit action of an assisted enrolment that found the citizen on record (``audit.READS``:
#: their access log names the officer).
ENROLMENT_READ = "enrolment.read"
#: The audit action of the ward office's newborn form naming the mother before it acts.
NEWBORN_MOTHER_READ = "newborn.mother_read"
#: The audit action of a role form's check step naming the person a role is for.
GRANT_PERSON_READ = "grant.person.read"


# ------------------------------------------------------------------ sign-in

#: What a person's first VNeID sign-in sets off in the contexts above identity, in the
#: sign-in's transaction: given the person with what VNeID has just confirmed of them.
FirstConfirmation = Callable[[AsyncSession, "PatientMatch"], Awaitable[None]]
_ON_FIRST_CONFIRMATION: dict[str, FirstConfirmation] = {}


def on_first_confirmation(name: str, hook: FirstConfirmation) -> None:
    """Run ``hook`` when VNeID first confirms a person's details: what was filed to them while
    they were pending (D23) is compared with those details then (D167). The contexts that
    keep it sit above identity, so the composition root hands the hook down (``name``: one
    hook of that name, however often the app is built)."""
    _ON_FIRST_CONFIRMATION[name] = hook


async def sign_in(session: AsyncSession, claims: Mapping[str, Any]) -> Person:
    """The person behind verified VNeID ID-token claims, created on first sign-in and kept in
    step with VNeID (name, birth date, sex) afterwards. The first time VNeID confirms a person
    (no VNeID account linked before), the ``on_first_confirmation`` hooks run in the same
    transaction; a later change of details runs nothing (D167)."""
    personal_id = str(claims.get("personal_id", ""))
    try:
        birth = date.fromisoformat(str(claims.get("birthdate", "")))
    except ValueError as exc:
        raise errors.SignInRejected(reason="birthdate") from exc
    sex = _sex(claims.get("gender"))
    try:
        personal_id = check_personal_id(personal_id, sex=sex, birth_date=birth).value
    except VnehrError as exc:
        raise errors.SignInRejected({"cause": exc.code}, reason=exc.messages()) from exc
    repo = IdentityRepository(session)
    person = await repo.person_by_personal_id(personal_id)
    now = utcnow()
    if person is None:
        # (a write naming the ID may be making them known at this moment: waited for, and
        # its person is theirs, not a second one with the same ID, D176)
        person = await repo.new_person_once(
            personal_id=personal_id,
            full_name=str(claims.get("name", "")),
            birth_date=birth,
            sex=sex,
            created_at=now,
            created_by="vneid",
        )
    person.full_name = str(claims.get("name") or person.full_name)
    person.birth_date, person.sex = birth, sex or person.sex
    person.birth_partial = None  # VNeID knows the day
    vneid_sub = str(claims.get("sub") or "") or None
    first = vneid_sub is not None and person.vneid_sub is None
    if vneid_sub and vneid_sub != person.vneid_sub:
        holder = await repo.person_by_vneid_sub(vneid_sub)
        if holder is not None and holder.id != person.id:
            raise errors.SignInRejected(reason="this VNeID account is linked to another person")
        person.vneid_sub = vneid_sub
    person.last_sign_in_at = now
    person.last_assurance_level = int(claims.get("assurance_level") or 1)
    await session.flush()
    if first:
        confirmed = PatientMatch(person.id, (person.full_name, person.birth_date, None))
        for hook in _ON_FIRST_CONFIRMATION.values():
            await hook(session, confirmed)
    return person


async def grants_for(session: AsyncSession, personal_id: str) -> tuple[Grant, ...]:
    """Every role the person holds now (the ``GrantLoader`` of the app)."""
    rows = await IdentityRepository(session).active_grants(personal_id)
    return (
        Grant("citizen"),
        *(Grant(g.role, g.facility_code, g.province_code, g.ward_code) for g in rows),
    )


async def _person_of(repo: IdentityRepository, subject: Subject) -> Person:
    person = await repo.person_by_personal_id(subject.id) if subject.kind == "person" else None
    if person is None:
        raise errors.UnknownPerson(personal_id=subject.id)
    return person


async def profile(
    session: AsyncSession, subject: Subject
) -> tuple[Person, HealthAccount | None, list[RoleGrant], list[tuple[Representative, Person]]]:
    """The signed-in person with their account, roles and whom they act for today."""
    if subject.kind != "person":
        raise Forbidden(action="read a person profile as a system")
    repo = IdentityRepository(session)
    person = await _person_of(repo, subject)
    return (
        person,
        await repo.account_of(person.id),
        await repo.active_grants(subject.id),
        await repo.representing(person.id, today_in_vietnam()),
    )


@dataclass(frozen=True, slots=True)
class Holder:
    """A person whose health book the caller may read: themselves or someone they represent."""

    id: int
    personal_id: str | None
    full_name: str
    birth_date: date | None
    sex: str | None
    provisional: bool
    relation: str | None  # None: the caller themselves; parent | guardian otherwise
    level: int | None = None  # the identity level of the person's last sign-in (None: never)
    birth_partial: str | None = None  # "2006" / "2008-11" when only that is known (D106)

    @classmethod
    def of(cls, person: Person, relation: str | None = None) -> Holder:
        return cls(
            person.id,
            person.personal_id,
            person.full_name,
            person.birth_date,
            person.sex,
            person.provisional,
            relation,
            person.last_assurance_level,
            person.birth_partial,
        )

    def confides(self, on: date) -> bool:
        """Whether the person may be 16 or older on ``on``, for all we know (the earliest day
        a partial birth, or the year in the personal ID, allows, as D106 does for 18): from
        then what a representative sees of who looked names no facility."""
        since = of_age_from(self.birth_date, self.birth_partial, self.personal_id, CONFIDENTIAL_AGE)
        return since is not None and on >= since

    def of_age(self, on: date) -> bool:
        """Whether the person may be 18 or older on ``on`` (the earliest day, as D106): then
        only a guardian a court appointed for the adult still represents them."""
        since = of_age_from(self.birth_date, self.birth_partial, self.personal_id)
        return since is not None and on >= since

    @property
    def reads_books(self) -> bool:
        """Whether the person's last sign-in could read a health book (level 2, D12, D74):
        what the inbox would show them, the push tells them; a level-1 identity is told
        nothing."""
        return (self.level or 0) >= REQUIRED_LEVEL


def require_book_level(subject: Subject) -> None:
    """A level-1 identity signs in but reads no health book, its own or a represented
    person's (D12); the level comes with the session, so this costs no query."""
    if (subject.assurance_level or 0) < REQUIRED_LEVEL:
        raise errors.LevelTooLow(level=subject.assurance_level or 1, required=REQUIRED_LEVEL)


async def book_holders(session: AsyncSession, subject: Subject) -> list[Holder]:
    """Whose health books a signed-in person reads today: their own first, then the children and
    wards they represent (periods checked on today's date). Systems read no books here; nor
    does a level-1 identity (``LevelTooLow``)."""
    if subject.kind != "person":
        raise Forbidden(action="read a health book as a system")
    require_book_level(subject)
    repo = IdentityRepository(session)
    person = await _person_of(repo, subject)
    represented = await repo.representing(person.id, today_in_vietnam())
    return [Holder.of(person)] + [Holder.of(p, r.relation) for r, p in represented]


async def persons(session: AsyncSession, ids: list[int]) -> dict[int, Holder]:
    """Persons by internal id (for FHIR Patient resources); merged persons are left out."""
    return {p.id: Holder.of(p) for p in await IdentityRepository(session).persons(ids)}


# ------------------------------------------------------------------ health accounts


async def account(session: AsyncSession, subject: Subject) -> HealthAccount | None:
    repo = IdentityRepository(session)
    return await repo.account_of((await _person_of(repo, subject)).id)


async def open_account(session: AsyncSession, subject: Subject) -> HealthAccount:
    """Open (or reopen) the caller's health account. Needs VNeID identity at level 2."""
    if (subject.assurance_level or 0) < REQUIRED_LEVEL:
        raise errors.LevelTooLow(level=subject.assurance_level or 1, required=REQUIRED_LEVEL)
    repo = IdentityRepository(session)
    person = await _person_of(repo, subject)
    return await _open(repo, person, channel="vneid", ward=None, actor=subject.label)


async def _open(
    repo: IdentityRepository, person: Person, *, channel: str, ward: str | None, actor: str
) -> HealthAccount:
    now = utcnow()
    existing = await repo.account_of(person.id, to_change=True)
    if existing is not None and existing.status == "open":
        return existing
    if existing is None:
        existing = HealthAccount(
            person_id=person.id,
            status="open",
            channel=channel,
            assisted_ward_code=ward,
            assisted_by=actor if channel == "assisted" else None,
            opened_at=now,
        )
        await repo.add(existing)
        action = "opened"
    else:
        existing.status, existing.closed_at, action = "open", None, "reopened"
    await repo.add(
        AccountEvent(
            account_id=existing.id,
            action=action,
            channel=channel,
            ward_code=ward,
            actor=actor,
            at=now,
        )
    )
    await _account_changed(repo, person, +1, now)
    return existing


async def _account_changed(
    repo: IdentityRepository, person: Person, delta: int, at: datetime
) -> None:
    """An event for the reports: one more (or one fewer) open account in the person's ward."""
    ward = person.residence_ward_code or ""
    await repo.add(
        new_event(
            "account.changed",
            f"person:{person.id}",
            {
                "person_id": person.id,
                "ward": ward,
                "delta": delta,
                "at": at.isoformat(),
                "province": await province_of_ward(repo.session, ward),
            },
        )
    )


async def close_account(
    session: AsyncSession, subject: Subject, reason: str | None
) -> HealthAccount:
    """Close the caller's account on request. The records stay, and stay readable by their
    owner at level 2 (D74): the account decides what the app offers and what the report
    counts, not the citizen's right to read their own record."""
    repo = IdentityRepository(session)
    person = await _person_of(repo, subject)
    existing = await repo.account_of(person.id, to_change=True)
    if existing is None:
        raise errors.NoAccount(personal_id=subject.id)
    if existing.status == "open":
        existing.status, existing.closed_at = "closed", utcnow()
        await repo.add(
            AccountEvent(
                account_id=existing.id,
                action="closed",
                channel=existing.channel,
                actor=subject.label,
                reason=reason,
                at=existing.closed_at,
            )
        )
        await _account_changed(repo, person, -1, existing.closed_at)
    return existing


async def keeps_ward_office(
    session: AsyncSession, subject: Subject, ward_code: str, action: str = "assisted enrolment"
) -> str:
    """The province of ``ward_code`` when ``subject`` may act at its ward office: a ward
    officer of that very ward, or the department of its province (a national one anywhere).
    ``UnknownWard`` for a ward not in force today, ``Forbidden`` (naming ``action``) for
    anyone else."""
    province = await _province_of_ward(session, ward_code)
    allowed = any(g.ward_code == ward_code for g in subject.grants_for("ward_officer"))
    if not (allowed or subject.is_department_admin(province)):
        raise Forbidden(action=action, ward=ward_code)
    return province


async def check_assisted(
    session: AsyncSession,
    officer: Subject,
    *,
    personal_id: str,
    birth_date: date,
    sex: str,
    ward_code: str,
) -> str:
    """What ``assisted_open`` checks before it writes anything (the officer's ward, the
    personal ID's rules against the sex and birth typed), for a form that asks before it
    acts: the personal ID as it will be stored."""
    await keeps_ward_office(session, officer, ward_code)
    return check_personal_id(personal_id, sex=_sex(sex), birth_date=birth_date).value


@dataclass(frozen=True, slots=True)
class AssistedOpening:
    """What an assisted enrolment found and did: the citizen and their book, whether the
    citizen was on record before (else recorded now from what the officer typed), and the
    book's status before ("open", "closed"; None: there was none)."""

    person: Person
    account: HealthAccount
    on_record: bool
    was: str | None


async def assisted_open(
    session: AsyncSession,
    officer: Subject,
    *,
    personal_id: str,
    full_name: str,
    birth_date: date,
    sex: str,
    ward_code: str,
) -> AssistedOpening:
    """A ward officer opens an account for a citizen at the ward office (recorded as assisted,
    with the ward, for the reports). The officer must hold the ward, or the department must.
    A citizen already on record is answered as recorded (name, birth date, residence), so the
    look-up is an audit row in their access log (``ENROLMENT_READ``), even when their book
    was already open and nothing else is written. A citizen on record with no residence is
    given the office's ward only when the name (accents aside) and birth date typed are the
    record's, as on the chip ID card at the counter; else ``EnrolmentNotTheRecord`` (for a ward
    office: the department may place anyone, ``first_residence``), so a personal ID alone does
    not bring a stranger into the officer's area (D24)."""
    personal_id = await check_assisted(
        session,
        officer,
        personal_id=personal_id,
        birth_date=birth_date,
        sex=sex,
        ward_code=ward_code,
    )
    repo = IdentityRepository(session)
    person = await repo.person_by_personal_id(personal_id)
    on_record, was = person is not None, None
    if person is not None:
        await repo.add(_person_event(officer, ENROLMENT_READ, person, {"ward": ward_code}))
        if person.residence_ward_code is None and not _same_person(person, full_name, birth_date):
            try:
                first_residence(officer, person, await _province_of_ward(session, ward_code))
            except errors.FirstResidenceByDepartment:
                raise errors.EnrolmentNotTheRecord(personal_id=personal_id) from None
        before = await repo.account_of(person.id)
        was = before.status if before is not None else None
    else:
        person = Person(
            personal_id=personal_id,
            full_name=full_name.strip(),
            birth_date=birth_date,
            sex=sex,
            created_at=utcnow(),
            created_by=officer.label,
        )
        try:
            async with session.begin_nested():
                await repo.add(person)
        except IntegrityError:
            # the same enrolment sent twice at once (a second tap): the other request recorded
            # them meanwhile; this one is answered as for a citizen on record
            if await repo.person_by_personal_id(personal_id) is None:
                raise
            return await assisted_open(
                session,
                officer,
                personal_id=personal_id,
                full_name=full_name,
                birth_date=birth_date,
                sex=sex,
                ward_code=ward_code,
            )
    if person.residence_ward_code is None:  # enrolled at the office of where they live
        await _move_residence(repo, person, ward_code, officer.label)
    account = await _open(repo, person, channel="assisted", ward=ward_code, actor=officer.label)
    return AssistedOpening(person, account, on_record, was)


def _same_person(person: Person, full_name: str, birth_date: date) -> bool:
    """The name typed is the record's (accents and case aside) and so is the birth date (to
    the day, or within the year or month recorded when only that is known)."""
    if fold(person.full_name) != fold(full_name):
        return False
    if person.birth_date is not None:
        return person.birth_date == birth_date
    return birth_date.isoformat().startswith(person.birth_partial or "")


async def province_of_ward(session: AsyncSession, ward_code: str | None) -> str:
    """The province code of a ward in force today ("" when unknown)."""
    if not ward_code:
        return ""
    try:
        return await _province_of_ward(session, ward_code)
    except errors.UnknownWard:
        return ""


async def _province_of_ward(session: AsyncSession, ward_code: str) -> str:
    try:
        entry = await catalogs.lookup(session, "ward", ward_code, today_in_vietnam())
    except (catalogs.UnknownCode, catalogs.CodeNotInForce) as exc:
        raise errors.UnknownWard(ward=ward_code) from exc
    return entry.parent_code or ""


# ------------------------------------------------------------------ residence and registrar scope


def _is_registrar(subject: Subject) -> bool:
    """Holds a registrar role somewhere (department or ward office); whether it covers a given
    person is ``_may_register_for``."""
    return bool(subject.is_department_admin() or subject.grants_for("ward_officer"))


async def _residence_province(session: AsyncSession, person: Person) -> str | None:
    """The province of the person's ward of residence; None without a residence or when the
    ward is not in force any more (then only a national administrator decides)."""
    if not person.residence_ward_code:
        return None
    try:
        return await _province_of_ward(session, person.residence_ward_code) or None
    except errors.UnknownWard:
        return None


async def _may_register_for(session: AsyncSession, subject: Subject, person: Person) -> bool:
    """May ``subject`` act as registrar (cards, representatives, personal IDs) for ``person``?
    A national department administrator always; otherwise the department of the province of
    the person's ward of residence, or a ward officer of that very ward. A person without a
    residence is in nobody's area but the national department's (D24)."""
    if subject.is_national_admin():
        return True
    ward = person.residence_ward_code
    if not ward:
        return False
    if any(g.ward_code == ward for g in subject.grants_for("ward_officer")):
        return True
    province = await _residence_province(session, person)
    return province is not None and subject.is_department_admin(province)


async def set_residence(
    session: AsyncSession, subject: Subject, personal_id: str, ward_code: str
) -> Person:
    """Record the person's ward of residence. The caller must hold the new ward (its ward
    officer, or the department of its province) and, when the person already lives somewhere,
    also be in scope for the current residence: nobody moves a person into their own area. A
    person with no residence on record is in nobody's area but the department's (D24): their
    first one is the department's to record (``FirstResidenceByDepartment`` for a ward
    office), else any ward officer could place anyone in their ward and act for them."""
    if not _is_registrar(subject):
        raise Forbidden(action="record a residence")
    province = await keeps_ward_office(session, subject, ward_code, "record a residence")
    repo = IdentityRepository(session)
    # held: the same move sent twice at once is done once (D253), the second finds it done
    person = await repo.person_to_change(personal_id)
    if person is None:
        raise errors.UnknownPerson(personal_id=personal_id)
    previous = person.residence_ward_code
    if previous == ward_code:
        return person
    first_residence(subject, person, province)
    if previous is not None and not await _may_register_for(session, subject, person):
        raise Forbidden(action="move a person from another area", ward=previous)
    await _move_residence(repo, person, ward_code, subject.label)
    detail = {"from": previous, "to": ward_code}
    await repo.add(_person_event(subject, "person.residence_set", person, detail))
    return person


def first_residence(subject: Subject, person: Person, province: str) -> None:
    """``FirstResidenceByDepartment`` unless ``subject`` is the department of ``province``
    (the new ward's; a national one anywhere), for a person with no residence on record."""
    if person.residence_ward_code is None and not subject.is_department_admin(province):
        raise errors.FirstResidenceByDepartment()


async def _move_residence(
    repo: IdentityRepository, person: Person, ward_code: str, actor: str
) -> None:
    """Change the ward of residence; the person's health account follows (D43: an account
    counts at its holder's ward of residence). An open account leaves the old ward's count for
    the new one (two events for the reports), and every account keeps the move in its history
    (the ward left, the ward entered): the recount reads where the person lived at each
    opening, closing and move from there, not today's residence, so past periods never shift."""
    account = await repo.account_of(person.id)
    counted = account is not None and account.status == "open"
    now = utcnow()
    previous = person.residence_ward_code
    if counted:
        await _account_changed(repo, person, -1, now)
    person.residence_ward_code = ward_code
    if counted:
        await _account_changed(repo, person, +1, now)
    if account is not None:
        for action, ward in (("moved_out", previous), ("moved_in", ward_code)):
            await repo.add(
                AccountEvent(
                    account_id=account.id,
                    action=action,
                    channel=account.channel,
                    ward_code=ward,
                    actor=actor,
                    at=now,
                )
            )


# ------------------------------------------------------------------ insurance cards


async def add_card(
    session: AsyncSession,
    subject: Subject,
    personal_id: str,
    *,
    card_number: str,
    valid_from: date | None,
    valid_to: date | None,
    registered_facility: str | None,
) -> InsuranceCard:
    """Record a card in the person's card history: the person, or a registrar whose area the
    person lives in (D24)."""
    by_self = subject.kind == "person" and subject.id == personal_id
    if not (by_self or _is_registrar(subject)):
        raise Forbidden(action="record insurance card")
    card = check_insurance_card(card_number)
    if valid_from and valid_to and valid_to < valid_from:
        raise errors.PeriodInvalid(valid_from=valid_from.isoformat(), valid_to=valid_to.isoformat())
    repo = IdentityRepository(session)
    person = await repo.person_by_personal_id(personal_id)
    if person is None:
        raise errors.UnknownPerson(personal_id=personal_id)
    if not (by_self or await _may_register_for(session, subject, person)):
        raise Forbidden(action="record insurance card")
    row = InsuranceCard(
        person_id=person.id,
        card_number=card.value,
        social_insurance_number=card.social_insurance_number,
        valid_from=valid_from,
        valid_to=valid_to,
        registered_facility=registered_facility,
        recorded_at=utcnow(),
        recorded_by=subject.label,
    )
    await repo.add(row)
    await repo.add(
        audit.audit_event(
            actor=subject.label,
            action="card.added",
            object_type="insurance_card",
            object_id=str(row.id),
            person_id=person.id,
        )
    )
    return row


async def cards(session: AsyncSession, subject: Subject, personal_id: str) -> list[InsuranceCard]:
    """A person's card history: the person, or the department of the province they live in
    (a national one for anyone). Someone else's reading is audited."""
    by_self = subject.kind == "person" and subject.id == personal_id
    if not (by_self or subject.is_department_admin()):
        raise Forbidden(action="read insurance cards")
    repo = IdentityRepository(session)
    person = await repo.person_by_personal_id(personal_id)
    if person is None:
        raise errors.UnknownPerson(personal_id=personal_id)
    if not by_self:
        if not await _may_register_for(session, subject, person):
            raise Forbidden(action="read insurance cards")
        await repo.add(_person_event(subject, "cards.read", person))
    return await repo.cards_of(person.id)


# ------------------------------------------------------------------ representatives


def _require_registrar(subject: Subject, action: str) -> None:
    """A quick refusal for callers who are no registrar anywhere (before any lookup)."""
    if not _is_registrar(subject):
        raise Forbidden(action=action)


async def add_representative(
    session: AsyncSession,
    subject: Subject,
    *,
    agent_personal_id: str,
    subject_person: int | str,
    relation: str,
    valid_from: date,
    valid_to: date | None,
) -> Representative:
    """Record that a parent or guardian acts for someone (by personal ID, or by person number
    for a provisional newborn) between two dates. The represented person must live in the
    caller's area (D24). The registrar is never the agent (``RegistrarAsAgent``); a link
    that would represent nobody is refused (``refuses_link``), and an adult's guardian (a
    court's) is recorded by the department only (``AdultGuardianByDepartment``)."""
    _require_registrar(subject, "record representatives")
    if valid_to is not None and valid_to < valid_from:
        raise errors.PeriodInvalid(valid_from=valid_from.isoformat(), valid_to=valid_to.isoformat())
    not_the_registrar(subject, agent_personal_id)
    repo = IdentityRepository(session)
    agent = await repo.person_by_personal_id(agent_personal_id)
    if agent is None:
        raise errors.UnknownPerson(personal_id=agent_personal_id)
    target = (
        await repo.person(subject_person)
        if isinstance(subject_person, int)
        else await repo.person_by_personal_id(subject_person)
    )
    if target is None:
        raise errors.UnknownPerson(personal_id=str(subject_person))
    if not await _may_register_for(session, subject, target):
        raise Forbidden(action="record representatives")
    if agent.id == target.id:
        raise errors.RepresentsSelf()
    await refuses_link(session, subject, target, relation, valid_from)
    row = Representative(
        agent_id=agent.id,
        subject_id=target.id,
        relation=relation,
        valid_from=valid_from,
        valid_to=valid_to,
        created_at=utcnow(),
        created_by=subject.label,
    )
    await repo.add(row)
    await repo.add(
        audit.audit_event(
            actor=subject.label,
            action="representative.added",
            object_type="representative",
            object_id=str(row.id),
            person_id=target.id,
            detail={"agent_id": agent.id, "relation": relation},
        )
    )
    # the person is told, and so are those who act for them already (D238's "Left")
    params = {
        "agent": agent.full_name,
        "relation": relation,
        "valid_from": valid_from.isoformat(),
        "valid_to": valid_to.isoformat() if valid_to else None,
        **await _registrar_office(session, subject, target, relation, valid_from),
    }
    await repo.add(
        new_event(
            "representative.added",
            f"person:{target.id}",
            {"person_id": target.id, "representative_id": row.id, "params": params},
        )
    )
    if valid_from > today_in_vietnam():
        # told again on its first day: the person that it begins, the agent that they act
        for event in _on_the_day(row, "begins", valid_from, target, agent, params):
            await repo.add(event)
    return row


async def _registrar_office(
    session: AsyncSession, subject: Subject, person: Person, relation: str, valid_from: date
) -> dict[str, str]:
    """The office that recorded a link for ``person``, as its notice names it (by code; the
    inbox gives the name): the ward office of the person's ward, the department of its
    province, or the national department, whichever grant allowed it (``_may_register_for``;
    an adult's guardian is never a ward office's, ``refuses_link``)."""
    ward = person.residence_ward_code
    adult_on = of_age(person)
    adult_guardian = relation == "guardian" and adult_on is not None and valid_from >= adult_on
    if (
        ward
        and not adult_guardian
        and any(g.ward_code == ward for g in subject.grants_for("ward_officer"))
    ):
        return {"office": "ward", "ward": ward}
    province = await _residence_province(session, person)
    if province is not None and not subject.is_national_admin():
        return {"office": "department", "province": province}
    return {"office": "national"}


def not_the_registrar(subject: Subject, agent_personal_id: str) -> None:
    """``RegistrarAsAgent`` when the registrar would record themselves as the agent: whoever
    may place a person in their area must not also make themselves that person's
    representative (and so a reader of their book)."""
    if subject.kind == "person" and subject.id == agent_personal_id.strip():
        raise errors.RegistrarAsAgent()


async def refuses_link(
    session: AsyncSession, subject: Subject, target: Person, relation: str, valid_from: date
) -> None:
    """Refuse a link that ``represents`` would make represent nobody on the later of its
    start and today: a parent's of someone of age then (``ParentOfAdult``), a guardianship
    begun before the person's majority when they are of age by then (``GuardianFromChildhood``,
    Civil Code 2015 Art. 62); the page and the API would otherwise report a link in force
    that gives nobody the book. A guardianship beginning once the person is of age (a
    court's appointment, Art. 47, 53) is the department's to record (of the province where
    the person lives; a national one for anyone): ``AdultGuardianByDepartment`` for a ward
    office."""
    adult_on = of_age(target)
    on = max(valid_from, today_in_vietnam())
    link = Representative(relation=relation, valid_from=valid_from)
    if adult_on is not None and not represents(link, adult_on, on):
        name, adult = target.full_name, adult_on.isoformat()
        if relation == "parent":
            raise errors.ParentOfAdult(name=name, adult_on=adult)
        raise errors.GuardianFromChildhood(name=name, adult_on=adult)
    if relation == "guardian" and adult_on is not None and valid_from >= adult_on:
        province = await _residence_province(session, target)
        if not (
            subject.is_national_admin()
            or (province is not None and subject.is_department_admin(province))
        ):
            raise errors.AdultGuardianByDepartment()


async def representing(
    session: AsyncSession, subject: Subject
) -> list[tuple[Representative, Person]]:
    """Whom the caller may act for today."""
    repo = IdentityRepository(session)
    person = await _person_of(repo, subject)
    return await repo.representing(person.id, today_in_vietnam())


async def representatives(session: AsyncSession, person_id: int) -> list[Holder]:
    """Who acts for the person today (parents, guardians; periods checked on today's date in
    Vietnam), each once, with the relation; a representation that has ended or not begun is
    left out. Their messages about the person reach them too (D75)."""
    repo = IdentityRepository(session)
    found = await repo.representatives(person_id, today_in_vietnam())
    return [Holder.of(agent, link.relation) for link, agent in found]


async def may_act_for(session: AsyncSession, subject: Subject, personal_id: str) -> bool:
    """True for oneself and for a person one represents today (used by the health book)."""
    if subject.kind != "person":
        return False
    if subject.id == personal_id:
        return True
    agent = await IdentityRepository(session).person_by_personal_id(subject.id)
    if agent is None:
        return False  # never signed in: represents nobody
    represented = await IdentityRepository(session).representing(agent.id, today_in_vietnam())
    return any(p.personal_id == personal_id for _, p in represented)


# ------------------------------------------------------------------ ending and listing links

#: What a representation link is today (``Link.state``).
LinkState = Literal["in_force", "not_yet", "ended", "of_age", "withdrawn"]
#: The longest reason a link's end keeps (``Representative.end_reason``).
END_REASON_CHARS = 500
#: The audit action of a registrar's listing of a person's links (``audit.READS``: in their
#: access log, naming the officer).
LINKS_READ = "representatives.read"


@dataclass(frozen=True, slots=True)
class Link:
    """A representation link as the person, their representatives and a registrar read it
    (``representation_links``): the agent by name and personal ID, the relation, the recorded
    period (``valid_to``: its last day in force, inclusive; None: open-ended), when it was
    recorded, and what it is today (``state``):

    - ``in_force``: the agent represents the person today;
    - ``not_yet``: it begins on a later day;
    - ``ended``: its period is over;
    - ``of_age``: a parent's, or a guardianship begun in childhood, that stopped at the
      person's majority before its period ended (Civil Code 2015 Art. 136, 62);
    - ``withdrawn``: ended before it began; it never took effect.

    ``ended_at`` and ``end_reason``: when and why a registrar ended it
    (``end_reason`` None otherwise). An end set for a later day leaves the link ``in_force``
    until then, with ``valid_to`` already its last day."""

    id: int
    agent_id: int
    agent_name: str
    agent_personal_id: str | None
    relation: str
    valid_from: date
    valid_to: date | None
    recorded_at: datetime
    state: LinkState
    ended_at: datetime | None
    end_reason: str | None


def _last_day(link: Representative, adult: date | None) -> date | None:
    """The last day ``link`` represents: the end of its period, or the day before the person's
    majority when that stops it first (``represents``); None: no end known."""
    last = link.valid_to
    if adult is not None and not represents(link, adult, adult):
        stop = adult - timedelta(days=1)
        last = stop if last is None else min(last, stop)
    return last


def _link_state(link: Representative, adult: date | None, today: date) -> LinkState:
    """``Link.state`` of ``link`` on ``today``, for a person of age from ``adult``."""
    if link.valid_to is not None and link.valid_to < link.valid_from:
        return "withdrawn"
    if link.valid_from > today:
        return "not_yet"
    if link.valid_to is None or link.valid_to >= today:
        return "in_force" if represents(link, adult, today) else "of_age"
    majority_first = (
        adult is not None and adult <= link.valid_to and not represents(link, adult, adult)
    )
    return "of_age" if majority_first else "ended"


async def representation_links(session: AsyncSession, person_id: int) -> list[Link]:
    """Every representation link of the person (who acts, acted or will act for them), newest
    recorded first, each with what it is today (``Link``); agents merged into another person
    since are left out. Checks no caller: whoever shows them checks first (``person_links``
    for a registrar, ``my_links`` for the person and their representatives)."""
    repo = IdentityRepository(session)
    person = await repo.person(person_id)
    if person is None:
        return []
    adult, today = of_age(person), today_in_vietnam()
    return [
        Link(
            id=link.id,
            agent_id=agent.id,
            agent_name=agent.full_name,
            agent_personal_id=agent.personal_id,
            relation=link.relation,
            valid_from=link.valid_from,
            valid_to=link.valid_to,
            recorded_at=link.created_at,
            state=_link_state(link, adult, today),
            ended_at=link.ended_at,
            end_reason=link.end_reason,
        )
        for link, agent in await repo.links_of(person.id)
    ]


async def person_links(session: AsyncSession, subject: Subject, personal_id: str) -> list[Link]:
    """A person's representation links (``representation_links``) for a registrar whose area
    they live in (the ward officer of their ward, the department of their province, a national
    one: ``_may_register_for``), the registrar who may end them; anyone else ``Forbidden``. The
    look-up is in the person's access log (``LINKS_READ``, naming the officer), as a
    department's read of their cards is, a refused one too (D228)."""
    _require_registrar(subject, "read representatives")
    repo = IdentityRepository(session)
    person = await repo.person_by_personal_id(personal_id)
    if person is None:
        raise errors.UnknownPerson(personal_id=personal_id)
    # in the access log before the area check: the refusal tells that the person is on
    # record, so the look-up stays there when refused (D228)
    await repo.add(_person_event(subject, LINKS_READ, person))
    if not await _may_register_for(session, subject, person):
        raise Forbidden(action="read representatives")
    return await representation_links(session, person.id)


async def my_links(
    session: AsyncSession, subject: Subject, personal_id: str | None = None
) -> list[Link]:
    """Who acts, acted or will act for the signed-in person (``representation_links``), or,
    with ``personal_id``, for a person they represent today (``NotRepresented`` otherwise, as
    the health book refuses a person one does not act for). A level-1 identity reads none,
    as it reads no book (``LevelTooLow``). Not audited: one's own links, or those of the
    person one acts for, which name their representatives, not their record."""
    if subject.kind != "person":
        raise Forbidden(action="read representatives as a system")
    require_book_level(subject)
    repo = IdentityRepository(session)
    me = await _person_of(repo, subject)
    if personal_id is None or personal_id == subject.id:
        return await representation_links(session, me.id)
    for _, represented in await repo.representing(me.id, today_in_vietnam()):
        if represented.personal_id == personal_id:
            return await representation_links(session, represented.id)
    raise errors.NotRepresented(personal_id=personal_id)


async def has_representatives(session: AsyncSession, subject: Subject) -> bool:
    """Whether someone acts or will act for the signed-in person (a link in force or to come).
    It names nobody, so a level-1 identity is answered too: the portal says that someone does
    and that level 2 shows who (``my_links``), and says nothing to those with no one."""
    if subject.kind != "person":
        return False
    me = await IdentityRepository(session).person_by_personal_id(subject.id)
    if me is None:
        return False
    links = await representation_links(session, me.id)
    return any(link.state in ("in_force", "not_yet") for link in links)


@dataclass(frozen=True, slots=True)
class Ending:
    """What ending a link will do (``check_end``): the link (its row held until the
    transaction ends), the person it represents and its agent, the first day the agent no
    longer acts, the link's last day in force from then (the day before it begins: it is
    withdrawn), the reason as kept, and ``already``: it ends on that day already (the same
    end sent again), so nothing is written."""

    link: Representative
    person: Person
    agent: Person
    ends_on: date
    last_day: date
    reason: str
    already: bool


async def check_end(
    session: AsyncSession,
    subject: Subject,
    link_id: int,
    *,
    ends_on: date | None,
    reason: str,
) -> Ending:
    """Every check ``end_representative`` makes, in its order, writing nothing: for a form
    that asks before it ends a link (the ward office's page)."""
    _require_registrar(subject, "end representatives")
    said = reason.strip()
    if not 1 <= len(said) <= END_REASON_CHARS:
        raise errors.EndReasonInvalid(length=len(said), max_length=END_REASON_CHARS)
    today = today_in_vietnam()
    ends_on = ends_on or today
    if ends_on < today:
        raise errors.EndInPast(ends_on=ends_on.isoformat(), today=today.isoformat())
    repo = IdentityRepository(session)
    link = await repo.link_to_change(link_id)
    target = await repo.person(link.subject_id) if link is not None else None
    agent = await repo.person(link.agent_id) if link is not None else None
    if (
        link is None
        or target is None
        or agent is None
        or agent.merged_into_id is not None
        or not await _may_register_for(session, subject, target)
    ):
        raise errors.UnknownLink(link=link_id)
    if subject.kind == "person" and subject.id in (agent.personal_id, target.personal_id):
        raise errors.OwnLink()
    adult = of_age(target)
    if link.relation == "guardian" and adult is not None and link.valid_from >= adult:
        province = await _residence_province(session, target)
        if not (
            subject.is_national_admin()
            or (province is not None and subject.is_department_admin(province))
        ):
            raise errors.AdultGuardianByDepartment()
    last_day = ends_on - timedelta(days=1)
    if ends_on <= link.valid_from:
        last_day = link.valid_from - timedelta(days=1)  # withdrawn: it never takes effect
    ends_already = _last_day(link, adult)
    if ends_already is not None and ends_already < last_day:
        raise errors.AlreadyEnded(link=link_id, last_day=ends_already.isoformat())
    return Ending(link, target, agent, ends_on, last_day, said, ends_already == last_day)


async def end_representative(
    session: AsyncSession,
    subject: Subject,
    link_id: int,
    *,
    ends_on: date | None,
    reason: str,
) -> Representative:
    """End a representation link from ``ends_on``, the first day its agent no longer acts
    (default today in Vietnam; never before today: what was read as its agent until now stays
    lawful, ``EndInPast``), for ``reason`` (1 to ``END_REASON_CHARS`` characters once stripped,
    stored; ``EndReasonInvalid`` otherwise).

    Who may: whoever may record that link today (``add_representative``): a registrar whose
    area the person lives in, and for a guardianship begun when the person was already of age
    (a court's) only the department of their province or a national one
    (``AdultGuardianByDepartment``); never the link's agent or the person represented
    (``OwnLink``). Anyone who is no registrar: ``Forbidden``. A link that does not exist, or
    of a person outside the caller's area: ``UnknownLink`` (the two are not told apart).

    The period's last day becomes the day before ``ends_on``; a link not begun by then is
    withdrawn (its last day the day before it begins: it never takes effect). A link that
    already ends before that (by its period, or at the person's majority) is refused
    (``AlreadyEnded``, naming its last day); one that ends on that very day already is
    answered as it is, nothing written (the same form sent again); an earlier end than one
    set before is taken. Writes the audit row ``representative.ended`` in the person's log,
    and in the same transaction two events: ``representative.ended`` for the person and those
    who still represent them (the former agent is told in their own notice), and
    ``representative.released`` for the former agent, in their own inbox, since they no
    longer read the person's."""
    checked = await check_end(session, subject, link_id, ends_on=ends_on, reason=reason)
    link, target, agent = checked.link, checked.person, checked.agent
    if checked.already:
        return link
    ends_on, last_day, said = checked.ends_on, checked.last_day, checked.reason
    repo = IdentityRepository(session)
    was = link.valid_to
    link.valid_to, link.ended_at, link.ended_by, link.end_reason = (
        last_day,
        utcnow(),
        subject.label,
        said,
    )
    await session.flush()
    withdrawn = last_day < link.valid_from
    await repo.add(
        audit.audit_event(
            actor=subject.label,
            action="representative.ended",
            object_type="representative",
            object_id=str(link.id),
            person_id=target.id,
            detail={
                "agent_id": agent.id,
                "relation": link.relation,
                "ends_on": ends_on.isoformat(),
                "valid_to_before": was.isoformat() if was else None,
                "withdrawn": withdrawn,
            },
        )
    )
    params = {
        "relation": link.relation,
        "valid_from": link.valid_from.isoformat(),
        "ends_on": ends_on.isoformat(),
        "withdrawn": withdrawn,
        **await _registrar_office(session, subject, target, link.relation, link.valid_from),
    }
    await repo.add(
        new_event(
            "representative.ended",
            f"person:{target.id}",
            {
                "person_id": target.id,
                "representative_id": link.id,
                # (while the end is to come, the agent still represents the person: told in
                # their own notice below, not a second time about the person)
                "told_apart": [agent.id],
                "params": {**params, "agent": agent.full_name},
            },
        )
    )
    await repo.add(
        new_event(
            "representative.released",
            f"person:{agent.id}",
            {
                "person_id": agent.id,
                "representative_id": link.id,
                "params": {**params, "person": target.full_name},
            },
        )
    )
    if ends_on > today_in_vietnam() and not withdrawn:
        # told again on the day it takes effect: the person, and the agent that they no longer act
        for event in _on_the_day(link, "ends", ends_on, target, agent, params):
            await repo.add(event)
    return link


#: The topic of the notices told on the day a representation recorded earlier begins or ends
#: (D247): delivered from ``TOLD_AT`` that morning, Vietnam time, not before.
DUE_TOPIC = "representative.due"
TOLD_AT = time(7, 0)
#: (what happens that day) -> (the kind told the person, the kind told the agent)
DUE_KINDS: dict[str, tuple[str, str]] = {
    "begins": ("representative_began", "representative_acting"),
    "ends": ("representative_end_effective", "representative_release_effective"),
}


def _on_the_day(
    link: Representative,
    what: Literal["begins", "ends"],
    day: date,
    person: Person,
    agent: Person,
    params: dict[str, Any],
) -> list[OutboxEvent]:
    """The two events told on ``day`` (from ``TOLD_AT``, Vietnam time) that ``link`` begins or
    that its end takes effect: to the person (and those who represent them then; the agent is
    told apart) and to the agent, about the person. Both are held in the outbox until then
    (``kit.outbox.held_event``) under an ordering key of their own, so nothing else waits for them;
    each is checked when delivered (``still_due``): a link withdrawn or ended otherwise since
    tells nothing that day."""
    due = datetime.combine(day, TOLD_AT, tzinfo=VIETNAM).astimezone(UTC)
    to_person, to_agent = DUE_KINDS[what]
    said = {**params, "day": day.isoformat()}
    # a key of their own: an end set for a later day and then for an earlier one leaves the
    # first pair held in the outbox, which would otherwise hold the second back behind it
    key = f"representative:{link.id}:{what}:{day.isoformat()}"
    return [
        held_event(
            DUE_TOPIC,
            key,
            {
                "person_id": person.id,
                "representative_id": link.id,
                "kind": to_person,
                "day": day.isoformat(),
                "told_apart": [agent.id],
                "params": {**said, "agent": agent.full_name},
            },
            due,
        ),
        held_event(
            DUE_TOPIC,
            key,
            {
                "person_id": agent.id,
                "representative_id": link.id,
                "kind": to_agent,
                "day": day.isoformat(),
                "params": {**said, "person": person.full_name},
            },
            due,
        ),
    ]


#: A notice told on the day that is late by more than this (a worker stopped for days, a dead
#: letter replayed) is not told: "from today" would be untrue, and the day was told when the
#: link or its end was recorded.
DUE_LATE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DueNotice:
    """Whom a notice told on the day goes to as things are when it is delivered (a
    provisional newborn merged into the real person since: the real person), with the names
    it says."""

    person_id: int
    agent_name: str
    person_name: str


async def still_due(session: AsyncSession, link_id: int, kind: str, day: date) -> DueNotice | None:
    """Whether a notice ``_on_the_day`` scheduled still tells the truth on its day, and whom
    it goes to: the link begins on ``day`` and has not been withdrawn since (a begin), or its
    period still ends the day before ``day`` (an end: not ended earlier since); it is not
    more than ``DUE_LATE`` late. The person's notice goes to whom the link represents now, the
    agent's to its agent. None: nobody is told."""
    link = await session.get(Representative, link_id)
    if link is None or today_in_vietnam() > day + DUE_LATE:
        return None
    if kind in DUE_KINDS["begins"]:
        holds = link.valid_from == day and (link.valid_to is None or link.valid_to >= day)
    elif kind in DUE_KINDS["ends"]:
        holds = link.valid_to == day - timedelta(days=1)
    else:
        holds = False
    repo = IdentityRepository(session)
    person, agent = await repo.person(link.subject_id), await repo.person(link.agent_id)
    if not holds or person is None or agent is None:
        return None
    to_agent = kind in (DUE_KINDS["begins"][1], DUE_KINDS["ends"][1])
    return DueNotice((agent if to_agent else person).id, agent.full_name, person.full_name)


async def check_newborn(
    session: AsyncSession,
    subject: Subject,
    *,
    mother_personal_id: str,
    birth_date: date,
    ward_code: str | None = None,
) -> Holder:
    """What ``add_newborn`` checks before it writes anything (who may, the mother, the birth
    date), for a form that asks before it acts: the mother, to be named on the question. The
    look-up names her by a personal ID typed, so it is an audit row in her access log
    (``NEWBORN_MOTHER_READ``, written by ``_newborn_mother``), though nothing else is
    written. ``ward_code``: the ward office the form is of, where she must live (a department
    or an officer of two wards acting at one office records the children of that ward, D252):
    ``Forbidden`` otherwise, as for a mother outside the caller's area."""
    mother = await _newborn_mother(session, subject, mother_personal_id, birth_date)
    if ward_code is not None and mother.residence_ward_code != ward_code:
        raise Forbidden(action="register a newborn", ward=ward_code)
    return Holder.of(mother)


async def _newborn_mother(
    session: AsyncSession,
    subject: Subject,
    mother_personal_id: str,
    birth_date: date,
    *,
    looked_up: bool = False,
) -> Person:
    """The mother, checked (who may, where she lives, the birth date). Once she is found,
    whatever follows tells of her (her name, her birth date, that she lives elsewhere, that
    the ID is someone's), so the look-up is written first (``NEWBORN_MOTHER_READ``, in her
    access log; not again when ``looked_up``: this transaction wrote it)."""
    facility_grants = [
        g for g in subject.grants if g.role in ("clinician", "facility_admin") and g.facility_code
    ]
    if not (_is_registrar(subject) or facility_grants):
        raise Forbidden(action="register a newborn")
    repo = IdentityRepository(session)
    mother = await repo.person_by_personal_id(mother_personal_id)
    if mother is None:
        raise errors.UnknownPerson(personal_id=mother_personal_id)
    if not looked_up:
        await repo.add(_person_event(subject, NEWBORN_MOTHER_READ, mother))
    province = await _residence_province(session, mother)
    at_home_facility = province is not None and any(
        (g.facility_code or "")[:2] == province for g in facility_grants
    )
    if not (at_home_facility or await _may_register_for(session, subject, mother)):
        raise Forbidden(action="register a newborn")
    # the mother represents the child from this date: a typing slip must not move that period
    today = today_in_vietnam()
    if birth_date > today:
        raise errors.BirthInFuture(birth_date=birth_date.isoformat(), today=today.isoformat())
    if mother.birth_date is not None and birth_date < mother.birth_date:
        raise errors.BirthBeforeMother(
            birth_date=birth_date.isoformat(), mother_birth_date=mother.birth_date.isoformat()
        )
    if mother.birth_date is not None and birth_date < _years_after(
        mother.birth_date, MIN_MOTHER_AGE
    ):
        raise errors.MotherTooYoung(
            birth_date=birth_date.isoformat(),
            mother_birth_date=mother.birth_date.isoformat(),
            years=MIN_MOTHER_AGE,
        )
    return mother


#: The youngest a mother is taken to be at a birth: below it, her ID or the child's birth date
#: was mistyped (D252).
MIN_MOTHER_AGE = 10


def _years_after(day: date, years: int) -> date:
    """The same day ``years`` later (29 February: 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


async def add_newborn(
    session: AsyncSession,
    subject: Subject,
    *,
    mother_personal_id: str,
    birth_date: date,
    sex: str,
    full_name: str | None,
    mother_looked_up: bool = False,
) -> Person:
    """A provisional identity for a newborn without a personal ID, linked to the mother, who
    represents the child from birth, and living where she lives. The caller is a registrar of
    the mother's area, or clinical staff of a facility in the province where she lives (D24).
    The mother's look-up is in her access log (the child's name and the refusals tell of her),
    unless ``mother_looked_up``: ``check_newborn`` wrote it in this transaction."""
    mother = await _newborn_mother(
        session, subject, mother_personal_id, birth_date, looked_up=mother_looked_up
    )
    repo = IdentityRepository(session)
    child = Person(
        personal_id=None,
        full_name=full_name or f"Con của {mother.full_name}",
        birth_date=birth_date,
        sex=sex,
        provisional=True,
        mother_id=mother.id,
        residence_ward_code=mother.residence_ward_code,
        created_at=utcnow(),
        created_by=subject.label,
    )
    await repo.add(child)
    link = Representative(
        agent_id=mother.id,
        subject_id=child.id,
        relation="parent",
        valid_from=birth_date,
        valid_to=None,
        created_at=utcnow(),
        created_by=subject.label,
    )
    await repo.add(link)
    await repo.add(_person_event(subject, "newborn.added", child, {"mother_id": mother.id}))
    # the mother's link is recorded as any other (``add_representative``): a woman named by
    # mistake reports it from her portal, a case about this row (D245)
    await repo.add(
        audit.audit_event(
            actor=subject.label,
            action="representative.added",
            object_type="representative",
            object_id=str(link.id),
            person_id=child.id,
            detail={"agent_id": mother.id, "relation": "parent", "newborn": True},
        )
    )
    return child


async def assign_personal_id(
    session: AsyncSession, subject: Subject, person_id: int, personal_id: str
) -> Person:
    """The newborn's personal ID is issued: give it to the provisional person, or, when a
    person with that ID already exists, merge the provisional one into it. The child, and the
    person merged into, must live in the caller's area (D24)."""
    _require_registrar(subject, "assign a personal ID")
    repo = IdentityRepository(session)
    child = await repo.person(person_id)
    if child is None:
        raise errors.UnknownPerson(personal_id=str(person_id))
    if not await _may_register_for(session, subject, child):
        raise Forbidden(action="assign a personal ID")
    if not child.provisional or child.merged_into_id is not None:
        raise errors.NotProvisional(person=person_id)
    personal_id = check_personal_id(
        personal_id, sex=_sex(child.sex), birth_date=child.birth_date
    ).value
    existing = await repo.person_by_personal_id(personal_id)
    if existing is None:
        child.personal_id, child.provisional = personal_id, False
        detail = {"personal_id": personal_id}
        await repo.add(_person_event(subject, "person.id_assigned", child, detail))
        return child
    if not await _may_register_for(session, subject, existing):
        raise Forbidden(action="merge into a person of another area")
    child.merged_into_id = existing.id
    existing.mother_id = existing.mother_id or child.mother_id
    if not existing.residence_ward_code and child.residence_ward_code:
        # a residence given by the merge is a move like any other: an account the person
        # holds follows them there, in the reports' rollups and in its history (D70)
        await _move_residence(repo, existing, child.residence_ward_code, subject.label)
    await repo.move_subject_links(child.id, existing.id)
    await repo.add(
        audit.audit_event(
            actor=subject.label,
            action="person.merged",
            object_type="person",
            object_id=str(child.id),
            person_id=existing.id,
            detail={"merged_person_id": child.id, "personal_id": personal_id},
        )
    )
    return existing


# ------------------------------------------------------------------ role grants


@dataclass(frozen=True, slots=True)
class _GrantScope:
    """A role grant as checked, before it is written."""

    personal_id: str
    role: str
    facility_code: str | None
    province_code: str | None
    ward_code: str | None

    def same_as(self, grant: RoleGrant) -> bool:
        return (grant.personal_id, grant.role, grant.facility_code, grant.province_code,
                grant.ward_code) == (self.personal_id, self.role, self.facility_code,
                                     self.province_code, self.ward_code)  # fmt: skip


async def add_grant(
    session: AsyncSession,
    subject: Subject,
    *,
    personal_id: str,
    role: str,
    facility_code: str | None = None,
    province_code: str | None = None,
    ward_code: str | None = None,
) -> RoleGrant:
    """Give a person a role. Department administrators grant roles within their province
    (a national one anywhere); a facility administrator grants ``clinician`` at their own
    facility. A role the person already holds there is answered with that grant (a form sent
    twice gives one role). A role at a facility puts the person's recorded name on its page
    (its staff list, what was just done): when they are on record, the look-up is in their
    access log (``GRANT_PERSON_READ``), as ``check_grant``'s is, once per call."""
    scope = await _checked_grant(
        session,
        subject,
        personal_id=personal_id,
        role=role,
        facility_code=facility_code,
        province_code=province_code,
        ward_code=ward_code,
    )
    repo = IdentityRepository(session)
    if scope.facility_code is not None:
        person = await repo.person_by_personal_id(scope.personal_id)
        if person is not None:
            await repo.add(_grant_read(subject, person, role, scope.facility_code))
    # the same grant sent twice at once (a double submit, a retry): the second finds the first
    await take_turns(session, TURNS_GRANTS, scope.personal_id)
    held = [g for g in await repo.active_grants(scope.personal_id) if scope.same_as(g)]
    if held:
        return held[0]
    grant = RoleGrant(
        personal_id=scope.personal_id,
        role=scope.role,
        facility_code=scope.facility_code,
        province_code=scope.province_code,
        ward_code=scope.ward_code,
        granted_by=subject.label,
        granted_at=utcnow(),
    )
    await repo.add(grant)
    return grant


async def check_grant(
    session: AsyncSession,
    subject: Subject,
    *,
    personal_id: str,
    role: str,
    facility_code: str | None = None,
) -> tuple[Holder | None, bool]:
    """What ``add_grant`` checks before it writes anything (the personal ID, who may give
    the role where), for a form that asks before it acts: the person as recorded (None when
    nobody with that personal ID is on record yet: the grant applies from their first
    sign-in) and whether they hold the role there already. The look-up names a person by a
    personal ID typed, so it is an audit row in their access log (``GRANT_PERSON_READ``)."""
    scope = await _checked_grant(
        session, subject, personal_id=personal_id, role=role, facility_code=facility_code
    )
    repo = IdentityRepository(session)
    person = await repo.person_by_personal_id(scope.personal_id)
    if person is None:
        return None, False
    await repo.add(_grant_read(subject, person, role, facility_code))
    held = any(scope.same_as(g) for g in await repo.active_grants(scope.personal_id))
    return Holder.of(person), held


def _grant_read(
    subject: Subject, person: Person, role: str, facility_code: str | None
) -> audit.AuditEvent:
    """The audit row of a role's giver shown the recorded name of the person it is for."""
    detail: dict[str, Any] = {"role": role, "facility_code": facility_code}
    if not _facility_admin(subject, facility_code or ""):
        detail["department"] = (facility_code or "")[:2]  # (its officer is named, D179)
    return _person_event(subject, GRANT_PERSON_READ, person, detail)


async def _checked_grant(
    session: AsyncSession,
    subject: Subject,
    *,
    personal_id: str,
    role: str,
    facility_code: str | None = None,
    province_code: str | None = None,
    ward_code: str | None = None,
) -> _GrantScope:
    """The grant ``subject`` asks for, checked: the role, the personal ID, the scope the role
    needs, and whether ``subject`` may give it there (``Forbidden`` otherwise)."""
    if role not in ROLES:
        raise errors.BadGrant(reason=f"role must be one of {', '.join(ROLES)}")
    personal_id = check_personal_id(personal_id).value
    scope_province: str | None
    if role == "department_admin":
        scope_province = province_code
        facility_code = ward_code = None
        if province_code is not None and not await _province_in_force(session, province_code):
            raise errors.BadGrant(reason=f"there is no province {province_code} in force")
    elif role == "ward_officer":
        if not ward_code:
            raise errors.BadGrant(reason="ward_code is required for ward_officer")
        scope_province = await _province_of_ward(session, ward_code)
        facility_code = province_code = None
    else:
        if not facility_code or len(facility_code) != 5:
            raise errors.BadGrant(reason=f"facility_code is required for {role}")
        scope_province = facility_code[:2]  # facility codes start with their province
        province_code = ward_code = None
    allowed = _administers(subject, scope_province)
    if role == "clinician" and facility_code:
        allowed = allowed or _facility_admin(subject, facility_code)
    if not allowed:
        raise Forbidden(action=f"grant {role}")
    return _GrantScope(personal_id, role, facility_code, province_code, ward_code)


async def revoke_grant(session: AsyncSession, subject: Subject, grant_id: int) -> RoleGrant:
    repo = IdentityRepository(session)
    grant = await repo.grant(grant_id)
    if grant is None:
        raise errors.BadGrant(reason=f"no grant {grant_id}")
    allowed = _administers(subject, await _scope_of_grant(session, grant)) or (
        grant.role == "clinician"
        and grant.facility_code is not None
        and _facility_admin(subject, grant.facility_code)
    )
    if not allowed:
        raise Forbidden(action="revoke grant")
    if grant.revoked_at is None:
        grant.revoked_at, grant.revoked_by = utcnow(), subject.label
        await session.flush()
    return grant


def _facility_admin(subject: Subject, facility_code: str) -> bool:
    """A person administering the facility. Not its system: a role opens records (break-glass
    included), so only a person answerable for it gives or ends one, whatever the token's
    scopes."""
    return subject.kind == "person" and subject.acts_for_facility(
        facility_code, ("facility_admin",)
    )


def _administers(subject: Subject, province: str | None) -> bool:
    """A department administrator of ``province``; of the whole country when it is None."""
    if province:
        return subject.is_department_admin(province)
    return subject.is_national_admin()


async def _scope_of_grant(session: AsyncSession, grant: RoleGrant) -> str | None:
    """The province whose department administers ``grant`` (None: only a national one)."""
    if grant.role == "department_admin":
        return grant.province_code
    if grant.role == "ward_officer":
        if not grant.ward_code:
            return None
        try:
            return await _province_of_ward(session, grant.ward_code) or None
        except errors.UnknownWard:
            return None  # a ward no longer in force: the national department decides
    return (grant.facility_code or "")[:2] or None


#: The roles a page of a facility's staff lists.
STAFF_PAGE = 50


@dataclass(frozen=True, slots=True)
class StaffPage:
    """One page of the roles held at a facility: ``grants`` (its administrators first, then
    by when given), how many are held there in all, and the cursor of the next page (None:
    the last)."""

    grants: list[RoleGrant]
    total: int
    next_cursor: str | None


#: The longest search of a facility's staff read, and its words at most.
STAFF_SEARCH_CHARS = 100
STAFF_SEARCH_WORDS = 10
_DIGITS = re.compile(r"[0-9]+")
#: The digits of a personal ID, and those the staff list shows of someone not on record.
PERSONAL_ID_LENGTH = 12
STAFF_ID_ENDING = 4


@dataclass(frozen=True, slots=True)
class StaffSearch:
    """A search of a facility's staff (``staff_search``): the words a person's name must
    have, each at the start of one of its words, without case or accents (``kit.text.fold``,
    as the facilities' search, D208); or a whole personal ID; or its last four digits, as the
    staff list shows someone never signed in. ``refused``, when it finds nobody and the reader
    is told what to type: ``digits``, digits that are neither (a part of an ID would let the
    reader learn the rest digit by digit); ``words``, no letter or digit at all (``%``, ``!!!``:
    no word to look for, which is not everyone)."""

    text: str
    words: tuple[str, ...] = ()
    personal_id: str | None = None
    id_ending: str | None = None
    refused: Literal["digits", "words"] | None = None

    @property
    def usable(self) -> bool:
        """Whether it looks for anyone (not ``refused``)."""
        return self.refused is None


def staff_search(query: str) -> StaffSearch:
    """What ``query``, as typed in a facility's staff search, looks for (``StaffSearch``)."""
    typed = " ".join(query.split())[:STAFF_SEARCH_CHARS]
    compact = typed.replace(" ", "")
    if _DIGITS.fullmatch(compact):
        if len(compact) == PERSONAL_ID_LENGTH:
            return StaffSearch(typed, personal_id=compact)
        if len(compact) == STAFF_ID_ENDING:
            return StaffSearch(typed, id_ending=compact)
        return StaffSearch(typed, refused="digits")
    words = tuple(fold_words(typed)[:STAFF_SEARCH_WORDS])
    if not words:
        return StaffSearch(typed, refused="words")
    return StaffSearch(typed, words=words)


async def staff_of(
    session: AsyncSession,
    subject: Subject,
    facility_code: str,
    *,
    cursor: str | None = None,
    limit: int = STAFF_PAGE,
    search: StaffSearch | None = None,
) -> StaffPage:
    """The roles held now at a facility (its clinicians and administrators), ``limit`` at a
    time (``cursor``: where the page before ended), for whoever gives and ends them: the
    facility's administrators (a person) and its province's department; anyone else
    ``Forbidden``; a cursor not of ours ``InvalidCursor``. With a ``search``, those it finds
    (in the same order, counted alike; none for one not ``usable``), filtered in the
    database within the facility's roles."""
    _require_staff_reader(subject, facility_code)
    after = None
    if cursor is not None:
        rank, grant_id = decode_cursor(cursor, (int, int))
        after = (int(rank), int(grant_id))
    if search is not None and not search.usable:
        return StaffPage([], 0, None)
    search = search or StaffSearch("")
    repo = IdentityRepository(session)
    found = await repo.grants_at_facility(
        facility_code,
        after=after,
        limit=limit + 1,
        words=search.words,
        personal_id=search.personal_id,
        id_ending=search.id_ending,
    )
    following = None
    if len(found) > limit:
        rank, last = found[limit - 1]
        following = encode_cursor((rank, last.id))
    total = await repo.count_grants_at_facility(
        facility_code, search.words, search.personal_id, search.id_ending
    )
    return StaffPage([grant for _, grant in found[:limit]], total, following)


def _require_staff_reader(subject: Subject, facility_code: str) -> None:
    if not (_facility_admin(subject, facility_code) or _administers(subject, facility_code[:2])):
        raise Forbidden(action="read the facility's roles")


async def staff_grant(
    session: AsyncSession, subject: Subject, facility_code: str, grant_id: int
) -> RoleGrant | None:
    """One role given at a facility, in force or ended (what a page says it just gave or
    ended), for those ``staff_of`` answers; None for a grant of anywhere else."""
    _require_staff_reader(subject, facility_code)
    grant = await IdentityRepository(session).grant(grant_id)
    return grant if grant is not None and grant.facility_code == facility_code else None


async def grants_of(session: AsyncSession, subject: Subject, personal_id: str) -> list[RoleGrant]:
    """A person's current roles: all of them to the person; to a department administrator
    those it administers, as it grants and revokes them (its province's; the national one's,
    all), the read audited (``grants.read``, in the person's access log); anyone else
    ``Forbidden``. A department shown none cannot tell a person without roles from one whose
    roles are all another province's."""
    repo = IdentityRepository(session)
    if subject.kind == "person" and subject.id == personal_id:
        return await repo.active_grants(personal_id)
    if not subject.is_department_admin():
        raise Forbidden(action="read grants")
    shown = [
        grant
        for grant in await repo.active_grants(personal_id)
        if _administers(subject, await _scope_of_grant(session, grant))
    ]
    person = await repo.person_by_personal_id(personal_id)
    session.add(  # committed with the request's write transaction, as the read's answer
        audit.audit_event(
            actor=subject.label,
            action="grants.read",
            object_type="role_grants",
            object_id=personal_id,
            person_id=person.id if person is not None else None,
            detail={"grants": [grant.id for grant in shown]},
            kept=True,
        )
    )
    return shown


async def bootstrap_grant(
    session: AsyncSession, personal_id: str, role: str, **scope: str | None
) -> RoleGrant:
    """Grant a role without a caller (the operator's command line, demo data). The scope is
    checked as ``add_grant`` checks it, and more strictly: each role's code is required (a
    department administrator without a province is the national one), a ward or province
    must be in force today, and a code the role does not use is refused rather than dropped
    (``department_admin --facility 01001`` would otherwise make a national administrator).
    A grant no request can ever match would only look done. Whether a facility is registered
    is the caller's to check (identity does not read the facility registry)."""
    if role not in ROLES:
        raise errors.BadGrant(reason=f"role must be one of {', '.join(ROLES)}")
    personal_id = check_personal_id(personal_id).value
    uses = {
        "department_admin": "province_code",
        "ward_officer": "ward_code",
    }.get(role, "facility_code")
    for name, value in scope.items():
        if value is not None and name != uses:
            raise errors.BadGrant(reason=f"{name} does not apply to {role}")
    code = scope.get(uses)
    if role == "ward_officer":
        if not code:
            raise errors.BadGrant(reason="ward_code is required for ward_officer")
        await _province_of_ward(session, code)  # UnknownWard when not in force
    elif role == "department_admin":
        if code is not None and not await _province_in_force(session, code):
            raise errors.BadGrant(reason=f"there is no province {code} in force")
    elif not code or not code.isascii() or not code.isdigit() or len(code) != 5:
        raise errors.BadGrant(reason=f"facility_code (5 digits) is required for {role}")
    grant = RoleGrant(
        personal_id=personal_id,
        role=role,
        facility_code=code if uses == "facility_code" else None,
        province_code=code if uses == "province_code" else None,
        ward_code=code if uses == "ward_code" else None,
        granted_by="operator",
        granted_at=utcnow(),
    )
    await IdentityRepository(session).add(grant)
    return grant


async def _province_in_force(session: AsyncSession, code: str) -> bool:
    try:
        await catalogs.lookup(session, "province", code, today_in_vietnam())
    except (catalogs.UnknownCode, catalogs.CodeNotInForce):
        return False
    return True


@dataclass(frozen=True, slots=True)
class PatientMatch:
    """The person a visit names by personal ID, with what VNeID confirmed of them (their name
    and birth as the population register has them) once they have signed in; None while they
    are pending confirmation (D23)."""

    person_id: int
    confirmed: Confirmed | None = None

    def differs(
        self, full_name: str, birth_date: date | None, birth_partial: str | None = None
    ) -> tuple[str, ...]:
        """Which of a visit's details ("full_name", "birth") are not what VNeID confirmed of
        the person: names compared without regard to case, accents (đ is d) and spacing, a
        birth known by its year or month only as far as it goes. Empty when they agree, or
        when nothing is confirmed (the stored details are then only what facilities sent)."""
        if self.confirmed is None:
            return ()
        name, born, partial = self.confirmed
        found: list[str] = []
        if fold(full_name) != fold(name):
            found.append("full_name")
        given = birth_date.isoformat() if birth_date else birth_partial
        known = born.isoformat() if born else partial
        if given and known and given[: len(known)] != known[: len(given)]:
            found.append("birth")
        return tuple(found)


class Patient(TypedDict):
    """What a visit (or a paper) says of the person it names, as ``match_patient`` and
    ``check_patient`` take it."""

    personal_id: str
    full_name: str
    birth_date: date | None
    sex: str | None
    #: who sent it (a new person's ``created_by``: the facility)
    source: str
    #: "2006", "2008-11": a birth known by its year or month only (no ``birth_date``)
    birth_partial: NotRequired[str | None]


async def match_patient(session: AsyncSession, **patient: Unpack[Patient]) -> int:
    """The person a visit belongs to, by personal ID. Someone not yet known is created pending
    confirmation (no VNeID sign-in yet; ``created_by`` names the facility that sent them).
    ``birth_partial`` ("2006", "2008-11") when the birth is known by its year or month only;
    a known person's birth is made more precise, never less (D105)."""
    return (await check_patient(session, **patient)).person_id


async def confirmed_patient(session: AsyncSession, personal_id: str) -> PatientMatch | None:
    """The person holding ``personal_id`` with what VNeID confirmed of them, to compare with
    what a write says of them (``PatientMatch.differs``); None when nobody holds it. Unlike
    ``check_patient`` it creates no one: for writes refused when they differ (D150)."""
    found = await IdentityRepository(session).person_confirmed(personal_id)
    return None if found is None else PatientMatch(*found)


async def check_patient(session: AsyncSession, **patient: Unpack[Patient]) -> PatientMatch:
    """``match_patient``, with what VNeID confirmed of the person, for the caller to compare
    with what the visit says (``PatientMatch.differs``): read in the same statement."""
    birth_date = patient["birth_date"]
    person_id, confirmed = await IdentityRepository(session).person_or_new(
        personal_id=patient["personal_id"],
        full_name=patient["full_name"].strip()[:200],
        birth_date=birth_date,
        birth_partial=None if birth_date else patient.get("birth_partial"),
        sex=_sex(patient["sex"]),
        created_at=utcnow(),
        created_by=patient["source"][:60],
    )
    return PatientMatch(person_id, confirmed)


async def lock_patients(session: AsyncSession, personal_ids: set[str]) -> None:
    """Before a write that will match these persons (the files of an intake batch, the visits
    of a file, one after another or in one statement): take their writer's locks at once, in one
    order, so that two writes naming the same persons in other orders take turns instead of
    deadlocking (D200)."""
    await IdentityRepository(session).lock_personal_ids(personal_ids)


async def check_patients(
    session: AsyncSession, patients: list[dict[str, Any]]
) -> dict[str, PatientMatch]:
    """``check_patient`` for many visits at once (a batch of the intake, the bulk import):
    personal ID -> the match, to compare with each visit's own details (several visits of a
    batch may name one person differently). The first entry of a personal ID gives a new
    person's details, as when the visits come one after another."""
    first: dict[str, dict[str, Any]] = {}
    for patient in patients:
        first.setdefault(patient["personal_id"], patient)
    now = utcnow()
    found = await IdentityRepository(session).persons_or_new(
        [
            {
                "personal_id": p["personal_id"],
                "full_name": (p.get("full_name") or "").strip()[:200],
                "birth_date": p.get("birth_date"),
                "birth_partial": None if p.get("birth_date") else p.get("birth_partial"),
                "sex": _sex(p.get("sex")),
                "created_at": now,
                "created_by": (p.get("source") or "")[:60],
            }
            for p in first.values()
        ]
    )
    return {key: PatientMatch(*match) for key, match in found.items()}


async def names_by_personal_id(session: AsyncSession, personal_ids: list[str]) -> dict[str, str]:
    """Full names of persons by personal ID, those on record (for showing who read a record,
    a facility's staff), read at once."""
    if not personal_ids:
        return {}
    return await IdentityRepository(session).names_by_personal_id(set(personal_ids))


def person_id_query(personal_id: Any) -> Any:
    """A scalar subquery giving the person's id, to join in another context's statement."""
    return IdentityRepository.person_id_query(personal_id)


async def residents_query(session: AsyncSession, provinces: list[str]) -> Any:
    """A subquery of the ids of the persons living in these provinces (their ward of residence
    in force today, as ``residence_provinces`` reads it), to filter another context's
    statement before its limit."""
    wards: list[str] = []
    for province in sorted(set(provinces)):
        cursor = None
        while True:
            page = await catalogs.browse(session, "ward", parent=province, cursor=cursor, limit=500)
            wards += [entry.code for entry in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return IdentityRepository.residents_query(wards)


async def person_id_of(session: AsyncSession, personal_id: str) -> int | None:
    """The internal id of the person with this personal ID (None if unknown)."""
    person = await IdentityRepository(session).person_by_personal_id(personal_id)
    return person.id if person else None


async def account_changes(
    session: AsyncSession, before: datetime, *, page_size: int = 5000
) -> AsyncIterator[tuple[datetime, int, str]]:
    """Every opening (+1) and closing (-1) of a health account before ``before`` at the ward
    the person lived in then, and every move of an open account (-1 at the ward left, +1 at
    the ward entered): the reports' recount of accounts. Where the person lived is read from
    the account's moves: before its first move, the ward that move left; without moves, the
    residence today. Read ``page_size`` accounts at a time, and worked out one account at a
    time: what is held does not grow with the accounts (D70)."""
    repo = IdentityRepository(session)
    after: int | None = None
    while True:
        holders = await repo.account_holders(after, page_size)
        if not holders:
            return
        residence = dict(holders)
        rows = await repo.account_histories(after, holders[-1][0], before)
        for account_id, history in groupby(rows, key=itemgetter(0)):
            for change in _account_changes(
                [(at, action, ward) for _, at, action, ward in history],
                residence[account_id],
                before,
            ):
                yield change
        if len(holders) < page_size:
            return
        after = holders[-1][0]


def _account_changes(
    history: list[tuple[datetime, str, str | None]], residence: str | None, before: datetime
) -> Iterator[tuple[datetime, int, str]]:
    """``account_changes`` of one account, from its rows (at, action, ward) in order."""
    first_left = next((ward or "" for _, action, ward in history if action == "moved_out"), None)
    here: str | None = None
    is_open = False
    for at, action, ward in history:
        if action == "moved_in":
            here = ward or ""
        elif here is None:
            here = first_left if first_left is not None else residence or ""
        delta = 0
        if action in ("opened", "reopened"):
            is_open, delta = True, 1
        elif action == "closed":
            is_open, delta = False, -1
        elif is_open:
            delta = -1 if action == "moved_out" else 1
        if delta and at < before:
            yield at, delta, here


async def residence_provinces(session: AsyncSession, person_ids: list[int]) -> dict[int, str]:
    """The province of each person's ward of residence ("" without one): whose department
    answers for them."""
    found: dict[int, str] = {}
    wards: dict[str, str] = {}
    for person in await IdentityRepository(session).persons(sorted(set(person_ids))):
        ward = person.residence_ward_code or ""
        if ward not in wards:
            wards[ward] = await province_of_ward(session, ward)
        found[person.id] = wards[ward]
    return found
