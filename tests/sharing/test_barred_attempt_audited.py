"""A clinician barred from breaking the glass on a patient (D191) learned that the personal ID is
a patient's, and tried to open the record: the attempt is in the patient's "who viewed my
record", from the API (whose refusal rolls its transaction back) and the clinic page alike,
once per attempt; a successful break-glass is there once (D228)."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import error, sign_in_as
from tests.sharing.test_access import OTHER_DOCTOR, SUPERVISOR, world
from vnehr.fhir.validate import validate
from vnehr.kit.i18n import text
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.sharing.models import EmergencyAccess

EMERGENCY = {"reason": "unconscious", "text": "Bệnh nhân hôn mê, không người nhà"}


async def _attempts(client: httpx.AsyncClient) -> list[tuple[str, str | None]]:
    log = (await client.get("/api/v1/me/access-log")).json()
    return [(e["action"], e["who"]["name"]) for e in log if e["action"].startswith("emergency.")]


async def _count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_barred_break_glass_attempt_is_in_the_patients_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    at_other = {"role": "clinician", "facility_code": other}
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    first = await client.post(f"/api/v1/patients/{patient[0]}/break-glass", json=EMERGENCY)
    assert first.status_code == 201, first.text
    await sign_in_as(client, session, settings, patient)
    assert await _attempts(client) == [("emergency.opened", OTHER_DOCTOR[1])]  # once

    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "facility_admin", "facility_code": other}
    )
    reviewed = await client.post(
        f"/api/v1/emergency-accesses/{first.json()['id']}/review",
        json={"note": "Không có cấp cứu", "outcome": "unjustified"},
    )
    assert reviewed.status_code == 200, reviewed.text
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    accesses, events = await _count(session, EmergencyAccess), await _count(session, OutboxEvent)
    barred = f"/api/v1/patients/{patient[0]}/break-glass"
    error(await client.post(barred, json=EMERGENCY), 403, "SHR-0020")
    page = await client.get("/clinic/patient", params={"id": patient[0], "facility": other})
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    refused = await client.post(
        f"/clinic/patient/{patient[0]}/break-glass",
        data={"csrf": token, "facility": other, **EMERGENCY},
        follow_redirects=False,
    )
    assert (refused.status_code, "SHR-0020" in refused.text) == (403, True)
    # nothing opened, nobody told of an opening
    assert (await _count(session, EmergencyAccess), await _count(session, OutboxEvent)) == (
        accesses,
        events,
    )

    await sign_in_as(client, session, settings, patient)
    assert await _attempts(client) == [
        ("emergency.barred", OTHER_DOCTOR[1]),
        ("emergency.barred", OTHER_DOCTOR[1]),
        ("emergency.opened", OTHER_DOCTOR[1]),
    ]
    for lang in ("vi", "en"):
        shown = (await client.get("/portal/book/access-log", params={"lang": lang})).text
        assert text("web.access.action.emergency.barred", lang) in shown
    # in FHIR, an attempt that failed (BALP: outcome 4), the opening one that succeeded
    found = (await client.get("/fhir/R4/AuditEvent")).json()
    events = [e["resource"] for e in found["entry"]]
    outcomes = sorted(
        (e["subtype"][-1]["code"], e["outcome"])
        for e in events
        if e["subtype"][-1]["code"] in ("emergency.barred", "emergency.opened")
    )
    assert outcomes == [
        ("emergency.barred", "4"),
        ("emergency.barred", "4"),
        ("emergency.opened", "0"),
    ]
    assert all(validate(e) == [] for e in events)
