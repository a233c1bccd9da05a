"""A facility writes through FHIR about its own patients only (D181). While An was pending, a
facility that kept a Patient under his personal ID with someone else's name had him as its
own patient and wrote about him by his Patient id (an allergy, a condition). His first VNeID
sign-in takes that Patient out of his record (D167): the facility then has him as its patient
no longer, and what it wrote about him leaves his record too, kept as sent for its writer. A
facility that has him as its patient otherwise (a visit of his, in his record) keeps what it
wrote about him."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, outcome
from tests.fhir.test_own_patients import about
from tests.fhir.test_patient_holder import AN, _patient
from tests.fhir.test_write import WRITER
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from tests.submissions.test_patient_match import a_visit
from vnehr import identity
from vnehr.audit import AuditEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

STRANGER = ("Trần Văn Giả", "1985-01-01")
HELD = "patient.held_at_first_sign_in"


async def _write(
    client: httpx.AsyncClient, headers: dict[str, str], resource: dict[str, Any]
) -> str:
    written = await client.post(
        f"{FHIR}/{resource['resourceType']}", json=resource, headers=headers
    )
    assert written.status_code == 201, written.text
    return str(written.json()["id"])


async def _an_reads(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> dict[str, Any]:
    """What An reads of his record, signed in with VNeID (the first time, the first call)."""
    await sign_in_as(client, session, settings, AN)
    allergies = (await client.get(f"{FHIR}/AllergyIntolerance")).json()
    conditions = (await client.get(f"{FHIR}/Condition")).json()
    summary = (await client.get("/api/v1/me/summary")).json()
    timeline = (await client.get("/api/v1/me/timeline")).json()["items"]
    client.cookies.clear()
    return {
        "visits": len(timeline),
        "allergies": sorted(e["resource"]["code"]["text"] for e in allergies.get("entry") or []),
        "conditions": [e["resource"]["id"] for e in conditions.get("entry") or []],
        "summary": sorted(a["substance"] for a in summary["allergies"]),
    }


async def test_what_a_facility_wrote_through_a_patient_taken_out_at_sign_in_leaves_too(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # C sends An's own visit (in his name) while he is pending: he is C's patient
    c_code, c = await facility_with_token(client, session, settings, scopes=WRITER)
    his = a_visit(c_code, 81, AN[1], "198503140000")
    assert (await send(client, c, synth.envelope([his], c_code))).status_code == 201
    person = await identity.person_id_of(session, AN[0])
    assert person is not None
    an = f"Patient/{person}"
    # B keeps a Patient under An's ID with a stranger's name (accepted: An is pending), and
    # writes about An by his Patient id: an allergy and a condition
    _, b = await facility_with_token(client, session, settings, scopes=WRITER)
    await _write(client, b, _patient(*STRANGER))
    b_allergy = await _write(client, b, about("AllergyIntolerance", an, "Sulfa"))
    b_condition = await _write(client, b, about("Condition", an))
    # C does the same, but C also has An's visit
    await _write(client, c, _patient(*STRANGER))
    await _write(client, c, about("AllergyIntolerance", an, "Penicillin"))

    reads = await _an_reads(client, session, settings)  # An's first sign-in

    # what B wrote about the stranger it registered under An's ID is not in An's record; his
    # visit at C, its diagnoses and what C wrote about him are
    assert (reads["visits"], reads["allergies"], reads["summary"]) == (
        1, ["Penicillin"], ["Penicillin"],
    )  # fmt: skip
    assert reads["conditions"]  # (his visit's diagnoses)
    assert b_condition not in reads["conditions"]
    # kept as sent, for B, which reads it still, and which writes about An no more
    for type_, id_ in (("AllergyIntolerance", b_allergy), ("Condition", b_condition)):
        kept = await client.get(f"{FHIR}/{type_}/{id_}", headers=b)
        assert kept.status_code == 200, kept.text
    refused = await client.post(
        f"{FHIR}/AllergyIntolerance", json=about("AllergyIntolerance", an, "Latex"), headers=b
    )
    outcome(refused, 422, "FHIR-0021")
    # the audit row counts what left An's record (both Patients, B's allergy and condition)
    # and names nothing of the stranger's
    [row] = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == HELD)))
    assert row.detail is not None
    assert row.detail["fhir_resources"] == 4
    for told in (*STRANGER, "Sulfa"):
        assert told not in str(row.detail)


async def test_what_a_facility_wrote_through_a_visit_held_at_sign_in_leaves_too(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility whose only visit under An's ID was a stranger's (held at his first sign-in)
    wrote, meanwhile, about An by his Patient id without naming that visit: it has him as its
    patient no longer, and that leaves his record with the visit."""
    d_code, d = await facility_with_token(client, session, settings, scopes=WRITER)
    stranger = a_visit(d_code, 82, STRANGER[0], "198501010000")
    assert (await send(client, d, synth.envelope([stranger], d_code))).status_code == 201
    person = await identity.person_id_of(session, AN[0])
    assert person is not None
    written = await _write(client, d, about("AllergyIntolerance", f"Patient/{person}", "Sulfa"))

    reads = await _an_reads(client, session, settings)

    assert (reads["visits"], reads["allergies"], reads["summary"]) == (0, [], [])
    kept = await client.get(f"{FHIR}/AllergyIntolerance/{written}", headers=d)
    assert kept.status_code == 200, kept.text
    [row] = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == HELD)))
    assert row.detail is not None
    assert (row.detail["visits"], row.detail["fhir_resources"]) == (1, 1)
