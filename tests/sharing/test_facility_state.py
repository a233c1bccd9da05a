"""A clinician reads patients' records only for a facility connected to the exchange: once the
department suspends the facility, or while it is still onboarding, its clinicians neither read
(under consent or an emergency access), nor break the glass, nor use a reception code; they are
told why and whom to call, on the API and on the clinic page. The facility's systems reach no
patient through consent either while it is onboarding (their own test data stays theirs)."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.facilities.test_api import sign_in
from tests.identity.test_api import error, sign_in_as
from tests.sharing.test_access import DOCTOR, OTHER_DOCTOR, SUPERVISOR, world
from tests.submissions.test_intake import facility_with_token, new_facility
from vnehr import identity
from vnehr.fhir import mapping
from vnehr.kit.settings import Settings
from vnehr.sharing.models import ConsentDirective, EmergencyAccess

HANOI_ADMIN = "001085004217"
EMERGENCY = {"reason": "unconscious", "text": "Bệnh nhân hôn mê, không người nhà"}


async def _move(client: httpx.AsyncClient, settings: Settings, code: str, to: str) -> None:
    """The department moves the facility (on its API, as its page does)."""
    sign_in(client, settings, HANOI_ADMIN)
    moved = await client.post(
        f"/api/v1/facilities/{code}/onboarding", json={"to_state": to, "reason": "kiểm tra"}
    )
    assert (moved.status_code, moved.json()["status"]) == (200, to), moved.text


async def _count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_suspended_facilitys_clinicians_read_nothing_until_it_is_reinstated(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The reviewer's case: suspended, the facility's clinician still read under consent (200),
    broke the glass (201) and read under it."""
    _, consented, _, patient, _ = await world(client, session, settings)
    await identity.bootstrap_grant(session, HANOI_ADMIN, "department_admin", province_code="01")
    record = f"/api/v1/patients/{patient[0]}/record"
    at_consented = {"role": "clinician", "facility_code": consented}
    await sign_in_as(client, session, settings, patient)
    shared = await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    assert shared.status_code == 201, shared.text
    code = (await client.post("/api/v1/me/reception-codes")).json()["code"]
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    view = await client.get(record)
    assert view.status_code == 200, view.text
    visit = view.json()["visits"][0]["id"]

    await _move(client, settings, consented, "suspended")
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    body = error(await client.get(record), 403, "SHR-0018")
    assert consented in body["message"]["en"]
    assert "suspended" in body["message"]["en"]
    assert "health department" in body["message"]["en"]
    assert "tạm dừng" in body["message"]["vi"]
    assert "Sở Y tế" in body["message"]["vi"]
    error(await client.get(f"/api/v1/patients/{patient[0]}/visits/{visit}"), 403, "SHR-0018")
    emergencies, directives = (
        await _count(session, EmergencyAccess),
        await _count(session, ConsentDirective),
    )
    error(
        await client.post(f"/api/v1/patients/{patient[0]}/break-glass", json=EMERGENCY),
        403,
        "SHR-0018",
    )
    error(
        await client.post(f"/api/v1/patients/{patient[0]}/reception-code", json={"code": code}),
        403,
        "SHR-0018",
    )
    assert await _count(session, EmergencyAccess) == emergencies  # nothing opened
    assert await _count(session, ConsentDirective) == directives  # the code not spent
    # the clinic page says it in words, and offers neither the code nor the emergency form
    page = await client.get("/clinic/patient", params={"id": patient[0]})
    assert page.status_code == 403
    assert "tạm dừng kết nối" in page.text
    assert "Sở Y tế" in page.text
    assert "break-glass" not in page.text

    # reinstated, the facility's clinicians read again (and the code still works)
    await _move(client, settings, consented, "connected")
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    assert (await client.get(record)).status_code == 200
    used = await client.post(f"/api/v1/patients/{patient[0]}/reception-code", json={"code": code})
    assert used.status_code == 201, used.text


async def test_an_onboarding_facilitys_clinicians_read_no_real_patient(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility only registered (never trained), or one still testing its connection, is
    not connected: its clinicians read nothing, even of a patient who shares with every
    facility, and cannot open a record in an emergency."""
    _, _, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    everyone = await client.post("/api/v1/me/consents", json={"facility": "*", "scope": "full"})
    assert everyone.status_code == 201, everyone.text
    record = f"/api/v1/patients/{patient[0]}/record"
    for steps, who in ((0, OTHER_DOCTOR), (3, SUPERVISOR)):  # registered; test_passed
        code = await new_facility(session, steps)
        await sign_in_as(
            client, session, settings, who, {"role": "clinician", "facility_code": code}
        )
        body = error(await client.get(record), 403, "SHR-0019")
        assert code in body["message"]["en"]
        assert "health department" in body["message"]["en"]
        assert "Sở Y tế" in body["message"]["vi"]
        error(
            await client.post(f"/api/v1/patients/{patient[0]}/break-glass", json=EMERGENCY),
            403,
            "SHR-0019",
        )
        page = await client.get("/clinic/patient", params={"id": patient[0]})
        assert (page.status_code, "chưa hoàn tất kết nối" in page.text) == (403, True)
    assert await _count(session, EmergencyAccess) == 0


async def test_an_onboarding_facilitys_system_reaches_no_patient_through_consent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A system of a facility still testing its connection holds a token (its test files need
    one), but a patient's share with every facility does not reach it; a connected facility's
    system reads the same patient."""
    _, _, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    everyone = await client.post("/api/v1/me/consents", json={"facility": "*", "scope": "full"})
    assert everyone.status_code == 201, everyone.text
    client.cookies.clear()
    search = {"identifier": f"{mapping.PERSONAL_ID}|{patient[0]}"}
    _, testing = await facility_with_token(
        client, session, settings, steps=3, scopes=("record.read",)
    )
    _, connected = await facility_with_token(client, session, settings, scopes=("record.read",))
    found = (await client.get("/fhir/R4/Patient", params=search, headers=connected)).json()
    assert len(found["entry"]) == 1
    person_id = found["entry"][0]["resource"]["id"]
    seen = await client.get("/fhir/R4/Patient", params=search, headers=testing)
    assert (seen.status_code, seen.json().get("entry", [])) == (200, [])
    everything = await client.get(f"/fhir/R4/Patient/{person_id}/$everything", headers=testing)
    assert everything.status_code == 404
    encounters = await client.get(
        "/fhir/R4/Encounter", params={"patient": person_id}, headers=testing
    )
    assert encounters.json().get("entry", []) == []
