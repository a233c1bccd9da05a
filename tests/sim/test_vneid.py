"""The simulated VNeID, driven over HTTP the way vnehr and a browser will drive it.

The app is mounted at ``/sim/vneid`` inside a parent app, as the development server will do,
and every ID token is checked with joserfc against the JWKS the provider publishes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.routing import Mount

from vnehr.sim.vneid import (
    DEMO_CITIZENS,
    ClientReg,
    DemoCitizen,
    Faults,
    VneidConfig,
    create_app,
    new_signing_key,
    personal_id_problems,
    s256,
)

ISSUER = "http://testserver/sim/vneid"
CLIENT_ID = "vnehr"
SECRET = "s3cret-for-tests-only"
REDIRECT = "http://rp.test/auth/vneid/callback"
OTHER_CLIENT = "other-app"
OTHER_SECRET = "other-secret-for-tests"
OTHER_REDIRECT = "http://other.test/cb"
AN = DEMO_CITIZENS[0]


class FakeClock:
    """A clock the tests move by hand, starting at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FormReader(HTMLParser):
    """Reads what a browser would submit: hidden inputs and the submit buttons with names."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.buttons: list[dict[str, str]] = []
        self.form_action: str | None = None
        self._button: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.form_action = values.get("action")
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"]] = values["value"]
        elif tag == "button":
            self._button = {**values, "text": ""}

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.buttons.append(self._button)
            self._button = None


def read_form(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    return reader


def query_of(response: httpx.Response) -> dict[str, str]:
    """The query of a redirect's Location, one value per name."""
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Flow:
    """One authorization: the PKCE verifier, nonce, state and the code (when issued)."""

    verifier: str
    nonce: str
    state: str
    code: str


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(clock: FakeClock) -> VneidConfig:
    return VneidConfig(
        issuer=ISSUER,
        clients={
            CLIENT_ID: ClientReg(SECRET, (REDIRECT,), "Sổ sức khỏe điện tử"),
            OTHER_CLIENT: ClientReg(OTHER_SECRET, (OTHER_REDIRECT,)),
        },
        clock=clock,
    )


@pytest.fixture
async def sim(config: VneidConfig) -> AsyncIterator[httpx.AsyncClient]:
    root = Starlette(routes=[Mount("/sim/vneid", create_app(config))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=root), base_url=ISSUER, follow_redirects=False
    ) as client:
        yield client


