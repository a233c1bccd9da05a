"""HTTP routes of the facilities context: registry, onboarding, practitioners, clients,
certificates (``/api/v1/facilities``) and the OAuth2 token endpoint (``/oauth/token``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import JSONResponse

from vnehr.facilities import service
from vnehr.facilities.errors import (
    GrantTypeUnsupported,
    OAuthError,
    TokenRequestInvalid,
)
from vnehr.facilities.models import ApiClient
from vnehr.facilities.models import Practitioner as PractitionerRow
from vnehr.facilities.models import PractitionerRole as PractitionerRoleRow
from vnehr.facilities.schemas import (
    Certificate,
    CertificateCreate,
    Client,
    ClientCreate,
    Facility,
    FacilityCreate,
    OnboardingEvent,
    Practitioner,
    PractitionerCreate,
    ReceiverSearch,
    State,
    TokenResponse,
    Transition,
)
from vnehr.kit.auth import CurrentSubject, issue_access_token
from vnehr.kit.http import ReadSession, WriteSession, error_responses
from vnehr.kit.settings import Settings

router = APIRouter(prefix="/api/v1/facilities", tags=["facilities"])
oauth_router = APIRouter(tags=["oauth"])

Code = Annotated[str, Path(pattern=r"^\d{5}$", description="Facility code (mã cơ sở KCB)")]
AUTH_ERRORS = error_responses(401, 403, 404, 422)


def token_endpoint(settings: Settings) -> str:
    return f"{settings.public_url}/oauth/token"


def _client(client: ApiClient, settings: Settings) -> Client:
    return Client(
        client_id=client.client_id,
        facility_code=client.facility_code,
        name=client.name,
        scopes=client.scopes.split(),
        status=client.status,
        created_at=client.created_at,
        token_endpoint=token_endpoint(settings),
    )


@router.post(
    "", response_model=Facility, status_code=201, responses=error_responses(401, 403, 409, 422)
)
async def register_facility(
    session: WriteSession, subject: CurrentSubject, body: FacilityCreate
) -> Facility:
    """Issue a facility code (province + next free 3-digit sequence) and register the facility,
    or register a code it already has. Health-department administrators only."""
    return Facility.model_validate(await service.register(session, subject, body))


@router.get("", response_model=list[Facility], responses=error_responses(401, 422))
async def list_facilities(
    session: ReadSession,
    subject: CurrentSubject,
    province: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
    status: State | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    after: Annotated[str | None, Query(pattern=r"^\d{5}$", description="Last code seen")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Facility]:
    """Facilities the caller may see, in code order (page with `after`)."""
    rows = await service.listing(
        session,
        subject,
        province=province,
        status=status.value if status else None,
        q=q,
        after=after,
        limit=limit,
    )
    return [Facility.model_validate(row) for row in rows]


@router.get("/search", response_model=ReceiverSearch, responses=error_responses(401, 422))
async def search_receivers(
    session: ReadSession,
    subject: CurrentSubject,
    q: Annotated[str, Query(max_length=200, description="Name, ward or code, accents or not")] = "",
) -> ReceiverSearch:
    """The facilities a record may be shared with (connected to the exchange) matching every
    word of `q` (at least 2 letters or digits, FAC-0028), by name, address, ward (today's name,
    or the one before the 2025 reform, its district too) or code, ignoring case and accents
    ("benh vien bach mai"), in name order, at most 20: `more` says more match. Public facts
    only (no state, no history); anyone signed in."""
    found, more = await service.receivers(session, q)
    return ReceiverSearch(items=found, more=more)


@router.get("/{code}", response_model=Facility, responses=AUTH_ERRORS)
async def get_facility(session: ReadSession, subject: CurrentSubject, code: Code) -> Facility:
    """One facility (its department, its own staff and systems only)."""
    return Facility.model_validate(await service.get(session, subject, code))


@router.post(
    "/{code}/onboarding",
    response_model=Facility,
    responses={**AUTH_ERRORS, **error_responses(409, 422)},
)
async def move_onboarding(
    session: WriteSession, subject: CurrentSubject, code: Code, body: Transition
) -> Facility:
    """Move a facility along registered → trained → certificate_registered → test_passed →
    connected, suspend it, or reinstate it. Every change records who and when. A state needs
    its fact: a usable signing certificate for certificate_registered (FAC-0008; registering
    it moves a trained facility on by itself), a test file accepted for test_passed (FAC-0009;
    the first one moves the facility on by itself). ``override`` with a reason moves without
    the fact, audited."""
    return Facility.model_validate(
        await service.move(
            session, subject, code, body.to_state, body.reason, override=body.override
        )
    )


@router.get("/{code}/onboarding", response_model=list[OnboardingEvent], responses=AUTH_ERRORS)
async def onboarding_history(
    session: ReadSession, subject: CurrentSubject, code: Code
) -> list[OnboardingEvent]:
    """Every onboarding change of a facility, oldest first."""
    return [
        OnboardingEvent.model_validate(e) for e in await service.history(session, subject, code)
    ]


@router.post(
    "/{code}/practitioners",
    response_model=Practitioner,
    status_code=201,
    responses={**AUTH_ERRORS, **error_responses(409)},
)
async def add_practitioner(
    session: WriteSession, subject: CurrentSubject, code: Code, body: PractitionerCreate
) -> Practitioner:
    """Link a practitioner (national id or CCHN number) to the facility."""
    person, role = await service.add_practitioner(session, subject, code, body)
    return _practitioner(person, role)


@router.get("/{code}/practitioners", response_model=list[Practitioner], responses=AUTH_ERRORS)
async def list_practitioners(
    session: ReadSession, subject: CurrentSubject, code: Code
) -> list[Practitioner]:
    """Practitioners working at the facility."""
    return [_practitioner(p, r) for p, r in await service.practitioners(session, subject, code)]


def _practitioner(person: PractitionerRow, role: PractitionerRoleRow) -> Practitioner:
    return Practitioner(
        practitioner_id=person.practitioner_id,
        full_name=person.full_name,
        personal_id=person.personal_id,
        title=person.title,
        role=role.role,
        facility_code=role.facility_code,
        valid_from=role.valid_from,
        valid_to=role.valid_to,
    )


@router.post("/{code}/clients", response_model=Client, status_code=201, responses=AUTH_ERRORS)
async def add_client(
    request: Request, session: WriteSession, subject: CurrentSubject, code: Code, body: ClientCreate
) -> Client:
    """Register a facility system (HIS) with its public keys (JWKS) and allowed scopes. It then
    gets tokens at `/oauth/token` with a signed client assertion (`private_key_jwt`)."""
    client = await service.add_client(session, subject, code, body)
    return _client(client, request.app.state.settings)


@router.get("/{code}/clients", response_model=list[Client], responses=AUTH_ERRORS)
async def list_clients(
    request: Request, session: ReadSession, subject: CurrentSubject, code: Code
) -> list[Client]:
    """The facility's registered systems."""
    settings = request.app.state.settings
    return [_client(c, settings) for c in await service.clients(session, subject, code)]


