"""A resource written through FHIR that names the visit it was recorded in (``encounter``;
DocumentReference ``context.encounter``; Encounter ``partOf``) names a visit of its own patient
that its writer may read. Anything else is refused whole with FHIR-0015, the same answer
whether the visit is another person's, another facility's or none at all (nobody learns that a
visit exists)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, outcome
from tests.fhir.test_write import WRITER, bundle_of, visit
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.fhir import mapping
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

REFUSED = "FHIR-0015"


def naming(type_: str, patient: str, encounter: dict[str, Any]) -> dict[str, Any]:
    """A small valid resource of ``type_`` about ``patient`` recorded in ``encounter``."""
    subject = {"reference": patient}
    if type_ == "AllergyIntolerance":
        return {"resourceType": type_, "code": {"text": "Penicillin"}, "patient": subject,
                "encounter": encounter}  # fmt: skip
    if type_ == "DocumentReference":
        return {
            "resourceType": type_,
            "status": "current",
            "subject": subject,
            "content": [{"attachment": {"contentType": "text/plain", "data": "eA=="}}],
            "context": {"encounter": [encounter]},
        }
    if type_ == "Encounter":
        return {
            "resourceType": type_,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "AMB"},
            "subject": subject,
            "partOf": encounter,
        }  # fmt: skip
    made: dict[str, Any] = {
        "Condition": {"code": {"text": "Viêm họng"}},
        "Observation": {"status": "final", "code": {"text": "Mạch"}, "valueString": "80"},
        "MedicationRequest": {"status": "completed", "intent": "order",
                              "medicationCodeableConcept": {"text": "Paracetamol"}},
        "Procedure": {"status": "completed", "code": {"text": "Khâu vết thương"}},
        "DiagnosticReport": {"status": "final", "code": {"text": "Siêu âm ổ bụng"}},
    }[type_]  # fmt: skip
    return {"resourceType": type_, **made, "subject": subject, "encounter": encounter}


TYPES = (
    "AllergyIntolerance", "Condition", "Observation", "MedicationRequest", "Procedure",
    "DiagnosticReport", "DocumentReference", "Encounter",
)  # fmt: skip


class World(NamedTuple):
    code: str  # the writing facility
    headers: dict[str, str]
    patient_a: str
    visit_a: str
    patient_b: str
    visit_b: str
    key_b: str  # B's visit by its identifier: "{facility}/{MA_LK}"
    elsewhere: str  # another facility's visit of patient A
    person_a: tuple[str, str, str, str]  # who A is, to sign in as A


async def _patient_and_visit(
    client: httpx.AsyncClient, headers: dict[str, str], one: synth.SynthVisit
) -> tuple[str, str]:
    """The patient id and the visit id of a visit the facility sent, as its system finds them."""
    found = await client.get(
        f"{FHIR}/Patient", params={"identifier": f"{mapping.PERSONAL_ID}|{who(one)[0]}"},
        headers=headers,
    )  # fmt: skip
    patient_id = found.json()["entry"][0]["resource"]["id"]
    encounters = await client.get(
        f"{FHIR}/Encounter", params={"patient": patient_id}, headers=headers
    )
    [visit_id] = [
        e["resource"]["id"]
        for e in encounters.json()["entry"]
        if e["resource"]["identifier"][0]["value"].endswith(f"/{one.ma_lk}")
    ]
    return patient_id, visit_id


async def two_patients(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> World:
    """A facility that sent a visit of each of two patients, and another facility's visit of
    the first."""
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    ended = datetime(2026, 10, 7, 9, 0)  # noqa: DTZ001
    mine, theirs = visit_of(code, 83, ended), visit_of(code, 84, ended)
    assert who(mine)[0] != who(theirs)[0]
    sent = await send(client, headers, synth.envelope([mine, theirs], code))
    assert sent.json()["status"] != "rejected", sent.text
    other_code, other_headers = await facility_with_token(client, session, settings, scopes=WRITER)
    elsewhere = visit_of(other_code, 85, datetime(2026, 10, 9, 9, 0), mine)  # noqa: DTZ001
    sent = await send(client, other_headers, synth.envelope([elsewhere], other_code))
    assert sent.json()["status"] != "rejected", sent.text
    patient_a, visit_a = await _patient_and_visit(client, headers, mine)
    patient_b, visit_b = await _patient_and_visit(client, headers, theirs)
    _, visit_elsewhere = await _patient_and_visit(client, other_headers, elsewhere)
    assert len({visit_a, visit_b, visit_elsewhere}) == 3
    return World(
        code, headers, patient_a, visit_a, patient_b, visit_b, f"{code}/{theirs.ma_lk}",
        visit_elsewhere, who(mine),
    )  # fmt: skip


async def _kept(
    client: httpx.AsyncClient, headers: dict[str, str], type_: str, patient: str
) -> list[dict[str, Any]]:
    """What the writer reads back of ``type_`` written through FHIR for this patient."""
    found = await client.get(f"{FHIR}/{type_}", params={"patient": patient}, headers=headers)
    assert found.status_code == 200, found.text
    return [
        e["resource"] for e in found.json()["entry"]
        if e.get("search", {}).get("mode") == "match" and len(e["resource"]["id"]) == 32
    ]  # fmt: skip


async def test_a_write_naming_another_persons_visit_or_none_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    w = await two_patients(client, session, settings)
    ours = f"{settings.public_url}{FHIR}"
    refused = {
        "another person's visit": {"reference": f"Encounter/{w.visit_b}"},
        "absolute": {"reference": f"{ours}/Encounter/{w.visit_b}"},
        "versioned": {"reference": f"Encounter/{w.visit_b}/_history/1"},
        "by its visit key": {"identifier": {"system": mapping.VISIT_KEY, "value": w.key_b}},
        "no such visit": {"reference": "Encounter/999999999"},
        "no such resource": {"reference": "Encounter/f001"},
        "another facility's visit of the same patient": {"reference": f"Encounter/{w.elsewhere}"},
    }
    for type_ in TYPES:
        for why, encounter in refused.items():
            answer = await client.post(
                f"{FHIR}/{type_}",
                json=naming(type_, f"Patient/{w.patient_a}", encounter),
                headers=w.headers,
            )
            outcome(answer, 422, REFUSED)
            assert type_ in answer.json()["issue"][0]["diagnostics"], (type_, why)
        assert await _kept(client, w.headers, type_, w.patient_a) == [], type_
        # the patient's own visit, however written
        for encounter in (
            {"reference": f"Encounter/{w.visit_a}"},
            {"reference": f"{ours}/Encounter/{w.visit_a}/_history/1"},
        ):
            written = await client.post(
                f"{FHIR}/{type_}",
                json=naming(type_, f"Patient/{w.patient_a}", encounter),
                headers=w.headers,
            )
            assert written.status_code == 201, (type_, written.text)
        assert len(await _kept(client, w.headers, type_, w.patient_a)) == 2, type_
    # another facility's visit, once the patient shares the full record with the writer
    await sign_in_as(client, session, settings, w.person_a)
    shared = await client.post("/api/v1/me/consents", json={"facility": w.code, "scope": "full"})
    assert shared.status_code == 201, shared.text
    client.cookies.clear()
    there = naming("Condition", f"Patient/{w.patient_a}", {"reference": f"Encounter/{w.elsewhere}"})
    written = await client.post(f"{FHIR}/Condition", json=there, headers=w.headers)
    assert written.status_code == 201, written.text


async def test_the_visit_must_be_of_the_resources_own_patient(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    w = await two_patients(client, session, settings)
    at_a = {"reference": f"Encounter/{w.visit_a}"}
    for patient, refused in (
        (f"Patient/{w.patient_b}", REFUSED),
        ("Patient/999999999", "FHIR-0021"),  # no patient of the writer's (test_own_patients)
        ("urn:uuid:nobody", REFUSED),
    ):
        answer = await client.post(
            f"{FHIR}/Observation", json=naming("Observation", patient, at_a), headers=w.headers
        )
        outcome(answer, 422, refused)
    unnamed = naming("Observation", "x", at_a)
    del unnamed["subject"]
    answer = await client.post(f"{FHIR}/Observation", json=unnamed, headers=w.headers)
    outcome(answer, 422, REFUSED)
    # an update may not move a resource to another person, away from its visit
    written = await client.post(
        f"{FHIR}/Condition",
        json=naming("Condition", f"Patient/{w.patient_a}", at_a),
        headers=w.headers,
    )
    assert written.status_code == 201, written.text
    kept = written.json()
    moved = {**kept, "subject": {"reference": f"Patient/{w.patient_b}"}}
    answer = await client.put(f"{FHIR}/Condition/{kept['id']}", json=moved, headers=w.headers)
    outcome(answer, 422, REFUSED)
    again = (await client.get(f"{FHIR}/Condition/{kept['id']}", headers=w.headers)).json()
    assert (again["meta"]["versionId"], again["subject"]) == ("1", kept["subject"])
    # an encounter this server cannot resolve is kept as sent (D98 keeps it from others)
    for encounter in (
        {"reference": "https://fhir.other.example/R4/Encounter/1"},
        {"display": "Khám ở trạm y tế"},
        {"identifier": {"system": "urn:visit", "value": "1"}},
    ):
        foreign = naming("Observation", f"Patient/{w.patient_a}", encounter)
        written = await client.post(f"{FHIR}/Observation", json=foreign, headers=w.headers)
        assert written.status_code == 201, written.text


def _bundle(*entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": url, "resource": resource,
             "request": {"method": "POST", "url": resource["resourceType"]}}
            for url, resource in entries
        ],
    }  # fmt: skip


async def test_a_transaction_naming_another_persons_visit_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    w = await two_patients(client, session, settings)

    def bundle(stay_of: str, observed_in: str) -> dict[str, Any]:
        """An Observation recorded in a ward stay kept as sent, the stay after it."""
        return _bundle(
            ("urn:uuid:observation",
             naming("Observation", f"Patient/{w.patient_a}", {"reference": observed_in})),
            ("urn:uuid:ward-stay",
             naming("Encounter", stay_of, {"reference": f"Encounter/{w.visit_a}"})),
        )  # fmt: skip

    for sent in (
        bundle(f"Patient/{w.patient_a}", f"Encounter/{w.visit_b}"),
        bundle(f"Patient/{w.patient_b}", "urn:uuid:ward-stay"),
    ):
        answer = await client.post(FHIR, json=sent, headers=w.headers)
        outcome(answer, 422, REFUSED)
        assert "Bundle.entry[" in answer.json()["issue"][0]["diagnostics"]
    assert await _kept(client, w.headers, "Observation", w.patient_a) == []
    assert await _kept(client, w.headers, "Encounter", w.patient_a) == []
    answer = await client.post(
        FHIR, json=bundle(f"Patient/{w.patient_a}", "urn:uuid:ward-stay"), headers=w.headers
    )
    assert answer.status_code == 200, answer.text
    [observation] = await _kept(client, w.headers, "Observation", w.patient_a)
    [ward_stay] = await _kept(client, w.headers, "Encounter", w.patient_a)
    assert observation["encounter"] == {"reference": f"Encounter/{ward_stay['id']}"}


async def test_a_visit_bundle_whose_member_is_of_another_patient_is_refused_whole(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    w = await two_patients(client, session, settings)
    one = visit(w.code, 62)
    sent = bundle_of(one, w.code)
    allergy = naming(
        "AllergyIntolerance", f"Patient/{w.patient_b}", {"reference": "urn:uuid:encounter"}
    )
    sent["entry"].append(
        {"fullUrl": "urn:uuid:allergy", "resource": allergy,
         "request": {"method": "POST", "url": "AllergyIntolerance"}}
    )  # fmt: skip
    outcome(await client.post(FHIR, json=sent, headers=w.headers), 422, REFUSED)
    found = await client.get(
        f"{FHIR}/Patient", params={"identifier": f"{mapping.PERSONAL_ID}|{who(one)[0]}"},
        headers=w.headers,
    )  # fmt: skip
    assert found.json()["total"] == 0  # the visit was not stored either
    allergy["patient"] = {"reference": "urn:uuid:patient"}
    answer = await client.post(FHIR, json=sent, headers=w.headers)
    assert answer.status_code == 200, answer.text


def _without_personal_id(one: synth.SynthVisit) -> synth.SynthVisit:
    """The visit of a patient who has no personal ID (a foreigner, a newborn): SO_CCCD blank."""
    for rows in one.tables.values():
        for row in rows:
            if "SO_CCCD" in row:
                row["SO_CCCD"] = ""
    return one


async def _allergies_seen(
    client: httpx.AsyncClient, headers: dict[str, str], patient: str
) -> set[str]:
    found = await client.get(
        f"{FHIR}/AllergyIntolerance", params={"patient": patient}, headers=headers
    )
    assert found.status_code == 200, found.text
    return {e["resource"]["id"] for e in found.json().get("entry") or []}


async def test_a_facility_names_its_own_visit_of_a_patient_without_personal_id(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Such a visit has no person to compare the subject with: its own writer may name it
    (kept as sent, hidden from other readers as D98 hides what it cannot judge); nobody else."""
    from vnehr import records

    w = await two_patients(client, session, settings)
    stranger = _without_personal_id(visit_of(w.code, 91, datetime(2026, 10, 7, 9, 0)))  # noqa: DTZ001
    sent = await send(client, w.headers, synth.envelope([stranger], w.code))
    assert [v["status"] for v in sent.json()["visits"]] == ["accepted"], sent.text
    entry = await records.entry_by_key(session, w.code, stranger.ma_lk)
    assert entry is not None
    assert entry.person_id is None
    kept = await client.post(
        f"{FHIR}/Patient",
        json={"resourceType": "Patient", "name": [{"text": "John Smith"}]},
        headers=w.headers,
    )
    assert kept.status_code == 201, kept.text
    by_key = {"identifier": {"system": mapping.VISIT_KEY, "value": f"{w.code}/{stranger.ma_lk}"}}
    for encounter in (by_key, {"reference": f"Encounter/{entry.id}"}):
        for type_ in TYPES:
            written = await client.post(
                f"{FHIR}/{type_}",
                json=naming(type_, f"Patient/{kept.json()['id']}", encounter),
                headers=w.headers,
            )
            assert written.status_code == 201, (type_, encounter, written.text)
            read = await client.get(f"{FHIR}/{type_}/{written.json()['id']}", headers=w.headers)
            assert read.status_code == 200, read.text
    # another facility may not name it, whatever the subject (A is not its patient either)
    other_code, other = await facility_with_token(client, session, settings, scopes=WRITER)
    its_own = await client.post(
        f"{FHIR}/Patient", json={"resourceType": "Patient", "name": [{"text": "Jane Roe"}]},
        headers=other,
    )  # fmt: skip
    for encounter in (by_key, {"reference": f"Encounter/{entry.id}"}):
        for subject, refused in (
            (f"Patient/{its_own.json()['id']}", REFUSED),
            (f"Patient/{w.patient_a}", "FHIR-0021"),
        ):
            answer = await client.post(
                f"{FHIR}/Observation",
                json=naming("Observation", subject, encounter),
                headers=other,
            )
            outcome(answer, 422, refused)
    # an allergy of A recorded there is the writer's and A's, not a reader's under consent
    there = await client.post(
        f"{FHIR}/AllergyIntolerance",
        json=naming("AllergyIntolerance", f"Patient/{w.patient_a}", by_key),
        headers=w.headers,
    )
    assert there.status_code == 201, there.text
    at_a = await client.post(
        f"{FHIR}/AllergyIntolerance",
        json=naming(
            "AllergyIntolerance", f"Patient/{w.patient_a}", {"reference": f"Encounter/{w.visit_a}"}
        ),
        headers=w.headers,
    )
    assert at_a.status_code == 201, at_a.text
    await sign_in_as(client, session, settings, w.person_a)
    shared = await client.post(
        "/api/v1/me/consents", json={"facility": other_code, "scope": "full"}
    )
    assert shared.status_code == 201, shared.text
    client.cookies.clear()
    ids = {there.json()["id"], at_a.json()["id"]}
    assert await _allergies_seen(client, w.headers, w.patient_a) >= ids
    assert await _allergies_seen(client, other, w.patient_a) & ids == {at_a.json()["id"]}


