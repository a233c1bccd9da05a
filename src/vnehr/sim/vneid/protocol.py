"""The protocol rules of the simulated VNeID: authorization code flow with PKCE (S256).

What it follows: RFC 6749 (OAuth 2.0) §3.1, §4.1 and §5.2, RFC 7636 (PKCE), RFC 6750 §3
(bearer errors), RFC 9207 (``iss`` in the authorization response), OpenID Connect Core 1.0
(ID token, userinfo, scopes), Discovery 1.0 and RP-Initiated Logout 1.0.

Claims follow the scopes asked for (OIDC Core §5.4): ``openid`` gives ``sub`` and ``acr``;
``profile`` adds ``name``, ``family_name``, ``given_name``, ``birthdate``, ``gender``;
``vneid`` adds ``personal_id``, ``assurance_level`` and ``phone_number`` (when known).
The ID token and userinfo carry the same claims.

There is no browser session at the provider: every authorization shows the sign-in page, so
``prompt=none`` always answers ``login_required``. State lives in this process only (run the
development server with one worker).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.datastructures import UploadFile

from vnehr.sim.vneid.citizens import DemoCitizen
from vnehr.sim.vneid.config import ClientReg, Faults, VneidConfig
from vnehr.sim.vneid.keys import ALGORITHM, SigningKeys

SCOPES = ("openid", "profile", "vneid")
PROFILE_CLAIMS = ("name", "family_name", "given_name", "birthdate", "gender")
VNEID_CLAIMS = ("personal_id", "assurance_level", "phone_number")
ID_TOKEN_CLAIMS = ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "at_hash")
CLAIMS = ID_TOKEN_CLAIMS + PROFILE_CLAIMS + VNEID_CLAIMS

# PKCE S256 challenges are a base64url SHA-256 digest without padding: exactly 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# RFC 7636 §4.1: 43 to 128 unreserved characters.
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
# Anything longer is abuse or a bug in the client; a real provider would refuse it too.
_MAX_PARAM = 2048

# --- errors -------------------------------------------------------------------------------


class Unavailable(Exception):
    """Raised by the ``unavailable`` fault; ``html`` picks a page for browser endpoints."""

    def __init__(self, *, html: bool) -> None:
        super().__init__("VNeID simulator unavailable (fault)")
        self.html = html


class ShowError(Exception):
    """An authorization error that must be shown, not redirected (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, vi: str, en: str) -> None:
        super().__init__(en)
        self.error, self.vi, self.en = error, vi, en


class RedirectError(Exception):
    """An authorization error sent back to the (verified) redirect URI of the client."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri, self.state = redirect_uri, state
        self.error, self.description = error, description


class TokenError(Exception):
    """An error of the token or userinfo endpoint (RFC 6749 §5.2, RFC 6750 §3.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class NoCredentials(Exception):
    """The request carried no bearer token at all (RFC 6750 §3.1: answer without error code)."""


class BadParameter(Exception):
    """A parameter was sent more than once (RFC 6749 §3.1 forbids it) or is far too long."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"parameter {name} is {reason}")
        self.name = name
        self.reason = reason


# --- request parameters ------------------------------------------------------------------


class Params:
    """Request parameters with the RFC 6749 §3.1 rules: empty means absent, no repeats."""

    def __init__(self, items: Iterable[tuple[str, str | UploadFile]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            if not isinstance(value, str):
                continue  # a file upload is never an OAuth parameter
            self._values.setdefault(name, []).append(value)

    def one(self, name: str) -> str | None:
        values = [v for v in self._values.get(name, []) if v != ""]
        if len(values) > 1:
            raise BadParameter(name, "repeated")
        if values and len(values[0]) > _MAX_PARAM:
            raise BadParameter(name, "too long")
        return values[0] if values else None

    def lenient(self, name: str) -> str | None:
        """The value if it is sent exactly once, else None (for echoing ``state`` on errors)."""
        try:
            return self.one(name)
        except BadParameter:
            return None

    def repeated(self) -> str | None:
        for name, values in self._values.items():
            if len([v for v in values if v != ""]) > 1:
                return name
        return None


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """A validated authorization request (what the sign-in form carries in hidden fields)."""

    client_id: str
    client: ClientReg
    redirect_uri: str
    scope: tuple[str, ...]
    state: str
    nonce: str | None
    code_challenge: str

    def hidden_fields(self) -> dict[str, str]:
        values = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scope),
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.nonce is not None:
            values["nonce"] = self.nonce
        return values


@dataclass(slots=True)
class IssuedCode:
    """A one-time authorization code and everything it is bound to."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: tuple[str, ...]
    citizen: DemoCitizen
    auth_time: int
    expires_at: int
    used: bool = False
    access_tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AccessToken:
    client_id: str
    citizen: DemoCitizen
    scope: tuple[str, ...]
    expires_at: int


# --- the provider ------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier: BASE64URL(SHA256(ASCII(verifier)))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}".lower()


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query, keeping a query it already has (§3.1.2)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _normalise_issuer(issuer: str) -> str:
    issuer = issuer.rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"issuer {issuer!r} must be an http(s) URL without query or fragment")
    return issuer


