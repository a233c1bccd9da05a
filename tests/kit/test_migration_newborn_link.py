"""0034 writes the recording of a mother's link made with her newborn's provisional identity
into the audit log (``representative.added``, as ``add_newborn`` now does), so that the woman
named as the mother reports it from her portal; links recorded as any other keep their one row,
and a second run writes nothing more."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from importlib import import_module
from pathlib import Path

from sqlalchemy import text

from tests.identity.test_service import person
from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr import healthbook
from vnehr.kit.db import Database, create_engine
from vnehr.kit.migrate import downgrade, upgrade

DUNG = "001190006789"  # the mother
AN = "001085004217"  # a father whose link was recorded at the ward office
RECORDED_AT = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)

_PERSON = (
    "INSERT INTO person (id, personal_id, full_name, birth_date, sex, provisional, mother_id,"
    " created_at, created_by) VALUES (:id, :pid, :name, :born, :sex, :provisional, :mother,"
    " :at, 'test')"
)
_LINK = (
    "INSERT INTO representative (id, agent_id, subject_id, relation, valid_from, created_at,"
    " created_by) VALUES (:id, :agent, 3, 'parent', :since, :at, :by)"
)
_RECORDED = (
    "INSERT INTO audit_event (at, actor, action, person_id, object_type, object_id, detail)"
    " VALUES (:at, 'person:001086003333', 'representative.added', 3, 'representative', '11',"
    " NULL)"
)
_ROWS = (
    "SELECT object_id, actor, person_id, detail FROM audit_event"
    " WHERE action = 'representative.added' ORDER BY object_id"
)


async def _write(url: str, *statements: tuple[str, dict[str, object]]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for statement, values in statements:
                await connection.execute(text(statement), values)
    finally:
        await engine.dispose()


async def _recorded(url: str) -> list[tuple[str, str, int, object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text(_ROWS))
            # (SQLite answers a JSON column's text as it is; the ORM reads it as JSON)
            return [
                (key, actor, whom, json.loads(detail) if isinstance(detail, str) else detail)
                for key, actor, whom, detail in found
            ]
    finally:
        await engine.dispose()


async def test_0034_records_a_newborns_mother_link_once_and_she_can_report_it(
    empty_url: str,  # noqa: F811
) -> None:
    url = empty_url
    await upgrade(url, "0033")
    born = {"born": date(2026, 3, 1), "provisional": True, "at": RECORDED_AT}
    await _write(
        url,
        (_PERSON, {"id": 1, "pid": DUNG, "name": "Phạm Thị Dung", "born": date(1990, 5, 5),
                   "sex": "female", "provisional": False, "mother": None, "at": RECORDED_AT}),
        (_PERSON, {"id": 2, "pid": AN, "name": "Nguyễn Văn An", "born": date(1985, 1, 1),
                   "sex": "male", "provisional": False, "mother": None, "at": RECORDED_AT}),
        (_PERSON, {"id": 3, "pid": None, "name": "Con của Phạm Thị Dung", "sex": "male",
                   "mother": 1, **born}),
        (_LINK, {"id": 10, "agent": 1, "since": date(2026, 3, 1), "at": RECORDED_AT, "by": "person:079190001111"}),
        (_LINK, {"id": 11, "agent": 2, "since": date(2026, 3, 1), "at": RECORDED_AT, "by": "person:001086003333"}),
        (_RECORDED, {"at": RECORDED_AT}),
    )  # fmt: skip

    await upgrade(url)
    rows = await _recorded(url)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("10", "person:079190001111", 3),  # the mother's, by whoever recorded the newborn
        ("11", "person:001086003333", 3),  # the father's, as it was
    ]
    assert rows[0][3] == {"agent_id": 1, "relation": "parent", "newborn": True,
                          "backfilled": "0034"}  # fmt: skip
    assert rows[1][3] is None

    # run again (an upgrade stopped after it, then started over): nothing twice
    await downgrade(url, "0033")
    await upgrade(url)
    assert len(await _recorded(url)) == 2

    # the mother reports her link: a case about that row, in the department's queue
    db = Database.from_urls(url)
    try:
        async with db.session() as session:
            case = await healthbook.contest_link(session, person(DUNG), 10, "Tôi không sinh cháu")
        assert case.link_id == 10
        assert case.status == "open"
    finally:
        await db.dispose()


async def test_0034_reads_the_audit_log_through_its_index_on_sqlite(tmp_path: Path) -> None:
    """SQLite uses a partial index only when the query repeats its condition: without it
    each link scanned the whole audit log (193 s for 2,000 links over 500,000 rows), inside the
    upgrade's one transaction."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}"
    await upgrade(url, "0033")
    backfill = import_module("vnehr.migrations.versions.0034_newborn_link_recorded")
    statement = backfill._BACKFILL.format(detail=backfill._DETAIL["sqlite"])
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            plan = [
                row[-1] for row in await connection.execute(text(f"EXPLAIN QUERY PLAN {statement}"))
            ]
    finally:
        await engine.dispose()
    assert "SEARCH a USING INDEX ix_audit_event_registrar (actor=?)" in plan, plan
    assert "SCAN a" not in plan
