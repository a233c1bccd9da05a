"""The longitudinal record: every version of every visit, stored canonically, and the citizen's
timeline index (one row per current visit)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, PackedJSON, UtcDateTime


class VisitVersion(Base):
    """One version of a visit (facility + MA_LK) as received; the newest is ``current``."""

    __tablename__ = "visit_version"
    __table_args__ = (
        UniqueConstraint("facility_code", "visit_key", "version"),
        Index("ix_visit_version_current", "facility_code", "visit_key", "current"),
        Index("ix_visit_version_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    facility_code: Mapped[str] = mapped_column(String(5))
    visit_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(default=True)
    test_mode: Mapped[bool] = mapped_column(default=False)
    submission_id: Mapped[str] = mapped_column(String(36), index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int | None] = mapped_column(BigId, index=True)
    personal_id: Mapped[str | None] = mapped_column(String(15))
    care_type: Mapped[str | None] = mapped_column(String(2))
    insured: Mapped[bool] = mapped_column(default=False)
    main_diagnosis: Mapped[str | None] = mapped_column(String(10))
    outcome: Mapped[str | None] = mapped_column(String(2))  # KET_QUA_DTRI
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lag_seconds: Mapped[int | None] = mapped_column(BigInteger)
    total_hospital_cost: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    has_summary: Mapped[bool] = mapped_column(default=False)  # XML8 present
    tables: Mapped[dict[str, Any]] = mapped_column(PackedJSON)  # canonical: table -> rows
    warnings: Mapped[list[Any] | None] = mapped_column(JSONDoc)


class TimelineEntry(Base):
    """The citizen's timeline: one row per visit (its current version). Its ``id`` is the
    visit's stable id in the health book and the FHIR Encounter id; it survives corrections."""

    __tablename__ = "timeline_entry"
    __table_args__ = (
        UniqueConstraint("facility_code", "visit_key"),
        Index("ix_timeline_entry_person", "person_id", "ended_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int | None] = mapped_column(BigId)
    facility_code: Mapped[str] = mapped_column(String(5))
    visit_key: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("visit_version.id"))
    care_type: Mapped[str | None] = mapped_column(String(2))
    main_diagnosis: Mapped[str | None] = mapped_column(String(10))
    outcome: Mapped[str | None] = mapped_column(String(2))
    insured: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    #: The insurance cards of version ``insurance_cards_version`` (XML1 MA_THE_BHYT, trimmed,
    #: ";"-separated; None without one): the FHIR Patient lists them without opening the visit
    #: while that is still ``version_id`` (D114). Rows stored before 0024, or written by the
    #: previous release during a rolling upgrade, have it NULL or older: the visit is opened.
    insurance_cards: Mapped[str | None] = mapped_column(Text)
    insurance_cards_version: Mapped[int | None] = mapped_column(BigId)
    #: The sensitive categories (D35) version ``sensitive_version`` touches, after the number
    #: of the classification that read them ("2|hiv;mental", sorted, ";"-separated; "2|" for
    #: none): a representative of a person of 16 or 17 gets a page of the timeline without
    #: opening the visits it leaves out (D132). Rows stored before 0025, corrected by the
    #: previous release, or kept by an older classification (``records.sensitive``) have it
    #: NULL, older or of another number: the visit is opened.
    sensitive_categories: Mapped[str | None] = mapped_column(Text)
    sensitive_version: Mapped[int | None] = mapped_column(BigId)
    #: What the downloaded book's summary reads of version ``summary_version`` (the XML1
    #: diagnoses, blood group and weight, and until when its medicines count, after the number
    #: of their form: "1|{...}", ``records.facts``): the PDF's summary reads these rows, not
    #: every visit (D209). Rows stored before 0030, corrected by the previous release, or kept
    #: in another form have it NULL, older or of another number: the visit is opened.
    summary_facts: Mapped[str | None] = mapped_column(Text)
    summary_version: Mapped[int | None] = mapped_column(BigId)
