"""Facility codes under concurrent registrations, with real committed transactions on each
database (not the rolled-back test transaction). Province 96 (Cà Mau) is used by no other test;
its rows are deleted before and after each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vnehr import facilities
from vnehr.facilities.models import (
    Facility,
    FacilityCodeCounter,
    OnboardingEvent,
    Practitioner,
    PractitionerRole,
)
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.db import Database
from vnehr.kit.errors import VnehrError

PROVINCE = "96"
AN_XUYEN = "32002"  # Phường An Xuyên, Cà Mau
CA_MAU_ADMIN = Subject(
    "person", "048190002468", "Sở Y tế Cà Mau", (Grant("department_admin", province_code="96"),)
)


def new_facility(n: int, code: str | None = None) -> facilities.FacilityCreate:
    return facilities.FacilityCreate(
        name=f"Trạm Y tế số {n}",
        kind=facilities.Kind.health_station,
        level=facilities.Level.initial,
        ownership=facilities.Ownership.public,
        province_code=PROVINCE,
        ward_code=AN_XUYEN if n % 2 else None,
        code=code,
    )


async def _forget_province(db: Database) -> None:
    async with db.session() as session:
        codes = select(Facility.code).where(Facility.province_code == PROVINCE)
        await session.execute(
            delete(OnboardingEvent).where(OnboardingEvent.facility_code.in_(codes))
        )
        roles = select(PractitionerRole.practitioner_id).where(
            PractitionerRole.facility_code.in_(codes)
        )
        people = list(await session.scalars(roles))
        await session.execute(
            delete(PractitionerRole).where(PractitionerRole.facility_code.in_(codes))
        )
        await session.execute(delete(Practitioner).where(Practitioner.id.in_(people)))
        await session.execute(delete(Facility).where(Facility.province_code == PROVINCE))
        await session.execute(
            delete(FacilityCodeCounter).where(FacilityCodeCounter.province_code == PROVINCE)
        )


@pytest.fixture
async def real_db(database_url: str, engine: AsyncEngine) -> AsyncIterator[Database]:
    """Sessions that commit, on the migrated test database (``engine`` prepared it)."""
    db = Database.from_urls(database_url)
    try:
        await _forget_province(db)
        yield db
    finally:
        try:
            await _forget_province(db)
        finally:
            await db.dispose()


async def _register(db: Database, data: facilities.FacilityCreate) -> str:
    async with db.session() as session:
        return (await facilities.register(session, CA_MAU_ADMIN, data)).code


async def _stored(db: Database) -> tuple[list[tuple[str, bool]], int, int | None]:
    """(code, issued) of the province's facilities, their event count, the counter."""
    async with db.session() as session:
        rows = await session.execute(
            select(Facility.code, Facility.issued)
            .where(Facility.province_code == PROVINCE)
            .order_by(Facility.code)
        )
        events = await session.scalar(
            select(func.count())
            .select_from(OnboardingEvent)
            .where(OnboardingEvent.facility_code.like(f"{PROVINCE}%"))
        )
        counter = await session.scalar(
            select(FacilityCodeCounter.last_sequence).where(
                FacilityCodeCounter.province_code == PROVINCE
            )
        )
    return [(code, issued) for code, issued in rows], int(events or 0), counter


async def test_twenty_concurrent_registrations_get_twenty_distinct_codes(
    real_db: Database,
) -> None:
    results = await asyncio.gather(
        *(_register(real_db, new_facility(n)) for n in range(20)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    expected = [f"96{n:03d}" for n in range(1, 21)]
    assert sorted(results) == expected  # type: ignore[type-var]
    stored, events, counter = await _stored(real_db)
    assert stored == [(code, True) for code in expected]
    assert events == 20
    assert counter == 20


async def test_the_same_existing_code_registered_twice_at_once_succeeds_once(
    real_db: Database,
) -> None:
    results = await asyncio.gather(
        _register(real_db, new_facility(1, code="96500")),
        _register(real_db, new_facility(2, code="96500")),
        return_exceptions=True,
    )
    assert results.count("96500") == 1
    [error] = [r for r in results if r != "96500"]
    assert isinstance(error, VnehrError), repr(error)
    assert (error.code, error.status_code) == ("FAC-0002", 409)
    assert error.detail == {"code": "96500"}
    stored, events, _ = await _stored(real_db)
    assert stored == [("96500", False)]
    assert events == 1


async def test_an_existing_code_registered_while_another_holds_it_uncommitted_is_refused(
    real_db: Database,
) -> None:
    """The second registration checks the code before the first commits (on PostgreSQL; on
    SQLite it waits for the first): the database's key catches it, and the caller gets the
    coded refusal, not an IntegrityError."""
    started = asyncio.Event()

    async def slow_first() -> str:
        async with real_db.session() as session:
            facility = await facilities.register(
                session, CA_MAU_ADMIN, new_facility(1, code="96500")
            )
            started.set()
            await asyncio.sleep(0.5)
            return facility.code

    async def second() -> str:
        await asyncio.wait_for(started.wait(), 30)  # (not forever if the first failed)
        return await _register(real_db, new_facility(2, code="96500"))

    first, refused = await asyncio.gather(slow_first(), second(), return_exceptions=True)
    assert first == "96500"
    assert isinstance(refused, VnehrError), repr(refused)
    assert refused.code == "FAC-0002"
    stored, events, _ = await _stored(real_db)
    assert stored == [("96500", False)]
    assert events == 1


async def test_an_issued_code_skips_an_existing_code_being_registered_at_the_same_time(
    real_db: Database,
) -> None:
    """One transaction registers the existing code 96001 and is slow to commit; meanwhile a
    code is issued. The issued one must be 96002, not a refusal: its caller gave no code."""
    started = asyncio.Event()

    async def slow_existing() -> str:
        async with real_db.session() as session:
            facility = await facilities.register(
                session, CA_MAU_ADMIN, new_facility(1, code="96001")
            )
            started.set()
            await asyncio.sleep(0.5)  # the other registration reaches its insert meanwhile
            return facility.code

    async def issued_meanwhile() -> str:
        await asyncio.wait_for(started.wait(), 30)  # (not forever if the first failed)
        return await _register(real_db, new_facility(2))

    results = await asyncio.gather(slow_existing(), issued_meanwhile(), return_exceptions=True)
    assert list(results) == ["96001", "96002"]
    stored, events, _ = await _stored(real_db)
    assert stored == [("96001", False), ("96002", True)]
    assert events == 2


async def test_one_new_practitioner_added_at_two_facilities_at_once(real_db: Database) -> None:
    first = await _register(real_db, new_facility(1))
    second = await _register(real_db, new_facility(2))
    doctor = facilities.PractitionerCreate(practitioner_id="CCHN-96-000123", full_name="Lý Thu Hà")

    async def add(code: str) -> str:
        try:
            async with real_db.session() as session:
                await facilities.add_practitioner(session, CA_MAU_ADMIN, code, doctor)
        except VnehrError as exc:
            return exc.code
        return "ok"

    outcomes = sorted(await asyncio.gather(add(first), add(second)))
    # Either both succeed (one created the practitioner, the other reused it) or the loser of
    # the race is told clearly; never an unhandled error.
    assert outcomes in (["ok", "ok"], ["FAC-0023", "ok"])
    async with real_db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Practitioner)
            .where(Practitioner.practitioner_id == "CCHN-96-000123")
        )
    assert count == 1
