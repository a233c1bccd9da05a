"""Who is calling: the auth subject of a request, from a portal session or a bearer token.

A person signs in through VNeID (OpenID Connect) and gets a signed, http-only session cookie
holding only who they are; their roles (grants) are read from the database on each request, so a
revoked role takes effect at once. Signing out records the session's id as ended
(``ended_session``, until the cookie would have expired): a copy of the cookie is refused too.
A facility system gets a short-lived bearer token from ``/oauth/token``; whether it may still
call (its client not revoked, its facility not suspended) is read again at most every
``CLIENT_STATUS_SECONDS``. Which contexts hold the grants and the clients is not kit's
business: the composition root hands a ``GrantLoader`` and a ``ClientCheck`` to the app.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import String, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.clock import utcnow
from vnehr.kit.db import Base, Database, UtcDateTime, hot_fetch, insert_for
from vnehr.kit.errors import VnehrError
from vnehr.kit.http import database
from vnehr.kit.settings import Settings

SESSION_COOKIE = "vnehr_session"
ACCESS_TOKEN_AUDIENCE = "vnehr-api"  # noqa: S105  (an audience name, not a secret)


class NotSignedIn(VnehrError):
    status_code = 401
    code = "AUTH-0001"


class Forbidden(VnehrError):
    status_code = 403
    code = "AUTH-0002"


class InvalidAccessToken(VnehrError):
    status_code = 401
    code = "AUTH-0003"


class FormExpired(VnehrError):
    """A form whose token is not the session's: most often a page loaded before the person
    signed in again (a new session, a new token), so the text says to reload, not "not
    allowed"; a forged form gets the same answer and changes nothing."""

    status_code = 403
    code = "AUTH-0005"


class MissingScope(VnehrError):
    status_code = 403
    code = "AUTH-0004"


class ClientRevoked(VnehrError):
    """A facility system's client was revoked: the tokens it already holds stop working too."""

    status_code = 401
    code = "AUTH-0006"


class FacilityMayNotConnect(VnehrError):
    """A facility system whose facility may not connect now (the department suspended it): the
    tokens its systems already hold stop working, for reads as for writes. 403, not 401: the
    token is the system's, and a new one would be refused too (FAC-0018)."""

    status_code = 403
    code = "AUTH-0007"
    worded: ClassVar[Mapping[str, str]] = {"status": "web.department.state"}


@dataclass(frozen=True, slots=True)
class Grant:
    """A role held by a person, possibly bounded to a facility, a province or a ward."""

    role: str
    facility_code: str | None = None
    province_code: str | None = None
    ward_code: str | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """The caller of one request."""

    kind: Literal["person", "facility_system"]
    id: str  # personal ID for a person, client id for a facility system
    name: str
    grants: tuple[Grant, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)
    facility_code: str | None = None  # the facility a system acts for
    assurance_level: int | None = None

    @property
    def label(self) -> str:
        """How the subject appears in histories and audit rows."""
        return f"{self.kind}:{self.id}"

    def grants_for(self, role: str) -> list[Grant]:
        return [g for g in self.grants if g.role == role]

    def is_department_admin(self, province_code: str | None = None) -> bool:
        return any(
            province_code is None or g.province_code in (None, province_code)
            for g in self.grants_for("department_admin")
        )

    def is_national_admin(self) -> bool:
        """A department administrator of the whole country (a grant without a province)."""
        return any(g.province_code is None for g in self.grants_for("department_admin"))

    def acts_for_facility(self, facility_code: str, roles: Iterable[str]) -> bool:
        """A staff member of the facility in one of ``roles``, or the facility's own system."""
        if self.kind == "facility_system":
            return self.facility_code == facility_code
        wanted = set(roles)
        return any(g.role in wanted and g.facility_code == facility_code for g in self.grants)


GrantLoader = Callable[[AsyncSession, str], Awaitable[tuple[Grant, ...]]]
#: Why a facility system's client (by client id) may not call now: None when it may,
#: ``REVOKED`` when its client was revoked (or is unknown), otherwise the onboarding state of
#: its facility, in which the facility may not connect (``suspended``).
ClientCheck = Callable[[Database, str], Awaitable[str | None]]
REVOKED = "revoked"


# ------------------------------------------------------------------ portal sessions


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt="vnehr.session")


def make_session_cookie(settings: Settings, claims: dict[str, Any]) -> str:
    """A signed cookie value for a signed-in person (who they are; not their roles)."""
    return _serializer(settings).dumps({**claims, "sid": uuid.uuid4().hex})


#: Session cookies already checked: (secret, cookie) -> (claims, expiry). Checking the
#: signature costs more than the rest of a health-book read; a cookie is only ever remembered
#: until its own expiry.
_checked: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
_CHECKED_MAX = 50_000


