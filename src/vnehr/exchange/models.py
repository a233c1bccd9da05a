"""Tables of the exchange context: one row per delivery attempt, and what the BHXH portal
answered for each visit version it accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"
    __table_args__ = (Index("ix_delivery_attempt_event", "event_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    topic: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(60))
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(20))  # delivered | failed | skipped
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)


class BhxhReceipt(Base):
    """The portal's transaction id and reception time for a visit version (reconciliation)."""

    __tablename__ = "bhxh_receipt"
    __table_args__ = (
        UniqueConstraint("version_id"),
        Index("ix_bhxh_receipt_visit", "facility_code", "visit_key", "version"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version_id: Mapped[int] = mapped_column(BigId)
    facility_code: Mapped[str] = mapped_column(String(5))
    visit_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    ma_giao_dich: Mapped[str] = mapped_column(String(100))
    portal_received_at: Mapped[str | None] = mapped_column(String(14))
    delivered_at: Mapped[datetime] = mapped_column(UtcDateTime())


#: The predicate of the index of the notices of a visit (rows stored before 0027 have no
#: visit columns and are not in it).
OF_A_VISIT = text("visit_key IS NOT NULL")


class Notification(Base):
    """A message in the citizen's inbox (portal and app): a new visit in the health book, a
    paper issued, the record viewed by someone. A new visit's notice also names the visit in
    its own columns: a person is told of a visit once (amends D175)."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("event_id", "person_id"),
        Index("ix_notification_person", "person_id", "id"),
        Index(
            "ix_notification_visit",
            "person_id",
            "facility_code",
            "visit_key",
            postgresql_where=OF_A_VISIT,
            sqlite_where=OF_A_VISIT,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: the visit a "visit" notice tells of (None for other kinds, and for rows before 0027)
    facility_code: Mapped[str | None] = mapped_column(String(5))
    visit_key: Mapped[str | None] = mapped_column(String(100))
