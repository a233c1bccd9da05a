"""0025 only adds the timeline's sensitive-category columns; `vnehr db backfill-cards` fills
them for the rows stored before, with the cards, a batch per transaction, skipping a visit it
cannot read (D132 as amended)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.kit.test_migration_cards import _DAMAGED, stored_at
from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr.cli import app as cli
from vnehr.kit.db import create_engine, pack_json
from vnehr.kit.migrate import downgrade, upgrade
from vnehr.kit.settings import get_settings


async def _rows(url: str) -> dict[int, tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT id, sensitive_categories, sensitive_version, insurance_cards"
                    " FROM timeline_entry ORDER BY id"
                )
            )
            return {row[0]: tuple(row[1:]) for row in found}
    finally:
        await engine.dispose()


def test_0025_adds_the_columns_and_the_backfill_fills_them(
    empty_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = empty_url
    xml1 = {"MA_BENH_CHINH": "J45.0", "MA_BENH_KT": "", "MA_THE_BHYT": ""}
    given: dict[int, dict[str, Any]] = {
        1: {"XML1": [xml1]},  # nothing sensitive
        2: {"XML1": [{**xml1, "MA_BENH_CHINH": "F32.2"}]},
        3: {"XML1": [{**xml1, "MA_BENH_KT": "Z30.0;A15.0"}], "XML6": [{"MA_LK": "LK3"}]},
        4: {"XML1": [xml1]},  # its stored tables damaged
        5: {"XML1": [{**xml1, "MA_THE_BHYT": "GD4010124121005"}]},  # insured, not sensitive
    }

    stored = {
        key: (bool(tables["XML1"][0]["MA_THE_BHYT"]), _DAMAGED if key == 4 else pack_json(tables))
        for key, tables in given.items()
    }
    asyncio.run(stored_at(url, "0024", stored))
    # the upgrade reads no visit: a damaged one does not stop it, and nothing is filled yet
    asyncio.run(upgrade(url))
    assert asyncio.run(_rows(url)) == dict.fromkeys(given, (None, None, None))

    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        done = runner.invoke(cli, ["db", "backfill-cards", "--batch", "2"])
        assert done.exit_code == 0, done.output
        assert "4 timeline row(s) filled" in done.output
        assert "1 skipped" in done.output
        assert asyncio.run(_rows(url)) == {
            1: ("2|", 1, None),
            2: ("2|mental", 2, None),
            3: ("2|hiv;reproductive;tb", 3, None),
            4: (None, None, None),
            5: ("2|", 5, "GD4010124121005"),
        }
        again = runner.invoke(cli, ["db", "backfill-cards"])
        assert again.exit_code == 0, again.output
        assert "0 timeline row(s) filled" in again.output
        assert "1 skipped" in again.output
    finally:
        get_settings.cache_clear()
    asyncio.run(downgrade(url, "0024"))
    asyncio.run(upgrade(url))
    assert asyncio.run(_rows(url))[2] == (None, None, None)
