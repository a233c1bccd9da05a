"""0030 only adds the timeline's summary-fact columns; `vnehr db backfill-cards` fills them for
the rows stored before, with the cards and categories, a batch per transaction, skipping a
visit it cannot read (D209 as amended)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.kit.test_migration_cards import _DAMAGED, stored_at
from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr import records
from vnehr.cli import app as cli
from vnehr.kit.clock import vietnam_moment
from vnehr.kit.db import create_engine, pack_json
from vnehr.kit.migrate import downgrade, upgrade
from vnehr.kit.settings import get_settings


async def _facts(url: str) -> dict[int, records.Facts | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text(
                    "SELECT id, version_id, summary_facts, summary_version"
                    " FROM timeline_entry ORDER BY id"
                )
            )
            return {row.id: records.row_facts(row) for row in found}
    finally:
        await engine.dispose()


def test_0030_adds_the_columns_and_the_backfill_fills_them(
    empty_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = empty_url
    xml1 = {
        "MA_BENH_CHINH": "I10",
        "MA_BENH_KT": "E11.9",
        "CHAN_DOAN_RV": "Tăng huyết áp; Đái tháo đường",
        "NHOM_MAU": "O",
        "CAN_NANG": "61.5",
        "MA_THE_BHYT": "",
        "HO_TEN": "not kept",
    }
    given: dict[int, dict[str, Any]] = {
        1: {"XML1": [xml1], "XML2": [{"TEN_THUOC": "Amlodipin", "NGAY_YL": "202611200830"},
                                     {"TEN_THUOC": "Metformin", "NGAY_YL": "202611210800"}]},
        2: {"XML1": [{**xml1, "CHAN_DOAN_RV": "Words for neither code", "NHOM_MAU": ""}]},
        3: {"XML1": [xml1]},  # its stored tables damaged
    }  # fmt: skip
    stored = {
        key: (False, _DAMAGED if key == 3 else pack_json(tables)) for key, tables in given.items()
    }
    asyncio.run(stored_at(url, "0029", stored))
    # the upgrade reads no visit: a damaged one does not stop it, and nothing is filled yet
    asyncio.run(upgrade(url))
    assert asyncio.run(_facts(url)) == dict.fromkeys(given)

    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        done = runner.invoke(cli, ["db", "backfill-cards", "--batch", "2"])
        assert done.exit_code == 0, done.output
        assert "2 timeline row(s) filled" in done.output
        assert "1 skipped" in done.output
        kept = {k: v for k, v in xml1.items() if k not in ("MA_THE_BHYT", "HO_TEN")}
        assert asyncio.run(_facts(url)) == {
            1: records.Facts(
                kept,
                vietnam_moment("202611210800"),
                orders=tuple((vietnam_moment(at), 1) for at in ("202611210800", "202611200830")),
            ),
            2: records.Facts(
                {k: v for k, v in kept.items() if k not in ("CHAN_DOAN_RV", "NHOM_MAU")}, None
            ),
            3: None,
        }
        again = runner.invoke(cli, ["db", "backfill-cards"])
        assert again.exit_code == 0, again.output
        assert "0 timeline row(s) filled" in again.output
        assert "1 skipped" in again.output
    finally:
        get_settings.cache_clear()
    asyncio.run(downgrade(url, "0029"))
    asyncio.run(upgrade(url))
    assert asyncio.run(_facts(url)) == dict.fromkeys(given)
