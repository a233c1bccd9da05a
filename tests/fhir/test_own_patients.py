"""A facility writes through FHIR about its own patients only: a resource naming one of our
persons (``subject``/``patient``: ``Patient/{id}``) comes from a facility that sent a visit of
that person, or wrote a Patient with their personal ID (before, or in the same transaction).
Anything else is refused as if the patient did not exist (FHIR-0021), whatever the way it is
written: create, conditional create, update, transaction, batch. Before, any connected
facility could put an allergy into any citizen's book by the sequential id."""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, outcome
from tests.fhir.test_references import naming
from tests.fhir.test_write import WRITER, bundle_of, visit
from tests.healthbook.test_api import book, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, system_token
from vnehr.fhir import mapping
from vnehr.kit.settings import Settings

REFUSED = "FHIR-0021"
NOBODY = "Patient/999999999"


def about(type_: str, patient: str, text: str = "Penicillin") -> dict[str, Any]:
    """A small valid resource of ``type_`` about ``patient``, recorded in no visit."""
    if type_ == "Consent":
        return {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": patient},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
        }  # fmt: skip
    made = naming(type_, patient, {"reference": "x"})
    for key in ("encounter", "partOf", "context"):
        made.pop(key, None)
    if type_ == "AllergyIntolerance":
        made["code"] = {"text": text}
        made["clinicalStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                 "code": "active"}
            ]
        }  # fmt: skip
    return made


#: Every writable type that names a patient (``subject`` or ``patient``).
TYPES = (
    "AllergyIntolerance", "Condition", "Observation", "MedicationRequest", "Procedure",
    "DiagnosticReport", "DocumentReference", "Encounter", "Consent",
)  # fmt: skip


def _same(one: httpx.Response, other: httpx.Response, *references: str) -> None:
    """The two answers are one answer, but for the patient reference each names."""

    def plain(response: httpx.Response, reference: str) -> Any:
        return (response.status_code, response.text.replace(reference, "<patient>"))

    assert plain(one, references[0]) == plain(other, references[1])


async def _patient_id(client: httpx.AsyncClient, headers: dict[str, str], personal_id: str) -> str:
    found = await client.get(
        f"{FHIR}/Patient", params={"identifier": f"{mapping.PERSONAL_ID}|{personal_id}"},
        headers=headers,
    )  # fmt: skip
    return str(found.json()["entry"][0]["resource"]["id"])


async def _book_allergies(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, person: Any
) -> tuple[set[str], set[str], str]:
    """What the citizen sees of their allergies: in the summary, in FHIR, and the IPS."""
    await sign_in_as(client, session, settings, person)
    summary = (await client.get("/api/v1/me/summary")).json()
    found = (await client.get(f"{FHIR}/AllergyIntolerance")).json()
    patient = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    ips = await client.get(f"{FHIR}/Patient/{patient}/$summary")
    client.cookies.clear()
    return (
        {a["substance"] for a in summary["allergies"]},
        {e["resource"]["code"]["text"] for e in found.get("entry") or []
         if e["resource"]["resourceType"] == "AllergyIntolerance"},
        ips.text,
    )  # fmt: skip


async def test_a_facility_that_never_saw_the_patient_writes_nothing_into_their_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, visits = await book(client, session, settings)
    person = who(visits[0])
    a = await system_token(client, session, settings, code, WRITER)
    pid = await _patient_id(client, a, person[0])
    _, b = await facility_with_token(client, session, settings, scopes=WRITER)
    mine = f"Patient/{pid}"
    for type_ in TYPES:
        refused = await client.post(
            f"{FHIR}/{type_}", json=about(type_, mine, "B injected"), headers=b
        )
        outcome(refused, 422, REFUSED)
        assert (
            f"{type_}.{'patient' if 'patient' in about(type_, mine) else 'subject'}"
            in (refused.json()["issue"][0]["diagnostics"])
        )
        assert refused.json()["issue"][0]["code"] == "not-found"
        nobody = await client.post(f"{FHIR}/{type_}", json=about(type_, NOBODY), headers=b)
        _same(refused, nobody, mine, NOBODY)
        # absolute and versioned references are the same patient
        absolute = f"{settings.public_url}{FHIR}/{mine}/_history/1"
        again = await client.post(f"{FHIR}/{type_}", json=about(type_, absolute), headers=b)
        outcome(again, 422, REFUSED)
        # an update that creates (PUT of a new id) is a write too
        new_id = uuid.uuid4().hex
        put = await client.put(
            f"{FHIR}/{type_}/{new_id}", json={**about(type_, mine), "id": new_id}, headers=b
        )
        outcome(put, 422, REFUSED)
    # a conditional create, alone and in a batch
    tagged = {**about("AllergyIntolerance", mine, "B injected"),
              "identifier": [{"system": "urn:b", "value": "a1"}]}  # fmt: skip
    conditional = await client.post(
        f"{FHIR}/AllergyIntolerance", json=tagged,
        headers={**b, "If-None-Exist": "identifier=urn:b|a1"},
    )  # fmt: skip
    outcome(conditional, 422, REFUSED)
    batch = await client.post(
        FHIR,
        json={"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": tagged, "request": {"method": "POST", "url": "AllergyIntolerance",
                                             "ifNoneExist": "identifier=urn:b|a1"}},
            {"resource": about("Condition", mine),
             "request": {"method": "POST", "url": "Condition"}},
        ]},
        headers=b,
    )  # fmt: skip
    assert batch.status_code == 200, batch.text
    for answer in batch.json()["entry"]:
        assert answer["response"]["status"].startswith("422"), answer
        coding = answer["response"]["outcome"]["issue"][0]["details"]["coding"][0]
        assert coding["code"] == REFUSED
    # a transaction is refused whole: the entry about B's own (new) patient is not kept either
    own = {"resourceType": "Patient", "name": [{"text": "Người bệnh của B"}]}
    transaction = {
        "resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:own", "resource": own,
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:note",
             "resource": about("Observation", "urn:uuid:own"),
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": "urn:uuid:allergy",
             "resource": about("AllergyIntolerance", mine, "B injected"),
             "request": {"method": "POST", "url": "AllergyIntolerance"}},
        ],
    }  # fmt: skip
    refused = await client.post(FHIR, json=transaction, headers=b)
    outcome(refused, 422, REFUSED)
    assert "Bundle.entry[2].resource.patient" in refused.json()["issue"][0]["diagnostics"]
    nobody_bundle = copy.deepcopy(transaction)
    nobody_bundle["entry"][2]["resource"]["patient"] = {"reference": NOBODY}
    _same(refused, await client.post(FHIR, json=nobody_bundle, headers=b), mine, NOBODY)
    kept = await client.get(f"{FHIR}/Patient", params={"name": "Người bệnh của B"}, headers=b)
    assert kept.json()["total"] == 0
    # nothing of it reached the citizen, nor A's reading of its patient
    summary, fhir, ips = await _book_allergies(client, session, settings, person)
    assert (summary, fhir) == (set(), set())
    assert "B injected" not in ips
    for type_ in TYPES:
        seen = await client.get(f"{FHIR}/{type_}", params={"patient": pid}, headers=a)
        assert "B injected" not in seen.text, type_
        assert "urn:b" not in seen.text, type_


