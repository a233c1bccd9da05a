"""Papers issued together are counted in the six-monthly report together, as visits are (D113,
D121): the papers of the visit files an intake batch writes together are added by the batch,
with its visits, in one statement in its transaction, and their events then count nothing
again; the papers a worker round takes are added by the round in one statement. Either way
the rollups equal the recount of the stored rows."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.papers.test_api import SCOPES, driver_body, local_now
from tests.papers.test_issuing import birth_row
from tests.reporting.test_intake_counts import PERIOD, report_writes  # noqa: F401  (the fixture)
from tests.reporting.test_report import deliver
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange, reporting
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import synth

MOTHER = ("001195022222", "Đỗ Thị Mẹ", "1995-02-02", "female")


def with_papers(code: str, count: int) -> list[bytes]:
    """``count`` one-visit files of this facility from the last days: discharge papers
    (inpatients), re-exam appointments (insured outpatients), visits without a paper, one in
    seven rejected (a bad ICD-10 code); and a newborn's visit whose birth paper names the
    mother (written on its own within the batch: someone else's paper)."""
    files = []
    for n in range(count):
        ended = local_now() - timedelta(days=3 + n % 4, minutes=n)
        if n % 7 == 6:
            one = synth.make_visit(
                random.Random(n), facility_code=code, defect="bad_icd", ended=ended
            )
        elif n % 3 == 0:
            one = visit_of(code, 700 + n, ended, care_type="03", insured=True, referral=False)
        elif n % 3 == 1:
            one = visit_of(code, 700 + n, ended, care_type="01", insured=True, appointment=True)
        else:
            one = visit_of(code, 700 + n, ended, care_type="02", insured=False)
        files.append(synth.envelope([one], code))
    baby = visit_of(
        code, 799, local_now() - timedelta(days=2), care_type="01", insured=True,
        appointment=False, age_group=0,
    )  # fmt: skip
    baby.tables["XML9"] = [birth_row(baby, code, MOTHER)]
    files.append(synth.envelope([baby], code))
    return files


async def test_papers_sent_together_are_in_the_report_when_their_batch_commits(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    report_writes: list[str],  # noqa: F811
) -> None:
    from vnehr.submissions import queue

    batches: list[int] = []
    real = queue.accept_many

    async def counted(session: AsyncSession, files: list[Any], options: Any) -> Any:
        batches.append(len(files))
        return await real(session, files, options)

    monkeypatch.setattr(queue, "accept_many", counted)
    monkeypatch.setattr(settings, "intake_batch_wait_ms", 300.0)  # a burst is one batch here
    senders = [await facility_with_token(client, session, settings) for _ in range(2)]
    files = [(headers, body) for code, headers in senders for body in with_papers(code, 14)]
    answers = await asyncio.gather(*(send(client, headers, body) for headers, body in files))
    assert [a.status_code for a in answers] == [201] * len(files), [a.text for a in answers]
    assert max(batches) > 1, "files that arrived together were written together"
    issued = int(await session.scalar(select(func.count()).select_from(Paper)) or 0)
    kinds = set(await session.scalars(select(Paper.kind)))
    assert issued >= 12
    assert kinds == {"discharge", "re_exam", "birth"}  # the birth paper: written on its own

    # no event delivered: the rollups already hold every paper, with the visits
    assert await reporting.check(session, PERIOD, None) == []
    kept = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    assert sum(kept["papers"].values()) == issued
    assert len(report_writes) <= len(batches), "one statement per batch, papers included"
    written = len(report_writes)
    # delivering the events now counts nothing twice, and writes no counter
    await deliver(db)
    assert await reporting.check(session, PERIOD, None) == []
    assert len(report_writes) == written


async def test_papers_a_round_takes_are_added_in_one_statement(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    report_writes: list[str],  # noqa: F811
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    for n in range(12):  # each in its own transaction: twelve paper.issued events
        holder = {**driver_body()["holder"], "personal_id": f"0010900{n:05d}"}
        made = await client.post("/api/v1/papers", json=driver_body(holder=holder), headers=headers)
        assert made.status_code == 201, made.text
    consumers = {topic: {"report": h} for topic, h in reporting.consumers().items()}
    assert await exchange.deliver_once(db, consumers, exchange.Policy(), limit=200) >= 12
    assert await reporting.check(session, PERIOD, None) == []
    kept = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    assert kept["papers"]["driver"] == 12
    assert len(report_writes) == 1, "twelve papers of one round: one statement"
