"""An onboarding facility writes in test mode: what it sends is kept for it and is in no
citizen's record (D67). Its Patients are therefore never compared with what VNeID confirmed of
the personal ID's holder (D152), and its answers name no person of ours: the holder's own
Patient id (the sequential id that puts a resource in their record) would tell a facility not
yet connected that the ID is held, and by which of our persons."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR
from tests.fhir.test_patient_holder import AN, _an_reads, _patient, _visit_bundle
from tests.fhir.test_write import WRITER
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token
from vnehr.identity.models import Person
from vnehr.kit.settings import Settings


async def test_a_test_mode_write_under_a_citizen_s_id_is_kept_apart_and_names_no_person(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    client.cookies.clear()
    an = await session.scalar(select(Person.id).where(Person.personal_id == AN[0]))
    code, headers = await facility_with_token(client, session, settings, steps=3, scopes=WRITER)

    # a Patient alone, with details VNeID did not confirm: kept for the facility, not judged
    alone = await client.post(
        f"{FHIR}/Patient", json=_patient("Trần Văn Giả", "1985-03-15"), headers=headers
    )
    assert alone.status_code == 201, alone.text

    # a test visit with an allergy under his ID: stored, and every location is the
    # facility's own, none An's Patient
    sent = await client.post(
        FHIR, json=_visit_bundle(code, 61, "Trần Văn Giả", "198501010000"), headers=headers
    )
    assert sent.status_code == 200, sent.text
    locations = [e["response"]["location"] for e in sent.json()["entry"]]
    assert not [p for p in locations if p.split("/_history")[0] == f"Patient/{an}"], locations
    # (a whole id: An's 4 is not in a test Patient 41's reference)
    assert not re.search(rf"Patient/{an}(?![0-9])", sent.text)
    patient = locations[0].split("/_history")[0]
    assert patient.startswith("Patient/")
    kept = await client.get(f"{FHIR}/{patient}", headers=headers)
    assert kept.status_code == 200, kept.text
    allergy = await client.get(f"{FHIR}/{locations[-1].split('/_history')[0]}", headers=headers)
    assert allergy.status_code == 200, allergy.text
    assert allergy.json()["patient"]["reference"] == patient

    # and nothing of it is in An's record
    assert await _an_reads(client, session, settings) == {
        "visits": 0,
        "allergies": 0,
        "summary": [],
        "births": ["1985-03-14"],
    }
