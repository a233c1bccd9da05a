"""0033 builds the ward page's index of a registrar's acts (0031) again over the links they
ended too: the recent-work query, written with the model's condition, reads the officer's rows
through it on both databases, and finds the ended link; down again, the index is 0031's."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from tests.conftest import new_database_on
from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from vnehr.audit import AuditEvent
from vnehr.audit.log import REGISTRAR_WHERE
from vnehr.kit.db import create_engine
from vnehr.kit.migrate import downgrade, upgrade

NAME = "ix_audit_event_registrar"
OFFICER = "person:031054007793"
_ROW = (
    "INSERT INTO audit_event (id, at, actor, action, person_id, object_type, object_id)"
    " VALUES (:id, CURRENT_TIMESTAMP, :actor, :action, 7, 'representative', '1')"
)
#: the ward page's query (``audit.registrar_acts``) as the model writes its condition
_RECENT = (
    select(AuditEvent.action)
    .where(REGISTRAR_WHERE, AuditEvent.actor == OFFICER)
    .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
)


async def _index(url: str) -> tuple[str, list[str], list[str]]:
    """The index's definition, the plan of the recent-work query, and what it finds."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                definition = await connection.scalar(
                    text(
                        "SELECT pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN ''"
                        " ELSE ' INVALID' END FROM pg_index i JOIN pg_class c"
                        " ON c.oid = i.indexrelid WHERE c.relname = :name"
                    ),
                    {"name": NAME},
                )
                # the table is tiny: a plan that may use the index must (a partial index
                # whose condition the query does not imply is never usable)
                await connection.execute(text("SET LOCAL enable_seqscan = off"))
                query = str(
                    _RECENT.compile(
                        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                    )
                )
                plan = [str(r[0]) for r in await connection.execute(text(f"EXPLAIN {query}"))]
            else:
                definition = await connection.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": NAME}
                )
                query = str(
                    _RECENT.compile(
                        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
                    )
                )
                found = await connection.execute(text(f"EXPLAIN QUERY PLAN {query}"))
                plan = [str(r[-1]) for r in found]
            acts = [str(a) for a in await connection.scalars(_RECENT)]
            return str(definition), plan, acts
    finally:
        await engine.dispose()


async def test_0033_puts_the_ended_links_in_the_registrars_index_and_down_again(
    empty_url: str,  # noqa: F811
) -> None:
    url = empty_url
    await upgrade(url, "0032")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            acts = ("representative.added", "representative.ended", "clinical.read")
            for key, action in enumerate(acts, start=1):
                await connection.execute(
                    text(_ROW), {"id": key, "actor": OFFICER, "action": action}
                )
    finally:
        await engine.dispose()

    definition, plan, _ = await _index(url)
    assert "representative.ended" not in definition
    assert not any(NAME in line for line in plan), plan  # the query cannot use 0031's

    await upgrade(url)
    definition, plan, found = await _index(url)
    assert "representative.ended" in definition
    assert "representative.added" in definition
    assert "INVALID" not in definition
    assert any(NAME in line for line in plan), plan
    assert sorted(found) == ["representative.added", "representative.ended"]

    await downgrade(url, "0032")
    definition, _, _ = await _index(url)
    assert "representative.ended" not in definition
    assert "person.residence_set" in definition
    assert "INVALID" not in definition


async def test_an_upgrade_stopped_while_building_is_run_again(postgres_url: str) -> None:
    """A concurrent build that failed (cancelled, the server stopped) leaves the new index
    half built, invalid, under its building name: the next upgrade drops it and builds it
    again, and the old index served until then."""
    import asyncio

    import asyncpg

    url = await asyncio.to_thread(new_database_on, postgres_url, "registrar")
    await upgrade(url, "0032")
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.execute("CREATE INDEX ix_audit_event_registrar_new ON audit_event (actor)")
        await connection.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
            " 'ix_audit_event_registrar_new'::regclass"
        )
        await upgrade(url)
        names = await connection.fetch(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE c.relname LIKE 'ix_audit_event_registrar%'"
        )
        assert [tuple(r) for r in names] == [(NAME, True)]
    finally:
        await connection.close()
    definition, plan, _ = await _index(url)
    assert "representative.ended" in definition
    assert any(NAME in line for line in plan), plan
