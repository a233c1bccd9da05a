"""A person's first VNeID sign-in and a visit naming them, at the same moment, on PostgreSQL
where the two really run side by side (D176). The sign-in compares what was filed to the
person while they were pending with what VNeID has just confirmed (D167); the intake compares a
new visit with what is confirmed when it arrives (D150). A visit of a stranger under the
person's ID, written while the sign-in runs, was judged by neither: the intake still saw the
person pending, the sign-in's re-check did not see the visit yet. It stayed in the person's
book. Now the two take turns on the person's row, whichever comes first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.exchange.test_inbox import AN, signed_in
from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_concurrent_writers import OPTIONS, SENDER, _prepared
from tests.submissions.test_patient_match import a_visit, as_patient, holds
from vnehr import first_sign_in, identity
from vnehr.cli import app
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import get_settings
from vnehr.records.models import TimelineEntry
from vnehr.submissions import synth
from vnehr.submissions.service import accept, accept_many

FACILITY = "01001"
Write = Callable[[AsyncSession, bytes, Any], Awaitable[dict[str, Any]]]


async def _one(session: AsyncSession, data: bytes, analysis: Any) -> dict[str, Any]:
    return await accept(session, SENDER, data, analysis, OPTIONS)


async def _batch(session: AsyncSession, data: bytes, analysis: Any) -> dict[str, Any]:
    [receipt] = await accept_many(session, [(SENDER, data, analysis)], OPTIONS)
    assert isinstance(receipt, dict), receipt
    return receipt


WRITES = {"one file (the API)": _one, "a batch (group commit, the import)": _batch}


@pytest.fixture
def url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    runner = CliRunner()
    database = new_database_on(postgres_url, "first_sign_in_race")
    monkeypatch.setenv("VNEHR_DATABASE_URL", database)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0  # facility 01001, connected
    identity.on_first_confirmation("held", first_sign_in.recheck)  # as the app wires it
    yield database
    get_settings.cache_clear()


async def _in_an_s_book(db: Database, visit: synth.SynthVisit) -> bool:
    async with db.read_session() as session:
        person = await session.scalar(
            select(TimelineEntry.person_id).where(
                TimelineEntry.facility_code == FACILITY, TimelineEntry.visit_key == visit.ma_lk
            )
        )
        an = await identity.person_id_of(session, AN[0])
    return person is not None and person == an


async def _an_pending_with_a_visit(db: Database) -> synth.SynthVisit:
    """An, not signed in yet, with one visit of his own (his row exists, pending)."""
    own = a_visit(FACILITY, 40, AN[1], AN[2].replace("-", "") + "0000")
    [analysis] = await _prepared(db, [synth.envelope([own], FACILITY)])
    async with db.session() as session:
        await accept(session, SENDER, synth.envelope([own], FACILITY), analysis, OPTIONS)
    return own


@pytest.mark.parametrize("write", WRITES.values(), ids=list(WRITES))
def test_a_stranger_s_visit_written_as_an_signs_in_leaves_his_book(url: str, write: Write) -> None:
    async def main() -> None:
        intake, vneid = Database.from_urls(url), Database.from_urls(url)
        try:
            own = await _an_pending_with_a_visit(intake)
            stranger = a_visit(FACILITY, 41, "Trần Văn Giả", "198501010000")
            data = synth.envelope([stranger], FACILITY)
            [analysis] = await _prepared(intake, [data])
            async with intake.session() as session:  # the stranger's visit, not yet committed
                receipt = await write(session, data, analysis)

                async def sign_in() -> None:
                    async with vneid.session() as theirs:
                        await signed_in(theirs, AN)

                signing = asyncio.create_task(sign_in())  # ... when An first signs in
                await asyncio.sleep(0.5)
                assert not signing.done()  # his sign-in waits for the visit's transaction
            await asyncio.wait_for(signing, 10)
            # the sign-in's re-check saw the visit: out of An's book; his own visit stays
            assert holds(receipt) == []  # (the intake could not tell: An was pending)
            assert not await _in_an_s_book(intake, stranger)
            assert await _in_an_s_book(intake, own)
        finally:
            await intake.dispose()
            await vneid.dispose()

    asyncio.run(main())


@pytest.mark.parametrize("write", WRITES.values(), ids=list(WRITES))
def test_a_stranger_s_visit_sent_while_an_signs_in_is_judged_on_what_vneid_confirmed(
    url: str, write: Write
) -> None:
    async def main() -> None:
        intake, vneid = Database.from_urls(url), Database.from_urls(url)
        try:
            own = await _an_pending_with_a_visit(intake)
            stranger = a_visit(FACILITY, 42, "Trần Văn Giả", "198501010000")
            data = synth.envelope([stranger], FACILITY)
            [analysis] = await _prepared(intake, [data])
            async with vneid.session() as theirs:  # An's first sign-in, not yet committed ...
                await signed_in(theirs, AN)

                async def send() -> dict[str, Any]:
                    async with intake.session() as session:
                        return await write(session, data, analysis)

                sending = asyncio.create_task(send())  # ... when the stranger's visit comes
                await asyncio.sleep(0.5)
                assert not sending.done()  # the visit waits for the sign-in
            receipt = await asyncio.wait_for(sending, 10)
            # judged on what VNeID confirmed: held out, and the receipt says which fields
            assert holds(receipt) == ["HO_TEN", "NGAY_SINH"]
            assert not await _in_an_s_book(intake, stranger)
            assert await _in_an_s_book(intake, own)
        finally:
            await intake.dispose()
            await vneid.dispose()

    asyncio.run(main())


def test_a_stranger_s_visit_that_makes_someone_known_as_they_first_sign_in(url: str) -> None:
    """The first visit naming a personal ID makes its holder known (a pending person) in the
    transaction that files it; their first sign-in, at that moment, waits for it, then finds
    them (before, it failed on the ID's unique key: no second person with one ID) and
    re-checks the visit."""

    async def main() -> None:
        intake, vneid = Database.from_urls(url), Database.from_urls(url)
        try:
            ended = utcnow().replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=3)
            holder = who(visit_of(FACILITY, 44, ended))  # a man born in 1993, not known yet
            stranger = visit_of(FACILITY, 45, ended)
            as_patient(stranger, "Trần Văn Giả", "199301010000", personal_id=holder[0])
            data = synth.envelope([stranger], FACILITY)
            [analysis] = await _prepared(intake, [data])
            async with intake.session() as session:
                await _one(session, data, analysis)
                async with intake.read_session() as other:
                    assert await identity.person_id_of(other, holder[0]) is None  # not yet

                async def sign_in() -> int:
                    async with vneid.session() as theirs:
                        return await signed_in(theirs, holder)

                signing = asyncio.create_task(sign_in())
                await asyncio.sleep(0.5)
                assert not signing.done()
            person = await asyncio.wait_for(signing, 10)
            async with intake.read_session() as session:
                assert await identity.person_id_of(session, holder[0]) == person
                entry = await session.scalar(
                    select(TimelineEntry.person_id).where(TimelineEntry.visit_key == stranger.ma_lk)
                )
            assert entry is None  # out of their book
        finally:
            await intake.dispose()
            await vneid.dispose()

    asyncio.run(main())
