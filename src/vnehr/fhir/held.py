"""Resources kept as sent while the holder of a personal ID was pending confirmation, compared
at the holder's first VNeID sign-in as a FHIR write is compared when it arrives (D152, D181): a
Patient naming someone else, what was recorded in a visit held then, and what a facility that
no longer has the holder as its own patient wrote about them leave the holder's compartment
(D167)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, identity, records
from vnehr.fhir import intake
from vnehr.fhir.models import StoredResource
from vnehr.fhir.stored import keeps_patient
from vnehr.fhir.write import _visits_named, differing
from vnehr.kit.db import Database

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

    def gone(resource_type: str, body: dict[str, Any]) -> bool:
        if resource_type == "Patient":
            return bool(differing(match, body))
        return any(
            isinstance(reference, dict) and reference.get("reference") in encounters
            for _, reference in _visits_named(body)
        )

    return await _release_from(session, match.person_id, gone)


async def _release_from(
    session: AsyncSession, person_id: int, gone: Callable[[str, dict[str, Any]], bool]
) -> int:
    """Take out of the person's compartment the rows ``gone`` says (resource type, body), then
    every row of each writer that no longer has the person as its own patient (D181)."""
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
                .where(StoredResource.person_id == person_id, StoredResource.id > after)
                .order_by(StoredResource.id)
                .limit(PAGE)
            )
        )
        for row_id, resource_type, writer, body in rows:
            if gone(str(resource_type), body or {}):
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
            await records.filed_a_visit_of(session, writer, person_id)
            or await keeps_patient(session, writer, person_id)
        ):
            orphaned += ids
    await _release(session, orphaned)
    return len(released) + len(orphaned)


@dataclass(slots=True)
class Released:
    """What ``release_strangers`` did: persons looked at, persons whose compartment lost
    rows, rows taken out, transactions."""

    persons: int = 0
    affected: int = 0
    resources: int = 0
    batches: int = 0


#: The audit action of what the backfill took out of a person's FHIR compartment.
RELEASED = "fhir.released_by_backfill"


async def release_strangers(db: Database, *, batch: int = 500) -> Released:
    """What earlier releases kept in a person's FHIR compartment and D181/D186 now refuse: a
    Patient naming their ID without a name or birth date (FHIR-0022), and every row of a
    writer that does not have the person as its own patient (no visit of theirs in their
    record, no Patient with their ID, name and birth date). Taken out as a first sign-in does
    (D185): every version, no person, kept as sent for the writer; one audit row about each
    person who lost rows, naming nothing of the writer's data. ``batch`` persons per
    transaction, in id order; running it again takes nothing more."""
    done = Released()
    after = 0
    while True:
        async with db.session() as session:
            persons = [
                int(p or 0)  # (person_id > after: never None)
                for p in await session.scalars(
                    select(StoredResource.person_id)
                    .where(StoredResource.person_id > after)
                    .distinct()
                    .order_by(StoredResource.person_id)
                    .limit(batch)
                )
            ]
            for person_id in persons:
                taken = await _release_from(
                    session,
                    person_id,
                    lambda kind, body: kind == "Patient" and bool(intake.lacking(body)),
                )
                if taken:
                    done.affected += 1
                    done.resources += taken
                    session.add(
                        audit.audit_event(
                            actor="vnehr:backfill",
                            action=RELEASED,
                            object_type="person",
                            object_id=str(person_id),
                            person_id=None,  # about no one's record, as at a first sign-in
                            detail={"fhir_resources": taken},
                        )
                    )
            done.persons += len(persons)
            if persons:
                done.batches += 1
        if len(persons) < batch:
            return done
        after = persons[-1]


async def _release(session: AsyncSession, ids: list[int]) -> None:
    """These rows are about no one of ours from now on (a page of ids per statement)."""
    for start in range(0, len(ids), PAGE):
        await session.execute(
            update(StoredResource)
            .where(StoredResource.id.in_(ids[start : start + PAGE]))
            .values(person_id=None)
            .execution_options(synchronize_session=False)
        )
