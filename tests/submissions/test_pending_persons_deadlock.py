"""Two batches of the intake naming the same pending persons in other orders, on PostgreSQL
where they really run side by side (D200). A correction is written alone (its file by itself,
in a savepoint), and each file locks the row of the pending person it names (D176): a batch
[X's file, Y's file] and a batch [Y's file, X's file] could each hold the person the other
waits for, and PostgreSQL ended one of them (the import stopped; the HTTP writer retried file
by file). Now a batch locks every person it names at once, in one order, before its files,
a batch of new visits written together as well."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from datetime import timedelta
from random import Random
from typing import Any

import pytest
from sqlalchemy import func, select, text

from tests.healthbook.test_api import visit_of, who
from tests.papers.test_api import local_now
from tests.papers.test_issuing import birth_row
from tests.submissions.test_concurrent_writers import OPTIONS, SENDER, _prepared, url
from vnehr import papers
from vnehr.identity.models import Person
from vnehr.kit.db import Database
from vnehr.kit.settings import get_settings
from vnehr.papers.models import Paper
from vnehr.submissions import IntakeOptions, synth
from vnehr.submissions.service import Analysis, accept, accept_many

__all__ = ["url"]  # the fixture: a database of its own, migrated, with the demo facility

FACILITY = "01001"


def _two_visits_of(seed: int, first: int) -> list[synth.SynthVisit]:
    """Two visits of one synthetic person (the same draw, other MA_LK)."""
    return [
        synth.make_visit(Random(seed), facility_code=FACILITY, sequence=first + n) for n in (0, 1)
    ]


def _corrected(visit: synth.SynthVisit, note: str) -> bytes:
    changed = copy.deepcopy(visit)
    changed.tables["XML1"][0]["GHI_CHU"] = note
    return synth.envelope([changed], FACILITY)


def _outcomes(receipts: list[Any]) -> list[str]:
    assert all(isinstance(r, dict) for r in receipts), receipts
    return [v["outcome"] for r in receipts for v in r["visits"]]


def test_two_batches_naming_two_pending_persons_in_other_orders_both_land(url: str) -> None:
    x1, x2 = _two_visits_of(11, 7001)
    y1, y2 = _two_visits_of(12, 7101)
    x_id = x1.tables["XML1"][0]["SO_CCCD"]
    assert x_id != y1.tables["XML1"][0]["SO_CCCD"]
    first = synth.envelope([x1, x2, y1, y2], FACILITY)
    # each batch: two corrections (written alone), of other visits, naming X and Y
    batch_a = [_corrected(x1, "sửa a"), _corrected(y1, "sửa a")]
    batch_b = [_corrected(y2, "sửa b"), _corrected(x2, "sửa b")]

    async def main() -> None:
        a, b, other = (Database.from_urls(url) for _ in range(3))
        try:
            analyses = await _prepared(a, [first, *batch_a, *batch_b])
            async with a.session() as session:  # X and Y become known, pending (no sign-in)
                receipt = await accept(session, SENDER, first, analyses[0], OPTIONS)
            assert _outcomes([receipt]) == ["new"] * 4

            async def write(db: Database, files: list[bytes], found: list[Any]) -> list[Any]:
                async with db.session() as session:
                    return await accept_many(
                        session,
                        [(SENDER, f, n) for f, n in zip(files, found, strict=True)],
                        OPTIONS,
                    )

            async with other.session() as holding:  # someone holds X's row for a moment ...
                await holding.execute(
                    text("SELECT id FROM person WHERE personal_id = :p FOR UPDATE"), {"p": x_id}
                )
                one = asyncio.create_task(write(a, batch_a, analyses[1:3]))  # X, then Y
                await asyncio.sleep(0.5)
                two = asyncio.create_task(write(b, batch_b, analyses[3:5]))  # Y, then X
                await asyncio.sleep(0.5)
                assert not one.done()
                assert not two.done()
            # ... and lets go: batch A takes X and goes on to Y, which batch B held
            done = await asyncio.wait_for(asyncio.gather(one, two, return_exceptions=True), 30)
            for result in done:
                assert not isinstance(result, BaseException), repr(result)
            assert _outcomes(done[0]) == ["changed", "changed"]
            assert _outcomes(done[1]) == ["changed", "changed"]
        finally:
            for db in (a, b, other):
                await db.dispose()

    asyncio.run(main())


def test_two_files_naming_two_pending_persons_in_other_orders_both_land(url: str) -> None:
    # the same through the API's one-file path: a file's visits are matched one by one
    x1, x2 = _two_visits_of(13, 7201)
    y1, y2 = _two_visits_of(14, 7301)
    x_id = x1.tables["XML1"][0]["SO_CCCD"]
    first = synth.envelope([x1, x2, y1, y2], FACILITY)
    changed = []
    for visit in (x1, y1, y2, x2):
        one = copy.deepcopy(visit)
        one.tables["XML1"][0]["GHI_CHU"] = "sửa"
        changed.append(one)
    file_a = synth.envelope(changed[:2], FACILITY)  # X, then Y
    file_b = synth.envelope(changed[2:], FACILITY)  # Y, then X

    async def main() -> None:
        a, b, other = (Database.from_urls(url) for _ in range(3))
        try:
            analyses = await _prepared(a, [first, file_a, file_b])
            async with a.session() as session:
                await accept(session, SENDER, first, analyses[0], OPTIONS)

            async def write(db: Database, data: bytes, found: Any) -> dict[str, Any]:
                async with db.session() as session:
                    return await accept(session, SENDER, data, found, OPTIONS)

            async with other.session() as holding:
                await holding.execute(
                    text("SELECT id FROM person WHERE personal_id = :p FOR UPDATE"), {"p": x_id}
                )
                one = asyncio.create_task(write(a, file_a, analyses[1]))
                await asyncio.sleep(0.5)
                two = asyncio.create_task(write(b, file_b, analyses[2]))
                await asyncio.sleep(0.5)
                assert not one.done()
                assert not two.done()
            done = await asyncio.wait_for(asyncio.gather(one, two, return_exceptions=True), 30)
            for result in done:
                assert not isinstance(result, BaseException), repr(result)
            assert _outcomes(done) == ["changed"] * 4
        finally:
            for db in (a, b, other):
                await db.dispose()

    asyncio.run(main())


def test_a_batch_naming_thousands_of_persons_holds_a_bounded_number_of_locks(url: str) -> None:
    # One lock a person ran PostgreSQL out of shared lock slots (64 a connection by default,
    # shared by all) for an import batch of some thousands of persons, on top of its visits'
    # locks: the whole batch rolled back. A lock now stands for a bucket of IDs.
    from vnehr.identity.repository import PERSON_LOCK_BUCKETS, IdentityRepository

    ids = {f"0011{n:08d}" for n in range(20_000)}

    async def main() -> None:
        db = Database.from_urls(url)
        try:
            async with db.session() as session:
                await IdentityRepository(session).lock_personal_ids(ids)
                held = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND classid = 170 AND objsubid = 2 AND pid = pg_backend_pid()"
                    )
                )
            assert held is not None
            assert 0 < held <= PERSON_LOCK_BUCKETS
        finally:
            await db.dispose()

    asyncio.run(main())


Mother = tuple[str, str, str, str]


def _newborns(seed: int, mothers: list[Mother], first_number: int) -> list[synth.SynthVisit]:
    """A newborn's visit for each mother, in this order, each with its birth certificate
    (XML9) naming her: the newborn is the visit's patient, the mother the paper's holder."""
    ended = local_now() - timedelta(days=2)
    babies = []
    for n, mother in enumerate(mothers):
        baby = visit_of(
            FACILITY, seed + n, ended, care_type="01", insured=True, appointment=False,
            age_group=0,
        )  # fmt: skip
        row = birth_row(baby, FACILITY, mother)
        row["SO"] = f"{first_number + n:05d}{row['SO'][5:]}"
        baby.tables["XML9"] = [row]
        babies.append(baby)
    return babies


async def _births_of(db: Database, mother: Mother) -> int:
    """The birth certificates in the mother's book."""
    async with db.read_session() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Paper)
            .join(Person, Person.id == Paper.person_id)
            .where(Person.personal_id == mother[0], Paper.kind == "birth")
        )
    return int(found or 0)


