"""The transactional outbox: any context records an event in its own transaction; the exchange
worker delivers it later (with retries). A record never exists without its events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, Integer, String, and_, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.clock import utcnow
from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime, make_row

_PENDING = text("status = 'pending'")


class OutboxEvent(Base):
    __tablename__ = "outbox_event"
    __table_args__ = (
        Index("ix_outbox_event_due", "status", "next_attempt_at", "id"),
        Index("ix_outbox_event_key", "key", "id"),
        # the pending events alone, in order, and per key: the poll walks these instead of
        # every event ever delivered (D80)
        Index("ix_outbox_event_pending", "id", postgresql_where=_PENDING, sqlite_where=_PENDING),
        Index(
            "ix_outbox_event_pending_key",
            "key",
            "id",
            postgresql_where=_PENDING,
            sqlite_where=_PENDING,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))  # ordering key (per recipient/visit)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    #: when it was written, or for an event held until a later moment (``held_event``) that
    #: moment: the earliest it may go, from which its delivery is late
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: pending -> delivered, or pending -> dead after too many failed attempts (replayable)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class OutboxAlsoKey(Base):
    """A key an event holds back besides its own (D256): the events of this key written after
    it wait until it is delivered, as those of its own key do. A check-in of several visits is
    one signed file, sent once under its first visit's key; the other visits' files wait
    behind it too. Goes with its event (``ON DELETE CASCADE``). A SQLite migration that
    rebuilds ``outbox_event`` (``batch_alter_table``) would empty this table through the
    cascade (foreign keys are on): copy its rows aside first."""

    __tablename__ = "outbox_also_key"
    __table_args__ = (Index("ix_outbox_also_key_key", "key", "event_id"),)

    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox_event.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)


async def add_event(session: AsyncSession, event: OutboxEvent, also_keys: list[str]) -> None:
    """Add ``event`` in the caller's transaction, holding back ``also_keys`` as well as its own
    key (``OutboxAlsoKey``)."""
    session.add(event)
    others = sorted(set(also_keys) - {event.key})
    if others:
        await session.flush()  # (its id)
        session.add_all(OutboxAlsoKey(event_id=event.id, key=key) for key in others)


def new_event(topic: str, key: str, payload: dict[str, Any], *, plain: bool = False) -> OutboxEvent:
    """An event row to add in the caller's transaction; ``plain``: a plain row for callers
    that write with ``hot_add`` or ``copy_objects`` (D53), not a mapped instance."""
    now = utcnow()
    values = {
        "event_id": str(uuid.uuid4()),
        "topic": topic,
        "key": key,
        "payload": payload,
        "created_at": now,
        "attempts": 0,
        "status": "pending",
        "next_attempt_at": now,
    }
    return make_row(OutboxEvent, plain, **values)


def held_event(topic: str, key: str, payload: dict[str, Any], until: datetime) -> OutboxEvent:
    """An event to add in the caller's transaction that is delivered from ``until`` on, not
    before (a notice told on a later day, D247): held in the outbox, on either bus, and
    counted apart (``held``) until then."""
    event = new_event(topic, key, payload)
    event.created_at = event.next_attempt_at = until
    return event


def held(now: datetime) -> ColumnElement[bool]:
    """Events held for a moment that has not come (``held_event``): pending, never tried."""
    return and_(
        OutboxEvent.status == "pending",
        OutboxEvent.attempts == 0,
        OutboxEvent.created_at > now,
    )


async def record_event(session: AsyncSession, topic: str, key: str, payload: dict[str, Any]) -> str:
    """Write an event in the caller's transaction; returns its id (consumers dedupe on it)."""
    event = new_event(topic, key, payload)
    session.add(event)
    return event.event_id
