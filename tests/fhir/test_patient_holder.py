"""A FHIR write whose Patient names a personal ID (Patient.identifier, the national ID system)
with a name or birth date that is not what VNeID confirmed of the ID's holder is most likely
someone else's data under a mistyped ID. It is refused whole (422, FHIR-0019, naming only the
element that differs), so that nothing of it reaches the holder's record: not the visit, not
the resources stored as sent beside it (an allergy), not the Patient itself. The answer never
tells the writer the holder's own details; the refusal leaves a trace in the audit log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, check_model
from tests.fhir.test_write import WRITER, bundle_of
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token
from tests.submissions.test_patient_match import a_visit
from vnehr.audit import AuditEvent
from vnehr.fhir import mapping
from vnehr.kit.settings import Settings
from vnehr.records.models import VisitVersion

AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
REFUSED = "FHIR-0019"
#: An's own details as anyone could write them: none may come back to the writer.
AN_TOLD = ("Nguyễn Văn An", "Nguyen Van An", "NGUYEN VAN AN", "1985-03-14", "19850314",
           "198503140000")  # fmt: skip


def _allergy() -> dict[str, Any]:
    system = "http://terminology.hl7.org/CodeSystem/allergyintolerance-"
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": f"{system}clinical", "code": "active"}]},
        "verificationStatus": {
            "coding": [{"system": f"{system}verification", "code": "confirmed"}]
        },
        "category": ["medication"],
        "criticality": "high",
        "code": {"text": "Penicillin"},
        "patient": {"reference": "urn:uuid:patient"},
        "encounter": {"reference": "urn:uuid:encounter"},
    }


def _visit_bundle(code: str, seed: int, name: str, ngay_sinh: str) -> dict[str, Any]:
    """A visit of ``name`` born ``ngay_sinh`` under An's personal ID, with an allergy (stored
    as sent: no national table holds it)."""
    bundle = bundle_of(a_visit(code, seed, name, ngay_sinh), code)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:allergy",
            "resource": _allergy(),
            "request": {"method": "POST", "url": "AllergyIntolerance"},
        }
    )
    return bundle


def _patient(name: str | None, birth: str | None) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": mapping.PERSONAL_ID, "value": AN[0]}],
        **({"name": [{"text": name}]} if name is not None else {}),
        **({"birthDate": birth} if birth is not None else {}),
        "gender": "male",
    }


def _refused(response: httpx.Response, *expressions: str) -> None:
    """A 422 OperationOutcome FHIR-0019 naming these elements, and nothing of An's."""
    assert response.status_code == 422, response.text
    body = response.json()
    check_model(body)
    assert [i["details"]["coding"][0]["code"] for i in body["issue"]] == [REFUSED] * len(
        expressions
    )
    assert [i["expression"] for i in body["issue"]] == [[e] for e in expressions]
    assert all(i["details"]["text"] and i["diagnostics"] for i in body["issue"])
    for told in AN_TOLD:
        assert told not in response.text


