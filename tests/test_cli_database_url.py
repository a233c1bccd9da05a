"""A database URL naming a driver vnehr does not use (``postgresql://``, which SQLAlchemy reads
as psycopg, ``mysql://``, plain ``sqlite://``) is said in one coded line, exit 2, by every
command that opens the database, not a traceback of a missing module (D85)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import _start


@pytest.mark.parametrize(
    "args", [["worker"], ["serve", "--port", "8123"], ["outbox", "list"], ["db", "upgrade"]]
)
def test_a_database_url_without_the_async_driver_is_one_coded_line(
    args: list[str], tmp_path: Path
) -> None:
    for url, named in (
        ("postgresql://vnehr:s3cret-pw@127.0.0.1:1/vnehr", "postgresql://"),
        ("mysql://vnehr:s3cret-pw@127.0.0.1:1/vnehr", "mysql://"),
        ("postgresql+psycopg2://vnehr:s3cret-pw@127.0.0.1:1/vnehr", "postgresql+psycopg2://"),
        (f"sqlite:///{tmp_path / 'vnehr.db'}", "sqlite://"),
    ):
        code, lines = _start(args, url, language="en")
        assert (code, len(lines)) == (2, 1), (args, url, lines)
        assert lines[0].startswith(f"KIT-0007: VNEHR_DATABASE_URL names {named}:"), lines
        assert "postgresql+asyncpg://" in lines[0], lines
        assert "s3cret" not in lines[0]
    assert not (tmp_path / "vnehr.db").exists()  # no empty SQLite file left behind
    code, lines = _start(args, "postgresql://vnehr:s3cret-pw@127.0.0.1:1/vnehr")
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0].startswith("KIT-0007: VNEHR_DATABASE_URL dùng postgresql://"), lines