class Provider:
    """Codes, tokens and keys of one simulated provider, and the protocol rules."""

    def __init__(self, config: VneidConfig) -> None:
        self.config = config
        self.issuer = _normalise_issuer(config.issuer)
        self.keys = SigningKeys(config.signing_key)
        self.citizens = {c.personal_id: c for c in config.citizens}
        if len(self.citizens) != len(config.citizens):
            raise ValueError("two demo citizens share a personal id")
        if not config.clients:
            raise ValueError("register at least one client")
        self.codes: dict[str, IssuedCode] = {}
        self.tokens: dict[str, AccessToken] = {}

    @property
    def faults(self) -> Faults:
        return self.config.faults

    def now(self) -> int:
        return int(self.config.clock().timestamp())

    def subject(self, citizen: DemoCitizen) -> str:
        """The opaque, stable ``sub`` of a citizen: never the personal id itself."""
        mac = hmac.new(
            self.config.subject_secret.encode(), citizen.personal_id.encode(), hashlib.sha256
        )
        return _b64url(mac.digest())

    def url(self, path: str) -> str:
        return self.issuer + path

    # -- authorization endpoint --

    def authorization_request(self, params: Params) -> AuthRequest:
        """Validate an authorization request in the order RFC 6749 §4.1.2.1 requires."""
        try:
            client_id = params.one("client_id")
        except BadParameter:
            client_id = None
        if client_id is None:
            raise ShowError(
                "invalid_request",
                "Thiếu mã ứng dụng (client_id) hoặc mã này bị lặp lại.",
                "The client_id parameter is missing or repeated.",
            )
        client = self.config.clients.get(client_id)
        if client is None:
            raise ShowError(
                "invalid_client",
                f"Ứng dụng “{client_id}” chưa đăng ký với VNeID.",
                f"Client {client_id!r} is not registered.",
            )
        try:
            redirect_uri = params.one("redirect_uri")
        except BadParameter:
            redirect_uri = None
        if redirect_uri is None or redirect_uri not in client.redirect_uris:
            # Never redirect to a URI we cannot vouch for: it would make us an open redirector.
            raise ShowError(
                "invalid_request",
                "Địa chỉ quay lại (redirect_uri) không khớp với địa chỉ đã đăng ký của ứng dụng.",
                "The redirect_uri is missing or does not exactly match a registered one.",
            )
        state = params.lenient("state")

        def fail(error: str, description: str) -> RedirectError:
            return RedirectError(redirect_uri, state, error, description)

        try:
            repeated = params.repeated()
            if repeated is not None:
                raise fail("invalid_request", f"parameter {repeated} is repeated")
            response_type = params.one("response_type")
            scope = tuple((params.one("scope") or "").split())
            nonce = params.one("nonce")
            challenge = params.one("code_challenge")
            method = params.one("code_challenge_method")
            prompt = (params.one("prompt") or "").split()
            request_object = params.one("request")
            request_uri = params.one("request_uri")
        except BadParameter as exc:
            raise fail("invalid_request", str(exc)) from exc
        if response_type is None:
            raise fail("invalid_request", "response_type is required")
        if response_type != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        if "openid" not in scope:
            raise fail("invalid_scope", "scope must contain openid")
        unknown = [s for s in scope if s not in SCOPES]
        if unknown:
            raise fail("invalid_scope", "unsupported scope: " + " ".join(unknown))
        if state is None:
            # Not required by RFC 6749, but a client without state has no CSRF protection:
            # the simulator refuses so that vnehr cannot forget it.
            raise fail("invalid_request", "state is required")
        if challenge is None:
            raise fail("invalid_request", "PKCE is required: send code_challenge (S256)")
        if method is None:
            raise fail("invalid_request", "code_challenge_method=S256 is required")
        if method != "S256":
            raise fail("invalid_request", "transform algorithm not supported: use S256")
        if not _CHALLENGE.match(challenge):
            raise fail("invalid_request", "code_challenge is not a base64url SHA-256 digest")
        if request_object is not None:
            raise fail("request_not_supported", "request objects are not supported")
        if request_uri is not None:
            raise fail("request_uri_not_supported", "request_uri is not supported")
        if "none" in prompt:
            raise fail("login_required", "the simulator keeps no session: sign-in is needed")
        return AuthRequest(client_id, client, redirect_uri, scope, state, nonce, challenge)

    def issue_code(self, request: AuthRequest, citizen: DemoCitizen) -> str:
        now = self.now()
        self.forget_expired(now)
        code = secrets.token_urlsafe(32)
        self.codes[code] = IssuedCode(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            scope=request.scope,
            citizen=citizen,
            auth_time=now,
            expires_at=now + self.config.code_ttl_seconds,
        )
        return code

    def forget_expired(self, now: int) -> None:
        # Used codes are kept until they expire so that a replay is recognised as such.
        for code in [c for c, v in self.codes.items() if v.expires_at <= now]:
            del self.codes[code]
        for token in [t for t, v in self.tokens.items() if v.expires_at <= now]:
            del self.tokens[token]

    # -- token endpoint --

    def authenticate_client(self, authorization: str | None, params: Params) -> str:
        """The client id, after ``client_secret_basic`` or ``client_secret_post`` (§2.3.1)."""
        try:
            form_id, form_secret = params.one("client_id"), params.one("client_secret")
        except BadParameter as exc:
            raise TokenError("invalid_request", str(exc)) from exc
        if authorization is not None and authorization[:6].lower() == "basic ":
            if form_secret is not None:
                raise TokenError("invalid_request", "use one client authentication method only")
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise TokenError("invalid_client", "malformed Basic credentials") from exc
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                raise TokenError("invalid_client", "malformed Basic credentials")
            # Both halves are form-urlencoded before Basic encoding (RFC 6749 §2.3.1).
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if form_id is not None and form_id != client_id:
                raise TokenError("invalid_request", "client_id differs from the Basic user")
        elif form_id is not None and form_secret is not None:
            client_id, secret = form_id, form_secret
        else:
            raise TokenError("invalid_client", "client authentication is required")
        client = self.config.clients.get(client_id)
        # Compare even for an unknown client so timing does not reveal which ids exist.
        expected = client.secret if client is not None else secrets.token_urlsafe(16)
        if not hmac.compare_digest(expected.encode(), secret.encode()) or client is None:
            raise TokenError("invalid_client", "unknown client or wrong secret")
        return client_id

    def exchange_code(self, client_id: str, params: Params) -> dict[str, Any]:
        """Redeem an authorization code for tokens (RFC 6749 §4.1.3, RFC 7636 §4.6)."""
        try:
            grant_type = params.one("grant_type")
            code = params.one("code")
            redirect_uri = params.one("redirect_uri")
            verifier = params.one("code_verifier")
        except BadParameter as exc:
            raise TokenError("invalid_request", str(exc)) from exc
        if grant_type is None:
            raise TokenError("invalid_request", "grant_type is required")
        if grant_type != "authorization_code":
            raise TokenError("unsupported_grant_type", "only authorization_code is supported")
        if code is None:
            raise TokenError("invalid_request", "code is required")
        now = self.now()
        record = self.codes.get(code)
        if record is None or record.client_id != client_id:
            raise TokenError("invalid_grant", "unknown or expired authorization code")
        if record.used:
            # A replayed code may be stolen: revoke what it gave (RFC 6749 §4.1.2).
            for token in record.access_tokens:
                self.tokens.pop(token, None)
            raise TokenError("invalid_grant", "authorization code already used")
        # Consumed by the first attempt whatever its outcome, so a verifier cannot be guessed.
        record.used = True
        if now >= record.expires_at:
            raise TokenError("invalid_grant", "authorization code expired")
        if redirect_uri != record.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri differs from the authorization")
        if verifier is None:
            raise TokenError("invalid_request", "code_verifier is required (PKCE)")
        if not _VERIFIER.match(verifier) or not hmac.compare_digest(
            s256(verifier), record.code_challenge
        ):
            raise TokenError("invalid_grant", "PKCE verification failed")

        access_token = secrets.token_urlsafe(32)
        self.forget_expired(now)
        self.tokens[access_token] = AccessToken(
            client_id, record.citizen, record.scope, now + self.config.token_ttl_seconds
        )
        record.access_tokens.append(access_token)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.config.token_ttl_seconds,
            "id_token": self.id_token(record, access_token, now),
            "scope": " ".join(record.scope),
        }

    def user_claims(self, citizen: DemoCitizen, scope: Iterable[str]) -> dict[str, Any]:
        """``sub``, ``acr`` and the claims the granted scopes release (OIDC Core §5.4)."""
        claims: dict[str, Any] = {"sub": self.subject(citizen), "acr": citizen.acr}
        if "profile" in scope:
            claims |= {
                "name": citizen.full_name,
                "family_name": citizen.family_name,
                "given_name": citizen.given_name,
                "birthdate": citizen.birthdate.isoformat(),
                "gender": citizen.gender,
            }
        if "vneid" in scope:
            claims |= {
                "personal_id": citizen.personal_id,
                "assurance_level": citizen.assurance_level,
            }
            if citizen.phone is not None:
                claims["phone_number"] = citizen.phone
        return claims

    def id_token(self, record: IssuedCode, access_token: str, now: int) -> str:
        faults = self.faults
        ttl = self.config.token_ttl_seconds
        iat, exp = (now - ttl - 120, now - 120) if faults.expired_id_token else (now, now + ttl)
        claims: dict[str, Any] = {
            "iss": self.issuer + "/other" if faults.wrong_issuer else self.issuer,
            "aud": "another-client" if faults.wrong_audience else record.client_id,
            "iat": iat,
            "exp": exp,
            "auth_time": min(record.auth_time, iat),
            # OIDC Core §3.3.2.11: left half of the SHA-256 of the access token.
            "at_hash": _b64url(hashlib.sha256(access_token.encode()).digest()[:16]),
        }
        if record.nonce is not None:
            claims["nonce"] = record.nonce + "-tampered" if faults.wrong_nonce else record.nonce
        claims |= self.user_claims(record.citizen, record.scope)
        return self.keys.sign(claims, forged=faults.bad_signature)

    # -- userinfo and logout --

    def bearer(self, authorization: str | None) -> AccessToken:
        if authorization is None or authorization[:7].lower() != "bearer ":
            raise NoCredentials
        token = self.tokens.get(authorization[7:].strip())
        if token is None or token.expires_at <= self.now():
            raise TokenError("invalid_token", "unknown, expired or revoked access token")
        return token

    def end_session(self, params: Params) -> tuple[str | None, str | None]:
        """Check a logout request; the URI to go back to (if any) and the state to echo."""
        try:
            target = params.one("post_logout_redirect_uri")
            client_id = params.one("client_id")
            hint = params.one("id_token_hint")
            state = params.one("state")
        except BadParameter as exc:
            raise ShowError(
                "invalid_request",
                f"Tham số {exc.name} bị lặp lại hoặc quá dài.",
                f"Parameter {exc.name} is {exc.reason}.",
            ) from exc
        hinted: tuple[str, str] | None = None
        if hint is not None:
            try:
                # An expired ID token is a normal hint (OIDC RP-Initiated Logout §2): only the
                # signature and the issuer matter, so the claims are not validated for time.
                token = jwt.decode(hint, KeySet([self.keys.key]), algorithms=[ALGORITHM])
            except (JoseError, ValueError) as exc:
                raise ShowError(
                    "invalid_request",
                    "id_token_hint không phải ID token do VNeID cấp.",
                    "The id_token_hint was not issued by this provider.",
                ) from exc
            if token.claims.get("iss") != self.issuer:
                raise ShowError(
                    "invalid_request",
                    "id_token_hint không phải ID token do VNeID cấp.",
                    "The id_token_hint was not issued by this provider.",
                )
            hinted = (str(token.claims.get("aud")), str(token.claims.get("sub")))
            client_id = client_id or hinted[0]
        if client_id is not None and client_id not in self.config.clients:
            raise ShowError(
                "invalid_client",
                f"Ứng dụng “{client_id}” chưa đăng ký với VNeID.",
                f"Client {client_id!r} is not registered.",
            )
        if target is not None:
            clients = (
                [self.config.clients[client_id]]
                if client_id is not None
                else list(self.config.clients.values())
            )
            origins = {origin(uri) for c in clients for uri in c.redirect_uris}
            # The origin must be followed by "/" or the end: "http://a.vn.evil" is not "http://a.vn".
            if not any(target == o or target.startswith(o + "/") for o in origins):
                raise ShowError(
                    "invalid_request",
                    "Địa chỉ quay lại sau khi đăng xuất chưa được đăng ký.",
                    "The post_logout_redirect_uri is not registered.",
                )
        if hinted is not None:
            # Signing out ends what the client obtained for this citizen.
            for key, token_record in list(self.tokens.items()):
                if (token_record.client_id, self.subject(token_record.citizen)) == hinted:
                    del self.tokens[key]
        return target, state

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "userinfo_endpoint": self.url("/userinfo"),
            "jwks_uri": self.url("/jwks"),
            "end_session_endpoint": self.url("/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": list(SCOPES),
            "claims_supported": list(CLAIMS),
            "acr_values_supported": ["vneid:level1", "vneid:level2"],
            "prompt_values_supported": ["none", "login"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "ui_locales_supported": ["vi", "en"],
        }
