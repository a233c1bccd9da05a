"""A facility system whose client is revoked: the access token it already holds stops working,
in this process at once and in every other API process within a few seconds."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.facilities.test_api import error, sign_in
from tests.facilities.test_service import HANOI_ADMIN as DEPARTMENT
from tests.submissions.test_intake import bearer, facility_with_token, new_system, send, visit
from vnehr import facilities, identity
from vnehr.facilities.models import ApiClient
from vnehr.kit import auth
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

HANOI_ADMIN = "001085004217"


async def system(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, code: str
) -> tuple[str, dict[str, str]]:
    """A new system of the facility with its client id and bearer token's header."""
    client_id, key = await new_system(session, code, ("submission.write", "record.read"))
    return client_id, await bearer(client, settings, client_id, key)


async def test_a_revoked_systems_token_stops_working_at_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The reviewer's case: revoked at 200 "revoked", the token kept reading receipts and
    sending visits (201) until it expired, 10 minutes later."""
    code, _ = await facility_with_token(client, session, settings)
    client_id, headers = await system(client, session, settings, code)
    sent = await send(client, headers, synth.envelope([visit(code, 1)], code))
    assert sent.status_code == 201, sent.text
    receipt = f"/api/v1/submissions/{sent.json()['id']}"
    assert (await client.get(receipt, headers=headers)).status_code == 200

    await identity.bootstrap_grant(session, HANOI_ADMIN, "department_admin", province_code="01")
    sign_in(client, settings, HANOI_ADMIN)
    revoked = await client.post(f"/api/v1/facilities/{code}/clients/{client_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    client.cookies.clear()

    body = error(await client.get(receipt, headers=headers), 401, "AUTH-0006")
    assert client_id in body["message"]["en"]
    assert client_id in body["message"]["vi"]
    error(await send(client, headers, synth.envelope([visit(code, 2)], code)), 401, "AUTH-0006")
    fhir = await client.get("/fhir/R4/Encounter", headers=headers)  # (an OperationOutcome)
    assert (fhir.status_code, fhir.json()["resourceType"]) == (401, "OperationOutcome")
    assert "AUTH-0006" in fhir.text
    error(await client.get("/api/v1/me/timeline", headers=headers), 401, "AUTH-0006")


async def test_a_revocation_by_another_api_process_is_seen_within_the_bound(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another worker process revoked the client: this process learns it from the database
    once its copy of the client's status is ``CLIENT_STATUS_SECONDS`` old, not 10 minutes
    later when the token expires."""
    code, _ = await facility_with_token(client, session, settings)
    client_id, headers = await system(client, session, settings, code)
    sent = await send(client, headers, synth.envelope([visit(code, 3)], code))
    assert sent.status_code == 201, sent.text
    receipt = f"/api/v1/submissions/{sent.json()['id']}"
    # what the other process's revocation leaves in the database once it commits
    await session.execute(
        update(ApiClient).where(ApiClient.client_id == client_id).values(status="revoked")
    )
    later = time.monotonic() + auth.CLIENT_STATUS_SECONDS + 0.1
    monkeypatch.setattr(auth, "_monotonic", lambda: later)
    error(await client.get(receipt, headers=headers), 401, "AUTH-0006")
    error(await send(client, headers, synth.envelope([visit(code, 4)], code)), 401, "AUTH-0006")


async def test_a_request_between_the_revocation_and_its_commit_does_not_keep_the_client(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The revoking process forgets what it knew of the client when the revocation commits:
    a request of that client in between read "active" (not committed yet) and kept it."""
    code, _ = await facility_with_token(client, session, settings)
    client_id, headers = await system(client, session, settings, code)
    await facilities.revoke_client(session, DEPARTMENT, code, client_id)  # not committed yet
    auth._clients[client_id] = (None, auth._monotonic())  # what such a request kept: allowed
    await session.commit()
    sent = await send(client, headers, synth.envelope([visit(code, 5)], code))
    error(sent, 401, "AUTH-0006")
