"""The group-commit queue never leaves a request waiting (D49)."""

from __future__ import annotations

import asyncio

import pytest

from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
from vnehr.submissions import IntakeOptions, Limits
from vnehr.submissions.queue import IntakeQueue
from vnehr.submissions.service import Analysis

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
