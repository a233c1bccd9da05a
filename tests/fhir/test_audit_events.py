"""The AuditEvents a representative reads of a person of 16 or more (D109): what the access
log says, in FHIR."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_access import born_years_ago, seventeen_with_a_parent
from tests.healthbook.test_api import who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token
from vnehr import identity
from vnehr.audit import READS, AuditEvent
from vnehr.fhir.validate import validate
from vnehr.kit.settings import Settings


async def test_a_parent_of_a_sixteen_year_old_reads_no_facility_in_fhir_audit_events(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The facility system that read the record and the clinician of another facility who
    opened it in an emergency are "a medical facility" in every AuditEvent a parent gets
    (search, read, _history, $everything), with the object's type only; the young person's
    own AuditEvents name them."""
    from tests.exchange.test_inbox import AN
    from tests.sharing.test_access import DOCTOR

    code, headers, one = await seventeen_with_a_parent(client, session, settings, 72)
    young = who(one)
    pid = young[0]
    visit_id = (await client.get("/api/v1/me/timeline")).json()["items"][0]["id"]
    client.cookies.clear()
    assert (await client.get(f"/fhir/R4/Encounter/{visit_id}", headers=headers)).status_code == 200
    other, _ = await facility_with_token(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": other}
    )
    glass = await client.post(
        f"/api/v1/patients/{pid}/break-glass", json={"reason": "unconscious", "text": "hôn mê"}
    )
    assert glass.status_code == 201, glass.text
    system = await session.scalar(
        select(AuditEvent.actor).where(AuditEvent.action == "fhir.read").limit(1)
    )
    assert system is not None
    assert system.startswith("facility_system:")
    client_id = system.split(":", 1)[1]
    person_id = await identity.person_id_of(session, pid)
    leaks = (code, client_id, other, DOCTOR[0], f"Encounter/{visit_id}")

    await sign_in_as(client, session, settings, young)
    own = (await client.get("/fhir/R4/AuditEvent")).text
    assert client_id in own
    assert DOCTOR[0] in own

    await sign_in_as(client, session, settings, AN)
    await born_years_ago(session, pid, 17)
    found = await client.get("/fhir/R4/AuditEvent")
    assert found.status_code == 200, found.text
    events = [e["resource"] for e in found.json()["entry"]]
    about = [e for e in events if e["entity"][-1]["what"] == {"reference": f"Patient/{person_id}"}]
    actions = {e["subtype"][-1]["code"] for e in about}
    assert {"fhir.read", "emergency.opened"} <= actions
    assert actions <= set(READS)  # who looked; not what arrived (D132: it dates hidden visits)
    for leak in leaks:
        assert leak not in found.text, leak
    seen = next(e for e in about if e["subtype"][-1]["code"] == "fhir.read")
    assert seen["agent"][0]["who"] == {"display": "Một cơ sở khám bệnh, chữa bệnh"}
    assert seen["entity"][0]["what"] == {"display": "fhir"}
    assert all(validate(e) == [] for e in about)
    answers = [
        await client.get(f"/fhir/R4/AuditEvent/{seen['id']}"),
        await client.get(f"/fhir/R4/AuditEvent/{seen['id']}/_history"),
        await client.get(f"/fhir/R4/AuditEvent/{seen['id']}/_history/1"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        for leak in leaks:
            assert leak not in answer.text, leak
    everything = await client.get(f"/fhir/R4/Patient/{person_id}/$everything")
    assert everything.status_code == 200, everything.text
    audit_events = [
        json.dumps(e["resource"], ensure_ascii=False)
        for e in everything.json()["entry"]
        if e["resource"]["resourceType"] == "AuditEvent"
    ]
    assert len(audit_events) >= 2  # the facility system's read, the emergency access
    for leak in leaks:
        assert all(leak not in text for text in audit_events), leak
    # the visit's own facility is in the book (D109 keeps it there); the others are not
    for leak in (client_id, other, DOCTOR[0]):
        assert leak not in everything.text, leak

    # a child of 15: the parent reads them, as before
    await born_years_ago(session, pid, 15)
    younger = (await client.get("/fhir/R4/AuditEvent")).text
    assert client_id in younger
    assert DOCTOR[0] in younger
