"""`vnehr db backfill-fhir`: what earlier releases kept in a person's FHIR compartment and
D181/D186 refuse now leaves it, as a first sign-in takes it out (D185, D187): a Patient naming
the person's ID without a name or birth date, and what a facility wrote about them without having
them as its own patient. The writer keeps it, as sent; the citizen no longer reads it; their
own facility's rows stay."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_own_patients import _book_allergies, _patient_id, about
from tests.fhir.test_write import WRITER
from tests.healthbook.test_api import book, who
from tests.submissions.test_intake import facility_with_token, system_token
from vnehr import fhir, identity
from vnehr.audit import AuditEvent
from vnehr.fhir import mapping
from vnehr.fhir.models import StoredResource
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings

FHIR = "/fhir/R4"


def _as_kept(
    facility: str, person_id: int, type_: str, resource_id: str, body: dict[str, Any]
) -> StoredResource:
    """A row as a release before D181/D186 kept it: in the person's compartment."""
    return StoredResource(
        resource_type=type_,
        resource_id=resource_id,
        version=1,
        current=True,
        facility_code=facility,
        client_id="his",
        person_id=person_id,
        last_updated=utcnow(),
        body={**body, "resourceType": type_, "id": resource_id},
    )


async def test_the_backfill_takes_out_what_a_stranger_facility_kept_in_a_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    code, visits = await book(client, session, settings)
    person = who(visits[0])
    a = await system_token(client, session, settings, code, WRITER)
    pid = await _patient_id(client, a, person[0])
    own = await client.post(
        f"{FHIR}/AllergyIntolerance", json=about("AllergyIntolerance", f"Patient/{pid}"),
        headers=a,
    )  # fmt: skip
    assert own.status_code == 201, own.text
    stranger, _ = await facility_with_token(client, session, settings, scopes=WRITER)
    # signed in already (a first sign-in would take these out itself, D185)
    assert (await _book_allergies(client, session, settings, person))[0] == {"Penicillin"}
    person_id = await identity.person_id_of(session, person[0])
    assert person_id is not None
    # what an earlier release kept of facility B, which never saw the person
    bare = {"identifier": [{"system": mapping.PERSONAL_ID, "value": person[0]}],
            "telecom": [{"system": "phone", "value": "0900000000"}]}  # fmt: skip
    session.add_all(
        [
            _as_kept(stranger, person_id, "Patient", "b1", bare),
            _as_kept(
                stranger,
                person_id,
                "AllergyIntolerance",
                "b2",
                about("AllergyIntolerance", f"Patient/{pid}", "B injected"),
            ),
        ]
    )
    await session.flush()
    assert "B injected" in (await _book_allergies(client, session, settings, person))[0]

    done = await fhir.release_strangers(db, batch=1)

    assert (done.affected, done.resources) == (1, 2)
    summary, found, ips = await _book_allergies(client, session, settings, person)
    assert summary == found == {"Penicillin"}  # the person's own facility's stays
    assert "B injected" not in ips
    assert "0900000000" not in ips
    kept = await session.scalars(
        select(StoredResource.person_id).where(StoredResource.facility_code == stranger)
    )
    assert list(kept) == [None, None]  # still B's, about no one of ours
    [row] = await session.scalars(
        select(AuditEvent).where(AuditEvent.action == "fhir.released_by_backfill")
    )
    assert row.object_id == str(person_id)
    assert row.detail == {"fhir_resources": 2}
    assert "0900000000" not in str(row.detail)
    again = await fhir.release_strangers(db)
    assert again.resources == 0
    assert again.persons >= 1
