"""The visits a batch writes together (the HTTP intake's group commit, `vnehr import`) are in the
six-monthly report as soon as the batch commits, added by the batch in one statement (D113):
the report's counters (visits, rejections and the papers the visits issued) then equal a recount
of the stored rows without any event delivered, and delivering the events afterwards counts
nothing twice."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.healthbook.test_api import visit_of
from tests.reporting.test_report import deliver
from tests.submissions.test_intake import connect, facility_with_token, send
from vnehr import reporting
from vnehr.cli import app
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings, get_settings
from vnehr.papers.models import Paper
from vnehr.reporting.metrics import Period
from vnehr.submissions import synth

PERIOD = Period.parse("2026H2")
CARE = ["01", "02", "03", "04", "07", "09", "01", "03", "02"]
runner = CliRunner()


def mixed(codes: list[str], count: int) -> list[tuple[str, bytes]]:
    """``count`` one-visit files over these facilities: every kind of care, insured or not,
    July to November, one in seven rejected (a bad ICD-10 code)."""
    files = []
    for n in range(count):
        code = codes[n % len(codes)]
        ended = datetime(2026, 7 + n % 5, 1 + n % 20, 8 + n % 12, n % 60)  # noqa: DTZ001
        if n % 7 == 6:
            one = synth.make_visit(
                random.Random(n), facility_code=code, defect="bad_icd", ended=ended
            )
        else:
            one = visit_of(code, 500 + n, ended, care_type=CARE[n % len(CARE)],
                           insured=n % 3 != 0)  # fmt: skip
            if n % 5 == 0:
                one.tables.pop("XML8", None)
        files.append((code, synth.envelope([one], code)))
    return files


@pytest.fixture
def report_writes(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements that write the report's counters, as the database receives them."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if "report_count" in statement and statement.lstrip().upper().startswith("INSERT"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_visits_sent_together_are_in_the_report_when_their_batch_commits(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    report_writes: list[str],
) -> None:
    from vnehr.submissions import queue

    batches: list[int] = []
    real = queue.accept_many

    async def counted(session: AsyncSession, files: list[Any], options: Any) -> Any:
        batches.append(len(files))
        return await real(session, files, options)

    monkeypatch.setattr(queue, "accept_many", counted)
    monkeypatch.setattr(settings, "intake_batch_wait_ms", 300.0)  # a burst is one batch here
    senders = [await facility_with_token(client, session, settings) for _ in range(3)]
    headers = dict(senders)
    files = mixed([code for code, _ in senders], 42)
    answers = await asyncio.gather(*(send(client, headers[code], body) for code, body in files))
    assert [a.status_code for a in answers] == [201] * len(files), [a.text for a in answers]
    statuses = [a.json()["visits"][0]["status"] for a in answers]
    assert statuses.count("rejected") == 6
    assert max(batches) > 1, "files that arrived together were written together"

    # no event delivered: the rollups already hold every visit and rejection
    assert await reporting.check(session, PERIOD, None) == []
    kept = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    assert kept["totals"]["sent"] == 36
    assert kept["quality"]["rejected_visits"] == 6
    assert len(report_writes) <= len(batches), "one statement per batch"
    # delivering the events now counts nothing twice
    await deliver(db)
    assert await reporting.check(session, PERIOD, None) == []


def _prepare(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0

    async def ready() -> None:
        db = Database.from_urls(url)
        try:
            async with db.session() as session:
                for code in ("01002", "01003"):  # onboarding in the demo: connected now
                    await connect(session, code)
            await deliver(db)  # the demo's own visits, in the report from their events
        finally:
            await db.dispose()

    asyncio.run(ready())


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_an_imported_folder_is_in_the_report_when_its_batches_commit(
    store: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store == "postgresql":
        url = new_database_on(postgres_url, "counts")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'counts.db'}"
    _prepare(url, monkeypatch)
    folder = tmp_path / "files"
    folder.mkdir()
    for n, (code, body) in enumerate(mixed(["01001", "01002", "01003"], 60)):
        (folder / f"GIAMDINHHS_{code}_{n:05d}.xml").write_bytes(body)
    began = utcnow()
    result = runner.invoke(app, ["import", str(folder), "--batch-size", "25", "--processes", "2"])
    assert result.exit_code == 1, result.output  # the folder holds rejected visits
    assert "files 60, skipped 0, refused 0" in result.output
    # no event delivered: visits, rejections and the papers they issued are counted
    checked = runner.invoke(app, ["report", "check", "--period", "2026H2"])
    assert checked.exit_code == 0, checked.output

    async def delivered() -> int:
        db = Database.from_urls(url)
        try:
            async with db.session() as session:
                issued = await session.scalar(
                    select(func.count()).select_from(Paper).where(Paper.issued_at >= began)
                )
            await deliver(db)
            return int(issued or 0)
        finally:
            await db.dispose()

    assert asyncio.run(delivered()) > 0, "the folder's visits issued papers"
    again = runner.invoke(app, ["report", "check", "--period", "2026H2"])
    assert again.exit_code == 0, again.output
    get_settings.cache_clear()
