"""The group-commit queue never leaves a request waiting (D49)."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import zstandard
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs
from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import IntakeOptions, Limits, synth
from vnehr.submissions.queue import IntakeQueue
from vnehr.submissions.service import Analysis, prepare

SENDER = Subject("facility_system", "his", "HIS", scopes=frozenset({"submission.write"}),
                 facility_code="01001")  # fmt: skip


async def test_closing_answers_the_files_still_waiting(db: Database) -> None:
    queue = IntakeQueue(db, max_wait=5.0)  # the batch would wait for others for 5 s
    options = IntakeOptions(limits=Limits())
    waiting = asyncio.create_task(queue.accept(SENDER, b"<x/>", Analysis("01001"), options))
    await asyncio.sleep(0.05)  # taken by the writer, which waits for more
    await queue.close()
    with pytest.raises(RuntimeError, match="writer stopped"):
        await asyncio.wait_for(waiting, 2)


def test_files_prepared_in_parallel_threads_keep_their_own_raw_copy(tmp_path: Path) -> None:
    """The HTTP intake prepares files in many threads at once (the digest and zstd copy of the
    raw bytes with the analysis): each file keeps exactly its own bytes."""
    synth.write_files(tmp_path, 12, seed=5, facility_code="01001")
    files = [p.read_bytes() for p in sorted(tmp_path.glob("*.xml"))] * 4
    codes = catalogs.offline()
    with ThreadPoolExecutor(8) as pool:
        prepared = list(pool.map(lambda d: prepare(d, codes=codes, limits=Limits()), files))
    for data, analysis in zip(files, prepared, strict=True):
        assert analysis.raw_sha256 == hashlib.sha256(data).hexdigest()
        assert zstandard.ZstdDecompressor().decompress(analysis.raw_zstd) == data


def test_an_analysis_sent_between_processes_arrives_whole(tmp_path: Path) -> None:
    """The import's parse processes send analyses back pickled (the tables as JSON inside)."""
    synth.write_files(tmp_path, 6, seed=9, facility_code="01001", defect_rate=0.5)
    codes = catalogs.offline()
    for path in sorted(tmp_path.glob("*.xml")):
        sent = prepare(path.read_bytes(), codes=codes, limits=Limits())
        came = pickle.loads(pickle.dumps(sent))  # noqa: S301 (our own bytes)
        assert came == sent
        assert [list(v.tables) for v in came.visits] == [list(v.tables) for v in sent.visits]
        assert [v.status for v in came.visits] == [v.status for v in sent.visits]


async def test_files_written_together_keep_their_order_around_one_written_alone(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # File 1 (a new visit) goes alone, its correction being in the same batch (file 3); file 2
    # (the same person's next visit, under another spelling of the name) could be written
    # with others. Before, the together-files were written first: the person took file 2's
    # name, and file 2 was received before file 1.
    import copy

    from sqlalchemy import select

    from tests.healthbook.test_api import visit_of
    from tests.submissions.test_intake import ENDED, facility_with_token
    from vnehr.identity.models import Person
    from vnehr.submissions.service import accept_many

    code, _ = await facility_with_token(client, session, settings)
    sender = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=code
    )
    first = visit_of(code, 71, ENDED)
    second = visit_of(code, 72, ENDED, first)
    second.tables["XML1"][0]["HO_TEN"] = "Tên Khác Hẳn"
    corrected = copy.deepcopy(first)
    corrected.tables["XML1"][0]["GHI_CHU"] = "sửa lại"
    codes = await catalogs.codebook(session)
    files = [
        (sender, data, prepare(data, codes=codes, limits=Limits()))
        for data in (synth.envelope([v], code) for v in (first, second, corrected))
    ]
    receipts = await accept_many(session, files, IntakeOptions(limits=Limits()))
    assert [r["visits"][0]["outcome"] for r in receipts] == ["new", "new", "changed"]
    received = [r["received_at"] for r in receipts]
    assert received == sorted(received)
    person = (
        await session.scalars(
            select(Person).where(Person.personal_id == first.tables["XML1"][0]["SO_CCCD"])
        )
    ).one()
    assert person.full_name == first.tables["XML1"][0]["HO_TEN"]


async def test_a_card_lookup_that_fails_midway_is_asked_again_on_the_retry(
    session: AsyncSession,
) -> None:
    # The answers are kept once every card is answered: a lookup that raised (the batch then
    # fails and its files are retried one by one) must not leave the visit marked as checked.
    from vnehr.submissions.service import VisitAnalysis, _check_cards

    visit = synth.make_visit(random.Random(3), facility_code="01001", insured=True)
    [checked] = prepare(synth.envelope([visit], "01001"), codes=catalogs.offline(),
                        limits=Limits()).visits  # fmt: skip
    assert isinstance(checked, VisitAnalysis)
    calls: list[str] = []

    async def portal(card: str, name: str, born: str) -> str | None:
        calls.append(card)
        if len(calls) == 1:
            raise ValueError("not JSON")  # the portal's answer could not be read
        return None  # then: cannot answer

    with pytest.raises(ValueError, match="not JSON"):
        await _check_cards(session, checked, portal)
    await _check_cards(session, checked, portal)
    await _check_cards(session, checked, portal)  # (a third attempt asks no more)
    assert len(calls) == 2
    assert [i.code for i in checked.findings.issues] == ["SUB-0161"]


async def test_an_idle_writer_ends_and_the_next_file_starts_another(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue whose app never ran its shutdown (no ``close``) leaves no writer pending once
    idle; a file after that is still written, by a new writer."""
    from vnehr.submissions import queue as queue_module

    monkeypatch.setattr(queue_module, "IDLE_SECONDS", 0.05)
    queue = IntakeQueue(db, max_wait=0)
    options = IntakeOptions(limits=Limits())

    async def send() -> object:
        try:  # (an empty analysis: what matters is that an answer comes)
            return await asyncio.wait_for(
                queue.accept(SENDER, b"<x/>", Analysis("01001"), options), 5
            )
        except TimeoutError:
            raise
        except Exception as exc:  # noqa: BLE001
            return exc

    first = await send()
    writer = queue._writer
    assert writer is not None
    await asyncio.sleep(0.3)
    assert writer.done()  # ended,
    assert writer.exception() is None  # not failed
    second = await send()
    assert type(second) is type(first)
    assert queue._writer is not writer
    await queue.close()
