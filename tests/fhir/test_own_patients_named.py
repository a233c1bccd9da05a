"""A Patient with a personal ID makes its writer's facility the person's own (D181) only when it
names them as the XML intake asks a visit to: with a name and a birth date, which for a person
confirmed by VNeID must be what VNeID confirmed (D150, D152). Before, a Patient with the
personal ID alone (no name, no birthDate: nothing to compare) was kept in the person's record,
and let a facility that never saw them write allergies into their book by ``Patient/{id}``
(found by this session's security review). Now such a Patient is refused (FHIR-0022), whatever
the way it is written, and one kept before no longer counts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, outcome
from tests.fhir.test_own_patients import _book_allergies, _patient_id, about
from tests.fhir.test_write import WRITER
from tests.healthbook.test_api import book, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, system_token
from vnehr import identity
from vnehr.fhir import mapping
from vnehr.fhir.models import StoredResource
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings

UNNAMED = "FHIR-0022"
NOT_YOURS = "FHIR-0021"
#: The contact details a stranger's Patient gives: none may show in the citizen's record.
PHONE = "0912345678"
STREET = "99 Phố Lạ"


def _patient(personal_id: str, name: str | None, birth: str | None) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": mapping.PERSONAL_ID, "value": personal_id}],
        **({"name": [{"text": name}]} if name is not None else {}),
        **({"birthDate": birth} if birth is not None else {}),
        "telecom": [{"system": "phone", "value": PHONE}],
        "address": [{"line": [STREET], "city": "Hà Nội"}],
    }


def _elements(response: httpx.Response) -> str:
    return str(response.json()["issue"][0]["diagnostics"])


async def _citizens_patients(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, person: Any
) -> str:
    """The citizen's own FHIR Patients, as they read them."""
    await sign_in_as(client, session, settings, person)
    patients = await client.get(f"{FHIR}/Patient")
    client.cookies.clear()
    assert patients.status_code == 200, patients.text
    return patients.text


async def test_a_patient_with_only_the_personal_id_opens_no_one_s_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, visits = await book(client, session, settings)
    person = who(visits[0])
    await sign_in_as(client, session, settings, person)  # VNeID confirmed name and birth
    client.cookies.clear()
    a = await system_token(client, session, settings, code, (*WRITER, "record.read"))
    pid = await _patient_id(client, a, person[0])
    _, c = await facility_with_token(client, session, settings, scopes=WRITER)

    # the review's repro: the personal ID alone, then an allergy by the person's Patient id
    bare = await client.post(f"{FHIR}/Patient", json=_patient(person[0], None, None), headers=c)
    outcome(bare, 422, UNNAMED)
    assert bare.json()["issue"][0]["code"] == "required"
    assert "Patient.name, Patient.birthDate" in _elements(bare)
    allergy = about("AllergyIntolerance", f"Patient/{pid}", "C injected")
    outcome(await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c), 422,
            NOT_YOURS)  # fmt: skip
    # the right name without a birth date, or a birth date without a name, is not enough
    for name, birth, missing in ((person[1], None, "birthDate"), (None, person[2], "name")):
        half = await client.post(f"{FHIR}/Patient", json=_patient(person[0], name, birth),
                                 headers=c)  # fmt: skip
        outcome(half, 422, UNNAMED)
        assert f"Patient.{missing}" in _elements(half)
    # an update that creates (PUT of a new id), and a conditional create
    new_id = uuid.uuid4().hex
    put = await client.put(
        f"{FHIR}/Patient/{new_id}", json={**_patient(person[0], None, None), "id": new_id},
        headers=c,
    )  # fmt: skip
    outcome(put, 422, UNNAMED)
    conditional = await client.post(
        f"{FHIR}/Patient", json=_patient(person[0], None, None),
        headers={**c, "If-None-Exist": f"identifier={mapping.PERSONAL_ID}|{person[0]}"},
    )  # fmt: skip
    outcome(conditional, 422, UNNAMED)
    # a transaction naming the Patient by its fullUrl, whatever the entries' order
    for allergy_first in (False, True):
        entries = [
            {"fullUrl": "urn:uuid:p", "resource": _patient(person[0], None, None),
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:a",
             "resource": about("AllergyIntolerance", "urn:uuid:p", "C injected by urn"),
             "request": {"method": "POST", "url": "AllergyIntolerance"}},
        ]  # fmt: skip
        if allergy_first:
            entries.reverse()
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        refused = await client.post(FHIR, json=bundle, headers=c)
        outcome(refused, 422, UNNAMED)
        at = 1 if allergy_first else 0
        assert f"Bundle.entry[{at}].resource.name" in _elements(refused)
    # in a batch, the entry fails on its own
    batch = await client.post(
        FHIR,
        json={"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": _patient(person[0], None, None),
             "request": {"method": "POST", "url": "Patient"}}]},
        headers=c,
    )  # fmt: skip
    [entry] = batch.json()["entry"]
    assert entry["response"]["status"].startswith("422"), entry
    assert entry["response"]["outcome"]["issue"][0]["details"]["coding"][0]["code"] == UNNAMED

    # nothing reached the citizen: no allergy, no stranger's phone or address among their
    # Patients; C still has no Patient of them to write about
    summary, fhir, ips = await _book_allergies(client, session, settings, person)
    assert (summary, fhir) == (set(), set())
    assert "C injected" not in ips
    mine = await _citizens_patients(client, session, settings, person)
    assert PHONE not in mine
    assert STREET not in mine
    outcome(await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c), 422,
            NOT_YOURS)  # fmt: skip


