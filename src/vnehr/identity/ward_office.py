"""The ward office's work as its page does it: the same rules as the API's assisted enrolment,
newborn records, representatives, residences and insurance cards (``service``), with what a
person at the counter needs besides: each check before anything is written (so a form can ask
first; each look-up of a person on record in their access log), what an enrolment found (a
book opened, reopened or already open; a record whose details are not what was typed), a form
sent again found out rather than done twice, and what the officer did at the office lately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit
from vnehr.identity import accounts_errors as errors
from vnehr.identity.models import Person
from vnehr.identity.numbers import check_insurance_card
from vnehr.identity.repository import IdentityRepository
from vnehr.identity.service import (
    Holder,
    Link,
    _may_register_for,
    _person_event,
    add_card,
    add_newborn,
    add_representative,
    assisted_open,
    check_end,
    end_representative,
    first_residence,
    keeps_ward_office,
    not_the_registrar,
    person_links,
    refuses_link,
    set_residence,
)
from vnehr.kit.auth import Forbidden, Subject
from vnehr.kit.text import fold

#: Lines of "what I did lately" on the ward page.
RECENT = 20
#: The audit actions of the office's look-ups of a person on record before it records their
#: representative (the represented person and the agent), residence or insurance card: the
#: question names them, so each is in their access log (``audit.READS``), kept when a later
#: check refuses (D228).
REPRESENTATIVE_READ = "representative.person.read"
RESIDENCE_READ = "residence.person.read"
CARD_READ = "card.person.read"


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an assisted enrolment did. ``outcome``: the book was opened now, opened again
    after the citizen had closed it, or already open (nothing changed). ``new_person``: the
    citizen was not on record and was recorded from what the officer typed. ``differs``: the
    fields ("full_name", "birth_date", "sex") of a citizen already on record whose recorded
    value is not what was typed (the record is kept; VNeID's details win at their sign-in)."""

    person: Holder
    outcome: Literal["opened", "reopened", "already_open"]
    new_person: bool
    differs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WardWork:
    """One thing an officer did at the ward office: a book opened or reopened for a citizen,
    a newborn's provisional record (``mother``: her name), a representative recorded for the
    person (``agent``: their name, ``relation``) or ended (``ends_on``: the first day the agent
    no longer acts), the person's residence recorded here, or an insurance card added to their
    history (``card``: its number)."""

    kind: Literal["opened", "reopened", "newborn", "representative", "ended", "residence", "card"]
    at: datetime
    person: Holder
    mother: str | None = None
    agent: str | None = None
    relation: str | None = None
    card: str | None = None
    ends_on: date | None = None


@dataclass(frozen=True, slots=True)
class RepresentativeCheck:
    """What recording a representative will do: the person represented and the agent, as
    recorded; ``already``: this very link (the same dates) is on record, so confirming
    records nothing (a form sent again)."""

    person: Holder
    agent: Holder
    already: bool


@dataclass(frozen=True, slots=True)
class PersonLinks:
    """A person's representation links as the office lists them to end one: the person as
    recorded, and every link with what it is today (``Link``), newest first."""

    person: Holder
    links: tuple[Link, ...]


@dataclass(frozen=True, slots=True)
class EndCheck:
    """What ending a link will do: the person represented, the link as it is now, the first
    day its agent no longer acts, ``withdrawn``: it had not begun by then (it never takes
    effect), and ``already``: it ends so already, confirming writes nothing (a form sent
    again)."""

    person: Holder
    link: Link
    ends_on: date
    withdrawn: bool
    already: bool


@dataclass(frozen=True, slots=True)
class ResidenceCheck:
    """What recording a residence will do: the person, as recorded, and the ward they live
    in now (None: none recorded); ``already``: that ward is this one, nothing changes."""

    person: Holder
    current: str | None
    already: bool


@dataclass(frozen=True, slots=True)
class CardCheck:
    """What adding an insurance card will do: the person, as recorded, and the card number
    as it is stored; ``already``: the card is in their history with this period."""

    person: Holder
    card_number: str
    already: bool


async def enrol(
    session: AsyncSession,
    officer: Subject,
    *,
    personal_id: str,
    full_name: str,
    birth_date: date,
    sex: str,
    ward_code: str,
) -> Enrolment:
    """``assisted_open`` (the API's assisted enrolment, the same rules, rows and look-ups),
    saying what it did."""
    done = await assisted_open(
        session,
        officer,
        personal_id=personal_id,
        full_name=full_name,
        birth_date=birth_date,
        sex=sex,
        ward_code=ward_code,
    )
    person, was = done.person, done.was
    differs: list[str] = []
    if done.on_record:
        if fold(person.full_name) != fold(full_name):
            differs.append("full_name")
        if person.birth_date is not None and person.birth_date != birth_date:
            differs.append("birth_date")
        if person.sex and person.sex != sex:
            differs.append("sex")
    outcome: Literal["opened", "reopened", "already_open"] = (
        "already_open" if was == "open" else "reopened" if was == "closed" else "opened"
    )
    return Enrolment(Holder.of(person), outcome, not done.on_record, tuple(differs))


