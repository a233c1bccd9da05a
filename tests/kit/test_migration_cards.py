"""0024 fills the insurance cards of the timeline rows already stored (D114)."""

from __future__ import annotations

from sqlalchemy import bindparam, text

from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr.kit.db import create_engine, pack_json
from vnehr.kit.migrate import downgrade, upgrade

_VERSION = (
    "INSERT INTO visit_version (id, facility_code, visit_key, version, current, test_mode,"
    " submission_id, content_sha256, insured, has_summary, received_at, tables) VALUES"
    " (:id, '01001', :key, 1, true, false, 's', :key, :insured, false, CURRENT_TIMESTAMP, :tables)"
)
_ENTRY = (
    "INSERT INTO timeline_entry (id, facility_code, visit_key, version_id, insured, version)"
    " VALUES (:id, '01001', :key, :id, :insured, 1)"
)


async def test_the_cards_of_stored_visits_are_filled(empty_url: str) -> None:  # noqa: F811
    url = empty_url
    given = {
        1: "GD4010124121004",
        2: " GD4010124121002 ; GD4010124121003",  # two cards, spaced as a facility may send
        3: "",  # uninsured
        4: "HT3010124121009",
    }
    await upgrade(url, "0023")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for key, card in given.items():
                values = {"id": key, "key": f"LK{key}", "insured": bool(card.strip())}
                tables = {"XML1": [{"MA_LK": f"LK{key}", "MA_THE_BHYT": card}]}
                await connection.execute(
                    text(_VERSION).bindparams(bindparam("tables")),
                    {**values, "tables": pack_json(tables)},
                )
                await connection.execute(text(_ENTRY), values)
    finally:
        await engine.dispose()
    await upgrade(url, "0024")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = dict(
                (
                    await connection.execute(
                        text("SELECT id, insurance_cards FROM timeline_entry ORDER BY id")
                    )
                ).all()
            )
    finally:
        await engine.dispose()
    assert found == {
        1: "GD4010124121004",
        2: "GD4010124121002;GD4010124121003",
        3: None,
        4: "HT3010124121009",
    }
    await downgrade(url, "0023")
