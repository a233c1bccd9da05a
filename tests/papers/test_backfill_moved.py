"""Papers moved by corrections stored before D170 (and papers issued through the API for a
visit corrected to another patient before they followed their visit) are taken out of the
first holder's book by ``vnehr db backfill-papers``, as a correction does now; what a
correction keeps as the holder's own history stays, and running it again changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import sign_in_as
from tests.kit.test_migrations import empty_url  # noqa: F401  (the fixture)
from tests.papers.test_api import SCOPES, local_now, sick_leave, verify
from tests.papers.test_corrections import qr_of
from tests.papers.test_holder_moved import CUONG, HOA, _book, _tell_holders, as_patient
from tests.submissions.test_intake import facility_with_token, send
from vnehr.audit import AuditEvent
from vnehr.cli import app as cli
from vnehr.kit.db import Database, create_engine
from vnehr.kit.migrate import upgrade
from vnehr.kit.settings import Settings, get_settings
from vnehr.papers import moved
from vnehr.papers.models import Paper
from vnehr.submissions import synth

State = dict[str, tuple[int | None, str, str | None]]


async def _state(session: AsyncSession, code: str) -> State:
    session.expire_all()
    rows = await session.scalars(select(Paper).where(Paper.facility_code == code))
    return {p.id: (p.person_id, p.status, p.revoke_reason) for p in rows}


async def _by_backfill(session: AsyncSession) -> list[tuple[str, str, Any, dict[str, Any]]]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.actor == moved.ACTOR)
        .order_by(AuditEvent.action, AuditEvent.object_id)
    )
    return [(r.action, r.object_id, r.person_id, r.detail) for r in rows]


async def test_the_backfill_takes_moved_papers_out_as_a_correction_does_now(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    await sign_in_as(client, session, settings, HOA)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    ended = local_now() - timedelta(days=2)
    a, b, c = (
        visit_of(code, seed, ended, care_type="01", insured=True, appointment=True, age_group=3)
        for seed in (101, 102, 103)
    )
    for one in (a, b, c):
        as_patient(one, HOA)
    sent = await send(client, headers, synth.envelope([a, b, c], code))
    assert [v.get("outcome") for v in sent.json()["visits"]] == ["new"] * 3, sent.text
    leave = {"kind": "sick_leave", "visit_key": a.ma_lk, "fields": sick_leave(a, 10)}
    made = await client.post("/api/v1/papers", json=leave, headers=headers)
    assert made.status_code == 201, made.text
    await _tell_holders(session)
    hoa_id = (await session.get(Paper, made.json()["id"])).person_id  # type: ignore[union-attr]

    # visit A was Cường's (its appointment, kept, and the sick leave issued for it); so was
    # B, whose appointment is dropped; C stays Hoa's, its appointment moved to 14:00
    as_patient(a, CUONG)
    as_patient(b, CUONG)
    b.tables.pop("XML14")
    c.tables["XML14"][0]["NGAY_HEN_KL"] = c.tables["XML14"][0]["NGAY_HEN_KL"][:8] + "1400"
    fixed = await send(client, headers, synth.envelope([a, b, c], code))
    assert [v["outcome"] for v in fixed.json()["visits"]] == ["changed"] * 3, fixed.text
    now = await _state(session, code)
    taken = sorted(
        i for i, (person, _, _) in now.items() if person is None and i != made.json()["id"]
    )
    assert len(taken) == 2  # A's and B's appointments as Hoa held them

    # as a release before D170 left them: every version still hers, the sick leave valid
    gone = [*taken, made.json()["id"]]
    await session.execute(update(Paper).where(Paper.id.in_(gone)).values(person_id=hoa_id))
    await session.execute(
        update(Paper)
        .where(Paper.id == made.json()["id"])
        .values(status="valid", revoked_at=None, revoked_by=None, revoke_reason=None)
    )
    await session.execute(text("DELETE FROM notification WHERE person_id = :p"), {"p": hoa_id})
    await _tell_holders(session)
    before = await _book(client, session, settings, HOA)
    assert {p[0] for p in before["papers"]} >= set(gone)
    assert len(before["notices"]) == 5  # A, B and the leave; C's two versions
    client.cookies.clear()

    done = await moved.leave_moved(db, batch=2)
    assert (done.left, done.revoked) == (3, 1)
    assert await _state(session, code) == now  # what a correction does now
    hers = await _book(client, session, settings, HOA)
    assert [p[1:] for p in hers["papers"]] == [("valid", None), ("revoked", "replaced")]
    assert len(hers["notices"]) == 2  # C's
    papers_read = {d for d in hers["documents"] if d.startswith("paper-")}
    assert papers_read == {f"paper-{p[0]}" for p in hers["papers"]}
    for paper_id in gone:
        response = await client.get(f"/api/v1/papers/{paper_id}")
        assert response.status_code == 404, response.text
    client.cookies.clear()
    leave_paper = await session.get(Paper, made.json()["id"])
    assert leave_paper is not None
    checked = await verify(client, qr_of(leave_paper))
    assert (checked["valid"], checked["status"], checked["reason"]) == (
        False, "revoked", "visit_moved",
    )  # fmt: skip

    # audited about her, never naming him
    audited = await _by_backfill(session)
    revoked = ("paper.revoked", made.json()["id"], hoa_id)
    assert audited == sorted(
        [("paper.moved", i, hoa_id, {"reason": "another_holder"}) for i in gone]
        + [(*revoked, {"reason": "visit_moved", "visit_key": a.ma_lk})],
        key=lambda r: (r[0], r[1]),
    )
    assert CUONG[0] not in str(audited)

    again = await moved.leave_moved(db)
    assert (again.left, again.revoked) == (0, 0)
    assert len(await _by_backfill(session)) == len(audited)


#: A paper's version as a release before D170 wrote it (the columns the command reads).
_PAPER = (
    "INSERT INTO paper (id, kind, number, version, facility_code, visit_key, source, person_id,"
    " personal_id, signed_on, valid_from, status, content, content_sha256, jws, rid, issued_at,"
    " issued_by, revoked_at, revoke_reason) VALUES (:id, 're_exam', :number, :version, '01001',"
    " 'LK1', 'visit', :person, :personal_id, '2026-01-05', '2026-01-05', :status, '{}', 'x',"
    " 'jws', :id, CURRENT_TIMESTAMP, 'test', :revoked_at, :reason)"
)
_NOTICE = (
    "INSERT INTO notification (event_id, person_id, kind, params, created_at) VALUES"
    " (:event, :person, 'paper', :params, CURRENT_TIMESTAMP)"
)


async def _old_papers(url: str) -> None:
    """Two papers of one visit, each corrected once: H1 to another holder (person 2), K1
    keeping its holder; person 1 was told of both first versions."""
    await upgrade(url)
    engine = create_engine(url)
    old = {
        "status": "revoked",
        "revoked_at": datetime(2026, 1, 6, tzinfo=UTC),
        "reason": "replaced",
    }
    new = {"status": "valid", "revoked_at": None, "reason": None}
    rows = [
        {"id": "H1", "number": "H", "version": 1, "person": 1, "personal_id": "1", **old},
        {"id": "H2", "number": "H", "version": 2, "person": 2, "personal_id": "2", **new},
        {"id": "K1", "number": "K", "version": 1, "person": 2, "personal_id": "2", **old},
        {"id": "K2", "number": "K", "version": 2, "person": 2, "personal_id": "2", **new},
    ]
    try:
        async with engine.begin() as connection:
            for row in rows:
                await connection.execute(text(_PAPER), row)
            for event, number, person in (("e1", "H", 1), ("e2", "K", 2)):
                params = f'{{"number": "{number}", "paper_kind": "re_exam"}}'
                told = {"event": event, "person": person, "params": params}
                await connection.execute(text(_NOTICE), told)
    finally:
        await engine.dispose()


async def _after(url: str) -> tuple[dict[str, Any], list[Any], int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            papers = dict(list(await connection.execute(text("SELECT id, person_id FROM paper"))))
            audited = list(
                await connection.execute(
                    text(
                        "SELECT object_id, person_id FROM audit_event"
                        " WHERE action = 'paper.moved' ORDER BY object_id"
                    )
                )
            )
            notices = await connection.scalar(text("SELECT count(*) FROM notification"))
            return papers, [tuple(r) for r in audited], int(notices or 0)
    finally:
        await engine.dispose()


def test_vnehr_db_backfill_papers_on_a_database_of_an_earlier_release(
    empty_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(_old_papers(empty_url))
    monkeypatch.setenv("VNEHR_DATABASE_URL", empty_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        done = runner.invoke(cli, ["db", "backfill-papers", "--batch", "1"])
        assert done.exit_code == 0, done.output
        assert "1 paper version(s) taken out of their holder's book" in done.output
        papers, audited, notices = asyncio.run(_after(empty_url))
        assert papers == {"H1": None, "H2": 2, "K1": 2, "K2": 2}
        assert audited == [("H1", 1)]
        assert notices == 1  # person 1's notice of H went; person 2's of K stays
        again = runner.invoke(cli, ["db", "backfill-papers"])
        assert again.exit_code == 0, again.output
        assert "0 paper version(s)" in again.output
        assert asyncio.run(_after(empty_url)) == (papers, audited, notices)
    finally:
        get_settings.cache_clear()
