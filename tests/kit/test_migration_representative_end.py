"""0032 adds how a representation link was ended (when, by whom, why) to the links stored
before it, which keep their periods and read as never ended; down again, the periods stay."""

from __future__ import annotations

from sqlalchemy import text

from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr.kit.db import create_engine
from vnehr.kit.migrate import downgrade, upgrade

_PERSON = (
    "INSERT INTO person (id, personal_id, full_name, provisional, created_at, created_by)"
    " VALUES (:id, :pid, :name, false, CURRENT_TIMESTAMP, 'test')"
)
_LINK = (
    "INSERT INTO representative (id, agent_id, subject_id, relation, valid_from, valid_to,"
    " created_at, created_by) VALUES (1, 1, 2, 'parent', '2017-09-01', '2035-08-31',"
    " CURRENT_TIMESTAMP, 'person:031054007793')"
)


_READS = {
    "ends": "SELECT valid_to, ended_at, ended_by, end_reason FROM representative",
    "reason": "SELECT end_reason FROM representative",
    "period": "SELECT valid_to FROM representative",
}


async def _links(url: str, read: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text(_READS[read]))
            return [tuple(row) for row in found]
    finally:
        await engine.dispose()


async def test_0032_adds_the_end_of_a_link_and_keeps_the_links_stored_before(
    empty_url: str,  # noqa: F811
) -> None:
    url = empty_url
    await upgrade(url, "0031")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for key, pid, name in ((1, "001085004217", "An"), (2, "001217005432", "Khang")):
                await connection.execute(text(_PERSON), {"id": key, "pid": pid, "name": name})
            await connection.execute(text(_LINK))
    finally:
        await engine.dispose()

    await upgrade(url)
    [(valid_to, ended_at, ended_by, reason)] = await _links(url, "ends")
    assert str(valid_to) == "2035-08-31"
    assert (ended_at, ended_by, reason) == (None, None, None)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "UPDATE representative SET valid_to = '2026-01-31', ended_at ="
                    " CURRENT_TIMESTAMP, ended_by = 'person:031054007793', end_reason = :why"
                ),
                {"why": "Tòa án chấm dứt việc giám hộ"},
            )
    finally:
        await engine.dispose()
    [(reason,)] = await _links(url, "reason")
    assert reason == "Tòa án chấm dứt việc giám hộ"

    await downgrade(url, "0031")
    assert [str(v) for (v,) in await _links(url, "period")] == ["2026-01-31"]
