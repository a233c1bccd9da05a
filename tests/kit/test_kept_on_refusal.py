"""An audit row marked as kept on refusal (a read of a person, a refused attempt the person's
access log shows) outlives the refusal that rolls its request's transaction back: it is
written again, once, in a short transaction of its own; a request that commits has it once;
a crash keeps nothing; the rest of the refused transaction is gone; the row is an ordinary
one the sealer chains."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import new_database_on
from vnehr import audit
from vnehr.audit import AuditEvent
from vnehr.kit.db import Database
from vnehr.kit.errors import BadRequest, NotReady
from vnehr.kit.http import RequestContextMiddleware, WriteSession, install_error_handlers
from vnehr.kit.migrate import upgrade

PERSON = 987_654_321
KEY = audit.AuditKey.from_secret("kept-on-refusal-test-" + "k" * 40)
How = Literal["ok", "refused", "crash", "unavailable", "shown"]


def _rows(how: str) -> tuple[AuditEvent, AuditEvent]:
    """A read of the person, kept on refusal, and something else the request did."""
    read = audit.audit_event(
        actor="person:001085004217", action="newborn.mother_read", object_type="person",
        object_id=how, person_id=PERSON, detail={"ward": "00070"}, kept=True,
    )  # fmt: skip
    other = audit.audit_event(
        actor="person:001085004217", action="newborn.added", object_type="person",
        object_id=how, person_id=PERSON,
    )  # fmt: skip
    return read, other


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    app.state.database = db
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/read/{how}")
    async def read(how: How, session: WriteSession) -> dict[str, bool]:
        if how == "shown":  # a page: the refused part undone by its savepoint, the page answered
            try:
                async with session.begin_nested():
                    session.add_all(_rows(how))
                    await session.flush()
                    raise BadRequest()
            except BadRequest:
                return {"refused": True}
        session.add_all(_rows(how))
        await session.flush()
        if how == "refused":
            raise BadRequest()
        if how == "unavailable":
            raise NotReady()
        if how == "crash":
            raise RuntimeError("a defect, not a refusal")
        return {"done": True}

    return app


async def _stored(db: Database, how: str) -> dict[str, int]:
    async with db.read_session() as session:
        found = await session.execute(
            select(AuditEvent.action, func.count())
            .where(AuditEvent.person_id == PERSON, AuditEvent.object_id == how)
            .group_by(AuditEvent.action)
        )
        return {action: int(count) for action, count in found.all()}


async def test_a_kept_read_outlives_a_refusal_once_and_nothing_else_does(db: Database) -> None:
    await _requests_then_the_log(db)


@pytest.fixture
def own_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of the test's own, whose transactions commit for real."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'kept.db'}"
    return new_database_on(request.getfixturevalue("postgres_url"), "kept")


async def test_the_same_with_real_transactions_and_connections(own_url: str) -> None:
    """Outside the tests' one connection: the refused transaction's connection is given back
    before the kept row takes one (on SQLite, whose writers queue on one lock, the kept row's
    transaction would wait for the refused one's otherwise)."""
    url = own_url
    await upgrade(url)
    db = Database.from_urls(url, pool_size=1, busy_timeout=2.0)
    try:
        await _requests_then_the_log(db)
    finally:
        await db.dispose()


async def _requests_then_the_log(db: Database) -> None:
    transport = httpx.ASGITransport(app=_app(db), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answers = {how: (await http.post(f"/read/{how}")).status_code for how in How.__args__}
    assert answers == {"ok": 200, "refused": 400, "crash": 500, "unavailable": 503, "shown": 200}
    # committed: each row once, the read not written a second time
    assert await _stored(db, "ok") == {"newborn.mother_read": 1, "newborn.added": 1}
    # refused: the read kept, in its own transaction; what the request did is undone
    assert await _stored(db, "refused") == {"newborn.mother_read": 1}
    # a refusal shown by a page that commits: the savepoint's rollback does not lose the read
    assert await _stored(db, "shown") == {"newborn.mother_read": 1}
    # a defect or an outage is no refusal: nothing is kept
    assert await _stored(db, "crash") == {}
    assert await _stored(db, "unavailable") == {}

    # the kept row is an ordinary row of the log: as it was written, sealed into the chain
    async with db.read_session() as session:
        kept = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.person_id == PERSON, AuditEvent.object_id == "refused"
                )
            )
        ).one()
    assert (kept.actor, kept.detail, kept.seq) == ("person:001085004217", {"ward": "00070"}, None)
    await audit.seal_all(db, KEY)
    async with db.session() as session:
        report = await audit.verify(session, [KEY])
        assert report.intact, report.problems
        assert report.unsealed == 0
        sealed = await session.scalar(select(AuditEvent.seq).where(AuditEvent.id == kept.id))
    assert sealed is not None
