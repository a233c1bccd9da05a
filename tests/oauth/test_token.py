"""A facility system gets an access token with a signed client assertion (private_key_jwt),
and is refused with an expired, replayed, wrongly signed or misaddressed one."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import AN, BINH, CUONG, error, sign_in_as
from vnehr import facilities, identity
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.settings import Settings

ADMIN = Subject(
    "person", "001085004217", "Sở Y tế", (Grant("department_admin", province_code="01"),)
)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def _facility(session: AsyncSession, *, steps: int) -> str:
    facility = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện thử nghiệm",
            kind=facilities.Kind.hospital,
            level=facilities.Level.basic,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    for state in list(facilities.State)[1 : 1 + steps]:
        await facilities.move(session, ADMIN, facility.code, state, "test", override=True)
    return facility.code


def _key(kid: str = "his-key-1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def _jwks(key: ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


def _assertion(
    key: ECKey,
    client_id: str,
    audience: str,
    *,
    lifetime: int = 120,
    jti: str | None = None,
    issued: int | None = None,
    **extra: Any,
) -> str:
    now = issued if issued is not None else int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or uuid.uuid4().hex,
        **extra,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


async def _register_client(
    session: AsyncSession,
    key: ECKey,
    *,
    steps: int = 2,
    scopes: tuple[str, ...] = ("submission.write", "checkin.write"),
) -> tuple[str, str]:
    code = await _facility(session, steps=steps)
    registered = await facilities.add_client(
        session,
        ADMIN,
        code,
        facilities.ClientCreate(name="HIS", jwks=_jwks(key), scopes=list(scopes)),
    )
    return code, registered.client_id


async def _token(client: httpx.AsyncClient, assertion: str, **form: str) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            **form,
        },
    )


async def test_a_signed_assertion_gets_a_token_that_reads_only_its_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    key = _key()
    code, client_id = await _register_client(session, key)
    other = await _facility(session, steps=0)
    response = await _token(
        client, _assertion(key, client_id, f"{settings.public_url}/oauth/token")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "checkin.write submission.write"
    assert 0 < body["expires_in"] <= 3600
    assert response.headers["cache-control"] == "no-store"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    own = await client.get(f"/api/v1/facilities/{code}", headers=bearer)
    assert own.status_code == 200
    assert own.json()["code"] == code
    foreign = await client.get(f"/api/v1/facilities/{other}", headers=bearer)
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "AUTH-0002"


async def test_a_narrower_scope_can_be_asked_for_but_not_a_wider_one(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    key = _key()
    _, client_id = await _register_client(session, key, scopes=("checkin.write",))
    audience = f"{settings.public_url}/oauth/token"
    narrow = await _token(client, _assertion(key, client_id, audience), scope="checkin.write")
    assert narrow.json()["scope"] == "checkin.write"
    wide = await _token(client, _assertion(key, client_id, audience), scope="patient.read")
    assert wide.status_code == 400
    assert wide.json()["error"] == "invalid_scope"
    assert wide.json()["code"] == "FAC-0017"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "FAC-0014"),
        ("too_long", "FAC-0014"),
        ("future", "FAC-0014"),
        ("other_key", "FAC-0013"),
        ("wrong_audience", "FAC-0016"),
        ("wrong_subject", "FAC-0016"),
        ("no_jti", "FAC-0016"),
        ("unknown_client", "FAC-0012"),
        ("garbage", "FAC-0010"),
    ],
)
async def test_bad_assertions_are_refused_with_invalid_client(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, case: str, code: str
) -> None:
    key = _key()
    _, client_id = await _register_client(session, key)
    audience = f"{settings.public_url}/oauth/token"
    now = int(time.time())
    assertion = {
        "expired": lambda: _assertion(key, client_id, audience, issued=now - 900, lifetime=300),
        "too_long": lambda: _assertion(key, client_id, audience, lifetime=3600),
        "future": lambda: _assertion(key, client_id, audience, issued=now + 600),
        "other_key": lambda: _assertion(_key(key.kid), client_id, audience),
        "wrong_audience": lambda: _assertion(key, client_id, "https://elsewhere.example/token"),
        "wrong_subject": lambda: _assertion(key, client_id, audience, sub="someone-else"),
        "no_jti": lambda: jwt.encode(
            {"alg": "ES256", "kid": key.kid},
            {"iss": client_id, "sub": client_id, "aud": audience, "exp": now + 60},
            key,
        ),
        "unknown_client": lambda: _assertion(key, "01999-01-deadbeef", audience),
        "garbage": lambda: "not-a-jwt",
    }[case]()
    response = await _token(client, assertion)
    body = response.json()
    assert body["code"] == code, body
    assert response.status_code == (400 if code == "FAC-0010" else 401)
    assert body["error"] == ("invalid_request" if code == "FAC-0010" else "invalid_client")
    assert body["message"]["vi"]
    assert body["message"]["en"]


async def test_a_facility_systems_token_gives_ends_and_reviews_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Roles open records (a clinician may break the glass), and a break-glass review is a
    person's judgement: only people answerable for them act, never the facility's own system,
    whatever its token's scopes."""
    key = _key()
    # (connected: a clinician acts only for a connected facility)
    code, client_id = await _register_client(session, key, steps=4, scopes=tuple(facilities.SCOPES))
    token = await _token(client, _assertion(key, client_id, f"{settings.public_url}/oauth/token"))
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    clinician = await identity.bootstrap_grant(session, BINH[0], "clinician", facility_code=code)
    await session.flush()

    made = await client.post(
        "/api/v1/grants",
        json={"personal_id": CUONG[0], "role": "clinician", "facility_code": code},
        headers=bearer,
    )
    error(made, 403, "AUTH-0002")
    error(
        await client.post(f"/api/v1/grants/{clinician.id}/revoke", headers=bearer), 403, "AUTH-0002"
    )

    await sign_in_as(client, session, settings, AN)
    await sign_in_as(client, session, settings, BINH)
    opened = await client.post(
        f"/api/v1/patients/{AN[0]}/break-glass", json={"reason": "other", "text": "cấp cứu"}
    )
    assert opened.status_code == 201, opened.text
    client.cookies.clear()
    review = f"/api/v1/emergency-accesses/{opened.json()['id']}/review"
    error(await client.post(review, json={"note": "hợp lý"}, headers=bearer), 404, "SHR-0006")
    assert await identity.grants_for(session, CUONG[0]) == (Grant("citizen"),)
    assert Grant("clinician", facility_code=code) in await identity.grants_for(session, BINH[0])


