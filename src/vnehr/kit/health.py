"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, not_, select, text
from sqlalchemy.exc import SQLAlchemyError

from vnehr import __version__
from vnehr.kit.clock import utcnow
from vnehr.kit.errors import NotReady
from vnehr.kit.http import database, error_responses
from vnehr.kit.logging import get_logger
from vnehr.kit.metrics import OUTBOX_EVENTS, OUTBOX_LAG, render
from vnehr.kit.outbox import OutboxEvent, held

router = APIRouter(tags=["operations"])
log = get_logger("vnehr.health")


class Health(BaseModel):
    status: str
    version: str


class Readiness(Health):
    database: str
    revision: list[str]


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, intake, delivery, outbox depth and lag."""
    db = database(request)
    try:
        async with db.read_session() as session:
            now = utcnow()
            # pending and dead only: counting every event ever delivered read the whole
            # table on each scrape (D80); the pending ones come from their partial index.
            # An event held until a later moment (a notice told on a later day, D247) is
            # "held", not late; once its moment has come it is late from then (its
            # ``created_at``), not from when it was written.
            waiting = held(now)
            rows = await session.execute(
                select(OutboxEvent.status, func.count(), func.min(OutboxEvent.created_at))
                .where(OutboxEvent.status.in_(("pending", "dead")), not_(waiting))
                .group_by(OutboxEvent.status)
            )
            kept = await session.scalar(
                select(func.count()).select_from(OutboxEvent).where(waiting)
            )
            OUTBOX_EVENTS.clear()
            OUTBOX_LAG.set(0)
            for status, count, oldest in rows:
                OUTBOX_EVENTS.labels(status).set(count)
                if status == "pending" and oldest is not None:
                    moment = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
                    OUTBOX_LAG.set(max(0.0, (now - moment).total_seconds()))
            if kept:
                OUTBOX_EVENTS.labels("held").set(kept)
    except (SQLAlchemyError, OSError):
        log.warning("metrics_without_database")
    return Response(render(), media_type="text/plain; version=0.0.4")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (no dependency is checked)."""
    return Health(status="ok", version=__version__)


@router.get("/readyz", response_model=Readiness, responses=error_responses(503))
async def readyz(request: Request) -> Readiness:
    """The database answers and its schema is at the newest migration (or a later release's,
    during a rolling upgrade); 503 (KIT-0503) if not."""
    # (Alembic, with Mako and Pygments, is a quarter of a second to import: paid by the first
    # readiness check, not by every process that starts)
    from vnehr.kit.migrate import current_revisions, head_revisions, usable

    db = database(request)
    try:
        async with db.read_session() as session:
            await session.execute(text("SELECT 1"))
            connection = await session.connection()
            current = await current_revisions(connection)
            dialect = connection.dialect.name
    except (SQLAlchemyError, OSError) as exc:
        raise NotReady(reason="database unreachable", error=type(exc).__name__) from exc
    if not usable(current):
        raise NotReady(
            reason="database schema is not at the newest migration; run `vnehr db upgrade`",
            current=sorted(current),
            expected=sorted(head_revisions()),
        )
    return Readiness(
        status="ready", version=__version__, database=dialect, revision=sorted(current)
    )
