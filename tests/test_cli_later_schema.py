"""`vnehr db upgrade` / `downgrade` on a database a later release migrated (D119)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.conftest import new_database_on
from vnehr.cli import app
from vnehr.kit.db import create_engine
from vnehr.kit.migrate import head_revisions
from vnehr.kit.settings import get_settings

runner = CliRunner()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    if request.param == "postgresql":
        address = new_database_on(request.getfixturevalue("postgres_url"), "later")
    else:
        address = f"sqlite+aiosqlite:///{tmp_path / 'later.db'}"
    monkeypatch.setenv("VNEHR_DATABASE_URL", address)
    monkeypatch.setenv("VNEHR_DEFAULT_LANGUAGE", "en")
    get_settings.cache_clear()
    yield address
    get_settings.cache_clear()


def _sql(url: str, *statements: str, stamp: str | None = None) -> list[str]:
    """Run ``statements`` (and mark the database at revision ``stamp``); then the database's
    tables and the revision it is at."""

    async def run() -> list[str]:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(sa.text(statement))
                if stamp is not None:
                    await connection.execute(
                        sa.text("UPDATE alembic_version SET version_num = :stamp"),
                        {"stamp": stamp},
                    )
                tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
                version = (
                    await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
                ).scalar_one()
            return [*sorted(tables), f"at {version}"]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_db_upgrade_and_downgrade_refuse_a_later_releases_schema_in_one_coded_line(
    url: str,
) -> None:
    """The next release migrated the database (its revision, and a table of its own): this
    release cannot move it up or down. Before, Alembic's "Can't locate revision" came out; now
    one coded line names the database's revision and the newest this release knows, exit 2,
    and the later release's schema is left as it was."""
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    [head] = head_revisions()
    newer = f"{int(head) + 1:04d}"
    later = _sql(url, "CREATE TABLE later_release_notes (id INTEGER PRIMARY KEY)", stamp=newer)
    assert "later_release_notes" in later
    for args in (
        ["db", "upgrade"],
        ["db", "upgrade", head],
        ["db", "downgrade", "0001"],
        ["db", "downgrade", "base"],
    ):
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        assert isinstance(done.exception, SystemExit), (args, done.exception)
        assert done.stdout == "", (args, done.output)
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("KIT-0009: "), (args, line)
        assert f"(revision {newer})" in line, (args, line)
        assert f"up to {head} " in line, (args, line)
        assert "later release" in line, (args, line)
        assert _sql(url) == later, args  # nothing created, dropped or stamped
    current = runner.invoke(app, ["db", "current"])  # (reading it still works)
    assert f"current: {newer}" in current.stdout
