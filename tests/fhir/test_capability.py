"""The CapabilityStatement at /fhir/R4/metadata tells the truth: every interaction it declares
for a type works when a facility system calls it, and every write it leaves out is refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, check_model, outcome
from tests.fhir.test_write import WRITER
from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_intake import facility_with_token, send
from vnehr.fhir import PERSONAL_ID
from vnehr.fhir.search import PARAMS
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

#: Whom a resource is about: a patient of the facility's visits (``_patient`` fills it in), as
#: D32 has a facility system search visit data, one patient at a time.
SOMEONE = {"reference": "Patient/0"}
WHEN = "2026-11-01T09:00:00+07:00"
#: A small valid resource of every type the server serves (a type the statement declares
#: without one here fails the test: add it).
SAMPLES: dict[str, dict[str, Any]] = {
    "AllergyIntolerance": {"patient": SOMEONE, "code": {"text": "Penicillin"}},
    "AuditEvent": {
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
        "recorded": WHEN,
        "agent": [{"requestor": True, "who": {"display": "HIS"}}],
        "source": {"observer": {"display": "HIS"}},
    },
    "Condition": {"subject": SOMEONE, "code": {"text": "Tăng huyết áp"}},
    "Consent": {
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    },
    "DiagnosticReport": {
        "status": "final",
        "code": {"text": "Tổng phân tích tế bào máu"},
        "subject": SOMEONE,
    },
    "DocumentReference": {
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "data": "eGluIGNoYW8="}}],
        "subject": SOMEONE,
    },
    "Encounter": {
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": SOMEONE,
    },
    "Location": {"name": "Phòng khám số 1"},
    "MedicationRequest": {
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Amlodipin 5 mg"},
        "subject": SOMEONE,
    },
    "Observation": {"status": "final", "code": {"text": "Mạch"}, "subject": SOMEONE},
    "Organization": {"name": "Phòng khám đa khoa thử"},
    "Patient": {"name": [{"text": "Nguyễn Văn A"}]},
    "Practitioner": {"name": [{"text": "BS. Trần Thị B"}]},
    "Procedure": {"status": "completed", "subject": SOMEONE},
    "Provenance": {"target": [SOMEONE], "recorded": WHEN, "agent": [{"who": {"display": "HIS"}}]},
}
#: What a PUT changes, to tell the versions apart.
CHANGE = {"language": "vi"}


def _sample(type_: str, n: int, identifier: bool, patient: str) -> dict[str, Any]:
    named = {"reference": patient}
    resource: dict[str, Any] = {"resourceType": type_}
    for key, value in SAMPLES[type_].items():
        resource[key] = named if value == SOMEONE else [named] if value == [SOMEONE] else value
    if identifier:
        resource["identifier"] = [{"system": "urn:vnehr:test", "value": f"{type_}-{n}"}]
    return resource


def _refused(response: httpx.Response) -> bool:
    return response.status_code >= 400


async def test_every_declared_interaction_works_and_no_refused_write_is_declared(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    response = await client.get(f"{FHIR}/metadata")
    assert response.status_code == 200
    statement = response.json()
    check_model(statement)
    [rest] = statement["rest"]
    assert "read-only" not in rest["documentation"].lower()
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    one = visit_of(code, 91, datetime(2026, 10, 1, 9, 0))  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    patients = await client.get(
        f"{FHIR}/Patient", params={"identifier": f"{PERSONAL_ID}|{who(one)[0]}"}, headers=headers
    )
    patient = f"Patient/{patients.json()['entry'][0]['resource']['id']}"
    declared = {r["type"]: r for r in rest["resource"]}
    assert set(declared) >= {"Patient", "Encounter", "AllergyIntolerance"}
    for type_, entry in declared.items():
        codes = {i["code"] for i in entry["interaction"]}
        conditional = entry.get("conditionalCreate", False)
        where = f"{FHIR}/{type_}"
        with_id = _sample(type_, 1, identifier=conditional, patient=patient)

        made = await client.post(where, json=with_id, headers=headers)
        if "create" not in codes:
            assert _refused(made), (type_, made.text)
            continue
        assert made.status_code == 201, (type_, made.text)
        id_ = made.json()["id"]

        condition = {"If-None-Exist": "identifier=urn:vnehr:test|" + f"{type_}-1"}
        again = await client.post(where, json=with_id, headers={**headers, **condition})
        if conditional:
            assert again.status_code == 200, (type_, again.text)
            assert again.json()["id"] == id_, type_
        else:
            assert _refused(again), (type_, again.status_code, again.text)

        if "update" in codes:
            changed = {**with_id, "id": id_, **CHANGE}
            updated = await client.put(f"{where}/{id_}", json=changed, headers=headers)
            assert updated.status_code == 200, (type_, updated.text)
            assert updated.json()["meta"]["versionId"] == "2", type_
            fresh = {
                **_sample(type_, 2, identifier=False, patient=patient),
                "id": f"mine-{type_.lower()}",
            }
            put_new = await client.put(f"{where}/{fresh['id']}", json=fresh, headers=headers)
            if entry.get("updateCreate"):
                assert put_new.status_code == 201, (type_, put_new.text)
            else:
                assert _refused(put_new), (type_, put_new.text)
        else:
            changed = {**with_id, "id": id_, **CHANGE}
            assert _refused(await client.put(f"{where}/{id_}", json=changed, headers=headers))
        versions = 2 if "update" in codes else 1

        if "read" in codes:
            read = await client.get(f"{where}/{id_}", headers=headers)
            assert read.status_code == 200, (type_, read.text)
            assert read.json()["meta"]["versionId"] == str(versions), type_
        if "vread" in codes:
            first = await client.get(f"{where}/{id_}/_history/1", headers=headers)
            assert first.status_code == 200, (type_, first.text)
            assert "language" not in first.json(), type_
        if "history-instance" in codes:
            history = await client.get(f"{where}/{id_}/_history", headers=headers)
            assert history.status_code == 200, (type_, history.text)
            assert history.json()["total"] == versions, type_
        if "search-type" in codes:
            query = {"_id": id_}
            if patient in str(with_id) and any(p.name == "patient" for p in PARAMS[type_]):
                query["patient"] = patient
            found = await client.get(where, params=query, headers=headers)
            assert found.status_code == 200, (type_, found.text)
            assert [e["resource"]["id"] for e in found.json()["entry"]] == [id_], type_

        # what it leaves out is refused, and changes nothing
        if "delete" not in codes:
            assert _refused(await client.delete(f"{where}/{id_}", headers=headers)), type_
        if entry.get("conditionalDelete", "not-supported") == "not-supported":
            gone = await client.delete(where, params={"identifier": f"{type_}-1"}, headers=headers)
            assert _refused(gone), type_
        if "patch" not in codes:
            patch = [{"op": "replace", "path": "/language", "value": "en"}]
            patched = await client.patch(
                f"{where}/{id_}",
                json=patch,
                headers={**headers, "content-type": "application/json-patch+json"},
            )
            assert _refused(patched), type_
        if not entry.get("conditionalUpdate"):
            conditional_put = await client.put(
                where, params={"identifier": f"{type_}-1"}, json=with_id, headers=headers
            )
            assert _refused(conditional_put), type_
        if "history-type" not in codes:
            assert _refused(await client.get(f"{where}/_history", headers=headers)), type_
        if "read" in codes:
            still = await client.get(f"{where}/{id_}", headers=headers)
            assert still.status_code == 200, (type_, still.text)
            assert still.json()["meta"]["versionId"] == str(versions), type_
            assert still.json().get("language") == ("vi" if "update" in codes else None)


async def test_the_system_interactions_declared_work(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    statement = (await client.get(f"{FHIR}/metadata")).json()
    [rest] = statement["rest"]
    codes = {i["code"] for i in rest.get("interaction", [])}
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    location = {"resourceType": "Location", "name": "Phòng khám số 2"}
    entry = {"request": {"method": "POST", "url": "Location"}, "resource": location}
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [entry]}
        answer = await client.post(FHIR, json=bundle, headers=headers)
        if kind in codes:
            assert answer.status_code == 200, (kind, answer.text)
            [result] = answer.json()["entry"]
            assert result["response"]["status"].startswith("201"), (kind, result)
        else:
            assert _refused(answer), kind
    for kind, url in (("search-system", FHIR), ("history-system", f"{FHIR}/_history")):
        if kind not in codes:
            assert _refused(await client.get(url, headers=headers)), kind


async def test_a_condition_on_a_type_without_identifier_is_refused_not_ignored(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """An AuditEvent has no identifier: a condition on one could never find it, so a second
    create with the same condition would be a second AuditEvent. It is refused (FHIR-0020),
    alone and in a transaction, and nothing is kept."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    event = {"resourceType": "AuditEvent", **SAMPLES["AuditEvent"]}
    condition = {"If-None-Exist": "identifier=urn:vnehr:test|a"}
    alone = await client.post(f"{FHIR}/AuditEvent", json=event, headers={**headers, **condition})
    outcome(alone, 400, "FHIR-0020")
    assert alone.json()["issue"][0]["code"] == "not-supported"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "POST", "url": "AuditEvent", "ifNoneExist": "identifier=a"},
                "resource": event,
            }
        ],
    }
    outcome(await client.post(FHIR, json=bundle, headers=headers), 400, "FHIR-0020")
    kept = await client.get(f"{FHIR}/AuditEvent", headers=headers)
    assert kept.json()["total"] == 0
