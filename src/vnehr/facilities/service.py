"""Rules of the facilities context: codes, onboarding, practitioners, clients, certificates.

Authorization is decided here, from the caller's grants: a health-department administrator
manages facilities of their province; a facility administrator manages only their facility.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jws, jwt
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    InvalidKeyTypeError,
    JoseError,
    KeyParameterError,
    MissingClaimError,
    MissingKeyError,
)
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, catalogs
from vnehr.facilities import errors
from vnehr.facilities.models import (
    ApiClient,
    Facility,
    FacilityCertificate,
    OnboardingEvent,
    Practitioner,
    PractitionerRole,
)
from vnehr.facilities.repository import CLIENT_STATUS, FacilityRepository
from vnehr.facilities.schemas import (
    ClientCreate,
    FacilityCreate,
    Kind,
    PractitionerCreate,
    Receiver,
    State,
)
from vnehr.facilities.schemas import Facility as FacilityInfo
from vnehr.kit.auth import REVOKED, Forbidden, Subject, forget_client
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.db import Database
from vnehr.kit.errors import VnehrError
from vnehr.kit.i18n import texts
from vnehr.kit.logging import get_logger
from vnehr.kit.text import fold_words

log = get_logger("vnehr.facilities")

#: The forward path of onboarding; ``suspended`` can be entered from any state.
PATH: tuple[State, ...] = (
    State.registered,
    State.trained,
    State.certificate_registered,
    State.test_passed,
    State.connected,
)
#: States in which a facility's systems may obtain tokens (test submissions need them too).
MAY_CONNECT = frozenset({State.certificate_registered, State.test_passed, State.connected})

SCOPES: dict[str, str] = {
    "submission.write": "send visit files (GIAMDINHHS, FHIR bundles)",
    "checkin.write": "send check-ins (XML0)",
    "patient.read": "read a patient's summary (with consent or break-glass)",
    "paper.write": "issue electronic papers",
    "record.read": "read the facility's own submissions and receipts",
    "report.write": "declare the visits the facility made, for the six-monthly report",
}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The client ids ``add_client`` makes: facility code, the facility's client number, 8 random
#: hex digits. Anything else names no client and is refused before any lookup (a NUL byte or a
#: lone surrogate would otherwise reach the database).
CLIENT_ID_PATTERN = r"^[0-9]{5}-[0-9]{2,6}-[0-9a-f]{8}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
MAX_ASSERTION_LIFETIME = 300  # seconds; longer-lived assertions are refused
CLOCK_SKEW = 60
ADMIN_ROLES = ("facility_admin",)
STAFF_ROLES = ("facility_admin", "clinician")


# ------------------------------------------------------------------ authorization


def provinces_managed(subject: Subject) -> list[str] | None:
    """Provinces a department administrator manages (None = all, for a national one)."""
    grants = subject.grants_for("department_admin")
    if any(g.province_code is None for g in grants):
        return None
    return sorted({g.province_code for g in grants if g.province_code})


def _require_department(subject: Subject, province_code: str) -> None:
    if not subject.is_department_admin(province_code):
        raise Forbidden(action="manage facilities", province=province_code)


def _require_admin_of(subject: Subject, facility: Facility) -> None:
    if subject.is_department_admin(facility.province_code):
        return
    if subject.kind == "person" and subject.acts_for_facility(facility.code, ADMIN_ROLES):
        return
    raise Forbidden(action="administer facility", facility=facility.code)


async def _administered(
    repo: FacilityRepository, subject: Subject, code: str, *, lock: bool = False
) -> Facility:
    """The facility, if the subject may administer it (FAC-0001 / AUTH-0002 otherwise)."""
    facility = await repo.get(code, for_update=lock)
    if facility is None:
        raise errors.UnknownFacility(code=code)
    _require_admin_of(subject, facility)
    return facility


def _require_reader_of(subject: Subject, facility: Facility) -> None:
    if subject.is_department_admin(facility.province_code):
        return
    if subject.acts_for_facility(facility.code, STAFF_ROLES):
        return
    raise Forbidden(action="read facility", facility=facility.code)


# ------------------------------------------------------------------ registry


async def _check_place(session: AsyncSession, province: str, ward: str | None) -> None:
    today = today_in_vietnam()
    check = await catalogs.check_codes(session, "province", [province], today)
    if check.unknown:
        raise errors.UnknownPlace(kind="tỉnh/province", code=province, on=today.isoformat())
    if ward is None:
        return
    try:
        entry = await catalogs.lookup(session, "ward", ward, today)
    except (catalogs.UnknownCode, catalogs.CodeNotInForce) as exc:
        raise errors.UnknownPlace(kind="xã/ward", code=ward, on=today.isoformat()) from exc
    if entry.parent_code != province:
        raise errors.WardOutsideProvince(ward=ward, province=province)


def check_existing_code(code: str, province: str) -> None:
    """A code registered as it is: 5 digits, the first two the facility's province."""
    if len(code) != 5 or not code.isdigit():
        raise errors.BadFacilityCode(code=code, reason="cần đúng 5 chữ số / must be 5 digits")
    if code[:2] != province:
        raise errors.BadFacilityCode(
            code=code, reason=f"2 số đầu phải là mã tỉnh {province} / must start with {province}"
        )


