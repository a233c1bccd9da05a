"""Tables of the identity context: persons, insurance cards, health accounts, representatives,
and role grants (who may act as department, ward or facility staff)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, UtcDateTime


class Person(Base):
    """A person, keyed by the 12-digit personal ID. A newborn without an ID yet is a
    provisional person linked to the mother; once the ID is issued the two are merged.
    ``residence_ward_code`` is the ward of residence: it decides which ward office and which
    department may act as registrar for the person (D24)."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    personal_id: Mapped[str | None] = mapped_column(String(12), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    #: a birth known by its year or month only ("2006", "2008-11"; ``birth_date`` None then)
    birth_partial: Mapped[str | None] = mapped_column(String(7))
    sex: Mapped[str | None] = mapped_column(String(10))
    provisional: Mapped[bool] = mapped_column(default=False)
    mother_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("person.id"))
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("person.id"))
    vneid_sub: Mapped[str | None] = mapped_column(String(200), unique=True)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_assurance_level: Mapped[int | None] = mapped_column(Integer)
    residence_ward_code: Mapped[str | None] = mapped_column(String(5), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(60))


class InsuranceCard(Base):
    """A health-insurance card a person held; several rows make the card history."""

    __tablename__ = "insurance_card"
    __table_args__ = (Index("ix_insurance_card_person", "person_id", "valid_from"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId, ForeignKey("person.id"))
    card_number: Mapped[str] = mapped_column(String(15), index=True)
    social_insurance_number: Mapped[str] = mapped_column(String(10), index=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    registered_facility: Mapped[str | None] = mapped_column(String(5))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_by: Mapped[str] = mapped_column(String(60))


class HealthAccount(Base):
    """The citizen's health-book account: one per person, opened and closed on request."""

    __tablename__ = "health_account"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId, ForeignKey("person.id"), unique=True)
    status: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))  # vneid (self) | assisted (ward office)
    assisted_ward_code: Mapped[str | None] = mapped_column(String(5), index=True)
    assisted_by: Mapped[str | None] = mapped_column(String(60))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AccountEvent(Base):
    """Every opening, closing and reopening of an account (for the reports and the citizen)."""

    __tablename__ = "health_account_event"
    __table_args__ = (
        Index("ix_health_account_event_at", "at"),
        # what an officer did at the ward office, newest first (the ward page)
        Index("ix_health_account_event_actor", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("health_account.id"), index=True)
    action: Mapped[str] = mapped_column(String(10))  # opened | closed | reopened
    channel: Mapped[str] = mapped_column(String(10))
    ward_code: Mapped[str | None] = mapped_column(String(5))
    actor: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class Representative(Base):
    """A parent or legal guardian acting for a child or a ward, for a period (``valid_to``: the
    last day in force, inclusive). A link ended by a registrar keeps when, by whom and why
    (``identity.end_representative``)."""

    __tablename__ = "representative"
    __table_args__ = (
        Index("ix_representative_agent", "agent_id"),
        Index("ix_representative_subject", "subject_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(BigId, ForeignKey("person.id"))
    subject_id: Mapped[int] = mapped_column(BigId, ForeignKey("person.id"))
    relation: Mapped[str] = mapped_column(String(20))  # parent | guardian
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(60))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(60))
    end_reason: Mapped[str | None] = mapped_column(String(500))


class RoleGrant(Base):
    """A role a person holds: department_admin (of a province, or national), ward_officer (of
    a ward), facility_admin or clinician (of a facility)."""

    __tablename__ = "role_grant"
    __table_args__ = (Index("ix_role_grant_person", "personal_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    personal_id: Mapped[str] = mapped_column(String(12))
    role: Mapped[str] = mapped_column(String(30))
    facility_code: Mapped[str | None] = mapped_column(String(5), index=True)
    province_code: Mapped[str | None] = mapped_column(String(2))
    ward_code: Mapped[str | None] = mapped_column(String(5))
    granted_by: Mapped[str] = mapped_column(String(60))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(60))
