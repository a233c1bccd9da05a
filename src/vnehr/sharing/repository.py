"""All SQL of the sharing context."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.kit.outbox import OutboxEvent
from vnehr.sharing.models import ConsentDirective, EmergencyAccess, ReceptionCode

#: The review finding that ends an emergency access.
UNJUSTIFIED = "unjustified"
_TAKE_TURNS_SHARING = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 161))")


class SharingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: ConsentDirective | EmergencyAccess | ReceptionCode) -> None:
        self.session.add(row)
        await self.session.flush()

    async def directive(self, directive_id: int) -> ConsentDirective | None:
        return await self.session.get(ConsentDirective, directive_id)

    async def directives_of(
        self, person_ids: Sequence[int], *, newest_first: bool
    ) -> list[ConsentDirective]:
        if not person_ids:
            return []
        order = ConsentDirective.id.desc() if newest_first else ConsentDirective.id
        stmt = select(ConsentDirective).where(ConsentDirective.person_id.in_(person_ids))
        return list(await self.session.scalars(stmt.order_by(order)))

    async def take_turns_sharing(self, person_id: int) -> None:
        """Until the transaction ends, the person's shares are made one at a time (PostgreSQL:
        a lock; SQLite's writers take turns): the same share sent twice at once is found by
        the second, not made twice."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(_TAKE_TURNS_SHARING, {"key": f"shares:{person_id}"})

    async def directives_for(self, person_id: int, facility_code: str) -> list[ConsentDirective]:
        """Directives naming this facility or every facility (in force or not)."""
        stmt = select(ConsentDirective).where(
            ConsentDirective.person_id == person_id,
            or_(ConsentDirective.grantee == facility_code, ConsentDirective.grantee == "*"),
        )
        return list(await self.session.scalars(stmt))

    async def emergency_in_force(
        self, person_id: int, facility_code: str, clinician: str, now: datetime
    ) -> EmergencyAccess | None:
        """The clinician's access to the patient at the facility: not expired, and not found
        unjustified by its review (that ends it)."""
        e = EmergencyAccess
        stmt = select(e).where(
            e.person_id == person_id,
            e.facility_code == facility_code,
            e.clinician == clinician,
            e.expires_at > now,
            or_(e.review_outcome.is_(None), e.review_outcome != UNJUSTIFIED),
        )
        return (await self.session.scalars(stmt)).first()

    async def unjustified_since(
        self, person_id: int, clinician: str, since: datetime
    ) -> EmergencyAccess | None:
        """The clinician's latest access to the patient (at any facility) found unjustified by
        a review after ``since``, if any."""
        e = EmergencyAccess
        stmt = (
            select(e)
            .where(
                e.person_id == person_id,
                e.clinician == clinician,
                e.review_outcome == UNJUSTIFIED,
                e.reviewed_at > since,
            )
            .order_by(e.reviewed_at.desc())
            .limit(1)
        )
        return (await self.session.scalars(stmt)).first()

    async def emergency(self, access_id: int, *, lock: bool = False) -> EmergencyAccess | None:
        """The access; ``lock``: its row locked until the transaction ends, read as committed
        by whoever held it before (PostgreSQL; SQLite's writers take turns)."""
        if lock:
            return await self.session.get(
                EmergencyAccess, access_id, with_for_update=True, populate_existing=True
            )
        return await self.session.get(EmergencyAccess, access_id)

    async def reviews_of(
        self, person_ids: Sequence[int], access_ids: Sequence[int]
    ) -> list[tuple[int, str, datetime | None, str | None]]:
        """(id, status, reviewed_at, review_outcome) of these accesses to these persons'
        records, by their primary key: one statement however many."""
        if not person_ids or not access_ids:
            return []
        e = EmergencyAccess
        stmt = select(e.id, e.status, e.reviewed_at, e.review_outcome).where(
            e.id.in_(access_ids), e.person_id.in_(person_ids)
        )
        rows = await self.session.execute(stmt)
        return [(r.id, r.status, r.reviewed_at, r.review_outcome) for r in rows]

    async def emergencies(
        self,
        facility_codes: Sequence[str] | None,
        status: str | None,
        *,
        after: tuple[datetime, int] | None = None,
        limit: int = 100,
    ) -> list[EmergencyAccess]:
        """Newest first (by opening, then id), at most ``limit``, those after the
        (opened_at, id) of ``after`` (keyset paging: one opened meanwhile shifts no later
        page); ``facility_codes`` None: every facility."""
        e = EmergencyAccess
        stmt = select(e).order_by(e.opened_at.desc(), e.id.desc())
        if facility_codes is not None:
            stmt = stmt.where(e.facility_code.in_(facility_codes))
        if status:
            stmt = stmt.where(e.status == status)
        if after is not None:
            opened, last_id = after
            stmt = stmt.where(
                or_(e.opened_at < opened, and_(e.opened_at == opened, e.id < last_id))
            )
        return list(await self.session.scalars(stmt.limit(limit)))

    async def event_exists(self, key: str) -> bool:
        """Whether an outbox event with this key was already recorded."""
        found = await self.session.scalar(
            select(OutboxEvent.id).where(OutboxEvent.key == key).limit(1)
        )
        return found is not None

    async def open_codes(
        self, person_id: int, now: datetime, *, lock: bool = False
    ) -> list[ReceptionCode]:
        """The person's reception codes neither used, voided nor expired, newest first.
        ``lock``: held until the transaction ends, so that tries at the person's codes take
        turns (each counts the wrong tries before it, D74)."""
        stmt = select(ReceptionCode).where(
            ReceptionCode.person_id == person_id,
            ReceptionCode.expires_at > now,
            ReceptionCode.used_at.is_(None),
        )
        if lock:
            stmt = stmt.with_for_update()
        return list(await self.session.scalars(stmt.order_by(ReceptionCode.id.desc())))
