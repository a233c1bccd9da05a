"""Storing visits: versions per (facility, MA_LK), the timeline index, and reading them back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.records.models import TimelineEntry, VisitVersion

Outcome = Literal["new", "changed", "unchanged"]


@dataclass(slots=True)
class VisitData:
    facility_code: str
    visit_key: str
    tables: dict[str, Any]
    content_sha256: str
    submission_id: str
    received_at: datetime
    test_mode: bool = False
    person_id: int | None = None
    personal_id: str | None = None
    care_type: str | None = None
    insured: bool = False
    main_diagnosis: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    total_hospital_cost: Decimal | None = None
    has_summary: bool = False
    warnings: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    version_id: int
    version: int
    outcome: Outcome
    submission_id: str  # for "unchanged": the submission that first brought this content


async def current_version(
    session: AsyncSession, facility_code: str, visit_key: str, *, lock: bool = False
) -> VisitVersion | None:
    stmt = select(VisitVersion).where(
        VisitVersion.facility_code == facility_code,
        VisitVersion.visit_key == visit_key,
        VisitVersion.current.is_(True),
    )
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def store(session: AsyncSession, data: VisitData) -> Stored:
    """Keep a visit: the same content again changes nothing; changed content becomes a new
    version that supersedes the old one (which is kept)."""
    current = await current_version(session, data.facility_code, data.visit_key, lock=True)
    if current is not None and current.content_sha256 == data.content_sha256:
        return Stored(current.id, current.version, "unchanged", current.submission_id)
    if current is not None:
        await session.execute(
            update(VisitVersion).where(VisitVersion.id == current.id).values(current=False)
        )
    lag = (
        int((data.received_at - data.ended_at).total_seconds())
        if data.ended_at is not None
        else None
    )
    row = VisitVersion(
        facility_code=data.facility_code,
        visit_key=data.visit_key,
        version=(current.version + 1) if current else 1,
        current=True,
        test_mode=data.test_mode,
        submission_id=data.submission_id,
        content_sha256=data.content_sha256,
        person_id=data.person_id,
        personal_id=data.personal_id,
        care_type=data.care_type,
        insured=data.insured,
        main_diagnosis=data.main_diagnosis,
        started_at=data.started_at,
        ended_at=data.ended_at,
        received_at=data.received_at,
        lag_seconds=lag,
        total_hospital_cost=data.total_hospital_cost,
        has_summary=data.has_summary,
        tables=data.tables,
        warnings=data.warnings,
    )
    session.add(row)
    await session.flush()
    if not data.test_mode:
        timeline = (
            await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.facility_code == data.facility_code,
                    TimelineEntry.visit_key == data.visit_key,
                )
            )
        ).first()
        if timeline is None:
            session.add(
                TimelineEntry(
                    person_id=data.person_id,
                    facility_code=data.facility_code,
                    visit_key=data.visit_key,
                    version_id=row.id,
                    care_type=data.care_type,
                    main_diagnosis=data.main_diagnosis,
                    ended_at=data.ended_at,
                )
            )
        else:
            timeline.person_id = data.person_id
            timeline.version_id = row.id
            timeline.care_type, timeline.main_diagnosis = data.care_type, data.main_diagnosis
            timeline.ended_at = data.ended_at
    return Stored(row.id, row.version, "changed" if current else "new", data.submission_id)


async def versions(session: AsyncSession, facility_code: str, visit_key: str) -> list[VisitVersion]:
    stmt = (
        select(VisitVersion)
        .where(VisitVersion.facility_code == facility_code, VisitVersion.visit_key == visit_key)
        .order_by(VisitVersion.version)
    )
    return list(await session.scalars(stmt))
