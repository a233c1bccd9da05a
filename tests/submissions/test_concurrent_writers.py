"""Two writers of the same visit at once (two API workers, or the import beside the API), on
PostgreSQL where they really run side by side: the second waits for the first and writes
the next version (D60). Before, it read the version the first was replacing and failed on
the version's unique key: a 500, or a whole import batch lost."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import new_database_on
from vnehr import catalogs
from vnehr.cli import app
from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
from vnehr.kit.settings import get_settings
from vnehr.records.models import VisitVersion
from vnehr.submissions import IntakeOptions, Limits, import_folder, synth
from vnehr.submissions.service import Analysis, accept, prepare

FACILITY = "01001"
SENDER = Subject(
    "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=FACILITY
)
OPTIONS = IntakeOptions(limits=Limits())


@pytest.fixture
def url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    runner = CliRunner()
    database = new_database_on(postgres_url, "writers")
    monkeypatch.setenv("VNEHR_DATABASE_URL", database)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0  # facility 01001, connected
    yield database
    get_settings.cache_clear()


def _files(count: int) -> tuple[str, list[bytes]]:
    """One visit and ``count - 1`` corrections of it."""
    base = synth.make_visit(random.Random(77), facility_code=FACILITY, sequence=4242)
    files = []
    for n in range(count):
        one = copy.deepcopy(base)
        if n:
            one.tables["XML1"][0]["GHI_CHU"] = f"correction {n}"
        files.append(synth.envelope([one], FACILITY))
    return base.ma_lk, files


async def _prepared(db: Database, files: list[bytes]) -> list[Analysis]:
    async with db.read_session() as session:
        codes = await catalogs.codebook(session)
    return [prepare(f, codes=codes, limits=OPTIONS.limits) for f in files]


async def _versions(db: Database, key: str) -> list[tuple[int, bool]]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(VisitVersion.version, VisitVersion.current)
            .where(VisitVersion.visit_key == key)
            .order_by(VisitVersion.version)
        )
        return [(version, current) for version, current in rows]


def test_two_corrections_at_once_become_versions_2_and_3(url: str) -> None:
    key, files = _files(3)

    async def main() -> None:
        first, second = Database.from_urls(url), Database.from_urls(url)  # two API workers
        try:
            analyses = await _prepared(first, files)
            async with first.session() as session:
                await accept(session, SENDER, files[0], analyses[0], OPTIONS)
            async with first.session() as session:  # correction 1, not yet committed ...
                one = await accept(session, SENDER, files[1], analyses[1], OPTIONS)

                async def other() -> dict[str, object]:
                    async with second.session() as theirs:
                        return await accept(theirs, SENDER, files[2], analyses[2], OPTIONS)

                waiting = asyncio.create_task(other())  # ... when correction 2 arrives
                await asyncio.sleep(0.5)
                assert not waiting.done()  # it waits for the first to finish
            two = await asyncio.wait_for(waiting, 10)
            assert [(r["visits"][0]["outcome"], r["visits"][0]["version"]) for r in (one, two)] == [
                ("changed", 2),
                ("changed", 3),
            ]
            assert await _versions(first, key) == [(1, False), (2, False), (3, True)]
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())


def test_the_import_waits_for_the_api_writing_the_same_new_visit(url: str, tmp_path: Path) -> None:
    key, files = _files(2)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.xml").write_bytes(files[1])

    async def main() -> None:
        api, importer = Database.from_urls(url), Database.from_urls(url)
        try:
            [analysis] = await _prepared(api, files[:1])
            async with api.session() as session:  # the API is writing the visit's first version
                await accept(session, SENDER, files[0], analysis, OPTIONS)
                loading = asyncio.create_task(
                    import_folder(importer, [folder / "a.xml"], OPTIONS, processes=1)
                )
                await asyncio.sleep(3)
            totals = await asyncio.wait_for(loading, 30)
            assert (totals.files, totals.refused, totals.accepted) == (1, 0, 1)
            assert await _versions(api, key) == [(1, False), (2, True)]
        finally:
            await api.dispose()
            await importer.dispose()

    asyncio.run(main())


def test_two_files_naming_the_same_visits_in_other_orders_do_not_deadlock(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each file's visits are locked at once, in one order: one file at a time, visit by visit,
    # two files [A, B] and [B', A'] could each hold what the other waits for.
    from vnehr import records

    base = [
        synth.make_visit(random.Random(n), facility_code=FACILITY, sequence=5000 + n)
        for n in (1, 2)
    ]
    changed = copy.deepcopy(base)
    for one in changed:
        one.tables["XML1"][0]["GHI_CHU"] = "sửa"
    files = [synth.envelope(base, FACILITY), synth.envelope(changed[::-1], FACILITY)]
    real = records.store

    async def slow_store(session: object, data: object) -> object:
        await asyncio.sleep(0.3)  # (the card lookup or person matching between two visits)
        return await real(session, data)  # type: ignore[arg-type]

    monkeypatch.setattr(records, "store", slow_store)

    async def main() -> None:
        one, other = Database.from_urls(url), Database.from_urls(url)
        try:
            analyses = await _prepared(one, files)

            async def write(db: Database, n: int) -> dict[str, object]:
                async with db.session() as session:
                    return await accept(session, SENDER, files[n], analyses[n], OPTIONS)

            first, second = await asyncio.wait_for(
                asyncio.gather(write(one, 0), write(other, 1)), 30
            )
            outcomes = sorted(v["outcome"] for r in (first, second) for v in r["visits"])
            assert outcomes == ["changed", "changed", "new", "new"]
        finally:
            await one.dispose()
            await other.dispose()

    asyncio.run(main())