async def _an_reads(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> dict[str, Any]:
    """What An's own record holds: his visits, allergies and the Patients kept about him."""
    await sign_in_as(client, session, settings, AN)
    timeline = (await client.get("/api/v1/me/timeline")).json()["items"]
    allergies = (await client.get(f"{FHIR}/AllergyIntolerance")).json()
    summary = (await client.get("/api/v1/me/summary")).json()
    patients = (await client.get(f"{FHIR}/Patient")).json()
    client.cookies.clear()
    return {
        "visits": len(timeline),
        "allergies": allergies["total"],
        "summary": [a["substance"] for a in summary["allergies"]],
        "births": sorted(str(e["resource"].get("birthDate")) for e in patients.get("entry") or []),
    }


async def _refusals(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.not_confirmed")
    )
    return [{"person": r.person_id, **(r.detail or {})} for r in rows]


@pytest.mark.parametrize(
    ("name", "ngay_sinh", "elements"),
    [
        ("Trần Văn Giả", "198503140000", ["name"]),
        ("Nguyễn Văn An", "198503150000", ["birthDate"]),
        ("Trần Văn Giả", "198501010000", ["name", "birthDate"]),
    ],
)
async def test_a_visit_of_someone_else_under_an_s_id_is_refused_and_keeps_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    name: str,
    ngay_sinh: str,
    elements: list[str],
) -> None:
    await sign_in_as(client, session, settings, AN)  # VNeID confirmed An's details
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    bundle = _visit_bundle(code, 41, name, ngay_sinh)

    response = await client.post(FHIR, json=bundle, headers=headers)

    _refused(response, *(f"Bundle.entry[0].resource.{e}" for e in elements))
    # nothing of the transaction is kept: no visit (nor relay), no allergy
    stored = select(func.count()).select_from(VisitVersion)
    assert await session.scalar(stored.where(VisitVersion.facility_code == code)) == 0
    assert await _an_reads(client, session, settings) == {
        "visits": 0, "allergies": 0, "summary": [], "births": ["1985-03-14"],
    }  # fmt: skip
    # the refusal is in the audit log (who tried which ID), about no one's record
    [trace] = await _refusals(session)
    assert trace["person"] is None
    assert trace["fields"] == elements


async def test_a_visit_with_an_s_details_written_otherwise_is_an_s(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    bundle = _visit_bundle(code, 42, "NGUYEN  VAN AN", "198503140000")

    response = await client.post(FHIR, json=bundle, headers=headers)

    assert response.status_code == 200, response.text
    assert await _an_reads(client, session, settings) == {
        "visits": 1, "allergies": 1, "summary": ["Penicillin"], "births": ["1985-03-14"],
    }  # fmt: skip
    assert await _refusals(session) == []


async def test_a_patient_written_alone_with_another_birth_date_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    client.cookies.clear()
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)

    # a create, alone or in a transaction with what points at it
    _refused(
        await client.post(f"{FHIR}/Patient", json=_patient(AN[1], "1985-03-15"), headers=headers),
        "Patient.birthDate",
    )
    allergy = _allergy()
    del allergy["encounter"]
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:patient",
                "resource": _patient("Trần Văn Giả", "1985"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:allergy",
                "resource": allergy,
                "request": {"method": "POST", "url": "AllergyIntolerance"},
            },
        ],
    }
    _refused(
        await client.post(FHIR, json=transaction, headers=headers), "Bundle.entry[0].resource.name"
    )
    # in a batch, the entry fails on its own
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": _patient(AN[1], "1985-04"),
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    answered = (await client.post(FHIR, json=batch, headers=headers)).json()
    [entry] = answered["entry"]
    assert entry["response"]["status"].startswith("422")
    [issue] = entry["response"]["outcome"]["issue"]
    assert (issue["details"]["coding"][0]["code"], issue["expression"]) == (
        REFUSED,
        ["Patient.birthDate"],
    )

    # An's own details, however written, are kept as before; none to compare is refused
    # before anything is compared (FHIR-0022, not audited: it tells nothing of An)
    kept = await client.post(
        f"{FHIR}/Patient", json=_patient("nguyễn văn an", "1985-03"), headers=headers
    )
    assert kept.status_code == 201, kept.text
    bare = await client.post(f"{FHIR}/Patient", json=_patient(None, None), headers=headers)
    assert bare.status_code == 422, bare.text
    assert bare.json()["issue"][0]["details"]["coding"][0]["code"] == "FHIR-0022"
    # an update to someone else's details is refused, and the kept version stays
    patient_id = kept.json()["id"]
    changed = {**_patient("Trần Văn Giả", "1985-03-14"), "id": patient_id}
    _refused(
        await client.put(f"{FHIR}/Patient/{patient_id}", json=changed, headers=headers),
        "Patient.name",
    )
    again = await client.get(f"{FHIR}/Patient/{patient_id}", headers=headers)
    assert again.json()["name"] == [{"text": "nguyễn văn an"}]
    assert again.json()["meta"]["versionId"] == "1"

    assert len(await _refusals(session)) == 4
    assert (await _an_reads(client, session, settings))["allergies"] == 0
