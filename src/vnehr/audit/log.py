"""The audit table and how rows are written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.clock import utcnow
from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime, keep_on_refusal, make_row

#: A registrar's acts on a person the ward page lists as the officer's recent work (D205):
#: their representatives recorded and ended, insurance cards and residences. The partial
#: index's condition, written as the query writes it, constants and all (a planner uses the
#: index only for a condition it can prove the same; migration 0033 built it so).
REGISTRAR_WHERE = text(
    "action IN ('representative.added', 'card.added', 'person.residence_set',"
    " 'representative.ended')"
)


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_person", "person_id", "at"),
        Index("ix_audit_event_seq", "seq", unique=True),
        # what an officer recorded at the ward office lately (the ward page, D205): the
        # registrar's rare acts alone, so the hot reads' rows pay for no second index
        Index(
            "ix_audit_event_registrar",
            "actor",
            "at",
            postgresql_where=REGISTRAR_WHERE,
            sqlite_where=REGISTRAR_WHERE,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    person_id: Mapped[int | None] = mapped_column(BigId)
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    seq: Mapped[int | None] = mapped_column(BigInteger)  # position in the chain, once sealed
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


def audit_event(
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    person_id: int | None = None,
    detail: dict[str, Any] | None = None,
    plain: bool = False,
    kept: bool = False,
) -> AuditEvent:
    """A row for the caller to add in its own transaction; ``plain``: a plain row for callers
    that write with ``hot_add`` or ``copy_objects`` (D53), not a mapped instance. ``kept``:
    a row a refusal does not undo (``kit.db.keep_on_refusal``, D228), for a read of a person
    written before a check that may still refuse (the look-up told something: that the ID is
    someone's, a birth date) and for a refused attempt the person's access log shows."""
    if kept and plain:
        raise ValueError("a plain row is written by its caller, never kept on refusal")
    row = make_row(
        AuditEvent,
        plain,
        at=utcnow(),
        actor=actor,
        action=action,
        person_id=person_id,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
    )
    return keep_on_refusal(row) if kept else row


async def events_about(
    session: AsyncSession, person_ids: list[int], *, limit: int = 500
) -> list[AuditEvent]:
    """The newest audit rows about these persons (what the citizen sees as "who looked")."""
    if not person_ids:
        return []
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.person_id.in_(person_ids))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(stmt))


#: Actions that are someone reading or taking a copy of a person's record, or of what the
#: registry keeps of them (their insurance cards, their roles, their identity as a ward office
#: finds it at an assisted enrolment, their name as a facility finds it to give them a role),
#: and a break-glass attempt refused by the bar (D191, D228: it told the ID is a patient's).
READS = (
    "visit.read", "timeline.read", "summary.read", "fhir.read", "visit.exported",
    "clinical.read", "emergency.opened", "paper.read", "paper.list", "cards.read",
    "grants.read", "book.exported", "enrolment.read", "newborn.mother_read",
    "grant.person.read", "emergency.barred", "representative.person.read",
    "residence.person.read", "card.person.read", "representatives.read",
)  # fmt: skip
#: Attempts refused, written for the person's access log all the same (D228): an AuditEvent's
#: outcome says they failed.
REFUSED = ("emergency.barred",)
#: Reads only a registrar makes (the health department, a ward office; never a facility):
#: whoever reads the log is told its officer's name.
BY_DEPARTMENT = (
    "cards.read", "grants.read", "enrolment.read", "newborn.mother_read",
    "representative.person.read", "residence.person.read", "card.person.read",
    "representatives.read",
)  # fmt: skip


async def reads_about(
    session: AsyncSession,
    person_ids: list[int],
    *,
    not_by: str,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Reads of these persons' records by anyone but ``not_by`` (the citizen), newest first."""
    if not person_ids:
        return []
    stmt = select(AuditEvent).where(
        AuditEvent.person_id.in_(person_ids),
        AuditEvent.action.in_(READS),
        AuditEvent.actor != not_by,
    )
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    return list(await session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit)))