def auth_params(verifier: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile vneid",
        "state": "state-" + secrets.token_urlsafe(8),
        "nonce": "nonce-" + secrets.token_urlsafe(8),
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


async def sign_in(
    sim: httpx.AsyncClient, citizen: DemoCitizen = AN, **overrides: str | None
) -> Flow:
    """GET the sign-in page, press the citizen's button, return the code from the redirect."""
    verifier = secrets.token_urlsafe(48)
    params = auth_params(verifier, **overrides)
    page = await sim.get("/authorize", params=params)
    assert page.status_code == 200, page.text
    form = read_form(page.text)
    assert form.form_action == "authorize"
    [button] = [b for b in form.buttons if b["text"] == citizen.full_name]
    chosen = await sim.post("/authorize", data={**form.hidden, button["name"]: button["value"]})
    assert chosen.status_code == 303, chosen.text
    location = chosen.headers["location"]
    assert location.startswith(params["redirect_uri"])
    answer = query_of(chosen)
    assert answer["state"] == params["state"]
    assert answer["iss"] == ISSUER
    return Flow(verifier, params.get("nonce", ""), params["state"], answer["code"])


async def redeem(
    sim: httpx.AsyncClient,
    flow: Flow,
    *,
    verifier: str | None = None,
    redirect_uri: str = REDIRECT,
    auth: tuple[str, str] | None = (CLIENT_ID, SECRET),
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier or flow.verifier,
        **(extra or {}),
    }
    if auth is None:
        return await sim.post("/token", data=data)
    return await sim.post("/token", data=data, auth=auth)


async def published_keys(sim: httpx.AsyncClient) -> KeySet:
    response = await sim.get("/jwks")
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


def check_claims(claims: dict[str, Any], **expected: Any) -> None:
    options: dict[str, Any] = {
        name: {"essential": True, "value": value} for name, value in expected.items()
    }
    jwt.JWTClaimsRegistry(**options).validate(claims)


# --- discovery and keys --------------------------------------------------------------------


async def test_discovery_names_every_endpoint_under_the_issuer(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == ISSUER + "/authorize"
    assert meta["token_endpoint"] == ISSUER + "/token"
    assert meta["userinfo_endpoint"] == ISSUER + "/userinfo"
    assert meta["jwks_uri"] == ISSUER + "/jwks"
    assert meta["end_session_endpoint"] == ISSUER + "/logout"
    assert meta["response_types_supported"] == ["code"]
    assert meta["grant_types_supported"] == ["authorization_code"]
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert meta["scopes_supported"] == ["openid", "profile", "vneid"]
    assert {"sub", "personal_id", "assurance_level", "birthdate", "gender", "name"} <= set(
        meta["claims_supported"]
    )


async def test_jwks_publishes_one_public_es256_key(sim: httpx.AsyncClient) -> None:
    keys = (await sim.get("/jwks")).json()["keys"]
    assert len(keys) == 1
    [key] = keys
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"]
    assert "d" not in key  # the private part never leaves


async def test_a_configured_key_signs_and_keeps_its_kid(clock: FakeClock) -> None:
    key = new_signing_key("vneid-2026-01")
    config = VneidConfig(
        issuer=ISSUER, clients={CLIENT_ID: ClientReg(SECRET, (REDIRECT,))}, signing_key=key
    )
    root = Starlette(routes=[Mount("/sim/vneid", create_app(config))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url=ISSUER) as sim:
        assert (await sim.get("/jwks")).json()["keys"][0]["kid"] == "vneid-2026-01"
        body = (await redeem(sim, await sign_in(sim))).json()
    token = jwt.decode(body["id_token"], KeySet([key]), algorithms=["ES256"])
    assert token.header["kid"] == "vneid-2026-01"


# --- the whole flow --------------------------------------------------------------------------


async def test_the_sign_in_page_offers_every_demo_citizen_by_name(
    sim: httpx.AsyncClient,
) -> None:
    page = await sim.get("/authorize", params=auth_params(secrets.token_urlsafe(48)))
    assert page.status_code == 200
    assert "Đăng nhập bằng tài khoản định danh điện tử VNeID" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    form = read_form(page.text)
    citizens = [b for b in form.buttons if b.get("name") == "personal_id"]
    assert [b["text"] for b in citizens] == [c.full_name for c in DEMO_CITIZENS]
    assert [b["value"] for b in citizens] == [c.personal_id for c in DEMO_CITIZENS]
    [deny] = [b for b in form.buttons if b.get("name") == "action"]
    assert (deny["text"], deny["value"]) == ("Từ chối / Deny", "deny")
    assert form.hidden["code_challenge_method"] == "S256"


async def test_full_flow_gives_an_id_token_the_jwks_verifies(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim, AN)
    response = await redeem(sim, flow)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "openid profile vneid"

    token = jwt.decode(body["id_token"], await published_keys(sim), algorithms=["ES256"])
    assert token.header["alg"] == "ES256"
    assert token.header["kid"] == (await sim.get("/jwks")).json()["keys"][0]["kid"]
    claims = token.claims
    check_claims(claims, iss=ISSUER, aud=CLIENT_ID, nonce=flow.nonce)
    assert claims["personal_id"] == "001085004217"
    assert claims["assurance_level"] == 2
    assert claims["acr"] == "vneid:level2"
    assert claims["name"] == "Nguyễn Văn An"
    assert (claims["family_name"], claims["given_name"]) == ("Nguyễn", "An")
    assert claims["birthdate"] == "1985-03-14"
    assert claims["gender"] == "male"
    assert claims["phone_number"] == AN.phone
    assert claims["exp"] - claims["iat"] == 300
    assert claims["auth_time"] <= claims["iat"]
    # The subject is opaque: never the personal id, and not derived from it in the clear.
    assert claims["sub"] != AN.personal_id
    assert AN.personal_id not in claims["sub"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


async def test_sub_is_stable_per_citizen_and_differs_between_citizens(
    sim: httpx.AsyncClient,
) -> None:
    def sub_of(body: dict[str, Any]) -> str:
        return str(jwt.decode(body["id_token"], keys, algorithms=["ES256"]).claims["sub"])

    keys = await published_keys(sim)
    first = sub_of((await redeem(sim, await sign_in(sim, AN))).json())
    again = sub_of((await redeem(sim, await sign_in(sim, AN))).json())
    other = sub_of((await redeem(sim, await sign_in(sim, DEMO_CITIZENS[1]))).json())
    assert first == again
    assert first != other


async def test_level_one_account_is_asserted_as_level_one(sim: httpx.AsyncClient) -> None:
    [hung] = [c for c in DEMO_CITIZENS if c.assurance_level == 1]
    body = (await redeem(sim, await sign_in(sim, hung))).json()
    claims = jwt.decode(body["id_token"], await published_keys(sim), algorithms=["ES256"]).claims
    assert (claims["assurance_level"], claims["acr"]) == (1, "vneid:level1")
    assert claims["personal_id"] == hung.personal_id


async def test_claims_follow_the_scopes_asked_for(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim, AN, scope="openid")
    body = (await redeem(sim, flow)).json()
    claims = jwt.decode(body["id_token"], await published_keys(sim), algorithms=["ES256"]).claims
    assert "personal_id" not in claims
    assert "name" not in claims
    assert claims["acr"] == "vneid:level2"
    assert body["scope"] == "openid"


async def test_client_secret_post_works_too(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim)
    response = await redeem(
        sim, flow, auth=None, extra={"client_id": CLIENT_ID, "client_secret": SECRET}
    )
    assert response.status_code == 200, response.text
    assert response.json()["id_token"].count(".") == 2


async def test_nonce_is_optional(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim, nonce=None)
    body = (await redeem(sim, flow)).json()
    claims = jwt.decode(body["id_token"], await published_keys(sim), algorithms=["ES256"]).claims
    assert "nonce" not in claims


async def test_deny_goes_back_with_access_denied(sim: httpx.AsyncClient) -> None:
    params = auth_params(secrets.token_urlsafe(48))
    form = read_form((await sim.get("/authorize", params=params)).text)
    response = await sim.post("/authorize", data={**form.hidden, "action": "deny"})
    assert response.status_code == 303
    answer = query_of(response)
    assert answer["error"] == "access_denied"
    assert answer["state"] == params["state"]
    assert "code" not in answer


async def test_a_redirect_uri_with_a_query_keeps_it(clock: FakeClock) -> None:
    with_query = "http://rp.test/cb?tenant=hn"
    config = VneidConfig(
        issuer=ISSUER, clients={CLIENT_ID: ClientReg(SECRET, (with_query,))}, clock=clock
    )
    root = Starlette(routes=[Mount("/sim/vneid", create_app(config))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url=ISSUER) as sim:
        page = await sim.get("/authorize", params=auth_params("v" * 43, redirect_uri=with_query))
        form = read_form(page.text)
        chosen = await sim.post("/authorize", data={**form.hidden, "personal_id": AN.personal_id})
        assert chosen.headers["location"].startswith(with_query + "&code=")
        assert query_of(chosen)["tenant"] == "hn"
        flow = await sign_in(sim, redirect_uri=with_query)
        assert (await redeem(sim, flow, redirect_uri=with_query)).status_code == 200


# --- authorization errors ----------------------------------------------------------------


async def test_pkce_is_required(sim: httpx.AsyncClient) -> None:
    params = auth_params(secrets.token_urlsafe(48), code_challenge=None)
    response = await sim.get("/authorize", params=params)
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT + "?")
    answer = query_of(response)
    assert answer["error"] == "invalid_request"
    assert "code_challenge" in answer["error_description"]
    assert answer["state"] == params["state"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "profile vneid"}, "invalid_scope"),
        ({"scope": "openid email"}, "invalid_scope"),
        ({"state": None}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ],
)
async def test_bad_requests_go_back_to_the_client_with_an_error(
    sim: httpx.AsyncClient, overrides: dict[str, str | None], error: str
) -> None:
    response = await sim.get("/authorize", params=auth_params("v" * 43, **overrides))
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT + "?")
    answer = query_of(response)
    assert answer["error"] == error
    assert answer["error_description"].isascii()  # RFC 6749 §4.1.2.1 character set
    assert "code" not in answer


async def test_a_repeated_parameter_is_refused(sim: httpx.AsyncClient) -> None:
    params = httpx.QueryParams(auth_params("v" * 43)).add("scope", "openid")
    response = await sim.get("/authorize", params=params)
    assert response.status_code == 302
    assert query_of(response)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "http://evil.test/steal"},
        {"redirect_uri": REDIRECT + "/more"},
        {"redirect_uri": REDIRECT + "?x=1"},
        {"redirect_uri": OTHER_REDIRECT},  # registered, but by another client
        {"redirect_uri": None},
        {"client_id": "unknown-app"},
        {"client_id": None},
    ],
)
async def test_an_unverified_redirect_uri_is_never_redirected_to(
    sim: httpx.AsyncClient, overrides: dict[str, str | None]
) -> None:
    params = auth_params("v" * 43, code_challenge=None, **overrides)  # also another error
    for response in (
        await sim.get("/authorize", params=params),
        await sim.post("/authorize", data={**params, "personal_id": AN.personal_id}),
    ):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "Yêu cầu đăng nhập không hợp lệ" in response.text
        assert "evil.test" not in response.text or "href" not in response.text