async def record_newborn(
    session: AsyncSession,
    subject: Subject,
    *,
    mother_personal_id: str,
    birth_date: date,
    sex: str,
    full_name: str | None,
) -> Holder:
    """``add_newborn`` (the API's, the same rules and rows): the child's provisional record,
    after the form's ``check_newborn`` of the same request (which wrote the mother's
    look-up in her access log, kept when this refuses)."""
    child = await add_newborn(
        session,
        subject,
        mother_personal_id=mother_personal_id,
        birth_date=birth_date,
        sex=sex,
        full_name=full_name,
        mother_looked_up=True,
    )
    return Holder.of(child)


async def newborns_of(
    session: AsyncSession, mother_id: int, birth_date: date, *, hold: bool = False
) -> list[str]:
    """The names of the provisional children already recorded for this mother, born that day
    (not merged into a person with an ID): before recording one more, the form asks whether it
    is another child (twins) or the same one sent again (D226). The mother's look-up is written
    by ``check_newborn`` first. ``hold``: before recording (the form's confirmation), the
    mother's row is held until the transaction ends, so that a second tap at the same moment
    waits and then finds the child the first one recorded."""
    if hold:
        await IdentityRepository(session).hold_person(mother_id)
    stmt = (
        select(Person.full_name)
        .where(
            Person.mother_id == mother_id,
            Person.birth_date == birth_date,
            Person.provisional.is_(True),
            Person.merged_into_id.is_(None),
        )
        .order_by(Person.id)
        .limit(10)
    )
    return list(await session.scalars(stmt))


async def _person_looked_up(
    repo: IdentityRepository,
    officer: Subject,
    personal_id: str,
    action: str,
    ward_code: str,
    *,
    to_change: bool,
) -> Person:
    """The person on record with ``personal_id`` (``UnknownPerson`` otherwise), the look-up
    written to their access log (``action``, kept on refusal) before anything tells of them.
    ``to_change``: held until the transaction ends (``person_to_change``)."""
    if to_change:
        person = await repo.person_to_change(personal_id)
    else:
        person = await repo.person_by_personal_id(personal_id)
    if person is None:
        raise errors.UnknownPerson(personal_id=personal_id)
    await repo.add(_person_event(officer, action, person, {"ward": ward_code}))
    return person


async def check_representative(
    session: AsyncSession,
    officer: Subject,
    *,
    ward_code: str,
    personal_id: str,
    agent_personal_id: str,
    relation: str,
    valid_from: date,
    valid_to: date | None,
    to_change: bool = False,
) -> RepresentativeCheck:
    """What ``add_representative`` checks before it writes (the office, the period, both
    persons on record, the represented one living in the officer's area: D24), for a form
    that asks first. Each person found is in their access log (``REPRESENTATIVE_READ``):
    the represented one first, the agent only once the represented one is in the area.
    ``to_change``: the represented person's row is held (the confirmation)."""
    await keeps_ward_office(session, officer, ward_code, "record representatives")
    if valid_to is not None and valid_to < valid_from:
        raise errors.PeriodInvalid(valid_from=valid_from.isoformat(), valid_to=valid_to.isoformat())
    if agent_personal_id == personal_id:
        raise errors.RepresentsSelf()
    not_the_registrar(officer, agent_personal_id)
    repo = IdentityRepository(session)
    person = await _person_looked_up(
        repo, officer, personal_id, REPRESENTATIVE_READ, ward_code, to_change=to_change
    )
    if not await _may_register_for(session, officer, person):
        raise Forbidden(action="record representatives")
    # a link ``represents`` would make represent nobody, and an adult's guardian from a ward
    # office, are refused before the agent is looked up
    await refuses_link(session, officer, person, relation, valid_from)
    agent = await _person_looked_up(
        repo, officer, agent_personal_id, REPRESENTATIVE_READ, ward_code, to_change=False
    )
    same = await repo.same_representative(agent.id, person.id, relation, valid_from, valid_to)
    return RepresentativeCheck(Holder.of(person), Holder.of(agent, relation), same is not None)


async def record_representative(
    session: AsyncSession,
    officer: Subject,
    *,
    ward_code: str,
    personal_id: str,
    agent_personal_id: str,
    relation: str,
    valid_from: date,
    valid_to: date | None,
) -> RepresentativeCheck:
    """``add_representative`` (the API's, the same rules and rows) after
    ``check_representative`` with the represented person held: a link on record already
    with the same dates is not recorded again (``already``)."""
    checked = await check_representative(
        session,
        officer,
        ward_code=ward_code,
        personal_id=personal_id,
        agent_personal_id=agent_personal_id,
        relation=relation,
        valid_from=valid_from,
        valid_to=valid_to,
        to_change=True,
    )
    if not checked.already:
        await add_representative(
            session,
            officer,
            agent_personal_id=agent_personal_id,
            subject_person=personal_id,
            relation=relation,
            valid_from=valid_from,
            valid_to=valid_to,
        )
    return checked


