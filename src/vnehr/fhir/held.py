"""Resources kept as sent while the holder of a personal ID was pending confirmation, compared
at the holder's first VNeID sign-in as a FHIR write is compared when it arrives (D152, D181): a
Patient naming someone else, what was recorded in a visit held then, and what a facility that
no longer has the holder as its own patient wrote about them leave the holder's compartment
(D167)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity, records
from vnehr.fhir.models import StoredResource
from vnehr.fhir.stored import keeps_patient
from vnehr.fhir.write import _visits_named, differing

#: Resources read, and rows written, per statement.
PAGE = 500


async def release_unconfirmed(
    session: AsyncSession, match: identity.PatientMatch, visits: Collection[int]
) -> int:
    """Take out of the person's compartment (every version) their kept Patients whose name or
    birthDate are not what VNeID confirmed of them, and the resources recorded in one of
    ``visits`` (timeline ids, the Encounter ids: visits held out of the book). Then what each
    writer whose resources remain wrote about the person goes too when the writer no longer
    has them as its own patient (``_check_own_patient``'s test, D181: a visit of theirs in
    their record, the caller having held its visits already, or a kept Patient): it came in
    through what was just taken out (or, written before D181, through nothing). They stay
    their writer's, as a resource about no one of ours. How many rows; read a page at a
    time."""
    encounters = {f"Encounter/{visit}" for visit in visits}
    released: list[int] = []
    remaining: dict[str, list[int]] = {}  # writer -> its rows still in the compartment
    after = 0
    while True:
        rows = list(
            await session.execute(
                select(
                    StoredResource.id,
                    StoredResource.resource_type,
                    StoredResource.facility_code,
                    StoredResource.body,
                )
                .where(StoredResource.person_id == match.person_id, StoredResource.id > after)
                .order_by(StoredResource.id)
                .limit(PAGE)
            )
        )
        for row_id, resource_type, writer, body in rows:
            if resource_type == "Patient":
                gone = bool(differing(match, body or {}))
            else:
                gone = any(
                    isinstance(reference, dict) and reference.get("reference") in encounters
                    for _, reference in _visits_named(body or {})
                )
            if gone:
                released.append(int(row_id))
            else:
                remaining.setdefault(str(writer), []).append(int(row_id))
        if len(rows) < PAGE:
            break
        after = int(rows[-1][0])
    await _release(session, released)
    # (after the Patients are out: a writer keeping only those has the person no more)
    orphaned: list[int] = []
    for writer, ids in sorted(remaining.items()):
        if not (
            await records.filed_a_visit_of(session, writer, match.person_id)
            or await keeps_patient(session, writer, match.person_id)
        ):
            orphaned += ids
    await _release(session, orphaned)
    return len(released) + len(orphaned)


async def _release(session: AsyncSession, ids: list[int]) -> None:
    """These rows are about no one of ours from now on (a page of ids per statement)."""
    for start in range(0, len(ids), PAGE):
        await session.execute(
            update(StoredResource)
            .where(StoredResource.id.in_(ids[start : start + PAGE]))
            .values(person_id=None)
            .execution_options(synchronize_session=False)
        )