def read_session_cookie(settings: Settings, value: str) -> dict[str, Any] | None:
    secret = settings.secret_key.get_secret_value()
    now = time.time()
    known = _checked.get((secret, value))
    if known is not None and known[1] > now:
        return dict(known[0])
    max_age = settings.session_hours * 3600
    try:
        data, signed_at = _serializer(settings).loads(value, max_age=max_age, return_timestamp=True)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()
    _checked[(secret, value)] = (data, signed_at.timestamp() + max_age)
    return dict(data)


class EndedSession(Base):
    """A portal session signed out before its cookie expired. Sessions are stateless signed
    cookies (D15); this short list is the one thing the server keeps about them, each id only
    until its cookie would have expired anyway."""

    __tablename__ = "ended_session"

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


#: One primary-key lookup per request that comes with a session cookie.
_ENDED = select(EndedSession.sid).where(EndedSession.sid == bindparam("sid"))


async def end_session(session: AsyncSession, settings: Settings, data: dict[str, Any]) -> None:
    """Sign the session of ``data`` (from ``read_session_cookie``) out everywhere: its cookie,
    and any copy of it, is refused from now on. Ids whose cookies have expired are forgotten
    (their cookies are refused for their age)."""
    now = utcnow()
    await session.execute(delete(EndedSession).where(EndedSession.expires_at < now))
    ended = insert_for(session)(EndedSession).values(
        sid=str(data.get("sid", "")), expires_at=now + timedelta(hours=settings.session_hours)
    )
    await session.execute(ended.on_conflict_do_nothing())


async def _session_ended(db: Database, session: AsyncSession | None, sid: str) -> bool:
    """Whether the session was signed out: in ``session`` (a transaction already begun) when
    the request has one, else on the hot reads' pool (PostgreSQL) or a read session."""
    if session is not None:
        return bool(await hot_fetch(session, _ENDED, {"sid": sid}))
    if db.fast_reads is not None:
        return bool(await db.fast_reads.fetch_tuples(_ENDED, sid=sid))
    async with db.read_session() as own:
        return await own.scalar(_ENDED, {"sid": sid}) is not None


def session_cookie_options(settings: Settings) -> dict[str, Any]:
    return {
        "httponly": True,
        "secure": settings.cookie_secure,
        "samesite": "lax",  # lax: the VNeID redirect back to us is a top-level GET
        "max_age": settings.session_hours * 3600,
        "path": "/",
    }


