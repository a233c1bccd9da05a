"""One migration history, correct on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.kit.db import create_engine
from vnehr.kit.migrate import current_revisions, downgrade, head_revisions, upgrade
from vnehr.models import metadata


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
