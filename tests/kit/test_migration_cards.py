"""0024 only adds the timeline's insurance-card columns (instant, whatever the table holds);
`vnehr db backfill-cards` fills the rows stored before it, a batch per transaction, skipping a
visit it cannot read (D114)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, text
from typer.testing import CliRunner

from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr.cli import app as cli
from vnehr.kit.db import create_engine, pack_json
from vnehr.kit.migrate import downgrade, upgrade
from vnehr.kit.settings import get_settings

_VERSION = (
    "INSERT INTO visit_version (id, facility_code, visit_key, version, current, test_mode,"
    " submission_id, content_sha256, insured, has_summary, received_at, tables) VALUES"
    " (:id, '01001', :key, 1, true, false, 's', :key, :insured, false, CURRENT_TIMESTAMP, :tables)"
)
_ENTRY = (
    "INSERT INTO timeline_entry (id, facility_code, visit_key, version_id, insured, version)"
    " VALUES (:id, '01001', :key, :id, :insured, 1)"
)
#: Not a zstd frame the reader can open (a damaged blob, ZstdError).
_DAMAGED = b"\x28\xb5\x2f\xfd damaged"


async def stored_at(url: str, revision: str, visits: dict[int, tuple[bool, bytes]]) -> None:
    """The schema at ``revision``, holding one visit and its timeline row per ``visits`` entry
    (id: insured, packed tables), written as a release of that revision wrote them."""
    await upgrade(url, revision)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for key, (insured, packed) in visits.items():
                values = {"id": key, "key": f"LK{key}", "insured": insured}
                await connection.execute(
                    text(_VERSION).bindparams(bindparam("tables")), {**values, "tables": packed}
                )
                await connection.execute(text(_ENTRY), values)
    finally:
        await engine.dispose()


async def _cards(url: str) -> dict[int, str | None]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT id, insurance_cards FROM timeline_entry ORDER BY id")
            )
            return {row[0]: row[1] for row in found}
    finally:
        await engine.dispose()


def test_0024_adds_the_columns_and_the_backfill_fills_them(
    empty_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = empty_url
    given = {
        1: "GD4010124121004",
        2: " GD4010124121002 ; GD4010124121003",  # two cards, spaced as a facility may send
        3: "",  # uninsured
        4: "HT3010124121009",
        5: "GD4010124121005",  # its stored tables damaged
        6: "GD4010124121006",
    }

    stored = {
        key: (
            bool(card.strip()),
            _DAMAGED
            if key == 5
            else pack_json({"XML1": [{"MA_LK": f"LK{key}", "MA_THE_BHYT": card}]}),
        )
        for key, card in given.items()
    }
    asyncio.run(stored_at(url, "0023", stored))
    # the upgrade reads no visit: a damaged one does not stop it, and nothing is filled yet
    asyncio.run(upgrade(url))
    assert asyncio.run(_cards(url)) == dict.fromkeys(given)

    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        done = runner.invoke(cli, ["db", "backfill-cards", "--batch", "2"])
        assert done.exit_code == 0, done.output
        # (the uninsured row too: its sensitive categories, 0025)
        assert "5 timeline row(s) filled" in done.output
        assert "1 skipped" in done.output
        assert asyncio.run(_cards(url)) == {
            1: "GD4010124121004",
            2: "GD4010124121002;GD4010124121003",
            3: None,
            4: "HT3010124121009",
            5: None,
            6: "GD4010124121006",
        }
        # run again (resumed, or after an interruption): only the damaged row is left
        again = runner.invoke(cli, ["db", "backfill-cards"])
        assert again.exit_code == 0, again.output
        assert "0 timeline row(s) filled" in again.output
        assert "1 skipped" in again.output
    finally:
        get_settings.cache_clear()
    asyncio.run(downgrade(url, "0023"))