Write = Callable[[Database, list[bytes], list[Analysis], IntakeOptions], Awaitable[list[Any]]]


async def _one_file_each(
    db: Database, files: list[bytes], found: list[Analysis], options: IntakeOptions
) -> list[Any]:
    """Each file through ``accept`` (the one-file path: a FHIR visit, a batch retried)."""
    async with db.session() as session:
        return [
            await accept(session, SENDER, f, n, options) for f, n in zip(files, found, strict=True)
        ]


async def _one_batch(
    db: Database, files: list[bytes], found: list[Analysis], options: IntakeOptions
) -> list[Any]:
    """The files as one batch (the HTTP group writer, the import)."""
    async with db.session() as session:
        return await accept_many(
            session, [(SENDER, f, n) for f, n in zip(files, found, strict=True)], options
        )


@pytest.mark.parametrize("write", [_one_file_each, _one_batch], ids=["one_file", "batch"])
def test_newborns_of_two_pending_mothers_in_other_orders_both_land(url: str, write: Write) -> None:
    # A maternity ward sends twins' birth visits: each newborn's visit carries the birth
    # certificate that goes to the mother's book, and the mother (pending: known from her own
    # visit, not yet signed in) is matched only once the newborn's visit is stored. Two writes
    # naming the same two mothers in other orders each held one mother's row and waited for
    # the other's: PostgreSQL ended one (a deadlock).
    options = IntakeOptions(limits=OPTIONS.limits, papers=papers.keys_for(get_settings()))
    ended = local_now() - timedelta(days=20)
    own = [visit_of(FACILITY, seed, ended, care_type="01", age_group=2) for seed in (21, 22)]
    m1, m2 = (who(visit) for visit in own)
    assert m1[0] != m2[0]
    known = synth.envelope(own, FACILITY)
    file_a = synth.envelope(_newborns(31, [m1, m2], 1), FACILITY)  # M1's twin, then M2's
    file_b = synth.envelope(_newborns(41, [m2, m1], 3), FACILITY)  # M2's twin, then M1's

    async def main() -> None:
        a, b, other = (Database.from_urls(url) for _ in range(3))
        try:
            analyses = await _prepared(a, [known, file_a, file_b])
            assert [v.findings.rejected for n in analyses for v in n.visits] == [False] * 6
            async with a.session() as session:  # the mothers become known, pending
                receipt = await accept(session, SENDER, known, analyses[0], options)
            assert _outcomes([receipt]) == ["new", "new"]

            async with other.session() as holding:  # someone holds M1's row for a moment ...
                await holding.execute(
                    text("SELECT id FROM person WHERE personal_id = :p FOR UPDATE"), {"p": m1[0]}
                )
                one = asyncio.create_task(write(a, [file_a], analyses[1:2], options))
                await asyncio.sleep(0.5)
                two = asyncio.create_task(write(b, [file_b], analyses[2:3], options))
                await asyncio.sleep(0.5)
                assert not one.done()
                assert not two.done()
            # ... and lets go: A takes M1 and goes on to M2, whom B holds while it waits for M1
            done = await asyncio.wait_for(asyncio.gather(one, two, return_exceptions=True), 30)
            for result in done:
                assert not isinstance(result, BaseException), repr(result)
            assert _outcomes([*done[0], *done[1]]) == ["new"] * 4
            assert [await _births_of(a, m) for m in (m1, m2)] == [2, 2]
        finally:
            for db in (a, b, other):
                await db.dispose()

    asyncio.run(main())


