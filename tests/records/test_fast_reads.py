"""The citizen's own timeline through the plain asyncpg pool (PostgreSQL's hot path) gives
exactly what the session path gives, page by page. Committed data (the pool cannot see a test's
open transaction), removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vnehr import identity, records
from vnehr.kit.db import Database

FACILITY = "99001"
PERSONAL_ID = "001099000777"


@pytest.fixture
async def committed(postgres_url: str, engine: AsyncEngine) -> AsyncIterator[Database]:
    """A database with 25 committed visits of one person (``engine`` has migrated it)."""
    db = Database.from_urls(postgres_url)
    try:
        async with db.session() as session:
            person = await identity.match_patient(
                session, personal_id=PERSONAL_ID, full_name="Phạm Văn Nhanh",
                birth_date=None, sex="male", source="test",
            )  # fmt: skip
            start = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
            for n in range(25):
                ended = start + timedelta(days=n // 2)  # pairs end at the same moment
                await records.store(
                    session,
                    records.VisitData(
                        facility_code=FACILITY, visit_key=f"FAST-{n}", tables={"XML1": [{}]},
                        content_sha256=f"{n:064d}", submission_id="test", received_at=ended,
                        person_id=person, care_type="01", main_diagnosis="J18.9",
                        started_at=ended - timedelta(hours=1), ended_at=ended,
                    ),
                )  # fmt: skip
        yield db
    finally:
        async with db.session() as session:
            await session.execute(
                text("DELETE FROM timeline_entry WHERE facility_code = :f"), {"f": FACILITY}
            )
            await session.execute(
                text("DELETE FROM visit_version WHERE facility_code = :f"), {"f": FACILITY}
            )
            await session.execute(
                text("DELETE FROM person WHERE personal_id = :p"), {"p": PERSONAL_ID}
            )
        await db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_pool_path_and_the_session_path_agree(committed: Database) -> None:
    assert committed.fast_reads is not None
    pages: dict[str, list[list[tuple[object, ...]]]] = {"fast": [], "session": []}
    for how in pages:
        after = None
        while True:
            if how == "fast":
                rows = await records.own_timeline(
                    None, committed.fast_reads, PERSONAL_ID, after=after, limit=10
                )
            else:
                async with committed.read_session() as session:
                    rows = await records.own_timeline(
                        session, None, PERSONAL_ID, after=after, limit=10
                    )
            if not rows:
                break
            # both are read by position, in records.TIMELINE_COLUMNS order
            pages[how].append([tuple(r) for r in rows])
            last = dict(zip(records.TIMELINE_COLUMNS, rows[-1], strict=True))
            after = (last["ended_at"], last["id"])
    assert pages["fast"] == pages["session"]
    flat = [row for page in pages["fast"] for row in page]
    assert [len(p) for p in pages["fast"]] == [10, 10, 5]
    assert len({r[0] for r in flat}) == 25
    ended = [r[records.TIMELINE_COLUMNS.index("ended_at")] for r in flat]
    assert ended == sorted(ended, reverse=True)
    assert {r[records.TIMELINE_COLUMNS.index("care_type")] for r in flat} == {"01"}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_fast_pool_cannot_write(committed: Database) -> None:
    """Its connections are read-only in the database itself, whatever a caller sends."""
    import asyncpg

    assert committed.fast_reads is not None
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await committed.fast_reads.fetch_tuples(
            text("DELETE FROM person WHERE personal_id = :p"), p=PERSONAL_ID
        )
    rows = await records.own_timeline(None, committed.fast_reads, PERSONAL_ID, after=None, limit=5)
    assert len(rows) == 5  # the pool still serves after the refusal
