"""What the ward office's enrolment says it did (``identity.enrol``), which the officer reads
on the result page: a citizen recorded now or found on record, a book opened, opened again or
already open, and the details on record that are not what was typed (the record is kept)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_service import (
    BINH,
    CUONG,
    HOAN_KIEM,
    audited,
    person,
    signed_in,
    ward_officer,
)
from vnehr import identity

OFFICER = person(CUONG[0], ward_officer(HOAN_KIEM))
#: the audit row of a look-up of a citizen on record (her access log lists it)
READ = "enrolment.read"


async def _enrol(session: AsyncSession, **typed: object) -> identity.Enrolment:
    fields: dict[str, object] = {
        "personal_id": BINH[0],
        "full_name": BINH[1],
        "birth_date": date.fromisoformat(BINH[2]),
        "sex": BINH[3],
        "ward_code": HOAN_KIEM,
        **typed,
    }
    return await identity.enrol(session, OFFICER, **fields)  # type: ignore[arg-type]


async def test_a_citizen_not_on_record_is_recorded_and_her_book_opened(
    session: AsyncSession,
) -> None:
    done = await _enrol(session)
    assert (done.outcome, done.new_person, done.differs) == ("opened", True, ())
    assert (done.person.full_name, done.person.birth_date) == ("Trần Thị Bình", date(1962, 8, 2))
    assert await audited(session, READ) == 0  # nobody on record was read


async def test_a_closed_book_is_opened_again_and_what_differs_from_the_record_is_said(
    session: AsyncSession,
) -> None:
    binh = await signed_in(session, BINH)
    binh.residence_ward_code = HOAN_KIEM  # (with none, only her record's details give one)
    await identity.open_account(session, person(BINH[0]))
    await identity.close_account(session, person(BINH[0]), None)

    done = await _enrol(session, full_name="Tran Thi Binh", birth_date=date(1962, 2, 8))
    assert (done.outcome, done.new_person) == ("reopened", False)
    assert done.differs == ("birth_date",)  # the name differs only by its accents
    assert (done.person.full_name, done.person.birth_date) == ("Trần Thị Bình", date(1962, 8, 2))
    assert await audited(session, READ, binh.id) == 1

    again = await _enrol(session, full_name="Trần Thị Hoa")
    assert (again.outcome, again.new_person) == ("already_open", False)
    assert again.differs == ("full_name",)
    assert await audited(session, READ, binh.id) == 2
