"""OpenID Connect relying party for VNeID sign-in: authorization code flow with PKCE.

Works with the built-in simulator (``vnehr.sim.vneid``) and any standard provider: everything
comes from the issuer's discovery document. ID tokens are checked for signature (JWKS), issuer,
audience, expiry and nonce before any claim is used.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from vnehr.identity.accounts_errors import ProviderUnavailable, SignInFailed

METADATA_TTL = 600.0


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the browser carries (signed) between the redirect out and the callback."""

    state: str
    nonce: str
    verifier: str
    return_to: str

    @classmethod
    def new(cls, return_to: str) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            return_to=return_to,
        )

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class OidcClient:
    """Talks to one OpenID provider over ``http`` (an ``httpx.AsyncClient`` owned by the app)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
    ) -> None:
        self.http = http
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: KeySet | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, timeout=10)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(reason=type(exc).__name__) from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(reason=f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise SignInFailed(reason=f"{url} answered HTTP {response.status_code}")
        data = response.json()
        if not isinstance(data, dict):
            raise SignInFailed(reason=f"{url} did not answer a JSON object")
        return data

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, cached for ten minutes."""
        if self._metadata and time.monotonic() - self._metadata[0] < METADATA_TTL:
            return self._metadata[1]
        data = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if data.get("issuer", "").rstrip("/") != self.issuer:
            raise SignInFailed(reason="discovery document names another issuer")
        self._metadata = (time.monotonic(), data)
        return data

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            jwks = await self._get_json((await self.metadata())["jwks_uri"])
            self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        return self._keys

    async def authorization_url(self, login: PendingLogin) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile vneid",
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": login.challenge,
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urlencode(query)}"

    async def logout_url(self, post_logout_redirect_uri: str) -> str | None:
        try:
            endpoint = (await self.metadata()).get("end_session_endpoint")
        except (ProviderUnavailable, SignInFailed):
            return None
        if not endpoint:
            return None
        query = urlencode(
            {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": self.client_id}
        )
        return f"{endpoint}?{query}"

    async def finish(self, login: PendingLogin, *, code: str, state: str) -> dict[str, Any]:
        """Exchange the code (with the PKCE verifier) and return the verified ID-token claims."""
        if not secrets.compare_digest(state.encode("utf-8"), login.state.encode("utf-8")):
            raise SignInFailed(reason="state does not match this browser's sign-in")
        meta = await self.metadata()
        try:
            response = await self.http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": login.verifier,
                },
                auth=(self.client_id, self.client_secret),
                timeout=10,
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(reason=type(exc).__name__) from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(reason=f"HTTP {response.status_code}")
        body = response.json() if response.content else {}
        if response.status_code != 200 or "id_token" not in body:
            raise SignInFailed(reason=str(body.get("error", f"HTTP {response.status_code}")))
        return await self._verify(str(body["id_token"]), login.nonce)

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            token = jwt.decode(
                id_token, await self._key_set(), algorithms=["ES256", "RS256", "PS256", "Ed25519"]
            )
        except (JoseError, ValueError):
            # The provider may have rotated its keys: fetch them once more before refusing.
            try:
                token = jwt.decode(
                    id_token,
                    await self._key_set(refresh=True),
                    algorithms=["ES256", "RS256", "PS256", "Ed25519"],
                )
            except (JoseError, ValueError) as exc:
                raise SignInFailed(reason="ID token signature does not verify") from exc
        registry = jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise SignInFailed(reason=f"ID token: {exc.description}") from exc
        return dict(token.claims)
