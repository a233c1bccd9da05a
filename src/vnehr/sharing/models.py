"""The citizen's sharing directives and the emergency accesses (break-glass)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime


class ConsentDirective(Base):
    """ "Share my record with facility X (or every facility), this much, until then." Revoked
    directives are kept (with the time of revocation) for the record."""

    __tablename__ = "consent_directive"
    __table_args__ = (Index("ix_consent_directive_person", "person_id", "grantee"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId)
    grantee: Mapped[str] = mapped_column(String(5))  # a facility code, or "*" for every one
    scope: Mapped[str] = mapped_column(String(10))  # summary | full
    sensitive: Mapped[list[Any]] = mapped_column(JSONDoc)  # categories included by name
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class EmergencyAccess(Base):
    """A clinician opened a record without consent, giving a reason; time-boxed, the citizen is
    told at once, and it waits in the review queue until a supervisor closes it, finding it
    justified (it runs its time) or not (it ends then)."""

    __tablename__ = "emergency_access"
    __table_args__ = (
        Index("ix_emergency_access_person", "person_id", "facility_code", "expires_at"),
        Index("ix_emergency_access_status", "status", "facility_code"),
        Index("ix_emergency_access_opened", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId)
    facility_code: Mapped[str] = mapped_column(String(5))
    clinician: Mapped[str] = mapped_column(String(100))
    reason_code: Mapped[str] = mapped_column(String(30))
    reason_text: Mapped[str] = mapped_column(String(1000))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(10))  # open | reviewed
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    review_note: Mapped[str | None] = mapped_column(String(1000))
    #: justified | unjustified (None: reviewed before 0026 said, or not reviewed yet); an
    #: access found unjustified ended at ``reviewed_at``
    review_outcome: Mapped[str | None] = mapped_column(String(12))


class ReceptionCode(Base):
    """A one-time code the citizen shows at reception (6 digits, or the same as a QR); the
    clinician who enters it gets the full record for that visit, for a day. Only a hash of the
    code is kept."""

    __tablename__ = "reception_code"
    __table_args__ = (Index("ix_reception_code_person", "person_id", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    used_by: Mapped[str | None] = mapped_column(String(100))
    directive_id: Mapped[int | None] = mapped_column(BigId)