async def registrar_acts(
    session: AsyncSession, actor: str, persons: Any, limit: int
) -> list[AuditEvent]:
    """``actor``'s newest acts of ``REGISTRAR_WHERE`` about ``persons`` (a subquery of person
    ids), by ``ix_audit_event_registrar``: the officer's own rows, newest first, the persons
    checked as they come."""
    stmt = (
        select(AuditEvent)
        .where(REGISTRAR_WHERE, AuditEvent.actor == actor, AuditEvent.person_id.in_(persons))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def count_since(session: AsyncSession, person_id: int, action: str, since: datetime) -> int:
    """How many rows of this action about this person were written since ``since``."""
    stmt = select(func.count()).where(
        AuditEvent.person_id == person_id, AuditEvent.action == action, AuditEvent.at >= since
    )
    return int(await session.scalar(stmt) or 0)


class AccessDispute(Base):
    """A citizen's "I don't recognise this" about one read of their record: a case for the
    health department until someone closes it with a finding."""

    __tablename__ = "access_dispute"
    __table_args__ = (Index("ix_access_dispute_status", "status", "opened_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    audit_event_id: Mapped[int] = mapped_column(BigId, ForeignKey("audit_event.id"))
    person_id: Mapped[int] = mapped_column(BigId, index=True)
    opened_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(1000))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(10))  # open | closed
    closed_by: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finding: Mapped[str | None] = mapped_column(String(1000))


async def event(session: AsyncSession, event_id: int) -> AuditEvent | None:
    return await session.get(AuditEvent, event_id)


async def disputed(session: AsyncSession, event_ids: list[int]) -> set[int]:
    """Which of these audit entries a citizen has disputed."""
    if not event_ids:
        return set()
    stmt = select(AccessDispute.audit_event_id).where(AccessDispute.audit_event_id.in_(event_ids))
    return set(await session.scalars(stmt))


async def dispute_of(session: AsyncSession, event_id: int) -> AccessDispute | None:
    stmt = select(AccessDispute).where(AccessDispute.audit_event_id == event_id)
    return (await session.scalars(stmt)).first()


async def events(session: AsyncSession, event_ids: list[int]) -> dict[int, AuditEvent]:
    """These audit rows, by id, read at once (those that exist)."""
    if not event_ids:
        return {}
    stmt = select(AuditEvent).where(AuditEvent.id.in_(set(event_ids)))
    return {row.id: row for row in await session.scalars(stmt)}


async def events_of_objects(
    session: AsyncSession,
    person_ids: list[int],
    action: str,
    object_type: str,
    object_ids: list[str],
) -> list[AuditEvent]:
    """The rows of ``action`` about these objects, written about these persons (oldest
    first): the persons are the query's scope, and its index (``ix_audit_event_person``)."""
    if not person_ids or not object_ids:
        return []
    stmt = select(AuditEvent).where(
        AuditEvent.person_id.in_(set(person_ids)),
        AuditEvent.action == action,
        AuditEvent.object_type == object_type,
        AuditEvent.object_id.in_(set(object_ids)),
    )
    return list(await session.scalars(stmt.order_by(AuditEvent.id)))


async def disputes_of(session: AsyncSession, event_ids: list[int]) -> dict[int, AccessDispute]:
    """The case opened about each of these audit rows, by the row's id (none: left out)."""
    if not event_ids:
        return {}
    stmt = select(AccessDispute).where(AccessDispute.audit_event_id.in_(set(event_ids)))
    return {row.audit_event_id: row for row in await session.scalars(stmt)}


async def dispute(
    session: AsyncSession, dispute_id: int, *, to_change: bool = False
) -> AccessDispute | None:
    """A case; ``to_change``: its row held until the transaction ends and read afresh (a
    second reviewer's close or end at the same moment waits, then finds it closed)."""
    if to_change:
        return await session.get(
            AccessDispute, dispute_id, with_for_update=True, populate_existing=True
        )
    return await session.get(AccessDispute, dispute_id)


async def disputes(
    session: AsyncSession,
    status: str | None,
    persons: Any = None,
    *,
    after: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[AccessDispute]:
    """The department's queue, newest first (by opening, then id): the cases about ``persons``
    (a subquery of person ids, filtered before the limit so other departments' cases never
    crowd them out; None: everyone's), at most ``limit``, those after the (opened_at, id) of
    ``after`` (keyset paging: a case opened meanwhile shifts no later page)."""
    stmt = select(AccessDispute).order_by(AccessDispute.opened_at.desc(), AccessDispute.id.desc())
    if status:
        stmt = stmt.where(AccessDispute.status == status)
    if persons is not None:
        stmt = stmt.where(AccessDispute.person_id.in_(persons))
    if after is not None:
        opened, last_id = after
        stmt = stmt.where(
            or_(
                AccessDispute.opened_at < opened,
                and_(AccessDispute.opened_at == opened, AccessDispute.id < last_id),
            )
        )
    return list(await session.scalars(stmt.limit(limit)))