@pytest.mark.parametrize("write", [_one_file_each, _one_batch], ids=["one_file", "batch"])
def test_new_visits_written_together_and_corrections_file_by_file_both_land(
    url: str, write: Write
) -> None:
    # A batch of new visits written together matched its pending persons in one statement, in
    # the order of their ids, and took no persons' locks; a batch of corrections, written
    # file by file, holds those locks but matches its persons in its files' order. With Y's
    # correction before X's, the corrections held Y (paused by someone holding Y's old
    # version), the new visits held X and waited for Y, and the corrections then waited for
    # X: PostgreSQL ended one (a deadlock). The same new visits as one file (``accept``)
    # match their persons one by one and take the locks.
    x1, x2 = _two_visits_of(15, 7401)
    y1, y2 = _two_visits_of(16, 7501)
    x_id, y_id = (v.tables["XML1"][0]["SO_CCCD"] for v in (x1, y1))
    assert x_id != y_id
    first = synth.envelope([x1, y1], FACILITY)  # X is created before Y
    corrections = [_corrected(y1, "sửa"), _corrected(x1, "sửa")]  # Y's, then X's
    if write is _one_batch:
        new = [synth.envelope([x2], FACILITY), synth.envelope([y2], FACILITY)]
    else:
        new = [synth.envelope([x2, y2], FACILITY)]

    async def main() -> None:
        a, b, other = (Database.from_urls(url) for _ in range(3))
        try:
            analyses = await _prepared(a, [first, *corrections, *new])
            async with a.session() as session:  # X and Y become known, pending
                receipt = await accept(session, SENDER, first, analyses[0], OPTIONS)
            assert _outcomes([receipt]) == ["new", "new"]
            async with a.read_session() as session:
                rows = await session.execute(
                    select(Person.personal_id, Person.id).where(
                        Person.personal_id.in_([x_id, y_id])
                    )
                )
                found = dict(rows.all())
            assert found[x_id] < found[y_id]  # (the new visits lock X first)

            async with other.session() as holding:  # someone holds Y's visit for a moment ...
                await holding.execute(
                    text(
                        "SELECT id FROM visit_version WHERE visit_key = :k AND current FOR UPDATE"
                    ),
                    {"k": y1.ma_lk},
                )
                one = asyncio.create_task(_one_batch(a, corrections, analyses[1:3], OPTIONS))
                await asyncio.sleep(0.5)  # ... the corrections hold Y and wait for it
                two = asyncio.create_task(write(b, new, analyses[3:], OPTIONS))
                await asyncio.sleep(0.5)
                assert not one.done()
                assert not two.done()
            # ... and lets go: the corrections go on to X
            done = await asyncio.wait_for(asyncio.gather(one, two, return_exceptions=True), 30)
            for result in done:
                assert not isinstance(result, BaseException), repr(result)
            assert _outcomes(done[0]) == ["changed", "changed"]
            assert _outcomes(done[1]) == ["new", "new"]
        finally:
            for db in (a, b, other):
                await db.dispose()

    asyncio.run(main())
