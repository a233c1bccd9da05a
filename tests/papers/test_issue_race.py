"""A paper issued through the papers API for a visit, and a correction giving that visit
another patient, at the same moment, on PostgreSQL where the two really run side by side
(D180). The issue read the visit's patient before the correction committed, and the
correction did not see the paper yet: the paper stayed valid, naming the first patient, in
her book, for a visit the facility now says is someone else's. Now the issue takes the visit's
write lock, as the intake does, so the two take turns, whichever comes first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.exchange.test_inbox import AN, BINH, signed_in
from tests.healthbook.test_api import visit_of
from tests.papers.test_api import local_now, sick_leave
from tests.papers.test_holder_moved import as_patient
from tests.submissions.test_concurrent_writers import _prepared
from vnehr import identity, submissions
from vnehr.cli import app
from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
from vnehr.kit.settings import get_settings
from vnehr.papers import service
from vnehr.papers.models import Paper
from vnehr.submissions import IntakeOptions, Limits, synth
from vnehr.submissions.service import accept
from vnehr.wiring import wire

FACILITY = "01001"
HIS = Subject(
    "facility_system",
    "his",
    "HIS",
    scopes=frozenset({"submission.write", "paper.write"}),
    facility_code=FACILITY,
)


@pytest.fixture
def url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    runner = CliRunner()
    database = new_database_on(postgres_url, "paper_race")
    monkeypatch.setenv("VNEHR_DATABASE_URL", database)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0  # facility 01001, connected
    wire(get_settings().public_url)  # as the app does
    yield database
    get_settings.cache_clear()


def _options() -> IntakeOptions:
    return IntakeOptions(limits=Limits(), papers=service.keys_for(get_settings()))


async def _send(db: Database, one: synth.SynthVisit) -> dict[str, Any]:
    data = synth.envelope([one], FACILITY)
    [analysis] = await _prepared(db, [data])
    async with db.session() as session:
        return await accept(session, HIS, data, analysis, _options())


async def _a_visit_of_an(db: Database, seed: int) -> tuple[synth.SynthVisit, bytes, Any]:
    """A visit of An (signed in with VNeID), stored; and its correction to Bình, prepared."""
    async with db.session() as session:
        await signed_in(session, AN)
        await signed_in(session, BINH)
    one = visit_of(
        FACILITY, seed, local_now() - timedelta(days=2), care_type="01", insured=True,
        appointment=False, age_group=3,
    )  # fmt: skip
    one.tables["XML1"][0]["MA_BENH_CHINH"] = "J06.9"
    as_patient(one, AN)
    sent = await _send(db, one)
    assert sent["visits"][0]["outcome"] == "new", sent
    as_patient(one, BINH)  # the facility says the visit was Bình's
    data = synth.envelope([one], FACILITY)
    [analysis] = await _prepared(db, [data])
    return one, data, analysis


def _leave(one: synth.SynthVisit) -> dict[str, Any]:
    return {"kind": "sick_leave", "visit_key": one.ma_lk, "fields": sick_leave(one, 10)}


async def _issue_in(session: AsyncSession, one: synth.SynthVisit) -> Paper:
    """The visit's sick leave (NV-0001), issued through the papers API in this transaction."""
    paper, _ = await service.issue_for_visit(
        session, service.keys_for(get_settings()), HIS, _leave(one), submissions.check_paper_row
    )
    return paper


async def _issue(db: Database, one: synth.SynthVisit) -> str:
    async with db.session() as session:
        return (await _issue_in(session, one)).id


async def _paper(db: Database, paper_id: str) -> tuple[str, str | None, str | None, int | None]:
    """(status, reason, holder's personal ID as written, whose book it is in)."""
    async with db.read_session() as session:
        paper = await session.scalar(select(Paper).where(Paper.id == paper_id))
        assert paper is not None
        return paper.status, paper.revoke_reason, paper.personal_id, paper.person_id


async def _person(db: Database, who: tuple[str, str, str, str]) -> int | None:
    async with db.read_session() as session:
        return await identity.person_id_of(session, who[0])


def test_a_paper_issued_as_its_visit_is_corrected_to_another_patient_leaves_her_book(
    url: str,
) -> None:
    async def main() -> None:
        api, intake = Database.from_urls(url), Database.from_urls(url)  # two API workers
        try:
            one, data, analysis = await _a_visit_of_an(api, 71)
            async with api.session() as session:  # the sick leave, not yet committed ...
                paper_id = (await _issue_in(session, one)).id

                async def correct() -> dict[str, Any]:
                    async with intake.session() as theirs:
                        return await accept(theirs, HIS, data, analysis, _options())

                correcting = asyncio.create_task(correct())  # ... when the correction comes
                await asyncio.sleep(0.5)
                assert not correcting.done()  # it waits for the issue
            fixed = await asyncio.wait_for(correcting, 10)
            assert fixed["visits"][0]["outcome"] == "changed", fixed
            # the correction saw the paper: revoked, out of An's book, not handed to Bình
            assert await _paper(api, paper_id) == ("revoked", "visit_moved", AN[0], None)
        finally:
            await api.dispose()
            await intake.dispose()

    asyncio.run(main())