async def register(session: AsyncSession, subject: Subject, data: FacilityCreate) -> Facility:
    """Put a facility in the registry: issue the next free code of its province, or register
    the code it already has. Safe under concurrent calls: the province counter is taken under
    a lock, and a code is never handed out twice."""
    _require_department(subject, data.province_code)
    await _check_place(session, data.province_code, data.ward_code)
    repo = FacilityRepository(session)
    issued = not data.code
    if data.code:
        check_existing_code(data.code, data.province_code)
        if await repo.exists(data.code):
            raise errors.CodeTaken(code=data.code)
    book, today = await catalogs.codebook(session), today_in_vietnam()
    while True:
        code = data.code or await _issue(repo, data.province_code)
        facility = Facility(
            code=code,
            search_key=search_key(
                book,
                code=code,
                name=data.name.strip(),
                address=data.address,
                ward_code=data.ward_code,
                province_code=data.province_code,
                day=today,
            ),
            name=data.name.strip(),
            kind=data.kind.value,
            level=data.level.value,
            ownership=data.ownership.value,
            address=data.address,
            ward_code=data.ward_code,
            province_code=data.province_code,
            status=State.registered.value,
            issued=issued,
            created_at=utcnow(),
            created_by=subject.label,
        )
        try:
            async with session.begin_nested():
                await repo.add(facility)
            break
        except IntegrityError as exc:
            # A concurrent transaction registered the same code, as an existing code, after
            # we checked. Refuse an existing code; an issued one moves on to the next number.
            if not issued:
                raise errors.CodeTaken(code=code) from exc
    await repo.add_event(
        OnboardingEvent(
            facility_code=code,
            from_state=None,
            to_state=State.registered.value,
            actor=subject.label,
            reason="issued" if issued else "existing code registered",
            at=facility.created_at,
        )
    )
    return facility


async def _issue(repo: FacilityRepository, province: str) -> str:
    while True:
        sequence = await repo.next_sequence(province)
        if sequence > 999:
            raise errors.SequenceExhausted(province=province)
        code = f"{province}{sequence:03d}"
        if not await repo.exists(code):  # skip codes registered as they were
            return code


async def get(session: AsyncSession, subject: Subject, code: str) -> Facility:
    facility = await FacilityRepository(session).get(code)
    if facility is None:
        raise errors.UnknownFacility(code=code)
    _require_reader_of(subject, facility)
    return facility


async def directory(session: AsyncSession, codes: Iterable[str]) -> dict[str, FacilityInfo]:
    """The public registry entries (name, kind, address...) of these facilities: what the health
    book and the FHIR Organization show. No caller check: the facility directory is public."""
    found = await FacilityRepository(session).many(codes)
    return {f.code: FacilityInfo.model_validate(f) for f in found}


def codes_query(province: str) -> Any:
    """A subquery of the codes of the facilities registered in a province, to filter another
    context's statement (a province's report recount reads only its facilities' rows)."""
    return FacilityRepository.codes_query(province)


async def registry(session: AsyncSession, province: str | None) -> list[FacilityInfo]:
    """Every registered facility of a province (or of the country), in code order: the
    report's denominator. No caller check: the registry is public."""
    return [
        FacilityInfo.model_validate(f)
        for f in await FacilityRepository(session).of_province(province)
    ]


_names: dict[str, tuple[float, str]] = {}
NAMES_MAX_AGE = 60.0


async def names(db: Database, codes: Iterable[str]) -> dict[str, str]:
    """Facility names by code, from a per-process copy at most a minute old (names change
    rarely; the health book shows them on every read). A read session is opened only for
    codes not in the copy."""
    now = time.monotonic()
    wanted = set(codes)
    found: dict[str, str] = {}
    missing = set()
    for code in wanted:
        hit = _names.get(code)
        if hit is not None and now - hit[0] < NAMES_MAX_AGE:
            if hit[1]:
                found[code] = hit[1]
        else:
            missing.add(code)
    if missing:
        async with db.read_session() as session:
            known = await directory(session, missing)
        for code in missing:
            name = known[code].name if code in known else ""  # unknown codes are cached too
            _names[code] = (now, name)
            if name:
                found[code] = name
    return found


async def client_facilities(session: AsyncSession, client_ids: Iterable[str]) -> dict[str, str]:
    """The facility code of each API client (for showing who read a record)."""
    found = {}
    repo = FacilityRepository(session)
    for client_id in set(client_ids):
        client = await repo.client(client_id)
        if client is not None:
            found[client_id] = client.facility_code
    return found


