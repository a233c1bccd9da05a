"""A route's write transaction is committed before its answer is sent: a commit that fails
turns into an error answer, never a success for something that was not stored."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from vnehr.exchange.models import BhxhReceipt
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.http import RequestContextMiddleware, WriteSession, install_error_handlers


def _app(db: Database) -> FastAPI:
    app = FastAPI()
    app.state.database = db
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/receipts/{version}")
    async def add(version: int, session: WriteSession) -> dict[str, bool]:
        # not flushed here: the row is written when the transaction commits
        session.add(
            BhxhReceipt(
                version_id=version, facility_code="01001", visit_key="LK-1", version=version,
                ma_giao_dich="GD-1", delivered_at=utcnow(),
            )
        )  # fmt: skip
        return {"saved": True}

    return app


async def test_a_commit_that_fails_is_an_error_answer_and_stores_nothing(db: Database) -> None:
    transport = httpx.ASGITransport(app=_app(db), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        kept = await http.post("/receipts/7")
        # too large for the column: the database refuses it at the commit
        refused = await http.post(f"/receipts/{2**70}")
    assert kept.status_code == 200, kept.text
    assert refused.status_code == 500, refused.text
    assert refused.json()["code"] == "KIT-0500"
    async with db.read_session() as session:
        stored = await session.scalar(select(func.count()).select_from(BhxhReceipt))
    assert stored == 1