def test_a_paper_issued_as_its_visit_is_corrected_names_the_new_patient(url: str) -> None:
    async def main() -> None:
        api, intake = Database.from_urls(url), Database.from_urls(url)
        try:
            one, data, analysis = await _a_visit_of_an(api, 72)
            async with intake.session() as theirs:  # the correction, not yet committed ...
                fixed = await accept(theirs, HIS, data, analysis, _options())

                issuing = asyncio.create_task(_issue(api, one))  # ... when the issue comes
                await asyncio.sleep(0.5)
                assert not issuing.done()  # it waits for the correction
            assert fixed["visits"][0]["outcome"] == "changed", fixed
            paper_id = await asyncio.wait_for(issuing, 10)
            # issued for the visit's patient as the correction left it: Bình's, in his book
            binh = await _person(api, BINH)
            assert await _paper(api, paper_id) == ("valid", None, BINH[0], binh)
        finally:
            await api.dispose()
            await intake.dispose()

    asyncio.run(main())


def test_one_number_issued_for_two_visits_at_once_is_refused_for_the_second_not_a_500(
    url: str,
) -> None:
    """Two clinicians issue sick leave numbered NV-0001 for two visits at the same moment. The
    second used to meet the unique key (a 500 over the API); now it waits for the first and is
    told the number is another visit's (PAP-0006), as one sent afterwards is."""

    async def main() -> None:
        api, other = Database.from_urls(url), Database.from_urls(url)  # two API workers
        try:
            first, _, _ = await _a_visit_of_an(api, 73)
            second, _, _ = await _a_visit_of_an(api, 74)
            async with api.session() as session:  # the first issue, not yet committed ...
                paper = await _issue_in(session, first)
                issuing = asyncio.create_task(_issue(other, second))  # ... when the other comes
                await asyncio.sleep(0.5)
                assert not issuing.done()  # it waits for the first
            with pytest.raises(service.errors.DuplicatePaper):
                await asyncio.wait_for(issuing, 10)
            assert (await _paper(api, paper.id))[0] == "valid"
        finally:
            await api.dispose()
            await other.dispose()

    asyncio.run(main())


def test_two_files_naming_one_number_for_two_visits_at_once_refuse_the_second(url: str) -> None:
    """Two visit files written at the same moment, each with a sick leave numbered NV-0001 for
    its own visit: the second waits for the first and is refused PAP-0130 (the number is the
    first visit's), as it is when it comes afterwards; before, both were checked before either
    stored its paper, and the second met the unique key at its commit."""

    async def main() -> None:
        api, intake = Database.from_urls(url), Database.from_urls(url)
        try:
            async with api.session() as session:
                await signed_in(session, AN)
            files = []
            for seed in (75, 76):
                one = visit_of(
                    FACILITY, seed, local_now() - timedelta(days=2), care_type="01",
                    insured=True, appointment=False, age_group=3,
                )  # fmt: skip
                as_patient(one, AN)
                one.tables["XML11"] = [sick_leave(one, 5)]
                files.append((one, synth.envelope([one], FACILITY)))
            analyses = await _prepared(api, [data for _, data in files])
            async with api.session() as session:  # the first file, not yet committed ...
                sent = await accept(session, HIS, files[0][1], analyses[0], _options())

                async def other() -> dict[str, Any]:
                    async with intake.session() as theirs:
                        return await accept(theirs, HIS, files[1][1], analyses[1], _options())

                sending = asyncio.create_task(other())  # ... when the second comes
                await asyncio.sleep(0.5)
                assert not sending.done()  # it waits for the first
            assert sent["visits"][0]["outcome"] == "new", sent
            second = await asyncio.wait_for(sending, 10)
            [visit] = second["visits"]
            assert visit["status"] == "rejected", second
            assert [i["code"] for i in visit["issues"] if i["severity"] == "error"] == ["PAP-0130"]
            async with api.read_session() as session:
                held = list(
                    await session.scalars(select(Paper.visit_key).where(Paper.number == "NV-0001"))
                )
            assert held == [files[0][0].ma_lk]
        finally:
            await api.dispose()
            await intake.dispose()

    asyncio.run(main())