async def links_to_end(
    session: AsyncSession, officer: Subject, *, ward_code: str, personal_id: str
) -> PersonLinks:
    """The person's representation links for the office's form that ends one: the office
    (``keeps_ward_office``), then ``person_links`` (a registrar whose area the person lives
    in; the look-up in the person's access log, ``LINKS_READ``), with the person as
    recorded."""
    await keeps_ward_office(session, officer, ward_code, "end representatives")
    links = await person_links(session, officer, personal_id)
    person = await IdentityRepository(session).person_by_personal_id(personal_id)
    if person is None:  # (``person_links`` found them)
        raise errors.UnknownPerson(personal_id=personal_id)
    return PersonLinks(Holder.of(person), tuple(links))


async def check_end_link(
    session: AsyncSession,
    officer: Subject,
    listed: PersonLinks,
    *,
    link_id: int,
    ends_on: date | None,
    reason: str,
) -> EndCheck:
    """What ``end_representative`` checks before it writes (``check_end``), for a link of the
    person ``listed`` (``links_to_end`` of the same request): a link of anyone else's is
    ``UnknownLink``, as one that does not exist."""
    link = next((x for x in listed.links if x.id == link_id), None)
    if link is None:
        raise errors.UnknownLink(link=link_id)
    ending = await check_end(session, officer, link_id, ends_on=ends_on, reason=reason)
    withdrawn = ending.last_day < link.valid_from
    return EndCheck(listed.person, link, ending.ends_on, withdrawn, ending.already)


async def end_link(
    session: AsyncSession,
    officer: Subject,
    listed: PersonLinks,
    *,
    link_id: int,
    ends_on: date | None,
    reason: str,
) -> EndCheck:
    """``end_representative`` (the API's, the same rules and rows) after ``check_end_link``:
    a link that ends on that day already is left as it is (``already``)."""
    checked = await check_end_link(
        session, officer, listed, link_id=link_id, ends_on=ends_on, reason=reason
    )
    if not checked.already:
        await end_representative(session, officer, link_id, ends_on=ends_on, reason=reason)
    return checked


async def check_residence(
    session: AsyncSession,
    officer: Subject,
    *,
    ward_code: str,
    personal_id: str,
    to_change: bool = False,
) -> ResidenceCheck:
    """What ``set_residence`` checks before it writes, for a form that asks first: the office
    (the new ward is the office's), the person on record (the look-up in their access log,
    ``RESIDENCE_READ``), a first residence recorded by the department only
    (``FirstResidenceByDepartment``, before the person is named), and, when they live in
    another ward, that ward in the officer's area too (``Forbidden`` naming it: a ward
    officer does not move people into their own ward from elsewhere, D24)."""
    province = await keeps_ward_office(session, officer, ward_code, "record a residence")
    repo = IdentityRepository(session)
    person = await _person_looked_up(
        repo, officer, personal_id, RESIDENCE_READ, ward_code, to_change=to_change
    )
    # before anything of them is shown: a first residence is the department's (D24)
    first_residence(officer, person, province)
    current = person.residence_ward_code
    if current not in (None, ward_code) and not await _may_register_for(session, officer, person):
        raise Forbidden(action="move a person from another area", ward=current)
    return ResidenceCheck(Holder.of(person), current, current == ward_code)


async def record_residence(
    session: AsyncSession, officer: Subject, *, ward_code: str, personal_id: str
) -> ResidenceCheck:
    """``set_residence`` (the API's, the same rules and rows) after ``check_residence``: a
    person living here already is left as they are (``already``)."""
    checked = await check_residence(
        session, officer, ward_code=ward_code, personal_id=personal_id, to_change=True
    )
    if not checked.already:
        await set_residence(session, officer, personal_id, ward_code)
    return checked


async def check_card(
    session: AsyncSession,
    officer: Subject,
    *,
    ward_code: str,
    personal_id: str,
    card_number: str,
    valid_from: date | None,
    valid_to: date | None,
    to_change: bool = False,
) -> CardCheck:
    """What ``add_card`` checks before it writes, for a form that asks first: the office, the
    card number's rules and the period (before anyone is looked up), the person on record
    (``CARD_READ`` in their access log) living in the officer's area (D24)."""
    await keeps_ward_office(session, officer, ward_code, "record insurance card")
    card = check_insurance_card(card_number)
    if valid_from and valid_to and valid_to < valid_from:
        raise errors.PeriodInvalid(valid_from=valid_from.isoformat(), valid_to=valid_to.isoformat())
    repo = IdentityRepository(session)
    person = await _person_looked_up(
        repo, officer, personal_id, CARD_READ, ward_code, to_change=to_change
    )
    if not await _may_register_for(session, officer, person):
        raise Forbidden(action="record insurance card")
    same = await repo.same_card(person.id, card.value, valid_from, valid_to)
    return CardCheck(Holder.of(person), card.value, same is not None)