def csrf_token(settings: Settings, session_data: dict[str, Any]) -> str:
    """A form token bound to one portal session (forms must echo it back)."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"csrf:{session_data.get('sid', '')}".encode(), hashlib.sha256).hexdigest()


def check_csrf(settings: Settings, request: Request, token: str) -> None:
    data = getattr(request.state, "session_data", None)
    if not data or not hmac.compare_digest(
        csrf_token(settings, data).encode(), token.encode("utf-8", "replace")
    ):
        raise FormExpired()


# ------------------------------------------------------------------ access tokens


def _token_key(settings: Settings) -> OctKey:
    return OctKey.import_key(("access-token:" + settings.secret_key.get_secret_value()).encode())


def issue_access_token(
    settings: Settings, subject: str, facility_code: str, scopes: Iterable[str]
) -> tuple[str, int]:
    """A short-lived bearer token for a facility system; returns (token, lifetime seconds)."""
    lifetime = settings.access_token_minutes * 60
    now = int(time.time())
    claims = {
        "iss": settings.public_url,
        "aud": ACCESS_TOKEN_AUDIENCE,
        "sub": subject,
        "facility": facility_code,
        "scope": " ".join(sorted(set(scopes))),
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims, _token_key(settings)), lifetime


#: Access tokens already checked: (secret, issuer, token) -> (caller, expiry). A facility
#: system sends many files with one token; each is only remembered until its own expiry.
_tokens: dict[tuple[str, str, str], tuple[Subject, float]] = {}


def read_access_token(settings: Settings, token: str) -> Subject:
    key = (settings.secret_key.get_secret_value(), settings.public_url, token)
    known = _tokens.get(key)
    if known is not None and known[1] > time.time():
        return known[0]
    subject, expiry = _check_access_token(settings, token)
    if len(_tokens) >= _CHECKED_MAX:
        _tokens.clear()
    _tokens[key] = (subject, expiry)
    return subject


#: How long a process trusts what it last read of a client's status, in seconds: a client
#: revoked, or a facility suspended, in another API process (or by SQL) is refused here at most
#: this long after. The process that revokes or suspends forgets its copy at once
#: (``forget_client``).
CLIENT_STATUS_SECONDS = 5.0
#: Client id -> (why it may not call, None when it may; when read on ``_monotonic``).
_clients: dict[str, tuple[str | None, float]] = {}
_monotonic = time.monotonic


def forget_client(client_id: str) -> None:
    """Read the client's status again at its next request (it was just revoked here, or its
    facility moved)."""
    _clients.pop(client_id, None)


async def _require_client(request: Request, subject: Subject) -> None:
    """A token's client must not have been revoked, nor its facility suspended, since the
    token was issued. One primary-key read per client and process at most every
    ``CLIENT_STATUS_SECONDS`` (not one per request: a system sends many files a minute on the
    intake's hot path)."""
    now = _monotonic()
    known = _clients.get(subject.id)
    if known is not None and now - known[1] < CLIENT_STATUS_SECONDS:
        refusal = known[0]
    else:
        check: ClientCheck = request.app.state.client_check
        refusal = await check(database(request), subject.id)
        if len(_clients) >= _CHECKED_MAX:
            _clients.clear()
        _clients[subject.id] = (refusal, now)
    if refusal == REVOKED:
        raise ClientRevoked(client_id=subject.id)
    if refusal is not None:
        raise FacilityMayNotConnect(code=subject.facility_code or "", status=refusal)


async def _bearer_subject(request: Request, settings: Settings, header: str) -> Subject:
    subject = read_access_token(settings, header[7:].strip())
    await _require_client(request, subject)
    return subject


def _check_access_token(settings: Settings, token: str) -> tuple[Subject, float]:
    try:
        decoded = jwt.decode(token, _token_key(settings), algorithms=["HS256"])
        claims = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": settings.public_url},
            aud={"essential": True, "value": ACCESS_TOKEN_AUDIENCE},
            exp={"essential": True},
            sub={"essential": True},
        )
        claims.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise InvalidAccessToken(reason=type(exc).__name__) from exc
    subject = Subject(
        kind="facility_system",
        id=str(decoded.claims["sub"]),
        name=str(decoded.claims["sub"]),
        scopes=frozenset(str(decoded.claims.get("scope", "")).split()),
        facility_code=str(decoded.claims["facility"]),
    )
    return subject, float(decoded.claims["exp"])


# ------------------------------------------------------------------ request dependencies


async def optional_subject(request: Request) -> Subject | None:
    """The caller, or None when anonymous. A bad bearer token is an error, not anonymity, and
    so is a token of a revoked client (AUTH-0006) or of a suspended facility (AUTH-0007)."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return await _bearer_subject(request, settings, header)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    data = read_session_cookie(settings, cookie)
    if data is None or "personal_id" not in data or not data.get("sid"):
        return None
    loader: GrantLoader = request.app.state.grant_loader
    personal_id = str(data["personal_id"])
    # A person needs the database: signed out? roles?
    async with database(request).read_session() as session:
        grants = await loader(session, personal_id)  # first: it opens the transaction
        if await _session_ended(database(request), session, str(data["sid"])):
            return None
    request.state.session_data = data
    return Subject(
        kind="person",
        id=personal_id,
        name=str(data.get("name", "")),
        grants=grants,
        assurance_level=data.get("assurance_level"),
    )


async def current_reader(request: Request) -> Subject:
    """The caller without their roles, for reads that never look at roles (a citizen's own
    health book): the same cookie and token checks as ``current_subject`` (a signed-out
    session included: one lookup by primary key, on the hot reads' pool), without the roles."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return await _bearer_subject(request, settings, header)
    cookie = request.cookies.get(SESSION_COOKIE)
    data = read_session_cookie(settings, cookie) if cookie else None
    if data is None or "personal_id" not in data or not data.get("sid"):
        raise NotSignedIn()
    if await _session_ended(database(request), None, str(data["sid"])):
        raise NotSignedIn()
    request.state.session_data = data
    return Subject(
        kind="person",
        id=str(data["personal_id"]),
        name=str(data.get("name", "")),
        assurance_level=data.get("assurance_level"),
    )


CurrentReader = Annotated[Subject, Depends(current_reader)]


async def current_subject(
    subject: Annotated[Subject | None, Depends(optional_subject)],
) -> Subject:
    """The caller; 401 (AUTH-0001) when nobody is signed in."""
    if subject is None:
        raise NotSignedIn()
    return subject


OptionalSubject = Annotated[Subject | None, Depends(optional_subject)]
CurrentSubject = Annotated[Subject, Depends(current_subject)]


def require_scope(subject: Subject, scope: str) -> None:
    """Facility systems need the scope; people are checked by their grants instead."""
    if subject.kind == "facility_system" and scope not in subject.scopes:
        raise MissingScope(scope=scope)
