"""An officer's second tap on "confirm", arriving while the first is still being written, on
PostgreSQL (where two requests really run at once): the newborn form records one child, not
two (the second waits for the first and then asks, D226), and the enrolment form answers the
citizen as recorded instead of a server error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import func, select

from tests.conftest import new_database_on, set_by
from tests.identity.test_service import person, ward_officer
from vnehr import catalogs, identity
from vnehr.demo import demo_icd10_titles
from vnehr.identity.models import Person
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade

HOAN_KIEM = "00070"
MAI = ("001190012345", "Nguyễn Thị Mai", date(1990, 5, 12), "female")
OFFICER = person("031054007793", ward_officer(HOAN_KIEM))
BORN = date(2025, 1, 2)


@pytest.fixture
def fresh_url(postgres_url: str) -> str:
    return new_database_on(postgres_url, "double_tap")


@pytest.fixture
async def two(fresh_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two connection pools on one fresh database: two requests of two workers."""
    url = fresh_url
    await upgrade(url)
    first, second = Database.from_urls(url), Database.from_urls(url)
    async with first.session() as session:
        await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _enrol(
    db: Database, written: asyncio.Event | None = None, go: asyncio.Event | None = None
) -> str:
    """The enrolment form's confirmation (``identity.enrol``) in one request's transaction;
    with ``written``, it waits before its commit until ``go``."""
    async with db.session() as session:
        async with session.begin_nested():
            done = await identity.enrol(
                session, OFFICER, personal_id=MAI[0], full_name=MAI[1], birth_date=MAI[2],
                sex=MAI[3], ward_code=HOAN_KIEM,
            )  # fmt: skip
        if written is not None and go is not None:
            written.set()
            await go.wait()
        return done.outcome


async def _newborn(
    db: Database, written: asyncio.Event | None = None, go: asyncio.Event | None = None
) -> str:
    """What ``/ward/newborn`` does on "confirm" (no "another child"), in one transaction."""
    async with db.session() as session:
        mother = await identity.check_newborn(
            session, OFFICER, mother_personal_id=MAI[0], birth_date=BORN
        )
        if await identity.newborns_of(session, mother.id, BORN, hold=True):
            return "asked"
        async with session.begin_nested():
            await identity.record_newborn(
                session, OFFICER, mother_personal_id=MAI[0], birth_date=BORN, sex="male",
                full_name=None,
            )  # fmt: skip
        if written is not None and go is not None:
            written.set()
            await go.wait()
        return "recorded"


async def test_two_taps_on_the_enrolment_answer_the_second_as_recorded(
    two: tuple[Database, Database],
) -> None:
    a, b = two
    written, go = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_enrol(a, written, go))
    try:
        await set_by(written, first)
        second = asyncio.create_task(_enrol(b))
        await asyncio.sleep(0.5)  # the second is at the person's unique key, waiting
        assert not second.done()
    finally:
        go.set()  # (a failure above must not leave the first's transaction open)
    assert await first == "opened"
    assert await second != "opened"  # answered as on record: no 500, no second person
    async with a.read_session() as session:
        count = select(func.count()).select_from(Person).where(Person.personal_id == MAI[0])
        assert await session.scalar(count) == 1


async def test_two_taps_on_the_newborn_form_record_one_child(
    two: tuple[Database, Database],
) -> None:
    a, b = two
    await _enrol(a)
    written, go = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_newborn(a, written, go))
    try:
        await set_by(written, first)
        second = asyncio.create_task(_newborn(b))
        await asyncio.sleep(0.5)  # the second waits for the mother's row
        assert not second.done()
    finally:
        go.set()  # (a failure above must not leave the first's transaction open)
    assert (await first, await second) == ("recorded", "asked")
    async with a.read_session() as session:
        children = select(func.count()).select_from(Person).where(Person.provisional.is_(True))
        assert await session.scalar(children) == 1
