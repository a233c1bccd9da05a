"""The facilities API as a health department and a facility's administrator call it, signed in
with the portal's session cookie (their roles are read from the database on each request)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.kit.auth import SESSION_COOKIE, make_session_cookie
from vnehr.kit.settings import Settings

from .test_service import certificate_pem

HANOI_ADMIN = "001085004217"
HCMC_ADMIN = "079162003581"
FIRST_ADMIN = "031054007793"  # facility_admin of 01001
NOBODY = "048190002468"  # no role at all
BASE = "/api/v1/facilities"

BODY: dict[str, Any] = {
    "name": "Bệnh viện Đa khoa Xanh Pôn",
    "kind": "hospital",
    "level": "specialised",
    "ownership": "public",
    "province_code": "01",
    "ward_code": "00004",
    "address": "12 Chu Văn An, Ba Đình",
}


def sign_in(client: httpx.AsyncClient, settings: Settings, personal_id: str) -> None:
    """Put a portal session cookie for the person on the client, replacing whoever it had."""
    client.cookies.clear()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(
            settings, {"personal_id": personal_id, "name": "Người thử", "assurance_level": 2}
        ),
    )


@pytest.fixture
async def roles(session: AsyncSession) -> None:
    await identity.bootstrap_grant(session, HANOI_ADMIN, "department_admin", province_code="01")
    await identity.bootstrap_grant(session, HCMC_ADMIN, "department_admin", province_code="79")
    await identity.bootstrap_grant(session, FIRST_ADMIN, "facility_admin", facility_code="01001")
    await session.flush()


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["message"]["vi"]
    assert body["message"]["en"]
    return body


async def _register_two(client: httpx.AsyncClient, settings: Settings) -> None:
    sign_in(client, settings, HANOI_ADMIN)
    for name in ("Bệnh viện Đa khoa Xanh Pôn", "Phòng khám Đa khoa Hoàn Kiếm"):
        response = await client.post(BASE, json={**BODY, "name": name})
        assert response.status_code == 201, response.text


@pytest.mark.usefixtures("roles")
async def test_a_department_registers_facilities_and_gets_their_codes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    sign_in(client, settings, HANOI_ADMIN)
    first = await client.post(BASE, json=BODY)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["code"] == "01001"
    assert body["issued"] is True
    assert body["status"] == "registered"
    assert body["created_by"] == f"person:{HANOI_ADMIN}"
    assert (body["province_code"], body["ward_code"]) == ("01", "00004")

    existing = await client.post(BASE, json={**BODY, "name": "Trạm Y tế", "code": "01002"})
    assert existing.status_code == 201
    assert (existing.json()["code"], existing.json()["issued"]) == ("01002", False)
    third = await client.post(BASE, json={**BODY, "name": "Bệnh viện Thanh Nhàn"})
    assert third.json()["code"] == "01003"

    shown = await client.get(f"{BASE}/01001")
    assert shown.status_code == 200
    assert shown.json()["name"] == "Bệnh viện Đa khoa Xanh Pôn"
    listed = await client.get(BASE)
    assert listed.status_code == 200
    assert [f["code"] for f in listed.json()] == ["01001", "01002", "01003"]
    found = await client.get(BASE, params={"q": "BỆNH VIỆN", "status": "registered"})
    assert [f["code"] for f in found.json()] == ["01001", "01003"]


@pytest.mark.usefixtures("roles")
async def test_registrations_are_refused_with_a_coded_reason(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    sign_in(client, settings, HANOI_ADMIN)
    assert (await client.post(BASE, json={**BODY, "code": "01005"})).status_code == 201
    taken = error(await client.post(BASE, json={**BODY, "code": "01005"}), 409, "FAC-0002")
    assert taken["message"]["en"] == "Facility code 01005 is already issued or registered."
    error(await client.post(BASE, json={**BODY, "code": "79005"}), 422, "FAC-0003")
    error(await client.post(BASE, json={**BODY, "ward_code": "25747"}), 422, "FAC-0007")
    error(await client.post(BASE, json={**BODY, "ward_code": "99999"}), 422, "FAC-0006")
    error(await client.post(BASE, json={**BODY, "kind": "spa"}), 422, "KIT-0422")

    sign_in(client, settings, HCMC_ADMIN)
    error(await client.post(BASE, json=BODY), 403, "AUTH-0002")
    sign_in(client, settings, NOBODY)
    error(await client.post(BASE, json=BODY), 403, "AUTH-0002")
    # nothing of the refused requests was kept: the next issued code is the first
    sign_in(client, settings, HANOI_ADMIN)
    assert (await client.post(BASE, json=BODY)).json()["code"] == "01001"


@pytest.mark.usefixtures("roles")
async def test_onboarding_moves_one_step_and_refuses_a_skip(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _register_two(client, settings)
    trained = await client.post(f"{BASE}/01001/onboarding", json={"to_state": "trained"})
    assert trained.status_code == 200, trained.text
    assert trained.json()["status"] == "trained"

    skip = await client.post(f"{BASE}/01001/onboarding", json={"to_state": "connected"})
    body = error(skip, 409, "FAC-0005")
    assert body["message"] == {
        "vi": body["message"]["vi"],
        "en": 'The onboarding state cannot change from "Trained" to "Connected".',
    }
    assert '"Đã tập huấn"' in body["message"]["vi"]  # the states in words; their names:
    assert (body["detail"]["from_state"], body["detail"]["to_state"]) == ("trained", "connected")
    assert body["detail"]["allowed"] == ["certificate_registered", "suspended"]
    assert (await client.get(f"{BASE}/01001")).json()["status"] == "trained"

    await client.post(f"{BASE}/01001/onboarding", json={"to_state": "suspended", "reason": "x"})
    back = await client.post(f"{BASE}/01001/onboarding", json={"to_state": "trained"})
    assert back.json()["status"] == "trained"
    history = (await client.get(f"{BASE}/01001/onboarding")).json()
    assert [(e["from_state"], e["to_state"]) for e in history] == [
        (None, "registered"),
        ("registered", "trained"),
        ("trained", "suspended"),
        ("suspended", "trained"),
    ]
    assert {e["actor"] for e in history} == {f"person:{HANOI_ADMIN}"}
    assert history[2]["reason"] == "x"
    error(await client.post(f"{BASE}/01001/onboarding", json={"to_state": "live"}), 422, "KIT-0422")
    error(
        await client.post(f"{BASE}/01999/onboarding", json={"to_state": "trained"}),
        404,
        "FAC-0001",
    )


@pytest.mark.usefixtures("roles")
async def test_a_facility_admin_is_kept_to_their_own_facility(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _register_two(client, settings)
    sign_in(client, settings, FIRST_ADMIN)
    assert (await client.get(f"{BASE}/01001")).status_code == 200
    assert [f["code"] for f in (await client.get(BASE)).json()] == ["01001"]
    error(await client.get(f"{BASE}/01002"), 403, "AUTH-0002")
    error(await client.get(f"{BASE}/01002/onboarding"), 403, "AUTH-0002")
    for code in ("01002", "01001"):  # only the department moves a facility along
        moved = await client.post(f"{BASE}/{code}/onboarding", json={"to_state": "trained"})
        error(moved, 403, "AUTH-0002")
    error(await client.post(BASE, json=BODY), 403, "AUTH-0002")

    sign_in(client, settings, HCMC_ADMIN)
    assert (await client.get(BASE)).json() == []
    error(await client.get(f"{BASE}/01001"), 403, "AUTH-0002")
    sign_in(client, settings, HANOI_ADMIN)
    assert (await client.get(f"{BASE}/01001")).json()["status"] == "registered"


@pytest.mark.usefixtures("roles")
async def test_practitioners_and_certificates_over_http(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _register_two(client, settings)
    sign_in(client, settings, FIRST_ADMIN)
    doctor = {"practitioner_id": "CCHN-000123/HNO", "full_name": "Trần Thị Bình", "title": "BS"}
    added = await client.post(f"{BASE}/01001/practitioners", json=doctor)
    assert added.status_code == 201, added.text
    assert added.json()["facility_code"] == "01001"
    error(await client.post(f"{BASE}/01001/practitioners", json=doctor), 409, "FAC-0023")
    error(await client.post(f"{BASE}/01002/practitioners", json=doctor), 403, "AUTH-0002")
    listed = await client.get(f"{BASE}/01001/practitioners")
    assert [p["practitioner_id"] for p in listed.json()] == ["CCHN-000123/HNO"]

    pem, _ = certificate_pem()
    stored = await client.post(f"{BASE}/01001/certificates", json={"pem": pem})
    assert stored.status_code == 201, stored.text
    assert len(stored.json()["fingerprint_sha256"]) == 64
    error(await client.post(f"{BASE}/01001/certificates", json={"pem": pem}), 409, "FAC-0022")
    garbage = "-----BEGIN CERTIFICATE-----\n" + "A" * 120 + "\n-----END CERTIFICATE-----\n"
    error(await client.post(f"{BASE}/01001/certificates", json={"pem": garbage}), 422, "FAC-0021")

    # a leaked key: the department revokes the certificate; the facility's listing shows it
    number = stored.json()["id"]
    revoked = await client.post(f"{BASE}/01001/certificates/{number}/revoke")
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked"), revoked.text
    listed = await client.get(f"{BASE}/01001/certificates")
    assert [c["status"] for c in listed.json()] == ["revoked"]
    error(await client.post(f"{BASE}/01001/certificates/{number + 99}/revoke"), 404, "FAC-0026")
    error(await client.post(f"{BASE}/01002/certificates/{number}/revoke"), 403, "AUTH-0002")


@pytest.mark.usefixtures("roles")
async def test_a_bad_certificate_or_key_set_is_refused_in_each_language_without_library_words(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The certificate and key libraries' reasons ("'P-999'", "Unable to load PEM file") are
    theirs, in English; the administrator reads ours, Vietnamese all through."""
    await _register_two(client, settings)
    sign_in(client, settings, FIRST_ADMIN)
    garbage = "-----BEGIN CERTIFICATE-----\n" + "A" * 120 + "\n-----END CERTIFICATE-----\n"
    unreadable = error(
        await client.post(f"{BASE}/01001/certificates", json={"pem": garbage}), 422, "FAC-0021"
    )
    assert unreadable["message"] == {
        "vi": "Chứng thư số không hợp lệ: không đọc được chứng thư số (cần một chứng thư X.509 "
        "dạng PEM).",
        "en": "The certificate is not valid: the certificate cannot be read (a PEM X.509 "
        "certificate is needed).",
    }
    now = datetime.now(UTC).replace(microsecond=0)
    old, _ = certificate_pem(
        not_before=datetime(2024, 1, 1, tzinfo=UTC), not_after=datetime(2025, 3, 31, tzinfo=UTC)
    )
    expired = error(
        await client.post(f"{BASE}/01001/certificates", json={"pem": old}), 422, "FAC-0021"
    )
    assert expired["message"] == {
        "vi": "Chứng thư số không hợp lệ: chứng thư số đã hết hạn ngày 31/03/2025.",
        "en": "The certificate is not valid: the certificate expired on 2025-03-31.",
    }
    assert now > datetime(2025, 3, 31, tzinfo=UTC)

    key = {"kty": "EC", "crv": "P-256", "x": "abc", "y": "def"}
    for jwks, vi, en in (
        (
            {"keys": [{**key, "crv": "P-999"}]},
            "khóa thứ 1 có loại (kty) hoặc đường cong (crv) không được hỗ trợ",
            "key 1 has a key type (kty) or curve (crv) that is not supported",
        ),
        (
            {"keys": [{"kty": "RSA", "n": "AQAB"}]},
            'khóa thứ 1 thiếu tham số "e"',
            'key 1 lacks the parameter "e"',
        ),
        (
            {"keys": [{"kty": "EC", "crv": "P-256", "x": "!!", "y": "!!"}]},
            "khóa thứ 1 không đọc được (giá trị không phải base64url hợp lệ hoặc không phải "
            "một khóa công khai)",
            "key 1 cannot be read (a value is not valid base64url, or not a public key)",
        ),
        ({"keys": []}, "không có khóa nào", "it holds no key"),
    ):
        answer = await client.post(
            f"{BASE}/01001/clients", json={"name": "HIS", "jwks": jwks, "scopes": ["checkin.write"]}
        )
        body = error(answer, 422, "FAC-0020")
        assert body["message"] == {
            "vi": f"Bộ khóa công khai (JWKS) không hợp lệ: {vi}.",
            "en": f"The public key set (JWKS) is not valid: {en}.",
        }, jwks


