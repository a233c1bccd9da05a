"""The audit log's hash chain: sealed rows verify; any changed, removed, reordered or cut-off row
is found and named; the database itself refuses updates of sealed rows and deletes."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit
from vnehr.audit import AuditEvent, chain
from vnehr.kit.clock import utcnow

KEY = audit.AuditKey.from_secret("audit-test-secret-" + "z" * 40)


async def rows(session: AsyncSession, count: int) -> list[AuditEvent]:
    made = [
        audit.audit_event(
            actor=f"person:00108500{n:04d}", action="visit.read", object_type="visit_version",
            object_id=str(n), person_id=n % 3 + 1, detail={"n": n, "ghi chú": "đọc"},
        )
        for n in range(count)
    ]  # fmt: skip
    session.add_all(made)
    await session.flush()
    return made


async def without_guards(session: AsyncSession) -> None:
    """What someone with database access could do: drop the append-only triggers (inside the
    test's transaction, rolled back afterwards)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        )
    else:
        await session.execute(text("DROP TRIGGER audit_event_no_delete"))
        await session.execute(text("DROP TRIGGER audit_event_sealed"))


async def sealed(session: AsyncSession, count: int = 12) -> list[AuditEvent]:
    made = await rows(session, count)
    while await audit.seal(session, KEY):
        pass
    for row in made:
        await session.refresh(row)
    return made


async def test_a_sealed_log_verifies_and_later_rows_extend_it(session: AsyncSession) -> None:
    first = await sealed(session)
    assert all(r.seq is not None and r.hash for r in first)
    report = await audit.verify(session, [KEY])
    assert report.intact, report.problems
    assert report.rows >= 12
    assert report.unsealed == 0
    more = await rows(session, 3)
    report = await audit.verify(session, [KEY])
    assert (report.intact, report.unsealed) == (True, 3)
    assert await audit.seal(session, KEY) == 3
    for row in more:
        await session.refresh(row)
    assert more[0].prev_hash == max(first, key=lambda r: r.seq or 0).hash
    assert (await audit.verify(session, [KEY])).intact


async def test_the_database_refuses_changes_to_sealed_rows_and_deletes(
    session: AsyncSession,
) -> None:
    made = await sealed(session, 2)
    with pytest.raises((DBAPIError, IntegrityError)):
        async with session.begin_nested():
            await session.execute(
                text("UPDATE audit_event SET actor = 'someone' WHERE id = :id"), {"id": made[0].id}
            )
    with pytest.raises((DBAPIError, IntegrityError)):
        async with session.begin_nested():
            await session.execute(
                text("DELETE FROM audit_event WHERE id = :id"), {"id": made[1].id}
            )


async def test_a_changed_row_is_found_with_its_position(session: AsyncSession) -> None:
    made = await sealed(session)
    await without_guards(session)
    victim = made[5]
    await session.execute(
        text("UPDATE audit_event SET actor = 'person:000000000000' WHERE id = :id"),
        {"id": victim.id},
    )
    report = await audit.verify(session, [KEY])
    assert not report.intact
    assert report.problems == [
        f"position {victim.seq} (row {victim.id}): content changed after sealing "
        f"(visit.read by person:000000000000)"
    ]


async def test_a_removed_row_is_found(session: AsyncSession) -> None:
    made = await sealed(session)
    await without_guards(session)
    await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": made[4].id})
    report = await audit.verify(session, [KEY])
    assert any(f"missing before row {made[5].id}" in p for p in report.problems)
    assert any(f"(row {made[5].id}): does not follow" in p for p in report.problems)


async def test_reordered_rows_are_found(session: AsyncSession) -> None:
    made = await sealed(session)
    await without_guards(session)
    a, b = made[2], made[3]
    # swap their positions (and chain fields), as a careful forger would
    await session.execute(text("UPDATE audit_event SET seq = -1 WHERE id = :id"), {"id": a.id})
    await session.execute(
        text("UPDATE audit_event SET seq = :s, prev_hash = :p, hash = :h WHERE id = :id"),
        {"s": a.seq, "p": a.prev_hash, "h": a.hash, "id": b.id},
    )
    await session.execute(
        text("UPDATE audit_event SET seq = :s, prev_hash = :p, hash = :h WHERE id = :id"),
        {"s": b.seq, "p": b.prev_hash, "h": b.hash, "id": a.id},
    )
    report = await audit.verify(session, [KEY])
    assert any(f"position {a.seq} (row {b.id}): content changed" in p for p in report.problems)
    assert any(f"position {b.seq} (row {a.id}): content changed" in p for p in report.problems)


async def test_rows_cut_off_the_end_and_forged_checkpoints_are_found(
    session: AsyncSession,
) -> None:
    made = await sealed(session)
    await without_guards(session)
    last = max(made, key=lambda r: r.seq or 0)
    await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": last.id})
    report = await audit.verify(session, [KEY])
    assert any("rows cut off the end" in p for p in report.problems)
    other = audit.AuditKey.from_secret("another-secret-" + "q" * 40)
    session.add(
        audit.AuditCheckpoint(
            seq=1, hash="0" * 64, signed_at=utcnow(), key_id=KEY.key_id, signature="AAAA"
        )
    )
    await session.flush()
    report = await audit.verify(session, [KEY])
    assert any("signature does not verify" in p for p in report.problems)
    assert not (await audit.verify(session, [other])).intact


async def test_rows_count_and_checkpoints_are_signed_by_the_key(session: AsyncSession) -> None:
    await sealed(session, 4)
    checkpoint = (
        await session.scalars(
            select(audit.AuditCheckpoint).order_by(audit.AuditCheckpoint.id.desc()).limit(1)
        )
    ).one()
    assert checkpoint.key_id == KEY.key_id
    assert len(KEY.public_b64()) == 44


# ------------------------------------------------------------------ a rotated secret
#
# After a rotation (D229) the previous secrets' keys still vouch for the checkpoints they
# signed before it, but not for one signed after a newer key had signed: a retired secret
# that still signs is a leaked or forgotten one.

OLD = audit.AuditKey.from_secret("audit-retired-secret-" + "o" * 40)
OLDER = audit.AuditKey.from_secret("audit-oldest-secret-" + "p" * 40)


async def checkpoint_sealed(session: AsyncSession, key: audit.AuditKey) -> audit.AuditCheckpoint:
    """Three rows more, sealed with ``key``: the checkpoint it signed."""
    await rows(session, 3)
    assert await audit.seal(session, key) == 3
    stmt = select(audit.AuditCheckpoint).order_by(audit.AuditCheckpoint.id.desc()).limit(1)
    return (await session.scalars(stmt)).one()


async def test_a_retired_key_signing_after_a_newer_one_is_found_where_it_signed(
    session: AsyncSession,
) -> None:
    await checkpoint_sealed(session, OLDER)  # two rotations ago
    await checkpoint_sealed(session, OLD)  # the last rotation
    rotated = await checkpoint_sealed(session, KEY)  # the current secret from then on
    report = await audit.verify(session, [KEY, OLD, OLDER])
    assert report.intact, report.problems  # what they signed before the rotation stays intact
    assert report.checkpoints == 3

    late = await checkpoint_sealed(session, OLD)  # the retired secret signs again
    report = await audit.verify(session, [KEY, OLD, OLDER])
    assert not report.intact
    assert report.problems == [
        f"checkpoint {late.id}: position {late.seq} was signed by a retired key after "
        f"checkpoint {rotated.id} (position {rotated.seq}) was signed by a newer one "
        f"(a previous secret still in use)"
    ]
    # later checkpoints of the current key do not make it intact again
    await checkpoint_sealed(session, KEY)
    report = await audit.verify(session, [KEY, OLD, OLDER])
    assert [p.split(":")[0] for p in report.problems] == [f"checkpoint {late.id}"]
    # one two rotations old, after the last rotation's key had signed, is found too
    oldest = await checkpoint_sealed(session, OLDER)
    report = await audit.verify(session, [KEY, OLD, OLDER])
    assert [p.split(":")[0] for p in report.problems] == [
        f"checkpoint {late.id}",
        f"checkpoint {oldest.id}",
    ]


# ------------------------------------------------------------------ a chain read in pages
#
# ``verify`` reads the chain and the checkpoints a page at a time and keeps only the row
# before (hundreds of millions of rows do not fit in memory): a break in a later page, or
# across a page boundary, is found as when the whole chain was one page.


async def sealed_in_batches(session: AsyncSession, count: int, batch: int) -> list[AuditEvent]:
    """``count`` rows sealed ``batch`` at a time: a signed checkpoint every ``batch`` rows."""
    made = await rows(session, count)
    while await audit.seal(session, KEY, batch=batch):
        pass
    for row in made:
        await session.refresh(row)
    return made


async def test_a_chain_over_many_pages_verifies_and_reports_as_one_page(
    session: AsyncSession,
) -> None:
    await sealed_in_batches(session, 13, batch=4)
    whole = await audit.verify(session, [KEY], page_size=100_000)
    assert whole.intact, whole.problems
    assert whole.checkpoints >= 4
    for page_size in (1, 2, 3, 4, 5):
        paged = await audit.verify(session, [KEY], page_size=page_size)
        assert (paged.rows, paged.unsealed, paged.checkpoints, paged.problems) == (
            whole.rows,
            whole.unsealed,
            whole.checkpoints,
            [],
        )


async def test_a_changed_row_in_a_later_page_is_found(session: AsyncSession) -> None:
    made = await sealed_in_batches(session, 12, batch=4)
    await without_guards(session)
    victim = made[9]
    await session.execute(
        text("UPDATE audit_event SET detail = :d WHERE id = :id"),
        {"d": '{"n": 0}', "id": victim.id},
    )
    report = await audit.verify(session, [KEY], page_size=2)
    assert report.problems == [
        f"position {victim.seq} (row {victim.id}): content changed after sealing "
        f"(visit.read by {victim.actor})"
    ]


async def test_a_removed_row_in_a_later_page_is_found(session: AsyncSession) -> None:
    made = await sealed_in_batches(session, 12, batch=4)
    await without_guards(session)
    # position 7: the pages of two are then 1-2, 3-4, 5-6, 8-9: the gap is across a boundary
    gone, after = made[6], made[7]
    await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": gone.id})
    report = await audit.verify(session, [KEY], page_size=2)
    assert report.problems == [
        f"position {gone.seq}..{gone.seq} missing before row {after.id} "
        f"(rows removed or renumbered)",
        f"position {after.seq} (row {after.id}): does not follow the row before it "
        f"(removed, inserted or reordered rows)",
    ]


async def test_rows_swapped_across_a_page_boundary_are_found(session: AsyncSession) -> None:
    made = await sealed_in_batches(session, 12, batch=4)
    await without_guards(session)
    a, b = made[7], made[8]  # the last of one page of two and the first of the next
    await session.execute(text("UPDATE audit_event SET seq = -1 WHERE id = :id"), {"id": a.id})
    for target, source in ((b, a), (a, b)):
        await session.execute(
            text("UPDATE audit_event SET seq = :s, prev_hash = :p, hash = :h WHERE id = :id"),
            {"s": source.seq, "p": source.prev_hash, "h": source.hash, "id": target.id},
        )
    report = await audit.verify(session, [KEY], page_size=2)
    assert report.problems == [
        f"position {a.seq} (row {b.id}): content changed after sealing (visit.read by {b.actor})",
        f"position {b.seq} (row {a.id}): content changed after sealing (visit.read by {a.actor})",
    ]


async def test_a_rewritten_chain_is_found_by_a_checkpoint_in_a_later_page(
    session: AsyncSession,
) -> None:
    """A forger who changes a row and recomputes every hash after it leaves a chain that is
    consistent in itself: only the signed checkpoints (every four rows here) show it."""
    made = await sealed_in_batches(session, 12, batch=4)
    await without_guards(session)
    await session.execute(
        text("UPDATE audit_event SET actor = 'person:000000000000' WHERE id = :id"),
        {"id": made[5].id},
    )
    prev = made[5].prev_hash or ""
    for row in made[5:]:
        await session.refresh(row)
        row_hash = chain.link(prev, row)
        await session.execute(
            text("UPDATE audit_event SET prev_hash = :p, hash = :h WHERE id = :id"),
            {"p": prev, "h": row_hash, "id": row.id},
        )
        prev = row_hash
    signed = list(
        await session.scalars(
            select(audit.AuditCheckpoint)
            .where(audit.AuditCheckpoint.seq >= (made[5].seq or 0))
            .order_by(audit.AuditCheckpoint.seq)
        )
    )
    report = await audit.verify(session, [KEY], page_size=3)
    assert report.problems == [
        f"checkpoint {c.id}: position {c.seq} no longer has the signed hash "
        f"(the chain was rewritten)"
        for c in signed
    ]
    assert len(signed) >= 2


async def test_rows_cut_off_the_end_are_found_when_the_chain_takes_many_pages(
    session: AsyncSession,
) -> None:
    made = await sealed_in_batches(session, 12, batch=4)
    await without_guards(session)
    for row in made[-3:]:
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": row.id})
    cut = list(
        await session.scalars(
            select(audit.AuditCheckpoint)
            .where(audit.AuditCheckpoint.seq > (made[-4].seq or 0))
            .order_by(audit.AuditCheckpoint.seq)
        )
    )
    report = await audit.verify(session, [KEY], page_size=2)
    assert cut
    assert report.problems == [
        f"checkpoint {c.id}: the chain was signed up to position {c.seq}, which no "
        f"longer exists (rows cut off the end)"
        for c in cut
    ]


async def test_a_copied_row_is_found_wherever_the_pages_fall(session: AsyncSession) -> None:
    """Without the unique index on positions (dropped by someone with database access), a copy
    of a sealed row has the same position: it is named whether or not a page ends between it
    and the row it copies."""
    made = await sealed_in_batches(session, 12, batch=4)
    await without_guards(session)
    await session.execute(text("DROP INDEX ix_audit_event_seq"))
    original = made[5]
    await session.execute(
        text(
            "INSERT INTO audit_event (at, actor, action, person_id, object_type, object_id, "
            "detail, seq, prev_hash, hash) SELECT at, actor, action, person_id, object_type, "
            "object_id, detail, seq, prev_hash, hash FROM audit_event WHERE id = :id"
        ),
        {"id": original.id},
    )
    copy = await session.scalar(
        select(AuditEvent.id).where(AuditEvent.seq == original.seq, AuditEvent.id != original.id)
    )
    expected = [
        f"position {original.seq} (row {copy}): a second row at this position "
        f"(rows inserted or copied)",
        f"position {original.seq} (row {copy}): does not follow the row before it "
        f"(removed, inserted or reordered rows)",
        # the hash covers the row's id
        f"position {original.seq} (row {copy}): content changed after sealing "
        f"(visit.read by {original.actor})",
    ]
    # pages of 2 and 3 end right after the original (position 6): the copy began the next page
    for page_size in (1, 2, 3, 4, 5, 100_000):
        report = await audit.verify(session, [KEY], page_size=page_size)
        assert report.problems == expected, page_size
        assert report.rows == 13, page_size
