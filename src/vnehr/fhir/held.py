"""Resources kept as sent while the holder of a personal ID was pending confirmation, compared
at the holder's first VNeID sign-in as a FHIR write is compared when it arrives (D152): a
Patient naming someone else, and what was recorded in a visit held then, leave the holder's
compartment (D167)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.fhir.models import StoredResource
from vnehr.fhir.write import _visits_named, differing

#: Resources read, and rows written, per statement.
PAGE = 500


async def release_unconfirmed(
    session: AsyncSession, match: identity.PatientMatch, visits: Collection[int]
) -> int:
    """Take out of the person's compartment (every version) their kept Patients whose name or
    birthDate are not what VNeID confirmed of them, and the resources recorded in one of
    ``visits`` (timeline ids, the Encounter ids: visits held out of the book). They stay their
    writer's, as a resource about no one of ours. How many rows; read a page at a time."""
    encounters = {f"Encounter/{visit}" for visit in visits}
    released: list[int] = []
    after = 0
    while True:
        rows = list(
            await session.execute(
                select(StoredResource.id, StoredResource.resource_type, StoredResource.body)
                .where(StoredResource.person_id == match.person_id, StoredResource.id > after)
                .order_by(StoredResource.id)
                .limit(PAGE)
            )
        )
        for row_id, resource_type, body in rows:
            if resource_type == "Patient":
                gone = bool(differing(match, body or {}))
            else:
                gone = any(
                    isinstance(reference, dict) and reference.get("reference") in encounters
                    for _, reference in _visits_named(body or {})
                )
            if gone:
                released.append(int(row_id))
        if len(rows) < PAGE:
            break
        after = int(rows[-1][0])
    for start in range(0, len(released), PAGE):
        await session.execute(
            update(StoredResource)
            .where(StoredResource.id.in_(released[start : start + PAGE]))
            .values(person_id=None)
            .execution_options(synchronize_session=False)
        )
    return len(released)
