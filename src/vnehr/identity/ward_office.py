"""The ward office's work as its page does it: the same rules as the API's assisted enrolment and
newborn records (``service``), with what a person at the counter needs besides: each check
before anything is written (so a form can ask first), what an enrolment found (a book opened,
reopened or already open; a record whose details are not what was typed), and what the officer
did at the office lately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.identity.models import Person
from vnehr.identity.repository import IdentityRepository
from vnehr.identity.service import Holder, add_newborn, assisted_open, keeps_ward_office
from vnehr.kit.auth import Subject
from vnehr.kit.text import fold

#: Lines of "what I did lately" on the ward page.
RECENT = 20


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
    or a newborn's provisional record (``mother``: her name)."""

    kind: Literal["opened", "reopened", "newborn"]
    at: datetime
    person: Holder
    mother: str | None = None


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


async def newborns_of(session: AsyncSession, mother_id: int, birth_date: date) -> list[str]:
    """The names of the provisional children already recorded for this mother, born that day
    (not merged into a person with an ID): before recording one more, the form asks whether it
    is another child (twins) or the same one sent again (D226). The mother's look-up is written
    by ``check_newborn`` first."""
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


async def ward_work(
    session: AsyncSession, subject: Subject, ward_code: str, limit: int = RECENT
) -> list[WardWork]:
    """What ``subject`` did at ward ``ward_code``'s office lately, newest first: the books
    opened or reopened there, and the newborns recorded whose mother lived there. Only for
    whoever may act at that office (``keeps_ward_office``). A book found already open left no
    row, and is not listed."""
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
    found.sort(key=lambda work: work.at, reverse=True)
    return found[:limit]
