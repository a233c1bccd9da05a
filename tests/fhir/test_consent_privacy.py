"""The sharing directives a representative reads of a person of 16 or more (D116): that the
young person shares, what and for how long, but not with which facility, in FHIR Consent
(search, read, _history, $everything) and nowhere else the parent looks."""

from __future__ import annotations

import json
from datetime import date, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import ADMIN, facility_with_token, send
from vnehr import facilities, identity
from vnehr.fhir.validate import validate
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

CLINIC = "Phòng khám Tư vấn Sức khỏe Sinh sản Vị thành niên"


def _text(answer: httpx.Response) -> str:
    """The whole answer as a person reads it (JSON with its letters, not its escapes)."""
    assert answer.status_code == 200, answer.text
    if answer.headers["content-type"].startswith("text/html"):
        return answer.text
    return json.dumps(answer.json(), ensure_ascii=False)


async def test_a_parent_of_a_sixteen_year_old_reads_no_facility_in_their_consents(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The young person shares their record with a clinic; their parent reads that a sharing
    exists, its scope, categories and period, with "a medical facility" in place of the
    clinic, in every Consent they get; the young person reads the clinic, and so does the
    parent of a child of 15."""
    from tests.exchange.test_inbox import AN
    from tests.exchange.test_push_privacy import represent

    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 73, datetime(2026, 10, 9, 9, 0), age_group=1)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    clinic = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name=CLINIC,
            kind=facilities.Kind.specialty_clinic,
            level=facilities.Level.basic,
            ownership=facilities.Ownership.private,
            province_code="01",
        ),
    )
    young = who(one)
    pid = young[0]
    person_id = await identity.person_id_of(session, pid)
    await sign_in_as(client, session, settings, young)
    made = await client.post(
        "/api/v1/me/consents",
        json={"facility": clinic.code, "scope": "full", "sensitive": ["reproductive"], "days": 30},
    )
    assert made.status_code == 201, made.text
    consent_id = f"c{made.json()['id']}"
    await born_years_ago(session, pid, 17)
    await represent(session, AN, pid, "parent", date(2010, 1, 1))
    leaks = (clinic.code, CLINIC)
    everything = (f"/fhir/R4/Patient/{person_id}/$everything", {"_count": "1000"})
    by_clinic = {"actor": f"Organization/{clinic.code}"}

    # the young person's own view names the clinic
    own = _text(await client.get(everything[0], params=everything[1]))
    assert clinic.code in own
    assert CLINIC in own
    assert (await client.get("/fhir/R4/Consent", params=by_clinic)).json()["total"] == 1

    await sign_in_as(client, session, settings, AN)
    await born_years_ago(session, pid, 17)
    found = await client.get("/fhir/R4/Consent")
    [consent] = [
        e["resource"]
        for e in found.json()["entry"]
        if e["resource"]["patient"] == {"reference": f"Patient/{person_id}"}
    ]
    assert consent["id"] == consent_id
    assert consent["status"] == "active"
    provision = consent["provision"]
    assert provision["actor"][0]["reference"] == {"display": "Một cơ sở khám bệnh, chữa bệnh"}
    assert provision["action"][0]["text"] == "full"
    assert [label["code"] for label in provision["securityLabel"]] == ["reproductive"]
    assert provision["period"]["start"] < provision["period"]["end"]
    assert validate(consent) == []
    answers = [
        found,
        await client.get(f"/fhir/R4/Consent/{consent_id}"),
        await client.get(f"/fhir/R4/Consent/{consent_id}/_history"),
        await client.get(f"/fhir/R4/Consent/{consent_id}/_history/1"),
        await client.get("/fhir/R4/Consent", params={"patient": f"Patient/{person_id}"}),
        await client.get(
            "/fhir/R4/Consent", params={"patient": str(person_id), "_include": "Consent:actor"}
        ),
        await client.get(everything[0], params=everything[1]),
        await client.get("/api/v1/me/consents"),
        await client.get("/portal/book/sharing"),
        await client.get("/portal/book", params={"for": pid}),
    ]
    assert f'"id": "{consent_id}"' in _text(answers[6])  # the Consent is in $everything
    for answer in answers:
        text = _text(answer)
        for leak in leaks:
            assert leak not in text, (answer.request.url, leak)
    # searching by the clinic does not tell either
    assert (await client.get("/fhir/R4/Consent", params=by_clinic)).json()["total"] == 0

    # a child of 15: the parent reads the clinic, as before
    await born_years_ago(session, pid, 15)
    younger = _text(await client.get(everything[0], params=everything[1]))
    assert clinic.code in younger
    assert CLINIC in younger
