"""A facility the department suspends: the access tokens its systems already hold stop working,
for reads as for writes, in this process at once and in every other API process within the
same few seconds as a revoked client's (D148); reinstated, they work again."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.facilities.test_api import error, sign_in
from tests.facilities.test_client_revocation import HANOI_ADMIN
from tests.facilities.test_service import HANOI_ADMIN as DEPARTMENT
from tests.fhir.test_own_patients import _patient_id
from tests.healthbook.test_api import who
from tests.submissions.test_intake import facility_with_token, send, visit
from vnehr import facilities, identity
from vnehr.facilities.models import Facility
from vnehr.kit import auth
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

SCOPES = ("submission.write", "record.read")


async def _sending(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, dict[str, str], str, str]:
    """A connected facility whose system sent a visit: its code, the system's token header,
    the receipt's address and the patient's FHIR id."""
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit(code, 31)
    sent = await send(client, headers, synth.envelope([one], code))
    assert sent.status_code == 201, sent.text
    patient = await _patient_id(client, headers, who(one)[0])
    return code, headers, f"/api/v1/submissions/{sent.json()['id']}", patient


async def _move(client: httpx.AsyncClient, settings: Settings, code: str, to: str) -> None:
    sign_in(client, settings, HANOI_ADMIN)
    moved = await client.post(
        f"/api/v1/facilities/{code}/onboarding", json={"to_state": to, "reason": "thanh tra"}
    )
    assert (moved.status_code, moved.json()["status"]) == (200, to), moved.text
    client.cookies.clear()


async def test_a_suspended_facilitys_tokens_stop_reading_and_writing_at_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The reviewer's case: suspended, the facility's system still read FHIR ``$everything``
    and its receipts until its token expired (10 to 60 minutes); only writes were refused."""
    code, headers, receipt, patient = await _sending(client, session, settings)
    everything = f"/fhir/R4/Patient/{patient}/$everything"
    assert (await client.get(everything, headers=headers)).status_code == 200
    assert (await client.get(receipt, headers=headers)).status_code == 200
    await identity.bootstrap_grant(session, HANOI_ADMIN, "department_admin", province_code="01")

    await _move(client, settings, code, "suspended")
    body = error(await client.get(receipt, headers=headers), 403, "AUTH-0007")
    assert code in body["message"]["en"]
    assert '"Suspended"' in body["message"]["en"]  # in words; its name in the detail
    assert body["detail"]["status"] == "suspended"
    assert "health department" in body["message"]["en"]
    assert "Sở Y tế" in body["message"]["vi"]
    listing = await client.get("/api/v1/submissions", params={"facility": code}, headers=headers)
    error(listing, 403, "AUTH-0007")
    fhir = await client.get(everything, headers=headers)
    assert (fhir.status_code, fhir.json()["resourceType"]) == (403, "OperationOutcome")
    assert "AUTH-0007" in fhir.text
    again = await send(client, headers, synth.envelope([visit(code, 2)], code))
    error(again, 403, "AUTH-0007")

    # reinstated by the department: the same token works again, at once
    await _move(client, settings, code, "connected")
    assert (await client.get(everything, headers=headers)).status_code == 200
    assert (await client.get(receipt, headers=headers)).status_code == 200


async def test_a_suspension_by_another_api_process_is_seen_within_the_bound(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another worker process suspended the facility: this process refuses its systems'
    tokens once its copy of their standing is ``CLIENT_STATUS_SECONDS`` old."""
    now = time.monotonic()
    monkeypatch.setattr(auth, "_monotonic", lambda: now)
    code, headers, receipt, _ = await _sending(client, session, settings)
    # what the other process's move leaves in the database once it commits
    await session.execute(
        update(Facility)
        .where(Facility.code == code)
        .values(status="suspended", status_before_suspension="connected")
    )
    assert (await client.get(receipt, headers=headers)).status_code == 200  # its copy
    monkeypatch.setattr(auth, "_monotonic", lambda: now + auth.CLIENT_STATUS_SECONDS + 0.1)
    error(await client.get(receipt, headers=headers), 403, "AUTH-0007")


async def test_a_request_between_the_suspension_and_its_commit_does_not_keep_the_system(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The suspending process forgets what it knew of the facility's systems when the move
    commits: a request of one of them in between read "connected" and kept it."""
    code, headers, receipt, _ = await _sending(client, session, settings)
    clients = await facilities.clients(session, DEPARTMENT, code)
    await facilities.move(session, DEPARTMENT, code, facilities.State.suspended, "thanh tra")
    for one in clients:  # what such a request kept
        auth._clients[one.client_id] = (None, auth._monotonic())
    await session.commit()
    error(await client.get(receipt, headers=headers), 403, "AUTH-0007")
