"""Onboarding states stand for facts: ``certificate_registered`` for a usable signing
certificate, ``test_passed`` for a test file the hub accepted (D10, D19). The department cannot
move a facility there by hand without them, except by an explicit override that is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.facilities.test_api import BASE, BODY, error, sign_in
from tests.facilities.test_service import (
    HANOI_ADMIN,
    certificate_pem,
    refused,
    register,
)
from tests.submissions.test_intake import send, system_token, visit
from vnehr import facilities, identity
from vnehr.audit import AuditEvent
from vnehr.facilities import service
from vnehr.facilities.models import FacilityCertificate
from vnehr.facilities.schemas import State
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def pem(name: str) -> str:
    return certificate_pem(name)[0]


async def trained(session: AsyncSession) -> str:
    code = await register(session)
    await facilities.move(session, HANOI_ADMIN, code, State.trained, None)
    return code


async def status(session: AsyncSession, code: str) -> str:
    session.expire_all()  # (an HTTP request may have moved it, in a session of its own)
    return (await facilities.get(session, HANOI_ADMIN, code)).status


async def test_certificate_registered_needs_a_usable_certificate(session: AsyncSession) -> None:
    code = await trained(session)
    error = await refused(
        facilities.move(session, HANOI_ADMIN, code, State.certificate_registered, None)
    )
    assert (error.code, error.status_code) == ("FAC-0008", 409)
    assert error.detail["missing"] == "certificate"
    assert code in error.messages()["en"]
    assert "certificate" in error.messages()["en"]
    assert code in error.messages()["vi"]
    assert "chứng thư số" in error.messages()["vi"]
    assert await status(session, code) == "trained"

    # a certificate registered while the facility was only "registered" (no automatic move
    # then) is the fact the hand move needs
    early = await register(session)
    await facilities.add_certificate(session, HANOI_ADMIN, early, pem("BV sớm"))
    await facilities.move(session, HANOI_ADMIN, early, State.trained, None)
    moved = await facilities.move(session, HANOI_ADMIN, early, State.certificate_registered, "ok")
    assert moved.status == "certificate_registered"


async def test_a_revoked_or_expired_certificate_is_no_fact(session: AsyncSession) -> None:
    for problem in ("revoked", "expired"):
        code = await register(session)
        cert = await facilities.add_certificate(session, HANOI_ADMIN, code, pem(code))
        if problem == "revoked":
            await facilities.revoke_certificate(session, HANOI_ADMIN, code, cert.id)
        else:
            await session.execute(
                update(FacilityCertificate)
                .where(FacilityCertificate.id == cert.id)
                .values(not_after=datetime.now(UTC) - timedelta(days=1))
            )
        await facilities.move(session, HANOI_ADMIN, code, State.trained, None)
        error = await refused(
            facilities.move(session, HANOI_ADMIN, code, State.certificate_registered, None)
        )
        assert error.code == "FAC-0008", problem


async def test_test_passed_is_earned_by_a_test_file_not_by_hand(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code = await trained(session)
    await facilities.add_certificate(session, HANOI_ADMIN, code, pem("BV thử"))
    assert await status(session, code) == "certificate_registered"  # by itself (D10)
    error = await refused(facilities.move(session, HANOI_ADMIN, code, State.test_passed, None))
    assert (error.code, error.status_code) == ("FAC-0009", 409)
    assert error.detail["missing"] == "test_submission"
    assert "test" in error.messages()["en"]
    assert "thử" in error.messages()["vi"]
    assert await status(session, code) == "certificate_registered"

    headers = await system_token(client, session, settings, code, ("submission.write",))
    sent = await send(client, headers, synth.envelope([visit(code, 5)], code))
    assert sent.status_code == 201, sent.text
    assert sent.json()["test_mode"] is True
    assert await status(session, code) == "test_passed"  # by itself (D19)
    last = (await service.history(session, HANOI_ADMIN, code))[-1]
    assert (last.to_state, last.reason) == ("test_passed", "test submission passed")
    assert last.actor.startswith("facility_system:")
    connected = await facilities.move(session, HANOI_ADMIN, code, State.connected, None)
    assert connected.status == "connected"


async def test_an_override_is_explicit_named_and_audited(session: AsyncSession) -> None:
    code = await trained(session)
    unexplained = await refused(
        facilities.move(
            session, HANOI_ADMIN, code, State.certificate_registered, " ", override=True
        )
    )
    assert (unexplained.code, unexplained.status_code) == ("FAC-0027", 422)
    assert await status(session, code) == "trained"

    for step, missing in (
        (State.certificate_registered, "certificate"),
        (State.test_passed, "test_submission"),
    ):
        moved = await facilities.move(
            session, HANOI_ADMIN, code, step, "chứng thư ở BHXH", override=True
        )
        assert moved.status == step
        last = (await service.history(session, HANOI_ADMIN, code))[-1]
        assert last.reason is not None
        assert last.reason.startswith(f"override ({missing}): ")
        assert last.reason.endswith("chứng thư ở BHXH")
    rows = list(
        await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "facility.onboarding_overridden")
            .order_by(AuditEvent.id)
        )
    )
    assert [(r.actor, r.object_id, r.detail["to_state"], r.detail["missing"]) for r in rows] == [
        ("person:001085004217", code, "certificate_registered", "certificate"),
        ("person:001085004217", code, "test_passed", "test_submission"),
    ]
    assert rows[0].detail["reason"] == "chứng thư ở BHXH"
    # with the fact there, an override is no override: nothing audited
    other = await register(session)
    await facilities.add_certificate(session, HANOI_ADMIN, other, pem("BV có"))
    await facilities.move(session, HANOI_ADMIN, other, State.trained, None, override=True)
    await facilities.move(
        session, HANOI_ADMIN, other, State.certificate_registered, None, override=True
    )
    assert await status(session, other) == "certificate_registered"
    assert (await service.history(session, HANOI_ADMIN, other))[-1].reason is None
    assert len(list(await session.scalars(select(AuditEvent.id).where(
        AuditEvent.action == "facility.onboarding_overridden")))) == 2  # fmt: skip


async def test_reinstating_certificate_registered_needs_the_certificate_still(
    session: AsyncSession,
) -> None:
    code = await trained(session)
    cert = await facilities.add_certificate(session, HANOI_ADMIN, code, pem("BV"))
    await facilities.move(session, HANOI_ADMIN, code, State.suspended, "kiểm tra")
    await facilities.revoke_certificate(session, HANOI_ADMIN, code, cert.id)
    error = await refused(
        facilities.move(session, HANOI_ADMIN, code, State.certificate_registered, None)
    )
    assert error.code == "FAC-0008"
    assert await status(session, code) == "suspended"
    await facilities.add_certificate(session, HANOI_ADMIN, code, pem("BV mới"))
    back = await facilities.move(session, HANOI_ADMIN, code, State.certificate_registered, None)
    assert back.status == "certificate_registered"


async def test_the_department_is_told_what_is_missing_over_http(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The reviewer's path: trained, then certificate_registered, test_passed and connected by
    hand, with no certificate and no test file."""
    await identity.bootstrap_grant(session, HANOI_ADMIN.id, "department_admin", province_code="01")
    sign_in(client, settings, HANOI_ADMIN.id)
    code = (await client.post(BASE, json=BODY)).json()["code"]
    url = f"{BASE}/{code}/onboarding"
    assert (await client.post(url, json={"to_state": "trained"})).status_code == 200
    body = error(
        await client.post(url, json={"to_state": "certificate_registered"}), 409, "FAC-0008"
    )
    assert body["detail"]["missing"] == "certificate"
    assert f"{BASE}/{code}/certificates" in body["message"]["en"]
    error(
        await client.post(url, json={"to_state": "certificate_registered", "override": True}),
        422,
        "FAC-0027",
    )
    overridden = await client.post(
        url, json={"to_state": "certificate_registered", "override": True, "reason": "lý do"}
    )
    assert overridden.status_code == 200, overridden.text
    body = error(await client.post(url, json={"to_state": "test_passed"}), 409, "FAC-0009")
    assert body["detail"]["missing"] == "test_submission"
    assert (await client.get(f"{BASE}/{code}")).json()["status"] == "certificate_registered"


async def test_a_certificate_not_valid_yet_does_not_move_a_trained_facility(
    session: AsyncSession,
) -> None:
    # registered ahead of a rollover, it is kept; the facility moves on once one is valid today
    code = await trained(session)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    ahead, _ = certificate_pem(code, not_before=tomorrow, not_after=tomorrow + timedelta(days=30))
    await facilities.add_certificate(session, HANOI_ADMIN, code, ahead)
    assert await status(session, code) == "trained"
    error = await refused(
        facilities.move(session, HANOI_ADMIN, code, State.certificate_registered, None)
    )
    assert error.code == "FAC-0008"
    await facilities.add_certificate(session, HANOI_ADMIN, code, pem(f"{code} hôm nay"))
    assert await status(session, code) == "certificate_registered"
