"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from vnehr import __version__
from vnehr.kit.errors import NotReady
from vnehr.kit.http import database, error_responses
from vnehr.kit.migrate import current_revisions, head_revisions

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    version: str


class Readiness(Health):
    database: str
    revision: list[str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (no dependency is checked)."""
    return Health(status="ok", version=__version__)


@router.get("/readyz", response_model=Readiness, responses=error_responses(503))
async def readyz(request: Request) -> Readiness:
    """The database answers and its schema is at the newest migration; 503 (KIT-0503) if not."""
    db = database(request)
    try:
        async with db.read_session() as session:
            await session.execute(text("SELECT 1"))
            connection = await session.connection()
            current = await current_revisions(connection)
            dialect = connection.dialect.name
    except (SQLAlchemyError, OSError) as exc:
        raise NotReady(reason="database unreachable", error=type(exc).__name__) from exc
    heads = head_revisions()
    if current != heads:
        raise NotReady(
            reason="database schema is not at the newest migration; run `vnehr db upgrade`",
            current=sorted(current),
            expected=sorted(heads),
        )
    return Readiness(
        status="ready", version=__version__, database=dialect, revision=sorted(current)
    )