async def practitioner_names(session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    """Names of practitioners by practitioner id (the MA_BAC_SI of the tables), when known."""
    return await FacilityRepository(session).practitioner_names(ids)


async def listing(
    session: AsyncSession,
    subject: Subject,
    *,
    province: str | None = None,
    status: str | None = None,
    q: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[Facility]:
    """Facilities the caller may see, in code order: a department administrator sees their
    provinces; a facility's staff (and its systems) see their own facility; a person with both
    kinds of role sees both. ``province`` narrows that down, never widens it."""
    managed = provinces_managed(subject) if subject.is_department_admin() else []
    own = sorted(
        {g.facility_code for g in subject.grants if g.facility_code and g.role in STAFF_ROLES}
    )
    if subject.kind == "facility_system":
        own = [subject.facility_code] if subject.facility_code else []
    return await FacilityRepository(session).page(
        provinces=managed,
        codes=own,
        province=province,
        status=status,
        query=q,
        after=after,
        limit=limit,
    )


async def move(
    session: AsyncSession,
    subject: Subject,
    code: str,
    to_state: State,
    reason: str | None,
    *,
    override: bool = False,
) -> Facility:
    """Change the onboarding state: one step forward along the path, suspension from any
    state, and reinstatement to the state held before the suspension. A state stands for a
    fact: ``certificate_registered`` needs a usable certificate (FAC-0008), ``test_passed``
    a test file the hub accepted, which moves the facility there by itself (FAC-0009 by hand).
    ``override`` moves without the fact, with a reason (FAC-0027 without), audited."""
    repo = FacilityRepository(session)
    facility = await repo.get(code, for_update=True)
    if facility is None:
        raise errors.UnknownFacility(code=code)
    _require_department(subject, facility.province_code)
    to = State(to_state)
    _check_transition(facility, to)
    missing = await _missing_fact(repo, facility, to)
    if missing is not None:
        why = (reason or "").strip()
        if not override:
            raise missing
        if not why:
            raise errors.OverrideWithoutReason(to_state=to.value)
        fact = str(missing.detail["missing"])
        session.add(
            audit.audit_event(
                actor=subject.label,
                action="facility.onboarding_overridden",
                object_type="facility",
                object_id=code,
                detail={
                    "from_state": facility.status,
                    "to_state": to.value,
                    "missing": fact,
                    "reason": why,
                },
            )
        )
        reason = f"override ({fact}): {why}"[:500]
    await _move(repo, facility, to, subject.label, reason)
    return facility


async def _missing_fact(
    repo: FacilityRepository, facility: Facility, to: State
) -> VnehrError | None:
    """The refusal of a move into a state whose fact the facility lacks (None: it has it). A
    reinstated ``test_passed`` was earned before the suspension; a certificate is looked for
    again, since it may have been revoked or run out since."""
    if to == State.certificate_registered:
        if not await repo.has_usable_certificate(facility.code, utcnow()):
            return errors.NoUsableCertificate({"missing": "certificate"}, code=facility.code)
    elif to == State.test_passed and State(facility.status) != State.suspended:
        # (the intake moves a facility on as its first test file passes: a facility still in
        # certificate_registered has passed none)
        return errors.NoTestPassed({"missing": "test_submission"}, code=facility.code)
    return None


def next_states(facility: Facility) -> list[State]:
    """The states a facility may be moved to now, in path order: the next step and suspension,
    or, when suspended, the state it held before (whether its fact holds is checked by ``move``)."""
    now = State(facility.status)
    if now == State.suspended:
        return [State(facility.status_before_suspension or State.registered)]
    position = PATH.index(now)
    return [*PATH[position + 1 : position + 2], State.suspended]


def _check_transition(facility: Facility, to: State) -> None:
    now = State(facility.status)
    allowed = set(next_states(facility))
    if to not in allowed:
        raise errors.TransitionRefused(
            {"allowed": sorted(s.value for s in allowed)}, from_state=now.value, to_state=to.value
        )


async def _move(
    repo: FacilityRepository, facility: Facility, to: State, actor: str, reason: str | None
) -> None:
    """Record a move the caller found backed by its fact (the certificate just registered,
    the test file just accepted) or overridden."""
    _check_transition(facility, to)
    now = State(facility.status)
    facility.status_before_suspension = now.value if to == State.suspended else None
    facility.status = to.value
    if (now in MAY_CONNECT) != (to in MAY_CONNECT):
        await _forget_systems(repo, facility.code)
    await repo.add_event(
        OnboardingEvent(
            facility_code=facility.code,
            from_state=now.value,
            to_state=to.value,
            actor=actor,
            reason=reason,
            at=utcnow(),
        )
    )


async def _forget_systems(repo: FacilityRepository, code: str) -> None:
    """The facility's systems may (or may no longer) call: this process reads their standing
    again at their next request, and again once the move commits (a request in between read
    the state before it), as for a revoked client (D148); the other processes within
    ``CLIENT_STATUS_SECONDS``."""
    client_ids = [c.client_id for c in await repo.clients_of(code)]

    def forget(_session: Any = None) -> None:
        for client_id in client_ids:
            forget_client(client_id)

    forget()
    event.listen(repo.session.sync_session, "after_commit", forget, once=True)


async def history(session: AsyncSession, subject: Subject, code: str) -> list[OnboardingEvent]:
    facility = await get(session, subject, code)
    return await FacilityRepository(session).events(facility.code)


async def status_counts(session: AsyncSession, subject: Subject) -> dict[str, int]:
    if not subject.is_department_admin():
        raise Forbidden(action="see registry figures")
    return await FacilityRepository(session).status_counts(provinces_managed(subject))


# ------------------------------------------------------------------ practitioners


async def add_practitioner(
    session: AsyncSession, subject: Subject, code: str, data: PractitionerCreate
) -> tuple[Practitioner, PractitionerRole]:
    """Link a practitioner to the facility (creating the practitioner if new)."""
    repo = FacilityRepository(session)
    await _administered(repo, subject, code)
    role = PractitionerRole(
        facility_code=code,
        role=data.role,
        valid_from=data.valid_from or today_in_vietnam(),
    )
    existing = await repo.practitioner(data.practitioner_id)
    if existing is not None:
        if any(
            r.facility_code == code and r.valid_to is None
            for _, r in await _roles(repo, code, existing)
        ):
            raise errors.PractitionerTaken(practitioner_id=data.practitioner_id)
        role.practitioner_id = existing.id
        try:
            async with session.begin_nested():
                await repo.add_role(role)
        except IntegrityError as exc:  # same practitioner, facility and start date
            raise errors.PractitionerTaken(practitioner_id=data.practitioner_id) from exc
        return existing, role
    practitioner = Practitioner(
        practitioner_id=data.practitioner_id,
        personal_id=data.personal_id,
        full_name=data.full_name.strip(),
        title=data.title,
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            await repo.add_practitioner(practitioner, role)
    except IntegrityError as exc:  # registered at the same moment by another request
        raise errors.PractitionerTaken(practitioner_id=data.practitioner_id) from exc
    return practitioner, role


async def _roles(
    repo: FacilityRepository, code: str, practitioner: Practitioner
) -> list[tuple[Practitioner, PractitionerRole]]:
    return [(p, r) for p, r in await repo.practitioners_at(code) if p.id == practitioner.id]


async def practitioners(
    session: AsyncSession, subject: Subject, code: str
) -> list[tuple[Practitioner, PractitionerRole]]:
    facility = await get(session, subject, code)
    return await FacilityRepository(session).practitioners_at(facility.code)


# ------------------------------------------------------------------ API clients


def _bad_jwks(cause: str, **params: Any) -> errors.BadJwks:
    """FAC-0020 with our text for ``cause`` (``jwks.reason.<cause>`` in the catalogues) and
    the cause in the detail."""
    return errors.BadJwks({"cause": cause, **params}, reason=texts(f"jwks.reason.{cause}", params))


_REQUIRED = re.compile(r"'(\w{1,10})' is required")


def _key_problem(exc: Exception, index: int) -> errors.BadJwks:
    """The key library's reason for refusing key ``index`` (1-based) as our own: a parameter
    it lacks, a type or curve it does not know, or a key it cannot read. Its own words (English,
    "'P-999'") go to the log."""
    log.info("jwks_refused", key=index, error=f"{type(exc).__name__}: {str(exc)[:300]}")
    required = _REQUIRED.search(str(exc))
    if isinstance(exc, KeyParameterError) and required:
        return _bad_jwks("missing_parameter", index=index, parameter=required[1])
    if isinstance(exc, (MissingKeyError, KeyError, InvalidKeyCurveError, InvalidKeyTypeError)):
        return _bad_jwks("unsupported", index=index)
    return _bad_jwks("unreadable", index=index)


def _check_jwks(jwks: dict[str, Any]) -> KeySet:
    """Public asymmetric keys only: a private key sent to us is already leaked, and a shared
    secret would let us (or a database reader) sign as the facility."""
    raw = jwks.get("keys")
    if not isinstance(raw, list) or not raw:
        raise _bad_jwks("no_keys")
    for index, key in enumerate(raw, start=1):
        if not isinstance(key, dict):
            raise _bad_jwks("not_an_object", index=index)
        if key.get("kty") == "oct":
            raise _bad_jwks("symmetric", index=index)
        if "d" in key:
            raise _bad_jwks("private", index=index)
        try:  # one at a time, to say which key is wrong
            KeySet.import_key_set({"keys": [key]})
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _key_problem(exc, index) from exc
    try:
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise _key_problem(exc, len(raw)) from exc


_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
#: The key types a system's PEM public key may be, as JWK classes (what the token endpoint
#: verifies: ES256, RS256/PS256, Ed25519).
_PEM_KEYS: tuple[tuple[type[Any], type[Any]], ...] = (
    (ec.EllipticCurvePublicKey, ECKey),
    (rsa.RSAPublicKey, RSAKey),
    (ed25519.Ed25519PublicKey, OKPKey),
)


def key_set(typed: str) -> dict[str, Any]:
    """The public keys a facility's IT pasted or uploaded, as the JWKS ``add_client`` takes:
    a JWKS (``{"keys": [...]}``), one JWK (``{"kty": ...}``), or a PEM public key (or the
    public key of a PEM certificate), given the RFC 7638 thumbprint as its ``kid``. A private
    key is refused (sent away, it counts as leaked: FAC-0020 "private"); anything else that
    is no key is FAC-0020 "not_a_key". The key set itself is checked by ``add_client``."""
    typed = typed.strip()
    if _PEM_PRIVATE.search(typed):
        raise _bad_jwks("private", index=1)
    if typed.startswith("-----BEGIN"):
        try:
            public = (
                x509.load_pem_x509_certificate(typed.encode("ascii")).public_key()
                if "CERTIFICATE-----" in typed
                else serialization.load_pem_public_key(typed.encode("ascii"))
            )
        except (ValueError, UnicodeEncodeError, TypeError) as exc:
            raise _key_problem(exc, 1) from exc
        kind = next((jwk for made, jwk in _PEM_KEYS if isinstance(public, made)), None)
        if kind is None:
            raise _bad_jwks("unsupported", index=1)
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:  # (an EC key on a curve JOSE has no name for: SECP224R1, brainpool)
            key = kind.import_key(pem)
            return {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _key_problem(exc, 1) from exc
    try:
        found = json.loads(typed)
    except (ValueError, RecursionError) as exc:  # (RecursionError: arrays nested thousands deep)
        raise _bad_jwks("not_a_key") from exc
    if isinstance(found, dict) and "keys" in found:
        return found
    if isinstance(found, dict) and "kty" in found:
        return {"keys": [found]}
    raise _bad_jwks("not_a_key")


async def add_client(
    session: AsyncSession, subject: Subject, code: str, data: ClientCreate
) -> ApiClient:
    """Register a facility system with its public keys and the scopes it may ask for."""
    repo = FacilityRepository(session)
    await _administered(repo, subject, code)
    unknown = sorted(set(data.scopes) - SCOPES.keys())
    if unknown:
        raise errors.UnknownScope(scopes=" ".join(unknown), allowed=" ".join(sorted(SCOPES)))
    _check_jwks(data.jwks)
    number = await repo.count_clients(code) + 1
    client = ApiClient(
        client_id=f"{code}-{number:02d}-{secrets.token_hex(4)}",
        facility_code=code,
        name=data.name,
        jwks=data.jwks,
        scopes=" ".join(sorted(set(data.scopes))),
        status="active",
        created_at=utcnow(),
        created_by=subject.label,
    )
    await repo.add_client(client)
    return client


async def clients(session: AsyncSession, subject: Subject, code: str) -> list[ApiClient]:
    facility = await get(session, subject, code)
    _require_admin_of(subject, facility)
    return await FacilityRepository(session).clients_of(code)


async def revoke_client(
    session: AsyncSession, subject: Subject, code: str, client_id: str
) -> ApiClient:
    repo = FacilityRepository(session)
    await _administered(repo, subject, code)
    client = await repo.client(client_id)
    if client is None or client.facility_code != code:
        raise errors.UnknownClient(code=code, client_id=client_id)
    client.status = "revoked"
    await session.flush()
    # this process refuses its tokens from the next request once the revocation commits (a
    # request of the client before then still reads "active" and may keep it: forgotten again
    # at the commit); the other processes within CLIENT_STATUS_SECONDS
    forget_client(client_id)
    event.listen(
        session.sync_session, "after_commit", lambda _s: forget_client(client_id), once=True
    )
    return client


async def client_refusal(db: Database, client_id: str) -> str | None:
    """Why a facility system's client may not call now, None when it may (the bearer check,
    ``kit.auth.ClientCheck``): ``"revoked"`` when the client is revoked or unknown; its
    facility's state when the facility may not connect (the department suspended it: its
    tokens stop working, reads included). One primary-key read, on the hot reads' pool where
    there is one (PostgreSQL)."""
    if db.fast_reads is not None:
        rows = await db.fast_reads.fetch_tuples(CLIENT_STATUS, client_id=client_id)
    else:
        async with db.read_session() as session:
            rows = list(await session.execute(CLIENT_STATUS, {"client_id": client_id}))
    if not rows or rows[0][0] != "active":
        return REVOKED
    state = rows[0][1]
    return None if state in MAY_CONNECT else str(state)


async def exchange_assertion(
    session: AsyncSession,
    *,
    assertion: str,
    requested_scopes: list[str] | None,
    audiences: frozenset[str],
) -> tuple[ApiClient, list[str]]:
    """Check a ``private_key_jwt`` client assertion (RFC 7523) and return the client with
    the scopes granted. Each assertion is single-use (its ``jti`` is remembered until it
    expires), short-lived, signed by a registered key, and addressed to our token endpoint."""
    try:  # who claims to be calling decides which keys to check the signature with
        unverified = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
        client_id = unverified.get("iss")
    except (JoseError, ValueError, UnicodeEncodeError, AttributeError) as exc:
        raise errors.TokenRequestInvalid(reason="client_assertion is not a JWT") from exc
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise errors.ClientNotAllowed(client_id="?")
    repo = FacilityRepository(session)
    client = await repo.client(client_id)
    if client is None or client.status != "active":
        raise errors.ClientNotAllowed(client_id=client_id or "?")
    facility = await repo.get(client.facility_code)
    if facility is None or State(facility.status) not in MAY_CONNECT:
        raise errors.FacilityNotConnected(
            code=client.facility_code, status=facility.status if facility else "?"
        )
    try:
        keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        token = jwt.decode(assertion, keys, algorithms=["ES256", "RS256", "PS256", "Ed25519"])
    except (JoseError, ValueError) as exc:
        raise errors.AssertionSignatureInvalid(client_id=client_id) from exc
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_SKEW,
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        aud={"essential": True, "values": sorted(audiences)},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise errors.AssertionExpired(reason="exp") from exc
    except InvalidClaimError as exc:
        if exc.claim in ("iat", "nbf"):
            raise errors.AssertionExpired(reason=f"{exc.claim} in the future") from exc
        raise errors.AssertionClaimsInvalid(claim=exc.claim, reason=exc.description) from exc
    except MissingClaimError as exc:
        raise errors.AssertionClaimsInvalid(claim=exc.claim, reason=exc.description) from exc
    if len(str(claims["jti"])) > 200:
        raise errors.AssertionClaimsInvalid(claim="jti", reason="longer than 200 characters")
    now = int(time.time())
    exp = int(claims["exp"])
    issued = int(claims.get("iat", now))
    if issued > now + CLOCK_SKEW:
        raise errors.AssertionExpired(reason="iat in the future")
    if exp - min(issued, now) > MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise errors.AssertionExpired(reason=f"lifetime over {MAX_ASSERTION_LIFETIME}s")
    expires_at = datetime.fromtimestamp(exp + CLOCK_SKEW, UTC)
    await repo.forget_assertions_before(utcnow() - timedelta(seconds=CLOCK_SKEW))
    if not await repo.remember_assertion(client_id, str(claims["jti"]), expires_at):
        raise errors.AssertionReplayed(jti=str(claims["jti"]))
    allowed = set(client.scopes.split())
    wanted = set(requested_scopes) if requested_scopes else allowed
    if not wanted <= allowed:
        raise errors.ScopeNotAllowed(scopes=" ".join(sorted(wanted - allowed)))
    return client, sorted(wanted)


# ------------------------------------------------------------------ certificates


async def add_certificate(
    session: AsyncSession, subject: Subject, code: str, pem: str
) -> FacilityCertificate:
    """Register a facility's X.509 signing certificate; a facility that was trained moves on
    to ``certificate_registered`` when the certificate is valid today. Refused (FAC-0021, its
    cause in the detail): not a PEM certificate, expired, a key usage without digital
    signatures, a PEM holding a private key too."""
    repo = FacilityRepository(session)
    facility = await _administered(repo, subject, code, lock=True)
    if _PEM_PRIVATE.search(pem):  # it would be stored and shown; sent away, it is leaked
        raise errors.BadCertificate(
            {"cause": "private_key"}, reason=texts("certificate.reason.private_key")
        )
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        # the library's words (English, its internals) to the log; ours to the caller
        log.info("certificate_refused", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise errors.BadCertificate(
            {"cause": "unreadable"}, reason=texts("certificate.reason.unreadable")
        ) from exc
    not_after = cert.not_valid_after_utc
    if not_after < utcnow():
        day = not_after.date()
        on = {"vi": day.strftime("%d/%m/%Y"), "en": day.isoformat()}
        raise errors.BadCertificate(
            {"cause": "expired", "not_after": not_after.isoformat()},
            reason=texts("certificate.reason.expired", {"date": on}),
        )
    _check_signing_use(cert)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    if await repo.certificate_by_fingerprint(fingerprint) is not None:
        raise errors.CertificateTaken(fingerprint=fingerprint)
    certificate = FacilityCertificate(
        facility_code=code,
        fingerprint_sha256=fingerprint,
        subject=cert.subject.rfc4514_string()[:500],
        serial_number=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=not_after,
        pem=pem.strip(),
        status="active",
        registered_at=utcnow(),
        registered_by=subject.label,
    )
    await repo.add_certificate(certificate)
    # a certificate registered ahead of a rollover (not valid yet) is kept, but is not yet the
    # fact ``certificate_registered`` stands for (D149)
    if State(facility.status) == State.trained and certificate.not_before <= utcnow():
        await _move(repo, facility, State.certificate_registered, subject.label, "certificate")
    return certificate


def _check_signing_use(cert: x509.Certificate) -> None:
    """FAC-0021 for a certificate whose key usage leaves out digital signatures: every file
    signed with it would be refused; cause ``unreadable`` for one whose extensions do not
    read (malformed, or one given twice: RFC 5280 4.2)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction (RFC 5280 4.2.1.3)
    except (ValueError, x509.DuplicateExtension) as exc:
        log.info("certificate_refused", error=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise errors.BadCertificate(
            {"cause": "unreadable"}, reason=texts("certificate.reason.unreadable")
        ) from exc
    if not usage.digital_signature:
        raise errors.BadCertificate(
            {"cause": "key_usage"}, reason=texts("certificate.reason.key_usage")
        )


async def revoke_certificate(
    session: AsyncSession, subject: Subject, code: str, certificate_id: int
) -> FacilityCertificate:
    """Revoke a signing certificate (its key was lost or leaked, or the facility replaced
    it): from now on a file signed with it is refused (SUB-0011), and an unsigned file is
    still refused where signatures are required (the facility registered a certificate)."""
    repo = FacilityRepository(session)
    await _administered(repo, subject, code, lock=True)
    certificate = next(
        (c for c in await repo.certificates_of(code) if c.id == certificate_id), None
    )
    if certificate is None:
        raise errors.UnknownCertificate(code=code, certificate_id=certificate_id)
    certificate.status = "revoked"
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="certificate.revoked",
            object_type="facility_certificate",
            object_id=str(certificate.id),
            detail={"facility_code": code, "fingerprint_sha256": certificate.fingerprint_sha256},
        )
    )
    await session.flush()
    return certificate


async def certificates(
    session: AsyncSession, subject: Subject, code: str
) -> list[FacilityCertificate]:
    facility = await get(session, subject, code)
    return await FacilityRepository(session).certificates_of(facility.code)


@dataclass(frozen=True, slots=True)
class SigningCertificate:
    """A certificate the facility registered, and why it cannot vouch for a file now ("":
    it can). Revoked and expired ones are kept: a file signed with one is refused, where a
    facility that never registered any only gets a warning."""

    pem: str
    problem: str = ""  # "", "revoked", "expired", "not_yet_valid"


async def states_at(
    session: AsyncSession, province: str | None, moment: datetime
) -> dict[str, State]:
    """The onboarding state each facility of a province (or of the country) was in at
    ``moment``, from the onboarding history: a report of a past period counts the facilities
    registered and connected then, not today. No caller check: the registry is public."""
    found = await FacilityRepository(session).states_before(province, moment)
    return {code: State(state) for code, state in found.items()}


async def state_of(session: AsyncSession, code: str) -> State | None:
    """A facility's onboarding state (None: no such facility)."""
    facility = await FacilityRepository(session).get(code)
    return State(facility.status) if facility is not None else None


async def intake_context(
    session: AsyncSession, code: str
) -> tuple[State | None, list[SigningCertificate]]:
    """What intake needs about a facility, in one query: its onboarding state and every
    signing certificate it registered (usable ones first)."""
    rows = await FacilityRepository(session).state_and_certificates(code)
    if not rows:
        return None, []
    now = utcnow()
    found = []
    for _, pem, start, end, status in rows:
        if pem is None:
            continue
        if status != "active":
            problem = "revoked"
        elif end is None or _aware(end) < now:
            problem = "expired"
        elif start is None or _aware(start) > now:
            problem = "not_yet_valid"
        else:
            problem = ""
        found.append(SigningCertificate(pem, problem))
    found.sort(key=lambda c: c.problem != "")
    return State(rows[0][0]), found


def _aware(moment: datetime) -> datetime:
    # (SQLite hands back naive datetimes; the hub stores UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def names_now(session: AsyncSession, codes: Iterable[str]) -> dict[str, str]:
    """Facility names by code, read in the caller's transaction (what a paper issued now
    names; ``names`` serves displays from a copy up to a minute old)."""
    repo = FacilityRepository(session)
    found = {}
    for code in sorted(set(codes)):
        name = await repo.name_of(code)
        if name is not None:
            found[code] = name
    return found


async def test_submission_passed(session: AsyncSession, code: str, actor: str) -> bool:
    """A facility onboarding with a registered certificate sent a valid test file: it moves
    on to ``test_passed`` (once)."""
    repo = FacilityRepository(session)
    facility = await repo.get(code, for_update=True)
    if facility is None or State(facility.status) != State.certificate_registered:
        return False
    await _move(repo, facility, State.test_passed, actor, "test submission passed")
    return True


# ------------------------------------------------------------------ the citizen's search

#: Facilities a search lists at most; more words narrow it down (the answer says there are
#: more).
SEARCH_LIMIT = 20
#: Letters and digits a search needs: one letter matches most of the registry.
SEARCH_MIN_CHARS = 2
#: Words of a search read at most (a longer text is cut there).
SEARCH_MAX_WORDS = 10
#: The short forms people write for the words facility names start with ("bv bach mai").
SHORT_FORMS = {
    "benh vien": "bv",
    "trung tam y te": "ttyt",
    "tram y te": "tyt",
    "phong kham": "pk",
    "da khoa": "dk",
}


def search_words(value: str) -> list[str]:
    """The words of ``value`` as the search reads them: lower case, without accents (đ is d),
    letters and digits only ("Bệnh viện Xanh-Pôn" -> bệnh, vien, xanh, pon without accents)."""
    return fold_words(value)


def _place_names(
    book: catalogs.Snapshot, ward_code: str | None, province_code: str, day: date
) -> list[str]:
    """The names a facility's place is known by: each name its ward code had (today's and
    those before the 2025 reform, with the district it was in then) and its province."""
    names: list[str] = []
    for version in book.of("ward", ward_code) if ward_code else []:
        last = version.valid_to or day
        names += [v.title_vi or "" for v in (*book.ancestors(version, last), version)]
    province = book.in_force("province", province_code, day)
    if province is not None:
        names.append(province.title_vi or "")
    return list(dict.fromkeys(n for n in names if n))


def search_key(
    book: catalogs.Snapshot,
    *,
    code: str,
    name: str,
    address: str | None,
    ward_code: str | None,
    province_code: str,
    day: date,
) -> str:
    """What the citizen's search matches a facility by, each word once after a space: its
    code, name, address, the names of its ward (``_place_names``) and the short forms of its
    name (``SHORT_FORMS``). Made when the facility is registered (and by migration 0029 for
    those registered before), and again after the places' lists are loaded
    (``rebuild_search_keys``)."""
    places = _place_names(book, ward_code, province_code, day)
    words = search_words(" ".join([code, name, address or "", *places]))
    named = f" {' '.join(search_words(name))} "
    words += [short for long, short in SHORT_FORMS.items() if f" {long} " in named]
    return " " + " ".join(dict.fromkeys(words))


async def rebuild_search_keys(session: AsyncSession) -> int:
    """Make every facility's search key again from the catalogue ``session`` sees now, as
    registering makes it: a key holds its ward's names of the day it was made, so a new
    edition of the administrative units (``vnehr catalog load``) is followed by this, in the
    same transaction. Returns how many keys changed."""
    repo = FacilityRepository(session)
    book, today = await catalogs.codebook(session), today_in_vietnam()
    changed: dict[str, str] = {}
    for row in await repo.search_sources():
        key = search_key(
            book,
            code=row.code,
            name=row.name,
            address=row.address,
            ward_code=row.ward_code,
            province_code=row.province_code,
            day=today,
        )
        if key != row.search_key:
            changed[row.code] = key
    await repo.set_search_keys(changed)
    return len(changed)


def _named(book: catalogs.Snapshot, list_name: str, code: str | None, day: date) -> str | None:
    """A ward's or province's name today, else its last one."""
    versions = book.of(list_name, code) if code else []
    found = book.in_force(list_name, code, day) if code else None
    chosen = found or (versions[-1] if versions else None)
    return chosen.title_vi if chosen is not None else None


def _receiver(book: catalogs.Snapshot, facility: Facility, day: date) -> Receiver:
    return Receiver(
        code=facility.code,
        name=facility.name,
        kind=Kind(facility.kind),
        address=facility.address,
        ward_code=facility.ward_code,
        ward=_named(book, "ward", facility.ward_code, day),
        province_code=facility.province_code,
        province=_named(book, "province", facility.province_code, day),
    )


async def receivers(
    session: AsyncSession, query: str, *, limit: int = SEARCH_LIMIT
) -> tuple[list[Receiver], bool]:
    """The facilities a person may share a record with (connected, D190) that match every
    word of ``query`` at a word's start, ignoring case and accents ("benh vien bach mai"
    finds "Bệnh viện Bạch Mai"): by name, code, address or ward (today's name or the one
    before the reform, the old district too), in name order, at most ``limit``, and whether
    more match. Public facts only; no caller check (the directory is public). SearchTooShort
    under ``SEARCH_MIN_CHARS`` letters and digits."""
    words = search_words(query[:200])[:SEARCH_MAX_WORDS]
    if len("".join(words)) < SEARCH_MIN_CHARS:
        raise errors.SearchTooShort(minimum=SEARCH_MIN_CHARS)
    rows = await FacilityRepository(session).receivers(words, limit + 1)
    book, today = await catalogs.codebook(session), today_in_vietnam()
    return [_receiver(book, f, today) for f in rows[:limit]], len(rows) > limit


async def receives(session: AsyncSession, code: str) -> Receiver | None:
    """The facility of ``code`` as ``receivers`` lists it, if it receives records (what the
    citizen picked from a search); None otherwise."""
    facility = await FacilityRepository(session).get(code)
    if facility is None or facility.status != State.connected.value:
        return None
    return _receiver(await catalogs.codebook(session), facility, today_in_vietnam())
