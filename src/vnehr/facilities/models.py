"""Tables of the facilities context: registry and codes, onboarding, practitioners, clients."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime

#: The facilities a citizen may share with and find: those connected to the exchange (D190).
RECEIVES = "status = 'connected'"


class Facility(Base):
    """A medical facility (cơ sở KCB) with its 5-character code (mã cơ sở KCB)."""

    __tablename__ = "facility"
    __table_args__ = (
        Index("ix_facility_province_status", "province_code", "status"),
        # the citizen's search of the facilities that receive records (``search_key LIKE``
        # per word): trigrams on PostgreSQL; on SQLite the connected ones' keys only
        Index(
            "ix_facility_search",
            "search_key",
            postgresql_using="gin",
            postgresql_ops={"search_key": "gin_trgm_ops"},
            postgresql_where=text(RECEIVES),
            sqlite_where=text(RECEIVES),
        ),
    )

    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(40))
    ownership: Mapped[str] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(String(500))
    ward_code: Mapped[str | None] = mapped_column(String(5))
    province_code: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(30))
    #: The state before a suspension, so reinstating returns to it.
    status_before_suspension: Mapped[str | None] = mapped_column(String(30))
    issued: Mapped[bool] = mapped_column(default=True)  # False: an existing code registered as is
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(40))
    #: What a search matches, folded: " code name address ward..." (``service.search_key``).
    search_key: Mapped[str] = mapped_column(Text, default="", server_default="")


class FacilityCodeCounter(Base):
    """Next 3-digit sequence per province; codes are never reused."""

    __tablename__ = "facility_code_counter"

    province_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(Integer)


class OnboardingEvent(Base):
    """Every change of a facility's onboarding state: who, when, from what, to what, why."""

    __tablename__ = "facility_onboarding_event"
    __table_args__ = (Index("ix_facility_onboarding_event_facility", "facility_code", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_code: Mapped[str] = mapped_column(String(5), ForeignKey("facility.code"))
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class Practitioner(Base):
    """A health worker, by national practitioner id or practising-certificate number (CCHN)."""

    __tablename__ = "practitioner"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    practitioner_id: Mapped[str] = mapped_column(String(60), unique=True)
    personal_id: Mapped[str | None] = mapped_column(String(12), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PractitionerRole(Base):
    """A practitioner working at a facility for a period."""

    __tablename__ = "practitioner_role"
    __table_args__ = (
        UniqueConstraint("practitioner_id", "facility_code", "valid_from"),
        Index("ix_practitioner_role_facility", "facility_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    practitioner_id: Mapped[int] = mapped_column(BigId, ForeignKey("practitioner.id"))
    facility_code: Mapped[str] = mapped_column(String(5), ForeignKey("facility.code"))
    role: Mapped[str] = mapped_column(String(60))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


class ApiClient(Base):
    """A facility system (HIS) allowed to call the API with a signed client assertion."""

    __tablename__ = "api_client"

    client_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    facility_code: Mapped[str] = mapped_column(String(5), ForeignKey("facility.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    jwks: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    scopes: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(60))


class UsedAssertion(Base):
    """Client assertions already used (their ``jti``), kept until they expire: no replay."""

    __tablename__ = "api_client_used_assertion"

    client_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class FacilityCertificate(Base):
    """An X.509 signing certificate of a facility, for checking signed XML files."""

    __tablename__ = "facility_certificate"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_code: Mapped[str] = mapped_column(String(5), ForeignKey("facility.code"), index=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    serial_number: Mapped[str] = mapped_column(String(100))
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())
    not_after: Mapped[datetime] = mapped_column(UtcDateTime())
    pem: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    registered_by: Mapped[str] = mapped_column(String(60))
