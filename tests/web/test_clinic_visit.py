"""The clinician opens a patient's visit from the clinic page: the same read as the API's
``/api/v1/patients/{id}/visits/{visit_id}`` (its basis, its refusals, its audit row), the
patient named by the page's encrypted reference, never by the personal ID in the address."""

from __future__ import annotations

import html
import re
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DOCTOR, OTHER_DOCTOR, world
from tests.submissions.test_intake import send
from vnehr.audit import AuditEvent
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', page)
    assert found is not None, page[-500:]
    return found[1]


async def _patient_page(client: httpx.AsyncClient, personal_id: str) -> httpx.Response:
    """The clinic page of a patient, looked up through the form as a clinician does."""
    form = await client.get("/clinic")
    found = await client.post("/clinic/patient", data={"csrf": _csrf(form.text), "id": personal_id})
    assert found.status_code == 303, found.text
    page = await client.get(found.headers["location"])
    assert page.status_code == 200, page.text[-500:]
    return page


def _visit_links(page: httpx.Response) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(/clinic/visits/[^"]*)"', page.text)]


async def _doctor_reads(session: AsyncSession, doctor: str) -> list[str]:
    rows = await session.scalars(
        select(AuditEvent.object_id).where(
            AuditEvent.action == "clinical.read", AuditEvent.actor == f"person:{doctor}"
        )
    )
    return list(rows)


async def test_a_clinician_opens_a_visit_from_the_patients_page_and_the_citizen_sees_the_read(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    sender, consented, _, patient, headers = await world(client, session, settings)
    pid = patient[0]
    await sign_in_as(client, session, settings, patient)
    mine = (await client.get("/api/v1/me/timeline")).json()["items"]
    ordinary = next(v for v in mine if v["main_diagnosis"]["code"] != "F32.9")
    mental = next(v for v in mine if v["main_diagnosis"]["code"] == "F32.9")
    full = (await client.get(f"/api/v1/me/visits/{ordinary['id']}")).json()
    await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    page = await _patient_page(client, pid)
    # each visit of the list opens, and says its diagnosis in words beside the code
    name = ordinary["main_diagnosis"]["vi"] or ordinary["main_diagnosis"]["en"]
    assert name
    assert html.escape(name) in page.text
    [link] = _visit_links(page)  # the mental-health visit is not shared, so not listed
    assert link.startswith(f"/clinic/visits/{ordinary['id']}?")
    assert pid not in link
    opened = await client.get(link)
    assert opened.status_code == 200, opened.text[-500:]
    assert patient[1] in opened.text
    assert full["drugs"]
    assert full["services"]
    for drug in full["drugs"]:
        assert html.escape(drug["name"]) in opened.text
    for service in full["services"]:
        assert html.escape(service["name"]) in opened.text
    assert f"<code>{ordinary['main_diagnosis']['code']}</code>" in opened.text
    assert html.escape(name) in opened.text
    assert [h for h in re.findall(r'(?:href|action)="([^"]*)"', opened.text) if pid in h] == []
    # the read is the API's: one audit row for the visit, in the citizen's access log
    assert sorted(await _doctor_reads(session, DOCTOR[0])) == [pid, f"visit/{ordinary['id']}"]
    await sign_in_as(client, session, settings, patient)
    log = (await client.get("/api/v1/me/access-log")).json()
    assert [(e["action"], e["who"]["name"]) for e in log].count(("clinical.read", DOCTOR[1])) == 2
    shown = (await client.get("/portal/book/access-log")).text
    assert shown.count(DOCTOR[1]) == 2

    # a visit the basis does not open (sensitive, not named) or of another patient, under
    # this patient's reference: refused as the API refuses it, nothing of it shown
    stranger = visit_of(sender, 90, datetime(2026, 9, 5, 9, 0), care_type="01")  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([stranger], sender))).status_code == 201
    await sign_in_as(client, session, settings, who(stranger))
    [theirs] = (await client.get("/api/v1/me/timeline")).json()["items"]
    their_visit = (await client.get(f"/api/v1/me/visits/{theirs['id']}")).json()
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    ref = httpx.URL(link).params["p"]
    for visit_id, holder in ((mental["id"], patient[1]), (theirs["id"], who(stranger)[1])):
        api = await client.get(f"/api/v1/patients/{pid}/visits/{visit_id}")
        refused = await client.get(f"/clinic/visits/{visit_id}", params={"p": ref})
        assert (refused.status_code, api.status_code) == (404, 404)
        assert f"<code>{api.json()['code']}</code>" in refused.text
        assert "F32.9" not in refused.text
        assert holder not in refused.text
    assert their_visit["drugs"][0]["name"] not in refused.text
    assert f"visit/{theirs['id']}" not in await _doctor_reads(session, DOCTOR[0])


async def test_without_a_basis_the_visit_page_is_refused_as_the_api_refuses_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    pid = patient[0]
    await sign_in_as(client, session, settings, patient)
    [visit] = [
        v
        for v in (await client.get("/api/v1/me/timeline")).json()["items"]
        if v["main_diagnosis"]["code"] != "F32.9"
    ]
    full = (await client.get(f"/api/v1/me/visits/{visit['id']}")).json()
    await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    [link] = _visit_links(await _patient_page(client, pid))
    # a clinician of a facility without consent, with their own reference to the patient
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    page = await _patient_page(client, pid)
    assert _visit_links(page) == []
    looked_up = await client.post("/clinic/patient", data={"csrf": _csrf(page.text), "id": pid})
    ref = httpx.URL(looked_up.headers["location"]).params["p"]
    api = await client.get(f"/api/v1/patients/{pid}/visits/{visit['id']}")
    refused = await client.get(f"/clinic/visits/{visit['id']}", params={"p": ref})
    assert (refused.status_code, api.status_code) == (403, 403)
    assert api.json()["code"] == "SHR-0001"
    assert "<code>SHR-0001</code>" in refused.text
    assert patient[1] not in refused.text
    assert full["drugs"][0]["name"] not in refused.text
    assert await _doctor_reads(session, OTHER_DOCTOR[0]) == []
    # the first clinician's link names the patient for them only
    stolen = await client.get(link)
    assert stolen.status_code == 303
    assert pid not in stolen.headers["location"]
    back = await client.get(stolen.headers["location"])
    assert text("web.clinic.expired", "vi") in back.text
    assert patient[1] not in back.text
    assert full["drugs"][0]["name"] not in stolen.text + back.text
    assert await _doctor_reads(session, OTHER_DOCTOR[0]) == []
