"""Another facility's system reads a patient through FHIR only under the patient's consent: a
directive for that facility with the full record; sensitive visits stay out unless named;
revocation counts at once; every read is audited with its basis and shows in the citizen's
"who viewed my record"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange
from vnehr.audit import AuditEvent
from vnehr.fhir import mapping
from vnehr.fhir.validate import validate
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

FHIR = "/fhir/R4"


def reader_client(reads: Any) -> str:
    """The reading system's client id, from its audit rows ("facility_system:{id}")."""
    return str(reads[0].actor).split(":", 1)[1]


READER = ("record.read",)


async def test_a_facility_system_reads_through_fhir_only_what_the_patient_shares(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    sender, headers = await facility_with_token(client, session, settings)
    ordinary = visit_of(sender, 91, datetime(2026, 9, 1, 9, 0), care_type="01")  # noqa: DTZ001
    mental = visit_of(sender, 92, datetime(2026, 10, 1, 9, 0), ordinary, care_type="01")  # noqa: DTZ001
    mental.tables["XML1"][0]["MA_BENH_CHINH"] = "F32.9"
    mental.tables["XML1"][0]["MA_BENH_KT"] = ""
    assert (await send(client, headers, synth.envelope([ordinary, mental], sender))).json()[
        "status"
    ] != "rejected"
    reader, reader_headers = await facility_with_token(client, session, settings, scopes=READER)
    patient = who(ordinary)

    person = await client.get(
        f"{FHIR}/Patient",
        params={"identifier": f"{mapping.PERSONAL_ID}|{patient[0]}"},
        headers=reader_headers,
    )
    assert person.status_code == 200
    assert person.json().get("entry", []) == []  # no consent: not even the Patient
    await sign_in_as(client, session, settings, patient)
    person_id = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    mine = (await client.get(f"{FHIR}/Encounter")).json()
    mine_by_id = {}
    for entry in mine["entry"]:
        mine_by_id[entry["resource"]["id"]] = entry["resource"]
    client.cookies.clear()

    def search(path: str, **params: str) -> Any:
        return client.get(f"{FHIR}/{path}", params=params, headers=reader_headers)

    assert (await search("Encounter", patient=person_id)).json().get("entry", []) == []

    # the patient shares the full record with the reading facility
    await sign_in_as(client, session, settings, patient)
    made = await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "full"})
    assert made.status_code == 201
    client.cookies.clear()
    seen = (await search("Encounter", patient=person_id)).json()
    ids = [e["resource"]["id"] for e in seen["entry"]]
    assert len(ids) == 1  # the mental-health visit stays out
    one = await client.get(f"{FHIR}/Encounter/{ids[0]}", headers=reader_headers)
    assert one.status_code == 200
    hidden = [i for i in mine_by_id if i not in ids]
    assert len(hidden) == 1
    gone = await client.get(f"{FHIR}/Encounter/{hidden[0]}", headers=reader_headers)
    assert gone.status_code == 404
    everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything", headers=reader_headers)
    assert everything.status_code == 200
    assert "F32.9" not in everything.text

    reads = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "fhir.read", AuditEvent.person_id == int(person_id)
            )
        )
    ).all()
    assert reads
    assert all(r.detail["basis"] == "consent" and r.detail["facility"] == reader for r in reads)

    # the citizen is told, once a day per facility however many reads there were
    told = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.topic == "record.viewed",
                OutboxEvent.payload["person_id"].as_integer() == int(person_id),
            )
        )
    ).all()
    assert len(told) == 1
    await exchange.event_notifier("viewed", exchange.LogPush())(session, told[0])

    # the citizen reads those reads as FHIR AuditEvents shaped after IHE BALP
    await sign_in_as(client, session, settings, patient)
    inbox = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert [n["title"]["vi"] for n in inbox if n["kind"] == "viewed"] == [
        "Hồ sơ sức khỏe của bạn vừa được xem"
    ]
    events = (await client.get(f"{FHIR}/AuditEvent")).json()["entry"]
    theirs = [
        e["resource"]
        for e in events
        if e["resource"]["agent"][0]["who"]["display"] == f"facility_system:{reader_client(reads)}"
    ]
    assert theirs
    for event in theirs:
        assert event["meta"]["profile"] == [
            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
        ]
        assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
        assert {e["role"]["code"] for e in event["entity"]} == {"1", "4"}
        assert validate(event) == []
        get_fhir_model_class("AuditEvent").model_validate(event)
    client.cookies.clear()

    # naming the category lets it through; revoking stops everything at once
    await sign_in_as(client, session, settings, patient)
    directive = made.json()["id"]
    await client.delete(f"/api/v1/me/consents/{directive}")
    named = await client.post(
        "/api/v1/me/consents", json={"facility": reader, "scope": "full", "sensitive": ["mental"]}
    )
    log = (await client.get("/api/v1/me/access-log")).json()
    client.cookies.clear()
    assert len((await search("Encounter", patient=person_id)).json()["entry"]) == 2
    fhir_reads = [item for item in log if item["action"] == "fhir.read"]
    assert fhir_reads  # the citizen sees the system's reads in "who viewed my record"
    await sign_in_as(client, session, settings, patient)
    await client.delete(f"/api/v1/me/consents/{named.json()['id']}")
    client.cookies.clear()
    assert (await search("Encounter", patient=person_id)).json().get("entry", []) == []
    # a summary-only directive is the portal's: a system reads nothing through FHIR
    await sign_in_as(client, session, settings, patient)
    await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "summary"})
    client.cookies.clear()
    assert (await search("Encounter", patient=person_id)).json().get("entry", []) == []