async def test_a_facility_sending_the_full_patient_writes_about_them(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The matching name and birth date make C the person's facility; an update of its
    Patient that drops them is refused and the kept version stands."""
    code, visits = await book(client, session, settings)
    person = who(visits[0])
    await sign_in_as(client, session, settings, person)
    client.cookies.clear()
    a = await system_token(client, session, settings, code, (*WRITER, "record.read"))
    pid = await _patient_id(client, a, person[0])
    _, c = await facility_with_token(client, session, settings, scopes=WRITER)

    full = {**_patient(person[0], person[1], person[2]), "gender": person[3]}
    kept = await client.post(f"{FHIR}/Patient", json=full, headers=c)
    assert kept.status_code == 201, kept.text
    allergy = about("AllergyIntolerance", f"Patient/{pid}", "Penicillin")
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c)
    assert written.status_code == 201, written.text

    patient_id = kept.json()["id"]
    for drop in ("name", "birthDate"):
        dropped = {k: v for k, v in full.items() if k != drop} | {"id": patient_id}
        refused = await client.put(f"{FHIR}/Patient/{patient_id}", json=dropped, headers=c)
        outcome(refused, 422, UNNAMED)
        assert f"Patient.{drop}" in _elements(refused)
    again = await client.get(f"{FHIR}/Patient/{patient_id}", headers=c)
    assert again.json()["meta"]["versionId"] == "1"
    assert again.json()["name"] == [{"text": person[1]}]
    latex = about("AllergyIntolerance", f"Patient/{pid}", "Latex")
    assert (
        await client.post(f"{FHIR}/AllergyIntolerance", json=latex, headers=c)
    ).status_code == 201

    summary, fhir, ips = await _book_allergies(client, session, settings, person)
    assert summary == fhir == {"Penicillin", "Latex"}
    assert "Penicillin" in ips


async def test_a_pending_persons_patient_with_a_name_still_makes_them_the_facilitys(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Nothing is confirmed yet: any name and birth date are kept, and their first VNeID
    sign-in compares them (D167). The personal ID alone is refused as for anyone."""
    code, visits = await book(client, session, settings)
    person = who(visits[0])  # never signed in
    a = await system_token(client, session, settings, code, (*WRITER, "record.read"))
    pid = await _patient_id(client, a, person[0])
    _, c = await facility_with_token(client, session, settings, scopes=WRITER)

    outcome(await client.post(f"{FHIR}/Patient", json=_patient(person[0], None, None),
                              headers=c), 422, UNNAMED)  # fmt: skip
    allergy = about("AllergyIntolerance", f"Patient/{pid}", "Sulfa")
    outcome(await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c), 422,
            NOT_YOURS)  # fmt: skip
    named = await client.post(
        f"{FHIR}/Patient", json=_patient(person[0], "Tên Khác", "1990"), headers=c
    )
    assert named.status_code == 201, named.text
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c)
    assert written.status_code == 201, written.text


async def test_a_patient_kept_before_without_name_no_longer_makes_them_the_facilitys(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A Patient with the personal ID alone, kept in the person's record before this change,
    lets its writer write about them no more."""
    _, visits = await book(client, session, settings)
    person = who(visits[0])
    await sign_in_as(client, session, settings, person)
    client.cookies.clear()
    person_id = await identity.person_id_of(session, person[0])
    assert person_id is not None
    c_code, c = await facility_with_token(client, session, settings, scopes=WRITER)
    # as the write of a bare Patient stored it until now
    resource_id = uuid.uuid4().hex
    now = utcnow()
    session.add(
        StoredResource(
            resource_type="Patient", resource_id=resource_id, version=1, current=True,
            facility_code=c_code, client_id="old", person_id=person_id, last_updated=now,
            body={**_patient(person[0], None, None), "id": resource_id,
                  "meta": {"versionId": "1", "lastUpdated": now.isoformat()}},
        )
    )  # fmt: skip
    await session.flush()
    allergy = about("AllergyIntolerance", f"Patient/{person_id}", "C injected")
    outcome(await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c), 422,
            NOT_YOURS)  # fmt: skip
    # C completes it with the person's own details: now it does
    full = {**_patient(person[0], person[1], person[2]), "id": resource_id}
    updated = await client.put(f"{FHIR}/Patient/{resource_id}", json=full, headers=c)
    assert updated.status_code == 200, updated.text
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c)
    assert written.status_code == 201, written.text
