"""The search of the facilities that receive records (the citizen's sharing page): the key a
facility is found by, made when it is registered and by migration 0029 for those registered
before, and on PostgreSQL a lookup through the trigram index rather than a read of every row."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr import facilities
from vnehr.facilities.repository import FacilityRepository
from vnehr.kit.db import create_engine
from vnehr.kit.migrate import downgrade, upgrade

#: A facility as a release before 0029 registered it: connected, in Phường Kim Liên (00229,
#: before the 2025 reform in Quận Đống Đa).
_BEFORE = (
    "INSERT INTO facility (code, name, kind, level, ownership, address, ward_code,"
    " province_code, status, issued, created_at, created_by) VALUES ('01099',"
    " 'Bệnh viện Bạch Mai', 'hospital', 'specialised', 'public', '78 Giải Phóng', '00229',"
    " '01', 'connected', true, CURRENT_TIMESTAMP, 'person:001085004217')"
)


async def test_a_facility_registered_before_0029_is_found_after_it(
    empty_url: str,  # noqa: F811
) -> None:
    await upgrade(empty_url, "0028")
    engine = create_engine(empty_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(_BEFORE))
        await upgrade(empty_url)
        async with AsyncSession(engine) as session:
            for words in ("benh vien bach mai", "giai phong", "kim lien", "dong da", "01099"):
                found, more = await facilities.receivers(session, words)
                assert [f.code for f in found] == ["01099"], words
                assert more is False
            assert (await facilities.receivers(session, "viet duc"))[0] == []
    finally:
        await engine.dispose()
    await downgrade(empty_url, "0028")
    await upgrade(empty_url)


#: Three thousand connected clinics, as a province's registry might hold (their own codes).
_MANY = (
    "INSERT INTO facility (code, name, kind, level, ownership, province_code, status, issued,"
    " created_at, created_by, search_key) SELECT 'T' || lpad(n::text, 4, '0'),"
    " 'Phòng khám số ' || n, 'polyclinic', 'basic', 'private', '01', 'connected', false,"
    " now(), 'test', ' t' || lpad(n::text, 4, '0') || ' phong kham so ' || n || ' ha noi pk'"
    " FROM generate_series(1, 3000) AS n"
)


async def test_on_postgresql_the_search_looks_the_words_up_in_the_index(
    backend: str, session: AsyncSession
) -> None:
    """Among thousands of connected facilities a search reads the few whose keys hold its
    words, found through the trigram index rather than every connected facility's row: the
    statement's condition is the index's (the state written out), each word a LIKE the
    trigrams serve."""
    if backend != "postgresql":
        pytest.skip("SQLite reads the connected facilities' keys from its partial index")
    await session.execute(text(_MANY))
    # as autovacuum leaves it: the new keys out of the index's pending list, counted
    await session.execute(text("SELECT gin_clean_pending_list('ix_facility_search')"))
    await session.execute(text("ANALYZE facility"))
    connection = await session.connection()
    # as the driver sends it (its values bound), planned for any values, as PostgreSQL
    # plans a statement the driver keeps prepared after its first few runs
    statement = FacilityRepository.receivers_query(["bach", "mai"], 21).compile(
        dialect=connection.dialect
    )
    values = [statement.params[name] for name in statement.positiontup or ()]
    await connection.exec_driver_sql(f"PREPARE search_receivers AS {statement}")
    await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    given = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
    found = await connection.exec_driver_sql(f"EXPLAIN EXECUTE search_receivers({given})")
    plan = "\n".join(str(row[0]) for row in found)
    await connection.exec_driver_sql("DEALLOCATE search_receivers")
    assert "ix_facility_search" in plan, plan
    assert "Seq Scan" not in plan, plan
