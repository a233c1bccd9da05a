"""The group-commit queue never leaves a request waiting (D49)."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zstandard

from vnehr import catalogs
from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
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
