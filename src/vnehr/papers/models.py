"""Electronic papers: one row per paper version, the signed card kept with it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime

_REVOKED = text("revoked_at IS NOT NULL")
#: first versions (queries repeat it as written, without a bound parameter, to use the index)
FIRST_VERSION = text("version = 1")


class Paper(Base):
    """A paper a facility issued. Its ``id`` (a UUID) is in the QR; the national ``number`` is
    the facility's. A correction of a paper (same facility, kind and number, new content)
    revokes the old version ("replaced") and adds the next one."""

    __tablename__ = "paper"
    __table_args__ = (
        UniqueConstraint("facility_code", "kind", "number", "version"),
        Index("ix_paper_person", "person_id", "issued_at"),
        Index("ix_paper_visit", "facility_code", "visit_key"),
        Index("ix_paper_cited", "number", "kind", "status"),
        # the revocation list, in the order of revocation: only the revoked papers
        Index(
            "ix_paper_revocations",
            "revoked_at",
            "rid",
            postgresql_where=_REVOKED,
            sqlite_where=_REVOKED,
        ),
        # the report's recount reads first versions in the order issued
        Index(
            "ix_paper_first_issued",
            "issued_at",
            "id",
            postgresql_where=FIRST_VERSION,
            sqlite_where=FIRST_VERSION,
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    number: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    facility_code: Mapped[str] = mapped_column(String(5))
    visit_key: Mapped[str | None] = mapped_column(String(100))  # MA_LK when from a visit file
    source: Mapped[str] = mapped_column(String(10))  # visit | api
    person_id: Mapped[int | None] = mapped_column(BigId)  # whose health book shows it
    personal_id: Mapped[str | None] = mapped_column(String(15))
    signed_on: Mapped[date] = mapped_column(Date)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    #: valid | used | revoked ("expired" is read from ``valid_until``, never stored)
    status: Mapped[str] = mapped_column(String(10), default="valid")
    content: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    content_sha256: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)
    rid: Mapped[str] = mapped_column(String(24), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_by: Mapped[str] = mapped_column(String(100))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    used_by: Mapped[str | None] = mapped_column(String(120))  # facility:MA_LK of the visit
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    revoke_reason: Mapped[str | None] = mapped_column(String(500))


class PaperCounter(Base):
    """The last serial the hub gave a facility's papers of one kind in one year (driver's
    certificates: ``{facility}.KSK.{serial}.{yy}``). Taken and raised in the issuing
    transaction: concurrent issues wait for each other, and an issue rolled back gives its
    serial back."""

    __tablename__ = "paper_counter"

    facility_code: Mapped[str] = mapped_column(String(5), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_serial: Mapped[int] = mapped_column(Integer)