async def test_the_choice_is_validated_again(sim: httpx.AsyncClient) -> None:
    form = read_form((await sim.get("/authorize", params=auth_params("v" * 43))).text)
    tampered = {**form.hidden, "redirect_uri": "http://evil.test/cb", "personal_id": "1"}
    response = await sim.post("/authorize", data=tampered)
    assert response.status_code == 400
    assert "location" not in response.headers
    unknown = await sim.post("/authorize", data={**form.hidden, "personal_id": "001000000000"})
    assert unknown.status_code == 303
    assert query_of(unknown)["error"] == "invalid_request"


# --- token errors ------------------------------------------------------------------------


async def test_a_wrong_verifier_is_invalid_grant(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim)
    response = await redeem(sim, flow, verifier=secrets.token_urlsafe(48))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.headers["cache-control"] == "no-store"
    # The failed attempt consumed the code: the right verifier cannot be tried afterwards.
    assert (await redeem(sim, flow)).json()["error"] == "invalid_grant"


async def test_a_missing_verifier_is_refused(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim)
    response = await sim.post(
        "/token",
        data={"grant_type": "authorization_code", "code": flow.code, "redirect_uri": REDIRECT},
        auth=(CLIENT_ID, SECRET),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_code_works_once_and_its_replay_revokes_the_tokens(
    sim: httpx.AsyncClient,
) -> None:
    flow = await sign_in(sim)
    first = await redeem(sim, flow)
    assert first.status_code == 200
    access = first.json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert (await sim.get("/userinfo", headers=bearer)).status_code == 200

    replay = await redeem(sim, flow)
    assert replay.status_code == 400
    assert replay.json() == {
        "error": "invalid_grant",
        "error_description": "authorization code already used",
    }
    assert (await sim.get("/userinfo", headers=bearer)).status_code == 401


async def test_an_expired_code_is_refused(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    flow = await sign_in(sim)
    clock.advance(61)
    response = await redeem(sim, flow)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_a_code_just_before_expiry_still_works(
    sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    flow = await sign_in(sim)
    clock.advance(59)
    assert (await redeem(sim, flow)).status_code == 200


async def test_the_code_is_bound_to_its_redirect_uri_and_client(sim: httpx.AsyncClient) -> None:
    flow = await sign_in(sim)
    mismatch = await redeem(sim, flow, redirect_uri=REDIRECT + "/other")
    assert mismatch.json()["error"] == "invalid_grant"

    flow = await sign_in(sim)
    stolen = await redeem(sim, flow, redirect_uri=OTHER_REDIRECT, auth=(OTHER_CLIENT, OTHER_SECRET))
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    # The other client's attempt did not burn the code for its rightful owner.
    assert (await redeem(sim, flow)).status_code == 200


@pytest.mark.parametrize(
    ("auth", "extra"),
    [
        ((CLIENT_ID, "wrong-secret"), {}),
        (("unknown-app", SECRET), {}),
        (None, {"client_id": CLIENT_ID, "client_secret": "wrong-secret"}),
        (None, {"client_id": CLIENT_ID}),
        (None, {}),
    ],
)
async def test_a_bad_client_is_401_invalid_client(
    sim: httpx.AsyncClient, auth: tuple[str, str] | None, extra: dict[str, str]
) -> None:
    flow = await sign_in(sim)
    response = await redeem(sim, flow, auth=auth, extra=extra)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["cache-control"] == "no-store"
    # A failed client authentication leaves the code for the real client.
    assert (await redeem(sim, flow)).status_code == 200


async def test_two_client_authentication_methods_at_once_are_refused(
    sim: httpx.AsyncClient,
) -> None:
    flow = await sign_in(sim)
    response = await redeem(sim, flow, extra={"client_secret": SECRET})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_another_grant_type_is_unsupported(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/token", data={"grant_type": "password"}, auth=(CLIENT_ID, SECRET))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


# --- userinfo ----------------------------------------------------------------------------


async def test_userinfo_answers_the_token_claims(sim: httpx.AsyncClient) -> None:
    body = (await redeem(sim, await sign_in(sim, DEMO_CITIZENS[1]))).json()
    response = await sim.get(
        "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert response.status_code == 200
    info = response.json()
    claims = jwt.decode(body["id_token"], await published_keys(sim), algorithms=["ES256"]).claims
    assert info["sub"] == claims["sub"]
    assert info["personal_id"] == "079162003581"
    assert info["name"] == "Trần Thị Bình"
    assert info["gender"] == "female"
    assert info["birthdate"] == "1962-08-02"
    assert info["assurance_level"] == 2


async def test_userinfo_without_a_token_is_401(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["www-authenticate"]


async def test_userinfo_with_a_bad_or_expired_token_is_invalid_token(
    sim: httpx.AsyncClient, clock: FakeClock
) -> None:
    response = await sim.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

    body = (await redeem(sim, await sign_in(sim))).json()
    clock.advance(301)
    expired = await sim.get(
        "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]


# --- logout ------------------------------------------------------------------------------


async def test_logout_goes_back_to_a_registered_origin_with_the_state(
    sim: httpx.AsyncClient,
) -> None:
    response = await sim.get(
        "/logout",
        params={
            "post_logout_redirect_uri": "http://rp.test/",
            "state": "bye",
            "client_id": "vnehr",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "http://rp.test/?state=bye"


@pytest.mark.parametrize(
    "target", ["http://evil.test/", "http://rp.test.evil.test/", "https://rp.test/", OTHER_REDIRECT]
)
async def test_logout_refuses_an_unregistered_target(sim: httpx.AsyncClient, target: str) -> None:
    response = await sim.get(
        "/logout", params={"post_logout_redirect_uri": target, "client_id": CLIENT_ID}
    )
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_logout_without_a_target_shows_signed_out(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/logout")
    assert response.status_code == 200
    assert "Đã đăng xuất" in response.text


async def test_logout_with_an_id_token_hint_revokes_the_access_token(
    sim: httpx.AsyncClient,
) -> None:
    body = (await redeem(sim, await sign_in(sim))).json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    response = await sim.get(
        "/logout",
        params={"id_token_hint": body["id_token"], "post_logout_redirect_uri": "http://rp.test/x"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "http://rp.test/x"
    assert (await sim.get("/userinfo", headers=bearer)).status_code == 401


# --- faults ------------------------------------------------------------------------------


async def test_bad_signature_fault_fails_jwks_verification(
    sim: httpx.AsyncClient, config: VneidConfig
) -> None:
    config.faults.bad_signature = True
    body = (await redeem(sim, await sign_in(sim))).json()
    keys = await published_keys(sim)
    with pytest.raises(BadSignatureError):
        jwt.decode(body["id_token"], keys, algorithms=["ES256"])
    # Same kid as the published key: only the signature check catches it.
    assert jws.extract_compact(body["id_token"].encode()).headers()["kid"] == keys.keys[0].kid


async def test_unavailable_fault_makes_every_endpoint_503_until_lifted(
    sim: httpx.AsyncClient,
) -> None:
    put = await sim.put("/_sim/faults", json={"unavailable": True})
    assert put.status_code == 200
    assert put.json()["unavailable"] is True
    for response in (
        await sim.get("/.well-known/openid-configuration"),
        await sim.get("/jwks"),
        await sim.get("/authorize", params=auth_params("v" * 43)),
        await sim.post("/token", data={"grant_type": "authorization_code"}),
        await sim.get("/userinfo"),
        await sim.get("/logout"),
    ):
        assert response.status_code == 503, response.request.url
        assert response.headers["retry-after"] == "30"
    page = await sim.get("/authorize", params=auth_params("v" * 43))
    assert "tạm ngừng phục vụ" in page.text

    assert (await sim.put("/_sim/faults", json={})).json()["unavailable"] is False
    assert (await sim.get("/jwks")).status_code == 200


async def test_token_error_fault_answers_that_error_and_keeps_the_code(
    sim: httpx.AsyncClient,
) -> None:
    flow = await sign_in(sim)
    await sim.put("/_sim/faults", json={"token_error": "invalid_grant"})
    response = await redeem(sim, flow)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"

    await sim.put("/_sim/faults", json={"token_error": "server_error"})
    assert (await redeem(sim, flow)).status_code == 500

    await sim.put("/_sim/faults", json={})
    assert (await redeem(sim, flow)).status_code == 200


async def test_token_delay_fault_slows_the_token_endpoint(
    sim: httpx.AsyncClient, config: VneidConfig
) -> None:
    flow = await sign_in(sim)
    config.faults.token_delay_seconds = 0.3
    started = time.monotonic()
    response = await redeem(sim, flow)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("expired_id_token", ExpiredTokenError),
        ("wrong_audience", InvalidClaimError),
        ("wrong_issuer", InvalidClaimError),
        ("wrong_nonce", InvalidClaimError),
    ],
)
async def test_claim_faults_make_claim_checks_fail(
    sim: httpx.AsyncClient, config: VneidConfig, fault: str, error: type[Exception]
) -> None:
    setattr(config.faults, fault, True)
    flow = await sign_in(sim)
    body = (await redeem(sim, flow)).json()
    token = jwt.decode(body["id_token"], await published_keys(sim), algorithms=["ES256"])
    with pytest.raises(error):
        check_claims(token.claims, iss=ISSUER, aud=CLIENT_ID, nonce=flow.nonce)


async def test_authorize_error_fault_goes_back_with_that_error(sim: httpx.AsyncClient) -> None:
    await sim.put("/_sim/faults", json={"authorize_error": "temporarily_unavailable"})
    params = auth_params("v" * 43)
    form = read_form((await sim.get("/authorize", params=params)).text)
    response = await sim.post("/authorize", data={**form.hidden, "personal_id": AN.personal_id})
    assert response.status_code == 303
    answer = query_of(response)
    assert answer["error"] == "temporarily_unavailable"
    assert answer["state"] == params["state"]


async def test_faults_are_read_and_replaced_as_json(
    sim: httpx.AsyncClient, config: VneidConfig
) -> None:
    initial = (await sim.get("/_sim/faults")).json()
    assert initial == {
        "token_error": None,
        "token_delay_seconds": 0.0,
        "authorize_error": None,
        "bad_signature": False,
        "expired_id_token": False,
        "wrong_audience": False,
        "wrong_issuer": False,
        "wrong_nonce": False,
        "unavailable": False,
        "push_no_phone": [],
        "push_status": None,
    }
    assert set(initial) == {f.name for f in fields(Faults)}
    await sim.put("/_sim/faults", json={"bad_signature": True, "token_delay_seconds": 1.5})
    assert config.faults == Faults(bad_signature=True, token_delay_seconds=1.5)
    # PUT replaces: what is left out goes back to its default.
    await sim.put("/_sim/faults", json={"wrong_audience": True})
    assert config.faults == Faults(wrong_audience=True)
    assert (await sim.put("/_sim/faults", json={"no_such_fault": True})).status_code == 422
    assert (await sim.put("/_sim/faults", json={"token_error": "Bad Error"})).status_code == 422


# --- demo citizens -----------------------------------------------------------------------


def test_demo_citizens_have_valid_personal_ids() -> None:
    assert len(DEMO_CITIZENS) >= 6
    assert len({c.personal_id for c in DEMO_CITIZENS}) == len(DEMO_CITIZENS)
    for citizen in DEMO_CITIZENS:
        assert personal_id_problems(citizen.personal_id, citizen.birthdate, citizen.gender) == []
        assert citizen.full_name.split()[0] == citizen.family_name
        assert citizen.full_name.split()[-1] == citizen.given_name


def test_demo_citizens_cover_the_cases_vnehr_must_handle() -> None:
    levels = {c.assurance_level for c in DEMO_CITIZENS}
    assert levels == {1, 2}
    assert any(c.birthdate.year >= 2000 and c.personal_id[3] in "23" for c in DEMO_CITIZENS)
    assert {c.gender for c in DEMO_CITIZENS if c.assurance_level == 2} == {"male", "female"}
    by_id = {c.personal_id: c for c in DEMO_CITIZENS}
    [child] = [c for c in DEMO_CITIZENS if c.guardian_id]
    assert 2015 <= child.birthdate.year <= 2020
    mother = by_id[str(child.guardian_id)]
    assert mother.gender == "female"
    assert mother.birthdate.year < 2000


@pytest.mark.parametrize(
    ("personal_id", "birthdate", "gender", "problem"),
    [
        ("001185004217", date(1985, 3, 14), "male", "digit 4"),  # female digit for a man
        ("001085004217", date(2005, 3, 14), "male", "digit 4"),  # 1900s digit, born 2005
        ("001086004217", date(1985, 3, 14), "male", "digits 5-6"),
        ("003085004217", date(1985, 3, 14), "male", "province"),  # 003 was never a province
        ("00108500421", date(1985, 3, 14), "male", "12 digits"),
    ],
)
def test_the_personal_id_rule_catches_mistakes(
    personal_id: str, birthdate: date, gender: Any, problem: str
) -> None:
    problems = personal_id_problems(personal_id, birthdate, gender)
    assert any(problem in p for p in problems), problems


def test_an_invalid_demo_citizen_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="digit 4"):
        DemoCitizen(
            personal_id="001185004217",
            full_name="Nguyễn Văn An",
            family_name="Nguyễn",
            given_name="An",
            birthdate=date(1985, 3, 14),
            gender="male",
            assurance_level=2,
            ward_code="00070",
        )