async def test_the_patients_own_facility_still_writes_into_their_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, visits = await book(client, session, settings)
    person = who(visits[0])
    a = await system_token(client, session, settings, code, WRITER)
    pid = await _patient_id(client, a, person[0])
    for type_ in TYPES:
        written = await client.post(
            f"{FHIR}/{type_}", json=about(type_, f"Patient/{pid}", "Penicillin"), headers=a
        )
        assert written.status_code == 201, (type_, written.text)
    summary, fhir, ips = await _book_allergies(client, session, settings, person)
    assert (summary, fhir) == ({"Penicillin"}, {"Penicillin"})
    assert "Penicillin" in ips


async def test_a_facility_registering_its_patient_writes_about_them(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """B registers the citizen as its own patient (a Patient with the personal ID, conditional
    create) and records an allergy in one transaction, whatever the entries' order; later
    writes need no Patient in them. A Patient of another person does not open this one's
    record."""
    code, visits = await book(client, session, settings)
    person = who(visits[0])
    a = await system_token(client, session, settings, code, WRITER)
    pid = await _patient_id(client, a, person[0])
    _, b = await facility_with_token(client, session, settings, scopes=WRITER)
    stranger = who(visit(code, 77))
    assert stranger[0] != person[0]

    def registering(whom: Any, allergy_first: bool, substance: str) -> dict[str, Any]:
        patient = {
            "fullUrl": "urn:uuid:patient",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": mapping.PERSONAL_ID, "value": whom[0]}],
                "name": [{"text": whom[1]}], "birthDate": whom[2], "gender": whom[3],
            },
            "request": {"method": "POST", "url": "Patient",
                        "ifNoneExist": f"identifier={mapping.PERSONAL_ID}|{whom[0]}"},
        }  # fmt: skip
        allergy = {
            "fullUrl": "urn:uuid:allergy",
            "resource": about("AllergyIntolerance", f"Patient/{pid}", substance),
            "request": {"method": "POST", "url": "AllergyIntolerance"},
        }
        entries = [allergy, patient] if allergy_first else [patient, allergy]
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    refused = await client.post(FHIR, json=registering(stranger, True, "Sulfa"), headers=b)
    outcome(refused, 422, REFUSED)
    answer = await client.post(FHIR, json=registering(person, True, "Penicillin"), headers=b)
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["201 Created"] * 2
    answer = await client.post(FHIR, json=registering(person, False, "Aspirin"), headers=b)
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["200 OK", "201 Created"]
    alone = await client.post(
        f"{FHIR}/AllergyIntolerance",
        json=about("AllergyIntolerance", f"Patient/{pid}", "Latex"),
        headers=b,
    )
    assert alone.status_code == 201, alone.text
    summary, fhir, _ = await _book_allergies(client, session, settings, person)
    assert summary == fhir == {"Penicillin", "Aspirin", "Latex"}
    # a brand-new patient (no record here yet) with an allergy, in one transaction
    newcomer = who(visit(code, 78))
    new = registering(newcomer, False, "Hải sản")
    new["entry"][1]["resource"]["patient"] = {"reference": "urn:uuid:patient"}
    answer = await client.post(FHIR, json=new, headers=b)
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["201 Created"] * 2


async def test_a_visit_sent_as_fhir_makes_its_patient_the_facilitys_own(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility that sent the citizen's visit as a FHIR transaction writes about them by
    their Patient id afterwards; another facility still may not."""
    code, b = await facility_with_token(client, session, settings, scopes=WRITER)
    one = visit(code, 61)
    sent = await client.post(FHIR, json=bundle_of(one, code), headers=b)
    assert sent.status_code == 200, sent.text
    patient = sent.json()["entry"][0]["response"]["location"]
    assert re.fullmatch(r"Patient/\d+", patient.split("/_history")[0]), patient
    allergy = about("AllergyIntolerance", patient.split("/_history")[0], "Penicillin")
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=b)
    assert written.status_code == 201, written.text
    _, c = await facility_with_token(client, session, settings, scopes=WRITER)
    outcome(await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=c), 422, REFUSED)
    summary, _, _ = await _book_allergies(client, session, settings, who(one))
    assert summary == {"Penicillin"}