@router.post("/{code}/clients/{client_id}/revoke", response_model=Client, responses=AUTH_ERRORS)
async def revoke_client(
    request: Request,
    session: WriteSession,
    subject: CurrentSubject,
    code: Code,
    client_id: Annotated[str, Path(pattern=service.CLIENT_ID_PATTERN)],
) -> Client:
    """Revoke a system: it gets no new tokens, and the tokens it holds are refused
    (AUTH-0006): by this API process from the next request, by the others within
    ``CLIENT_STATUS_SECONDS`` (5 s)."""
    client = await service.revoke_client(session, subject, code, client_id)
    return _client(client, request.app.state.settings)


@router.post(
    "/{code}/certificates",
    response_model=Certificate,
    status_code=201,
    responses={**AUTH_ERRORS, **error_responses(409)},
)
async def add_certificate(
    session: WriteSession, subject: CurrentSubject, code: Code, body: CertificateCreate
) -> Certificate:
    """Register the facility's X.509 signing certificate (for signed XML files)."""
    return Certificate.model_validate(
        await service.add_certificate(session, subject, code, body.pem)
    )


@router.post(
    "/{code}/certificates/{certificate_id}/revoke",
    response_model=Certificate,
    responses={**AUTH_ERRORS, **error_responses(404)},
)
async def revoke_certificate(
    session: WriteSession, subject: CurrentSubject, code: Code, certificate_id: int
) -> Certificate:
    """Revoke a signing certificate (key lost or leaked, or replaced): files signed with it
    are refused from now on."""
    return Certificate.model_validate(
        await service.revoke_certificate(session, subject, code, certificate_id)
    )


@router.get("/{code}/certificates", response_model=list[Certificate], responses=AUTH_ERRORS)
async def list_certificates(
    session: ReadSession, subject: CurrentSubject, code: Code
) -> list[Certificate]:
    """The facility's registered certificates."""
    return [
        Certificate.model_validate(c) for c in await service.certificates(session, subject, code)
    ]


@oauth_router.post(
    "/oauth/token",
    response_model=TokenResponse,
    responses=error_responses(400, 401),
)
async def token(
    request: Request,
    session: WriteSession,
    grant_type: Annotated[str, Form()] = "",
    client_assertion_type: Annotated[str, Form()] = "",
    client_assertion: Annotated[str, Form(max_length=20000)] = "",
    scope: Annotated[str, Form(max_length=1000)] = "",
) -> JSONResponse:
    """OAuth2 client credentials with a signed JWT assertion (RFC 7523, `private_key_jwt`).
    The assertion: `iss` = `sub` = client id, `aud` = this endpoint's URL, `exp` at most 5
    minutes ahead, a unique `jti`; signed with a key of the registered JWKS. Errors carry the
    RFC 6749 `error` field besides vnehr's code."""
    settings: Settings = request.app.state.settings
    try:
        if grant_type != "client_credentials":
            raise GrantTypeUnsupported(grant_type=grant_type or "(none)")
        if client_assertion_type != service.ASSERTION_TYPE or not client_assertion:
            raise TokenRequestInvalid(
                reason=f"client_assertion_type must be {service.ASSERTION_TYPE}"
            )
        client, scopes = await service.exchange_assertion(
            session,
            assertion=client_assertion,
            requested_scopes=scope.split() or None,
            audiences=frozenset({token_endpoint(settings), settings.public_url}),
        )
    except OAuthError as exc:
        body = {**exc.body(), "error": exc.oauth_error, "error_description": exc.messages()["en"]}
        return JSONResponse(
            body, status_code=exc.status_code, headers={"Cache-Control": "no-store"}
        )
    access, lifetime = issue_access_token(settings, client.client_id, client.facility_code, scopes)
    granted = TokenResponse(access_token=access, expires_in=lifetime, scope=" ".join(scopes))
    return JSONResponse(
        granted.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )
