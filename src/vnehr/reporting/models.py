"""The report's rollups and inputs: counts kept up to date by an event consumer, the population
of each ward, the visits facilities declare they made, and the department's notes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, UtcDateTime


class ReportCount(Base):
    """One counter: a metric for a month (Vietnam time), a province, a ward and a facility
    ("" when it does not apply), with up to two dimensions (care category, insured, error code,
    paper kind, lag bucket...). Events add to it; ``vnehr report check`` compares it with the
    stored visits."""

    __tablename__ = "report_count"
    __table_args__ = (
        UniqueConstraint("month", "province", "ward", "facility", "metric", "dim1", "dim2"),
        Index("ix_report_count_lookup", "province", "month", "metric"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    month: Mapped[date] = mapped_column(Date)  # first day of the month
    province: Mapped[str] = mapped_column(String(2))
    ward: Mapped[str] = mapped_column(String(5))
    facility: Mapped[str] = mapped_column(String(5))
    metric: Mapped[str] = mapped_column(String(30))
    dim1: Mapped[str] = mapped_column(String(30))
    dim2: Mapped[str] = mapped_column(String(30))
    value: Mapped[int] = mapped_column(BigInteger)


class WardPopulation(Base):
    """The population of a ward (loaded from the statistics office's CSV)."""

    __tablename__ = "ward_population"

    ward_code: Mapped[str] = mapped_column(String(5), primary_key=True)
    province: Mapped[str] = mapped_column(String(2))
    population: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[date | None] = mapped_column(Date)


class DeclaredVisits(Base):
    """The visits a facility says it made in a period (its HIS counts), per care category and
    insured/uninsured: the "visits made" column of the Ministry's matrix."""

    __tablename__ = "declared_visits"
    __table_args__ = (UniqueConstraint("period", "facility_code", "category", "insured"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(6))  # 2026H1
    facility_code: Mapped[str] = mapped_column(String(5))
    category: Mapped[str] = mapped_column(String(30))
    insured: Mapped[bool] = mapped_column()
    visits: Mapped[int] = mapped_column(BigInteger)
    declared_at: Mapped[datetime] = mapped_column(UtcDateTime())
    declared_by: Mapped[str] = mapped_column(String(100))


class ReportNote(Base):
    """The department's text on difficulties and recommendations for one report."""

    __tablename__ = "report_note"
    __table_args__ = (UniqueConstraint("period", "province"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(6))
    province: Mapped[str] = mapped_column(String(2))  # "" for the whole country
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(100))
