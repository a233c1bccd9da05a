"""HTTP face of the simulated VNeID: routes, response shapes and the fault controls.

The protocol rules (what is valid, what a code is bound to, which claims are released) are in
``protocol``; this module turns them into responses and keeps the routes documented.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import asdict, fields
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vnehr.sim.vneid import pages
from vnehr.sim.vneid.config import Faults, VneidConfig
from vnehr.sim.vneid.protocol import (
    NoCredentials,
    Params,
    Provider,
    RedirectError,
    ShowError,
    TokenError,
    Unavailable,
    with_query,
)

# OAuth error codes are lower-case words joined by underscores.
_ERROR_CODE = r"^[a-z][a-z_]{0,63}$"
# RFC 6749 §5.1: token responses (and anything carrying codes or claims) must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_PAGE_HEADERS = {
    **_NO_STORE,
    # The sign-in page must not be framed (clickjacking) and loads nothing from elsewhere.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class FaultsBody(BaseModel):
    """The injected faults as JSON; ``PUT`` replaces all of them (absent fields reset)."""

    model_config = ConfigDict(extra="forbid")

    token_error: str | None = Field(default=None, pattern=_ERROR_CODE)
    token_delay_seconds: float = Field(default=0.0, ge=0, le=120)
    authorize_error: str | None = Field(default=None, pattern=_ERROR_CODE)
    bad_signature: bool = False
    expired_id_token: bool = False
    wrong_audience: bool = False
    wrong_issuer: bool = False
    wrong_nonce: bool = False
    unavailable: bool = False
    push_no_phone: list[str] = Field(default_factory=list, max_length=1000)
    push_status: int | None = Field(default=None, ge=300, le=599)


def _token_error_response(error: str, description: str) -> JSONResponse:
    """RFC 6749 §5.2: 400 with a JSON body, 401 and a challenge for ``invalid_client``."""
    status = {"invalid_client": 401, "server_error": 500, "temporarily_unavailable": 503}
    headers = dict(_NO_STORE)
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="vneid-sim"'
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status.get(error, 400),
        headers=headers,
    )


def _page(html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)


def create_app(config: VneidConfig) -> FastAPI:
    """A standalone ASGI app of the simulated VNeID; mount it at the path of ``config.issuer``.

    Every path is relative to the mount point. The app keeps its codes and tokens in memory,
    and reads ``config.faults`` on every request, so changing that object (or
    ``PUT /_sim/faults``) takes effect at once.
    """
    provider = Provider(config)

    async def api_available() -> None:
        if config.faults.unavailable:
            raise Unavailable(html=False)

    async def browser_available() -> None:
        if config.faults.unavailable:
            raise Unavailable(html=True)

    api = APIRouter(dependencies=[Depends(api_available)], tags=["VNeID (simulator)"])
    browser = APIRouter(dependencies=[Depends(browser_available)], tags=["VNeID (simulator)"])
    sim = APIRouter(prefix="/_sim", tags=["simulator controls"])

    @api.get("/.well-known/openid-configuration")
    async def discovery() -> JSONResponse:
        """OpenID Provider metadata (OpenID Connect Discovery 1.0 §3)."""
        return JSONResponse(provider.discovery())

    @api.get("/jwks")
    async def jwks() -> JSONResponse:
        """The public key set that verifies ID tokens (ES256)."""
        return JSONResponse(provider.keys.jwks())

    def redirect_error(exc: RedirectError, status_code: int) -> RedirectResponse:
        return RedirectResponse(
            with_query(
                exc.redirect_uri,
                {
                    "error": exc.error,
                    "error_description": exc.description,
                    "state": exc.state,
                    "iss": provider.issuer,
                },
            ),
            status_code=status_code,
            headers=_NO_STORE,
        )

    def show_error(exc: ShowError) -> HTMLResponse:
        return _page(pages.error_page(exc.vi, exc.en, error=exc.error), status_code=400)

    @browser.get("/authorize", response_class=HTMLResponse)
    async def authorize_page(request: Request) -> Response:
        """Validate the authorization request and show the sign-in page with demo citizens.

        An unknown client or a redirect URI that is not registered is shown as an error page;
        any other error goes back to the client's redirect URI (RFC 6749 §4.1.2.1).
        """
        params = Params(request.query_params.multi_items())
        try:
            auth = provider.authorization_request(params)
        except ShowError as exc:
            return show_error(exc)
        except RedirectError as exc:
            return redirect_error(exc, 302)
        return _page(
            pages.login_page(
                client_name=auth.client.name or auth.client_id,
                scopes=auth.scope,
                params=auth.hidden_fields(),
                citizens=list(provider.citizens.values()),
            )
        )

    @browser.post("/authorize", response_class=HTMLResponse)
    async def authorize_choice(request: Request) -> Response:
        """The citizen's choice: a demo citizen (``personal_id``) or ``action=deny``.

        The request parameters come back in hidden fields and are validated again, since
        the browser could have changed them. Success is a 303 to the redirect URI with a
        one-time ``code``, ``state`` and ``iss``.
        """
        form = await request.form()
        params = Params(form.multi_items())
        try:
            auth = provider.authorization_request(params)
        except ShowError as exc:
            return show_error(exc)
        except RedirectError as exc:
            return redirect_error(exc, 303)

        def back(error: str, description: str) -> RedirectResponse:
            return redirect_error(
                RedirectError(auth.redirect_uri, auth.state, error, description), 303
            )

        action, personal_id = params.lenient("action"), params.lenient("personal_id")
        if action == "deny":
            return back("access_denied", "the citizen refused to sign in")
        if config.faults.authorize_error:
            return back(config.faults.authorize_error, "injected fault")
        citizen = provider.citizens.get(personal_id or "")
        if citizen is None:
            return back("invalid_request", "no demo citizen was chosen")
        code = provider.issue_code(auth, citizen)
        target = with_query(
            auth.redirect_uri, {"code": code, "state": auth.state, "iss": provider.issuer}
        )
        return RedirectResponse(target, status_code=303, headers=_NO_STORE)

    @api.post("/token")
    async def token(request: Request) -> JSONResponse:
        """Exchange an authorization code and its PKCE verifier for an ID and access token.

        Clients authenticate with HTTP Basic or ``client_id`` + ``client_secret`` in the form.
        Errors are RFC 6749 §5.2 JSON with ``Cache-Control: no-store``.
        """
        faults = config.faults
        if faults.token_delay_seconds > 0:
            await asyncio.sleep(faults.token_delay_seconds)
        if faults.token_error:
            return _token_error_response(faults.token_error, "injected fault")
        params = Params((await request.form()).multi_items())
        try:
            client_id = provider.authenticate_client(request.headers.get("authorization"), params)
            body = provider.exchange_code(client_id, params)
        except TokenError as exc:
            return _token_error_response(exc.error, exc.description)
        return JSONResponse(body, headers=_NO_STORE)

    @api.api_route("/userinfo", methods=["GET", "POST"])
    async def userinfo(request: Request) -> JSONResponse:
        """Claims about the citizen, for ``Authorization: Bearer <access_token>``."""
        challenge = 'Bearer realm="vneid-sim"'
        try:
            token = provider.bearer(request.headers.get("authorization"))
        except NoCredentials:
            return JSONResponse(
                {}, status_code=401, headers={**_NO_STORE, "WWW-Authenticate": challenge}
            )
        except TokenError as exc:
            challenge += f', error="{exc.error}", error_description="{exc.description}"'
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description},
                status_code=401,
                headers={**_NO_STORE, "WWW-Authenticate": challenge},
            )
        return JSONResponse(provider.user_claims(token.citizen, token.scope), headers=_NO_STORE)

    @browser.api_route("/logout", methods=["GET", "POST"], response_class=HTMLResponse)
    async def logout(request: Request) -> Response:
        """RP-initiated logout: back to a ``post_logout_redirect_uri`` or a "signed out" page.

        The URI must be on the origin of one of the client's registered redirect URIs (of any
        client when neither ``client_id`` nor ``id_token_hint`` names one).
        """
        if request.method == "POST":
            params = Params((await request.form()).multi_items())
        else:
            params = Params(request.query_params.multi_items())
        try:
            target, state = provider.end_session(params)
        except ShowError as exc:
            return show_error(exc)
        if target is None:
            return _page(pages.logged_out_page())
        return RedirectResponse(with_query(target, {"state": state}), status_code=303)

    pushed: list[dict[str, Any]] = []

    @api.post("/push")
    async def push(request: Request) -> Response:
        """The app's push service: a signed message for a citizen's phone (kept for
        ``GET /_sim/pushed``)."""
        raw = await request.body()
        if len(raw) > 65_536 or not config.push_secret:
            return JSONResponse({"error": "refused"}, status_code=400)
        expected = "sha256=" + hmac.new(config.push_secret.encode(), raw,
                                        hashlib.sha256).hexdigest()  # fmt: skip
        # one signature per key the sender holds while keys are rotated: one must be ours
        given = request.headers.get("x-vnehr-signature", "").split(",")[:8]
        if not any(hmac.compare_digest(expected, part.strip()) for part in given):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        try:
            message = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        faults = config.faults
        if faults.push_status is not None:
            return JSONResponse({"error": "injected fault"}, status_code=faults.push_status)
        recipient = message.get("personal_id") if isinstance(message, dict) else None
        if not isinstance(recipient, str) or not recipient:
            return JSONResponse({"error": "no recipient"}, status_code=400)
        if recipient in faults.push_no_phone:
            return JSONResponse({"error": "recipient_unknown",
                                 "message": "no phone registered"}, status_code=404)  # fmt: skip
        pushed.append(message)
        return JSONResponse({"accepted": True}, status_code=202)

    @sim.get("/pushed")
    async def get_pushed() -> list[dict[str, Any]]:
        """Every message pushed so far, oldest first."""
        return pushed

    @sim.get("/faults")
    async def get_faults() -> FaultsBody:
        """The faults injected now."""
        return FaultsBody(**asdict(config.faults))

    @sim.put("/faults")
    async def put_faults(body: FaultsBody) -> FaultsBody:
        """Replace every injected fault (fields left out go back to their default)."""
        # Mutate the object in place: whoever holds ``config.faults`` sees the change.
        for item in fields(Faults):
            setattr(config.faults, item.name, getattr(body, item.name))
        return FaultsBody(**asdict(config.faults))

    app = FastAPI(
        title="VNeID simulator (OpenID Connect)",
        description="Mô phỏng nhà cung cấp định danh VNeID cho phát triển và kiểm thử.",
        version="1",
    )

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> Response:
        headers = {**_NO_STORE, "Retry-After": "30"}
        if exc.html:
            return HTMLResponse(pages.unavailable_page(), status_code=503, headers=headers)
        return JSONResponse(
            {"error": "temporarily_unavailable", "error_description": "VNeID is unavailable"},
            status_code=503,
            headers=headers,
        )

    app.include_router(api)
    app.include_router(browser)
    app.include_router(sim)
    return app