@pytest.mark.usefixtures("roles")
async def test_a_client_id_that_no_client_can_have_is_refused_before_the_lookup(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await _register_two(client, settings)
    for client_id in ("01001-01-1234abcd%0A", "01001-01-%ED%A0%80", "x" * 40):
        revoked = await client.post(f"{BASE}/01001/clients/{client_id}/revoke")
        error(revoked, 422, "KIT-0422")
    # NUL is refused before any route runs (KIT-0002)
    error(await client.post(f"{BASE}/01001/clients/a%00b/revoke"), 400, "KIT-0002")
    unknown = await client.post(f"{BASE}/01001/clients/01001-01-1234abcd/revoke")
    error(unknown, 404, "FAC-0024")


async def test_nobody_signed_in_gets_401(client: httpx.AsyncClient) -> None:
    for response in (
        await client.post(BASE, json=BODY),
        await client.get(BASE),
        await client.get(f"{BASE}/01001"),
        await client.post(f"{BASE}/01001/onboarding", json={"to_state": "trained"}),
        await client.get(f"{BASE}/01001/onboarding"),
    ):
        error(response, 401, "AUTH-0001")


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        (BASE, "post", {"201", "401", "403", "409", "422"}),
        (BASE, "get", {"200", "401", "422"}),
        (BASE + "/{code}", "get", {"200", "401", "403", "404", "422"}),
        (BASE + "/{code}/onboarding", "post", {"200", "401", "403", "404", "409", "422"}),
        (BASE + "/{code}/onboarding", "get", {"200", "401", "403", "404", "422"}),
    ],
)
async def test_openapi_declares_the_error_responses(
    client: httpx.AsyncClient, path: str, method: str, statuses: set[str]
) -> None:
    spec = (await client.get("/openapi.json")).json()
    responses = spec["paths"][path][method]["responses"]
    assert set(responses) == statuses
    for status in statuses - {"200", "201"}:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema["required"] == ["code", "message", "detail"]