async def record_card(
    session: AsyncSession,
    officer: Subject,
    *,
    ward_code: str,
    personal_id: str,
    card_number: str,
    valid_from: date | None,
    valid_to: date | None,
    registered_facility: str | None,
) -> CardCheck:
    """``add_card`` (the API's, the same rules and rows) after ``check_card`` with the person
    held: a card in their history already with this period is not added again
    (``already``)."""
    checked = await check_card(
        session,
        officer,
        ward_code=ward_code,
        personal_id=personal_id,
        card_number=card_number,
        valid_from=valid_from,
        valid_to=valid_to,
        to_change=True,
    )
    if not checked.already:
        await add_card(
            session,
            officer,
            personal_id,
            card_number=card_number,
            valid_from=valid_from,
            valid_to=valid_to,
            registered_facility=registered_facility,
        )
    return checked


async def ward_work(
    session: AsyncSession, subject: Subject, ward_code: str, limit: int = RECENT
) -> list[WardWork]:
    """What ``subject`` did at ward ``ward_code``'s office lately, newest first: the books
    opened or reopened there, the newborns recorded whose mother lived there, and the
    representatives recorded or ended, residences and insurance cards recorded for persons who
    live there (the registrar's audit rows). Only for whoever may act at that office
    (``keeps_ward_office``). A book found already open, or a form sent again that recorded
    nothing, left no row, and is not listed."""
    await keeps_ward_office(session, subject, ward_code, "open the ward office page")
    repo = IdentityRepository(session)
    found = [
        WardWork("reopened" if action == "reopened" else "opened", at, Holder.of(person))
        for at, action, person in await repo.assisted_openings(subject.label, ward_code, limit)
    ]
    found += [
        WardWork("newborn", child.created_at, Holder.of(child), mother.full_name)
        for child, mother in await repo.newborns_recorded(subject.label, ward_code, limit)
    ]
    found += await _registrar_work(session, repo, subject, ward_code, limit)
    found.sort(key=lambda work: work.at, reverse=True)
    return found[:limit]


async def _registrar_work(
    session: AsyncSession, repo: IdentityRepository, subject: Subject, ward_code: str, limit: int
) -> list[WardWork]:
    """The representatives, residences and insurance cards ``subject`` recorded, and the
    representations they ended, for persons who live in ``ward_code`` now, newest first, from
    their audit rows (``card.added`` names the card's row, ``representative.added`` and
    ``representative.ended`` the agent and the relation, the latter the first day it ended)."""
    residents = repo.residents_query([ward_code])
    rows = await audit.registrar_acts(session, subject.label, residents, limit)
    agents = [int(r.detail["agent_id"]) for r in rows if r.detail and "agent_id" in r.detail]
    people = {p.id: p for p in await repo.persons([*{r.person_id or 0 for r in rows}, *agents])}
    cards = await repo.cards_by_id(
        [int(r.object_id) for r in rows if r.action == "card.added" and r.object_id.isdigit()]
    )
    found: list[WardWork] = []
    for row in rows:
        person = people.get(row.person_id or 0)
        if person is None:  # merged into another since
            continue
        if row.action == "representative.added" and (row.detail or {}).get("newborn"):
            continue  # the mother's link made with a newborn: the newborn's line says it
        if row.action == "representative.added":
            detail = row.detail or {}
            agent = people.get(int(detail.get("agent_id") or 0))
            name = agent.full_name if agent is not None else None
            relation = str(detail.get("relation") or "")
            found.append(
                WardWork("representative", row.at, Holder.of(person), agent=name, relation=relation)
            )
        elif row.action == "representative.ended":
            detail = row.detail or {}
            agent = people.get(int(detail.get("agent_id") or 0))
            ends = str(detail.get("ends_on") or "")
            found.append(
                WardWork(
                    "ended",
                    row.at,
                    Holder.of(person),
                    agent=agent.full_name if agent is not None else None,
                    relation=str(detail.get("relation") or ""),
                    ends_on=date.fromisoformat(ends) if ends else None,
                )
            )
        elif row.action == "card.added":
            card = cards.get(int(row.object_id)) if row.object_id.isdigit() else None
            number = card.card_number if card is not None else None
            found.append(WardWork("card", row.at, Holder.of(person), card=number))
        else:
            found.append(WardWork("residence", row.at, Holder.of(person)))
    return found
