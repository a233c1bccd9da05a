"""Addresses that carry a patient's 12-digit personal ID (the clinician's API and page routes,
``/persons/{personal_id}/...``) are written down nowhere in full: error bodies and error pages
name them masked as the access line does (``001*******74``), the pages keep them from leaving
the site in a Referer, and the clinic page keeps the ID out of the browser's address bar and
history. The audit rows keep the patient as their subject, not the address."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DOCTOR, SUPERVISOR, world
from vnehr.audit import AuditEvent
from vnehr.kit.i18n import text
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings


def _masked(personal_id: str) -> str:
    return f"{personal_id[:3]}*******{personal_id[-2:]}"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found is not None, html[-500:]
    return found[1]


async def test_error_answers_name_the_address_with_the_personal_id_masked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    pid = patient[0]
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    answers = {
        "no such address": await client.get(f"/api/v1/patients/{pid}/records"),
        "another method": await client.delete(f"/api/v1/patients/{pid}/record"),
        "cards, another method": await client.patch(f"/api/v1/persons/{pid}/cards"),
        "page, another method": await client.get(f"/clinic/patient/{pid}/code"),
        "page, no such address": await client.get(f"/clinic/patient/{pid}"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "no such address": 404,
        "another method": 405,
        "cards, another method": 405,
        "page, another method": 405,
        "page, no such address": 404,
    }
    assert answers["no such address"].json()["detail"]["path"] == (
        f"/api/v1/patients/{_masked(pid)}/records"
    )
    assert f"/api/v1/patients/{_masked(pid)}/record" in answers["another method"].text
    assert _masked(pid) in answers["page, another method"].text  # the error page says where
    leaked = [name for name, r in answers.items() if pid in r.text]
    assert leaked == []


async def test_pages_keep_addresses_with_personal_ids_from_leaving_the_site(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    answers = {
        "clinic": await client.get("/clinic"),
        "clinic, old address": await client.get("/clinic/patient", params={"id": patient[0]}),
        "error page": await client.get(f"/clinic/patient/{patient[0]}/code"),
        "home": await client.get("/"),
    }
    # the form's "come back here" after sign-in needs this site's Referer (D77); others get none
    policies = {name: r.headers.get("referrer-policy") for name, r in answers.items()}
    assert policies == dict.fromkeys(answers, "same-origin")


async def test_the_clinic_page_keeps_the_personal_id_out_of_the_address_bar(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    pid = patient[0]
    await sign_in_as(client, session, settings, patient)
    await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    await sign_in_as(
        client,
        session,
        settings,
        DOCTOR,
        {"role": "clinician", "facility_code": consented},
        {"role": "clinician", "facility_code": other},
    )
    form = await client.get("/clinic")
    assert re.search(r'<form method="post" action="/clinic/patient">', form.text), form.text
    looked_up = await client.post(
        "/clinic/patient", data={"csrf": _csrf(form.text), "id": pid, "facility": consented}
    )
    assert looked_up.status_code == 303, looked_up.text
    address = looked_up.headers["location"]
    assert pid not in address
    assert f"facility={consented}" in address
    shown = await client.get(address)
    assert shown.status_code == 200
    assert 'id="basis"' in shown.text
    assert patient[1] in shown.text
    assert [h for h in re.findall(r'href="([^"]*)"', shown.text) if pid in h] == []
    # at the facility without consent, an emergency: back to the page, still no ID in sight
    refused = await client.post(
        "/clinic/patient", data={"csrf": _csrf(form.text), "id": pid, "facility": other}
    )
    page = await client.get(refused.headers["location"])
    assert 'id="basis"' not in page.text
    assert "break-glass" in page.text
    opened = await client.post(
        f"/clinic/patient/{pid}/break-glass",
        data={
            "csrf": _csrf(page.text),
            "facility": other,
            "reason": "unconscious",
            "text": "brought in unconscious",
        },
    )
    assert opened.status_code == 303, opened.text
    assert pid not in opened.headers["location"]
    after = await client.get(opened.headers["location"])
    assert 'id="basis"' in after.text
    assert patient[1] in after.text
    # the address names the patient for this clinician only
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "clinician", "facility_code": consented}
    )
    elsewhere = await client.get(address)
    assert elsewhere.status_code == 200
    assert 'id="basis"' not in elsewhere.text
    assert patient[1] not in elsewhere.text
    assert text("web.clinic.expired", "vi") in elsewhere.text
    # a look-up form sent without the session's token is refused
    forged = await client.post("/clinic/patient", data={"csrf": "x", "id": pid})
    assert forged.status_code == 403
    # the reads are audited with the patient as their subject, never with the address
    rows = (await session.scalars(select(AuditEvent))).all()
    events = (await session.scalars(select(OutboxEvent))).all()
    written = [f"{r.object_id} {r.detail}" for r in rows] + [str(e.payload) for e in events]
    assert [w for w in written if "/clinic/" in w or "/api/v1/patients/" in w] == []
