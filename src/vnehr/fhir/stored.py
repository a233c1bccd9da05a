"""Queries over the resources kept as sent (``fhir_resource``)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.fhir import intake
from vnehr.fhir.models import StoredIdentifier, StoredResource

#: At most this many stored resources in one compartment or one writer's search.
LIMIT = 2000


async def current(session: AsyncSession, type_: str, resource_id: str) -> StoredResource | None:
    stmt = select(StoredResource).where(
        StoredResource.resource_type == type_,
        StoredResource.resource_id == resource_id,
        StoredResource.current.is_(True),
    )
    return (await session.scalars(stmt)).first()


async def versions(session: AsyncSession, type_: str, resource_id: str) -> list[StoredResource]:
    """Every version, newest first."""
    stmt = (
        select(StoredResource)
        .where(StoredResource.resource_type == type_, StoredResource.resource_id == resource_id)
        .order_by(StoredResource.version.desc())
    )
    return list(await session.scalars(stmt))


async def of_persons(
    session: AsyncSession,
    person_ids: list[int],
    writer: str | None = None,
    shared_persons: list[int] | None = None,
    shared_types: tuple[str, ...] = (),
    *,
    types: tuple[str, ...] = (),
) -> list[StoredResource]:
    """Current resources in these persons' compartments: only one writer's, if given, with,
    for ``shared_persons``, those of ``shared_types`` whoever wrote them; only of ``types``,
    if given."""
    if not person_ids:
        return []
    stmt = select(StoredResource).where(
        StoredResource.person_id.in_(person_ids), StoredResource.current.is_(True)
    )
    if types:
        stmt = stmt.where(StoredResource.resource_type.in_(types))
    if writer is not None:
        whose = StoredResource.facility_code == writer
        if shared_persons and shared_types:
            whose = or_(
                whose,
                and_(
                    StoredResource.person_id.in_(shared_persons),
                    StoredResource.resource_type.in_(shared_types),
                ),
            )
        stmt = stmt.where(whose)
    return list(await session.scalars(stmt.order_by(StoredResource.id.desc()).limit(LIMIT)))


async def of_person(session: AsyncSession, person_id: int, type_: str) -> list[StoredResource]:
    """Current resources of one type in a person's compartment, newest first."""
    return await _current_of_type(session, type_, StoredResource.person_id == person_id)


async def by_writer(session: AsyncSession, writer: str, type_: str) -> list[StoredResource]:
    """Current resources of a type that one facility wrote (newest first)."""
    return await _current_of_type(session, type_, StoredResource.facility_code == writer)


async def keeps_patient(
    session: AsyncSession, writer: str, person_id: int, besides: Collection[str] = ()
) -> bool:
    """Whether the facility keeps a Patient (its current version) standing for the person: one
    it wrote with their personal ID, name and birth date, not taken out of their record (D167);
    one kept with the ID alone (before FHIR-0022) does not count; ``besides``: ids of
    Patients not to count (a transaction rewrites them)."""
    stmt = select(StoredResource.body).where(
        StoredResource.resource_type == "Patient",
        StoredResource.facility_code == writer,
        StoredResource.person_id == person_id,
        StoredResource.current.is_(True),
    )
    if besides:
        stmt = stmt.where(StoredResource.resource_id.not_in(list(besides)))
    return any(not intake.lacking(body or {}) for body in await session.scalars(stmt))


async def _current_of_type(
    session: AsyncSession, type_: str, whose: ColumnElement[bool]
) -> list[StoredResource]:
    stmt = (
        select(StoredResource)
        .where(whose, StoredResource.resource_type == type_, StoredResource.current.is_(True))
        .order_by(StoredResource.id.desc())
        .limit(LIMIT)
    )
    return list(await session.scalars(stmt))


async def by_identifier(
    session: AsyncSession, type_: str, system: str | None, value: str, writer: str | None
) -> list[str]:
    stmt = select(StoredIdentifier.resource_id).where(
        StoredIdentifier.resource_type == type_, StoredIdentifier.value == value
    )
    if system is not None:
        stmt = stmt.where(StoredIdentifier.system == system)
    if writer is not None:
        stmt = stmt.where(StoredIdentifier.facility_code == writer)
    return list(await session.scalars(stmt))
