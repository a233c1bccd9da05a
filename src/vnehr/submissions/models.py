"""Tables of the submissions context: each received file with its raw bytes and its receipt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime

#: the predicate of the rejected files' index; queries repeat it as written, without a bound
#: parameter, so that SQLite and a generic PostgreSQL plan can use the index
REJECTED = text("rejected > 0")


class Submission(Base):
    """A file as received (zstd-compressed, immutable: legal evidence and re-processing) and
    the receipt given for it."""

    __tablename__ = "submission"
    __table_args__ = (
        Index("ix_submission_facility_received", "facility_code", "received_at"),
        # `vnehr import` skips files whose bytes were received before (resume after a crash)
        Index("ix_submission_raw_sha256", "raw_sha256"),
        # the report's recount reads the files with a rejected visit in the order received
        Index(
            "ix_submission_rejected_received",
            "received_at",
            "id",
            postgresql_where=REJECTED,
            sqlite_where=REJECTED,
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # giamdinhhs | checkin
    facility_code: Mapped[str] = mapped_column(String(5))
    client_id: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(30))
    test_mode: Mapped[bool] = mapped_column(default=False)
    visits: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    raw_size: Mapped[int] = mapped_column(Integer)
    raw_zstd: Mapped[bytes] = mapped_column(LargeBinary)
    receipt: Mapped[dict[str, Any]] = mapped_column(JSONDoc)


class CheckinEntry(Base):
    """A visit checked in (XML0, accepted, not in test mode): the facility said it began and
    its first cost arose. Read with the visits stored: a check-in whose visit never came is a
    visit made but not sent (D65)."""

    __tablename__ = "checkin_entry"
    __table_args__ = (
        Index("ix_checkin_entry_visit", "facility_code", "visit_key"),
        Index("ix_checkin_entry_facility_received", "facility_code", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(String(36))
    facility_code: Mapped[str] = mapped_column(String(5))
    visit_key: Mapped[str] = mapped_column(String(100))
    began_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # NGAY_VAO
    first_cost_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # NGAY_YL
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
