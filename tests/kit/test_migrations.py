"""One migration history, correct on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, column, inspect, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import new_database_on
from vnehr.kit.db import JSONDoc, create_engine
from vnehr.kit.migrate import (
    NUMBERED,
    alembic_config,
    current_revisions,
    downgrade,
    head_revisions,
    upgrade,
)
from vnehr.models import metadata
from vnehr.records.models import VisitVersion


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_models(session: AsyncSession) -> None:
    connection = await session.connection()
    assert await connection.run_sync(_diff) == []
    assert await current_revisions(connection) == head_revisions()


async def test_history_goes_down_to_nothing_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await upgrade(url)
    await downgrade(url, "base")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert set(tables) <= {"alembic_version"}
    finally:
        await engine.dispose()
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            assert await current_revisions(connection) == head_revisions()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("revision", sorted(head_revisions()))
def test_heads_are_single(revision: str) -> None:
    assert len(head_revisions()) == 1, "two migration heads: merge them"
    assert revision


def test_revisions_are_numbered_in_order() -> None:
    """A release tells a later release's schema by its revision's number (D119): each
    revision is four digits, one more than the one it follows."""
    script = ScriptDirectory.from_config(alembic_config())
    for revision in script.walk_revisions():
        assert NUMBERED.fullmatch(revision.revision), revision.revision
        if revision.down_revision is not None:
            assert int(revision.revision) == int(str(revision.down_revision)) + 1


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of its own, on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'visits.db'}"
    return new_database_on(request.getfixturevalue("postgres_url"), "packed")


async def test_visit_tables_survive_the_change_to_packed_json(empty_url: str) -> None:
    """0016 moves stored visits' tables from JSON to zstd-compressed JSON, and back."""
    url = empty_url
    tables = {"XML1": [{"MA_LK": "LK1", "HO_TEN": "Nguyễn Thị Ánh", "GHI_CHU": "<x> & \"y\""}],
              "XML2": [{"MA_THUOC": "40.17", "SO_LUONG": "10.000"}] * 3}  # fmt: skip
    await upgrade(url, "0015")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO visit_version (facility_code, visit_key, version, current,"
                    " test_mode, submission_id, content_sha256, insured, has_summary,"
                    " received_at, tables) VALUES ('01001', 'LK1', 1, true, false, 's', 'h',"
                    " false, false, CURRENT_TIMESTAMP, :tables)"
                ).bindparams(bindparam("tables", type_=JSONDoc)),
                {"tables": tables},
            )
    finally:
        await engine.dispose()
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with AsyncSession(engine) as session:
            version = (await session.scalars(select(VisitVersion))).one()
            assert version.tables == tables
            raw = await session.scalar(text("SELECT tables FROM visit_version"))
            assert bytes(raw)[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    finally:
        await engine.dispose()
    await downgrade(url, "0015")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            stored = await connection.scalar(
                select(column("tables", JSONDoc)).select_from(table("visit_version"))
            )
            assert stored == tables
    finally:
        await engine.dispose()


_NEW_FILE = (
    "INSERT INTO submission (id, kind, facility_code, client_id, received_at, status, test_mode,"
    " visits, accepted, rejected, raw_sha256, raw_size, raw_zstd, receipt) VALUES"
    " ($1, 'giamdinhhs', '01001', 'c', now(), 'done', false, 1, 1, 0, 'x', 1, '\\x00', '{}')"
)


async def test_the_recount_indexes_are_built_without_holding_up_the_intake(
    postgres_url: str,
) -> None:
    """0022 on PostgreSQL builds its indexes concurrently: a file received meanwhile is stored
    at once, not after the whole build (here the build waits for a transaction still open)."""
    import asyncio

    import asyncpg

    url = await asyncio.to_thread(new_database_on, postgres_url, "recount")
    await upgrade(url, "0021")
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    open_tx, intake = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        held = open_tx.transaction()
        await held.start()
        await open_tx.execute(_NEW_FILE, "before")  # a transaction still open
        migration = asyncio.create_task(upgrade(url, "0022"))
        for _ in range(200):  # until the build has begun (and waits)
            waiting = await intake.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX%'"
                " AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting
        await asyncio.wait_for(intake.execute(_NEW_FILE, "meanwhile"), 3)
        await held.commit()
        await asyncio.wait_for(migration, 30)
        valid = await intake.fetch(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE c.relname IN"
            " ('ix_submission_rejected_received', 'ix_paper_first_issued') ORDER BY 1"
        )
        assert [tuple(r) for r in valid] == [
            ("ix_paper_first_issued", True),
            ("ix_submission_rejected_received", True),
        ]
    finally:
        await open_tx.close()
        await intake.close()


async def test_an_index_left_invalid_by_a_failed_build_is_built_again(postgres_url: str) -> None:
    """A concurrent build that failed (cancelled, the server stopped) leaves an invalid index
    of the same name: the next upgrade drops it and builds it again."""
    import asyncio

    import asyncpg

    url = await asyncio.to_thread(new_database_on, postgres_url, "invalid")
    await upgrade(url, "0021")
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE INDEX ix_submission_rejected_received ON submission (received_at)"
        )
        await connection.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
            " 'ix_submission_rejected_received'::regclass"
        )
        await upgrade(url, "0022")
        found = await connection.fetchrow(
            "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i"
            " WHERE indexrelid = 'ix_submission_rejected_received'::regclass"
        )
        assert found["indisvalid"]
        assert "(received_at, id) WHERE (rejected > 0)" in found["definition"]
    finally:
        await connection.close()