async def test_a_facility_in_test_mode_names_its_own_test_visits(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """An onboarding facility's visits are test visits with no person (D67): its writes may
    name them (kept for it alone); another facility's test visit stays refused."""
    code, headers = await facility_with_token(client, session, settings, steps=3, scopes=WRITER)
    one = visit_of(code, 92, datetime(2026, 10, 7, 9, 0))  # noqa: DTZ001
    sent = await send(client, headers, synth.envelope([one], code))
    assert sent.json()["test_mode"], sent.text
    assert sent.json()["status"] != "rejected", sent.text
    kept = await client.post(
        f"{FHIR}/Patient", json={"resourceType": "Patient", "name": [{"text": "Thử"}]},
        headers=headers,
    )  # fmt: skip
    by_key = {"identifier": {"system": mapping.VISIT_KEY, "value": f"{code}/{one.ma_lk}"}}
    for type_ in TYPES:
        written = await client.post(
            f"{FHIR}/{type_}",
            json=naming(type_, f"Patient/{kept.json()['id']}", by_key),
            headers=headers,
        )
        assert written.status_code == 201, (type_, written.text)
        read = await client.get(f"{FHIR}/{type_}/{written.json()['id']}", headers=headers)
        assert read.status_code == 200, read.text
    never_sent = {"identifier": {"system": mapping.VISIT_KEY, "value": f"{code}/NOT-SENT"}}
    answer = await client.post(
        f"{FHIR}/Observation",
        json=naming("Observation", f"Patient/{kept.json()['id']}", never_sent),
        headers=headers,
    )
    outcome(answer, 422, REFUSED)
    _, other = await facility_with_token(client, session, settings, steps=3, scopes=WRITER)
    answer = await client.post(
        f"{FHIR}/Observation",
        json=naming("Observation", f"Patient/{kept.json()['id']}", by_key),
        headers=other,
    )
    outcome(answer, 422, REFUSED)


async def test_a_kept_patient_of_the_visits_person_may_be_the_subject(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A HIS keeps its own Patient of the citizen (found by the personal ID, conditional create)
    and records in that citizen's visit: the subject is that Patient's person."""
    w = await two_patients(client, session, settings)
    personal_id = w.person_a[0]
    mine = {
        "resourceType": "Patient",
        "identifier": [{"system": mapping.PERSONAL_ID, "value": personal_id}],
        "name": [{"text": w.person_a[1]}],
        "birthDate": w.person_a[2],
    }
    at_a = {"reference": f"Encounter/{w.visit_a}"}

    def bundle(patient_first: bool) -> dict[str, Any]:
        patient = {
            "fullUrl": "urn:uuid:patient", "resource": mine,
            "request": {"method": "POST", "url": "Patient",
                        "ifNoneExist": f"identifier={mapping.PERSONAL_ID}|{personal_id}"},
        }  # fmt: skip
        observation = {
            "fullUrl": "urn:uuid:observation",
            "resource": naming("Observation", "urn:uuid:patient", at_a),
            "request": {"method": "POST", "url": "Observation"},
        }
        entries = [patient, observation] if patient_first else [observation, patient]
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    # first the Patient is created in the transaction (after the Observation), then found
    answers = []
    for patient_first in (False, True):
        answer = await client.post(FHIR, json=bundle(patient_first), headers=w.headers)
        assert answer.status_code == 200, answer.text
        answers.append([e["response"] for e in answer.json()["entry"]])
    assert (answers[0][1]["status"], answers[1][0]["status"]) == ("201 Created", "200 OK")
    hex_id = answers[1][0]["location"].split("/")[1]
    assert answers[0][1]["location"].split("/")[1] == hex_id
    observation = await client.get(f"{FHIR}/{answers[1][1]['location']}", headers=w.headers)
    assert observation.json()["subject"] == {"reference": f"Patient/{hex_id}"}
    assert observation.json()["encounter"] == at_a
    # standalone, naming the kept Patient
    written = await client.post(
        f"{FHIR}/Observation", json=naming("Observation", f"Patient/{hex_id}", at_a),
        headers=w.headers,
    )  # fmt: skip
    assert written.status_code == 201, written.text
    # still refused: the kept Patient's person is not the visit's
    for encounter in (
        {"reference": f"Encounter/{w.visit_b}"},
        {"identifier": {"system": mapping.VISIT_KEY, "value": w.key_b}},
    ):
        answer = await client.post(
            f"{FHIR}/Observation", json=naming("Observation", f"Patient/{hex_id}", encounter),
            headers=w.headers,
        )  # fmt: skip
        outcome(answer, 422, REFUSED)
    # a transaction that takes the personal ID off the kept Patient: it stands for no one
    nameless = {"resourceType": "Patient", "id": hex_id, "name": [{"text": w.person_a[1]}]}
    answer = await client.post(
        FHIR,
        json={"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"Patient/{hex_id}", "resource": nameless,
             "request": {"method": "PUT", "url": f"Patient/{hex_id}"}},
            {"fullUrl": "urn:uuid:observation",
             "resource": naming("Observation", f"Patient/{hex_id}", at_a),
             "request": {"method": "POST", "url": "Observation"}},
        ]},
        headers=w.headers,
    )  # fmt: skip
    outcome(answer, 422, REFUSED)
    still = await client.get(f"{FHIR}/Patient/{hex_id}", headers=w.headers)
    assert still.json()["identifier"] == mine["identifier"]
    # another facility's kept Patient of A is its writer's alone
    _, other = await facility_with_token(client, session, settings, scopes=WRITER)
    theirs = await client.post(f"{FHIR}/Patient", json=mine, headers=other)
    assert theirs.status_code == 201, theirs.text
    answer = await client.post(
        f"{FHIR}/Observation",
        json=naming("Observation", f"Patient/{theirs.json()['id']}", at_a),
        headers=w.headers,
    )
    outcome(answer, 422, REFUSED)