@pytest.mark.parametrize(
    "issuer",
    ["\\ud800", "a\\u0000b", "01001-01-1234abcd\\n", "01001-01-ABCDEF12", 12345, None],
)
async def test_an_issuer_no_client_can_have_is_refused_before_any_lookup(
    client: httpx.AsyncClient, issuer: object
) -> None:
    """The unverified ``iss`` picks the keys: a lone surrogate, a NUL byte or anything else
    that is not a client id never reaches the database."""
    header = base64.urlsafe_b64encode(b'{"alg":"ES256"}').rstrip(b"=").decode()
    raw = json.dumps({"iss": issuer}) if not isinstance(issuer, str) else f'{{"iss":"{issuer}"}}'
    payload = base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()
    response = await _token(client, f"{header}.{payload}.AAAA")
    body = response.json()
    assert (response.status_code, body["code"], body["error"]) == (
        401,
        "FAC-0012",
        "invalid_client",
    ), body


async def test_an_assertion_works_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    key = _key()
    _, client_id = await _register_client(session, key)
    assertion = _assertion(key, client_id, f"{settings.public_url}/oauth/token")
    assert (await _token(client, assertion)).status_code == 200
    replay = await _token(client, assertion)
    assert replay.status_code == 401
    assert replay.json()["code"] == "FAC-0015"


async def test_a_facility_still_onboarding_or_a_revoked_client_gets_no_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    key = _key()
    audience = f"{settings.public_url}/oauth/token"
    _, early = await _register_client(session, key, steps=1)  # trained only
    refused = await _token(client, _assertion(key, early, audience))
    assert refused.json()["code"] == "FAC-0018"
    code, client_id = await _register_client(session, key)
    await facilities.revoke_client(session, ADMIN, code, client_id)
    revoked = await _token(client, _assertion(key, client_id, audience))
    assert revoked.json()["code"] == "FAC-0012"


async def test_wrong_grant_type_and_assertion_type(client: httpx.AsyncClient) -> None:
    grant = await client.post("/oauth/token", data={"grant_type": "password"})
    assert grant.json()["error"] == "unsupported_grant_type"
    kind = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_assertion": "x"}
    )
    assert kind.json()["error"] == "invalid_request"


async def test_a_forged_or_expired_bearer_token_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    forged = await client.get(
        "/api/v1/facilities/01001", headers={"Authorization": "Bearer abc.def.ghi"}
    )
    assert forged.status_code == 401
    assert forged.json()["code"] == "AUTH-0003"
    other = Settings(secret_key=settings.secret_key.get_secret_value()[::-1] + "!" * 5)
    from vnehr.kit.auth import issue_access_token

    token, _ = issue_access_token(other, "01001-01-x", "01001", ["submission.write"])
    signed_elsewhere = await client.get(
        "/api/v1/facilities/01001", headers={"Authorization": f"Bearer {token}"}
    )
    assert signed_elsewhere.json()["code"] == "AUTH-0003"


async def test_registering_a_private_or_symmetric_key_is_refused(session: AsyncSession) -> None:
    code = await _facility(session, steps=0)
    key = _key()
    for jwks in (
        {"keys": [key.as_dict(private=True)]},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
    ):
        with pytest.raises(facilities.BadJwks):
            await facilities.add_client(
                session,
                ADMIN,
                code,
                facilities.ClientCreate(name="HIS", jwks=jwks, scopes=["checkin.write"]),
            )


def test_a_remembered_token_is_refused_once_it_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked tokens are remembered (a system sends many files with one), never past their
    own expiry, and only for the key that signed them."""
    from vnehr.kit import auth

    token, lifetime = auth.issue_access_token(settings, "01001-01-x", "01001", ["submission.write"])
    first = auth.read_access_token(settings, token)
    assert auth.read_access_token(settings, token) == first  # remembered
    rotated = Settings(secret_key=settings.secret_key.get_secret_value()[::-1] + "!" * 5)
    with pytest.raises(auth.InvalidAccessToken):
        auth.read_access_token(rotated, token)
    later = time.time() + lifetime + 1
    monkeypatch.setattr(auth.time, "time", lambda: later)
    with pytest.raises(auth.InvalidAccessToken):
        auth.read_access_token(settings, token)
