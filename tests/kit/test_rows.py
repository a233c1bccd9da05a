"""Plain rows for the bulk writers (D53): written exactly as mapped instances are."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import UnmappedInstanceError

from vnehr.audit import AuditEvent, audit_event
from vnehr.kit.db import copy_objects, hot_add, new_row
from vnehr.kit.outbox import OutboxEvent


async def test_plain_rows_are_written_as_mapped_instances_are(session: AsyncSession) -> None:
    at = datetime(2026, 11, 26, 4, 30, tzinfo=UTC)
    values = {"topic": "t.x", "payload": {"a": [1, "é"]}, "created_at": at, "next_attempt_at": at}
    mapped = [OutboxEvent(event_id=f"m{n}", key=f"k{n}", **values) for n in range(3)]
    plain = [new_row(OutboxEvent, event_id=f"p{n}", key=f"k{n}", **values) for n in range(3)]
    # (on PostgreSQL: one COPY per table; on SQLite: row by row)
    await copy_objects(session, [*mapped[:2], *plain[:2]])
    await hot_add(session, mapped[2], plain[2])
    written = {
        e.event_id: e
        for e in await session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "t.x"))
    }
    assert sorted(written) == ["m0", "m1", "m2", "p0", "p1", "p2"]
    for n in range(3):
        one, other = written[f"m{n}"], written[f"p{n}"]
        assert (one.key, one.payload, one.created_at) == (other.key, other.payload, at)
        # unset columns take their scalar defaults either way
        assert (one.status, one.attempts) == (other.status, other.attempts) == ("pending", 0)
        assert one.delivered_at is other.delivered_at is None


async def test_audit_rows_made_either_way_say_the_same(session: AsyncSession) -> None:
    facts = {"actor": "facility:01001", "action": "visit.received", "object_type": "visit_version",
             "object_id": "7", "person_id": None, "detail": {"outcome": "new"}}  # fmt: skip
    await copy_objects(session, [audit_event(**facts), audit_event(**facts, plain=True)])
    rows = list(await session.scalars(select(AuditEvent).where(AuditEvent.object_id == "7")))
    assert len(rows) == 2
    assert {(r.actor, r.action, r.object_type, str(r.detail)) for r in rows} == {
        ("facility:01001", "visit.received", "visit_version", "{'outcome': 'new'}")
    }


async def test_a_plain_row_names_only_real_columns_and_never_enters_a_session(
    session: AsyncSession,
) -> None:
    with pytest.raises(TypeError, match="no_such_column"):
        new_row(OutboxEvent, no_such_column=1)
    with pytest.raises(UnmappedInstanceError):
        session.add(new_row(OutboxEvent, topic="t", key="k"))


async def test_a_json_column_left_empty_is_sql_null_on_every_path(session: AsyncSession) -> None:
    # Before, COPY wrote SQL NULL and the other paths the JSON text 'null'.
    facts = {"actor": "a", "action": "x.none", "object_type": "t", "object_id": "n",
             "person_id": None, "detail": None}  # fmt: skip
    session.add(audit_event(**facts))
    await session.flush()
    await hot_add(session, audit_event(**facts, plain=True))
    await copy_objects(session, [audit_event(**facts, plain=True), audit_event(**facts)])
    nulls = await session.execute(
        select(AuditEvent.detail.is_(None)).where(AuditEvent.action == "x.none")
    )
    assert [is_null for (is_null,) in nulls] == [True] * 4
