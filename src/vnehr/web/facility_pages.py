"""The facility administrator's page (``/facility/{code}``): the facility, where it stands in
onboarding and what it still needs to connect, its systems, certificates and staff, its latest
receipts and the visits checked in but never sent, and a form that checks a visit file before
its system sends it (nothing stored). Every read goes through the context that owns it, scoped
to the signed-in person as its API is."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as UrlPath
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs, facilities, identity, submissions
from vnehr.kit.auth import Forbidden, OptionalSubject, Subject, check_csrf, csrf_token
from vnehr.kit.clock import VIETNAM, today_in_vietnam, utcnow
from vnehr.kit.errors import RequestInvalid, VnehrError
from vnehr.kit.http import ReadSession, WriteSession
from vnehr.kit.i18n import LANGUAGES, Language, text, texts
from vnehr.kit.numerals import number
from vnehr.web.pages import (
    _actors,
    _book_page,
    _error_page,
    _language,
    _PageRoute,
    _problems_in_words,
    _settings,
    _signed_in,
    _ward_names,
)

router = APIRouter(include_in_schema=False, route_class=_PageRoute)

#: Receipts on one page; "Biên nhận cũ hơn" shows the older ones.
RECEIPTS_PAGE = 20
#: The visits checked in but not sent that the page lists (the API's default window: checked
#: in more than a day ago, within the last 31 days).
AWAITING_OLDER_THAN = timedelta(hours=24)
AWAITING_WITHIN = timedelta(days=31)
AWAITING_LIMIT = 200
#: A certificate that ends within this many days is flagged.
EXPIRING_DAYS = 30
#: Who takes the next step from each state (the department moves the facility on).
_NEXT_BY = {
    facilities.State.registered: "department",
    facilities.State.trained: "facility",
    facilities.State.certificate_registered: "facility",
    facilities.State.test_passed: "department",
    facilities.State.connected: "nobody",
    facilities.State.suspended: "department",
}
_CODE = Annotated[str, UrlPath(pattern=r"^[0-9A-Z]{5}$")]
_MB = 1024 * 1024
#: A row id in an address or a query (the database's ids are 64-bit).
_ROW = Annotated[int, UrlPath(ge=1, le=2**63 - 1)]
_CLIENT = Annotated[str, UrlPath(pattern=facilities.CLIENT_ID_PATTERN)]
#: The roles the page gives: a facility's administrator gives ``clinician``; the department
#: of its province both (``identity.add_grant`` decides).
PAGE_ROLES = ("clinician", "facility_admin")
#: The scopes a new system's form offers ticked.
DEFAULT_SCOPES = ("submission.write", "checkin.write", "record.read")
#: The longest key or certificate text taken (the API's ``CertificateCreate.pem``).
TEXT_MAX = 20000
#: The section of the page each form acts in: opened when the page comes back to it.
_SECTION = {"grant": "clinicians", "system": "systems", "certificate": "certificates"}
#: Which field a refusal is said beside, by form and code.
_FIELDS = {
    "grant": {**{f"ID-000{n}": "personal_id" for n in range(1, 7)}, "ID-0107": "role",
              "AUTH-0002": "role"},
    "system": {"FAC-0020": "key", "FAC-0025": "scopes"},
    "certificate": {"FAC-0021": "pem", "FAC-0022": "pem"},
}  # fmt: skip
_LABELS = {
    "personal_id": "web.facility.grant.personal_id",
    "role": "web.facility.grant.role",
    "name": "web.facility.system.name",
    "key": "web.facility.system.key",
    "jwks": "web.facility.system.key",
    "scopes": "web.facility.system.scopes",
    "pem": "web.facility.cert.pem",
}
Done = Literal[
    "granted", "revoked", "system", "system_revoked", "certificate", "certificate_revoked"
]


@dataclass(slots=True)
class _Form:
    """A form of the page coming back: which (``grant``, ``system``, ``certificate``), what
    was typed, the words beside each field, and the refusal (None: "change the details")."""

    kind: str
    typed: dict[str, Any]
    problems: dict[str, dict[str, str]] = field(default_factory=dict)
    refused: VnehrError | None = None


@dataclass(frozen=True, slots=True)
class _Asked:
    """What the page's address asks it to show besides: a success just had (``done`` with the
    grant, system or certificate it names), the question before a revoke, or a search of the
    staff (``staff_q``, as typed)."""

    done: Done | None = None
    grant: int | None = None
    client: str | None = None
    certificate: int | None = None
    revoke_grant: int | None = None
    revoke_system: str | None = None
    revoke_certificate: int | None = None
    staff_q: str = ""


@dataclass(frozen=True, slots=True)
class _Step:
    """One line of the checklist: what, whether done, and who does it."""

    key: str
    done: bool
    by: str  # "facility" or "department"


def _moment(value: Any) -> datetime | None:
    """A stored moment (ISO text, or a naive UTC datetime as SQLite hands it back) as aware."""
    if value is None or value == "":
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _administers(who: Subject, facility: Any) -> bool:
    """A person administering the facility, or its province's department: those who read its
    systems, certificates, roles and receipts through the API."""
    return who.is_department_admin(facility.province_code) or who.acts_for_facility(
        facility.code, ("facility_admin",)
    )


async def _administered(session: AsyncSession, who: Subject, code: str) -> Any:
    """The facility, if ``who`` may open its page: FAC-0001 for no such facility, AUTH-0002
    for its clinicians, another facility's administrators and citizens."""
    facility = await facilities.get(session, who, code)
    if not _administers(who, facility):
        raise Forbidden(action="open the facility's page", facility=code)
    return facility


@router.get("/facility", response_class=HTMLResponse)
async def my_facility(request: Request, session: ReadSession, subject: OptionalSubject) -> Response:
    """The page of the facility the signed-in person administers (a choice when several)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    codes = sorted({g.facility_code for g in who.grants_for("facility_admin") if g.facility_code})
    if not codes:
        return _error_page(request, Forbidden(action="open the facility's page"))
    if len(codes) == 1:
        return RedirectResponse(f"/facility/{codes[0]}", status_code=303)
    names = await facilities.directory(session, codes)
    return _book_page(request, "facility_choose.html", subject=who, codes=codes, names=names)


@router.get("/facility/{code}", response_class=HTMLResponse)
async def facility_page(
    request: Request,
    session: ReadSession,
    primary: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    staff: Annotated[str | None, Query(max_length=200)] = None,
    done: Done | None = None,
    grant: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    client: Annotated[str | None, Query(pattern=facilities.CLIENT_ID_PATTERN)] = None,
    certificate: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    revoke_grant: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    revoke_system: Annotated[str | None, Query(pattern=facilities.CLIENT_ID_PATTERN)] = None,
    revoke_certificate: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    staff_q: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """A facility for its administrator: the facility, its onboarding and what it still
    needs, systems, certificates, staff (50 at a time, administrators
    first; ``staff``: where the page before ended; ``staff_q``: those found by name or
    personal ID), the latest receipts (newest first, ``cursor``: where the page before
    ended), the visits checked in but never sent, and the file check form.
    ``done`` (with the ``grant``, ``client`` or ``certificate`` it names) says what was just
    done there; ``revoke_grant`` / ``revoke_system`` / ``revoke_certificate`` ask before
    ending a role, a system or a certificate."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    asked = _Asked(
        done,
        grant,
        client,
        certificate,
        revoke_grant,
        revoke_system,
        revoke_certificate,
        (staff_q or "").strip(),
    )
    return await _render(
        request, session, primary, who, code, cursor=cursor, staff_cursor=staff, asked=asked
    )


@router.post("/facility/{code}/check", response_class=HTMLResponse)
async def facility_check(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    code: _CODE,
    file: Annotated[UploadFile | None, File()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Check a GIAMDINHHS file as ``POST /api/v1/submissions/validate`` does, nothing
    stored: each visit's issues in words, with table, row and field; a file refused whole
    (not XML, a DTD, another root, over the size cap, another facility's) in words, with the
    form again and the way back."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    settings = _settings(request)
    try:
        check_csrf(settings, request, csrf)
        facility = await _administered(session, who, code)
    except VnehrError as exc:
        return _error_page(request, exc)
    limits = submissions.Limits(max_bytes=settings.max_body_bytes)
    data = await file.read(limits.max_bytes + 1) if file is not None else b""
    # (the file's own size, not the cap plus the byte read to know it is over)
    size = file.size if file is not None and file.size is not None else len(data)
    options = submissions.IntakeOptions(limits=limits, require_signature=settings.require_signature)
    report: dict[str, Any] | None = None
    refused: VnehrError | None = None
    try:
        codes = await catalogs.codebook(session)
        # (off the event loop: a file may hold a thousand visits)
        analysis = await asyncio.to_thread(submissions.analyse, data, codes=codes, limits=limits)
        report = await submissions.staff_report(session, who, code, data, analysis, options)
    except VnehrError as exc:
        refused = exc
    return _book_page(
        request,
        "facility_check.html",
        refused.status_code if refused is not None else 200,
        at=f"/facility/{code}",
        subject=who,
        facility=facility,
        csrf=csrf_token(settings, request.state.session_data),
        max_mb=settings.max_body_bytes // (1024 * 1024),
        report=report,
        refused=refused,
        refused_words=_refusal(refused, size, limits.max_bytes) if refused is not None else None,
        filename=(file.filename or "") if file is not None else "",
    )


def _refusal(refused: VnehrError, size: int, cap: int) -> dict[str, str]:
    """A file refused whole, in words: one over the cap by its size and the cap in MB (the
    API's message counts bytes, and the page read only one byte past the cap)."""
    if refused.code != "SUB-0001":
        return refused.messages()
    return {
        lang: text(
            "web.facility.too_large",
            lang,
            {"size": number(round(size / _MB, 1), lang), "limit": number(cap // _MB, lang)},
        )
        for lang in LANGUAGES
    }


async def _render(
    request: Request,
    session: AsyncSession,
    primary: AsyncSession,
    who: Subject,
    code: str,
    *,
    cursor: str | None = None,
    staff_cursor: str | None = None,
    asked: _Asked | None = None,
    form: _Form | None = None,
) -> Response:
    """The page; ``cursor`` / ``staff_cursor``: where the receipts' / the staff's page before
    ended (the staff's "": its first page, the section open); ``asked``: what its address
    asks to show besides (``_Asked``); ``form``: a form coming back refused or to be changed,
    its section open."""
    lang: Language = "en" if _language(request) == "en" else "vi"
    asked = asked or _Asked()
    try:
        facility = await _administered(session, who, code)
        events = await facilities.history(session, who, code)
        certificates = await facilities.certificates(session, who, code)
        systems = await facilities.clients(session, who, code)
        search = identity.staff_search(asked.staff_q) if asked.staff_q else None
        staff = await identity.staff_of(
            session, who, code, cursor=staff_cursor or None, search=search
        )
        receipts = await submissions.listing(
            session,
            who,
            primary=primary,
            facility=code,
            since=None,
            limit=RECEIPTS_PAGE,
            cursor=cursor,
            newest_first=True,
        )
        awaiting = await submissions.awaiting_visits(
            session,
            who,
            facility=code,
            older_than=AWAITING_OLDER_THAN,
            within=AWAITING_WITHIN,
            limit=AWAITING_LIMIT,
        )
    except VnehrError as exc:
        return _error_page(request, exc)
    now = utcnow()
    shown_certificates = [_certificate(c, now) for c in certificates]
    state = facilities.State(facility.status)
    reached = facilities.State(facility.status_before_suspension or "registered")
    if state != facilities.State.suspended:
        reached = state
    steps = _checklist(reached, shown_certificates, systems)
    settings = _settings(request)
    department = who.is_department_admin(facility.province_code)
    done_grant = None
    if asked.grant is not None and asked.done in ("granted", "revoked"):
        done_grant = await identity.staff_grant(session, who, code, asked.grant)
    names = await identity.names_by_personal_id(
        session,
        [g.personal_id for g in staff.grants] + ([done_grant.personal_id] if done_grant else []),
    )
    notice = _notice(asked, done_grant, names, systems, shown_certificates, lang)
    opened = (
        _SECTION[form.kind]
        if form is not None
        else (notice or {}).get("section")
        or ("clinicians" if asked.revoke_grant or staff_cursor is not None else None)
        or ("clinicians" if search is not None else None)
        or ("systems" if asked.revoke_system else None)
        or ("certificates" if asked.revoke_certificate else None)
    )
    forms: dict[str, dict[str, Any]] = {
        "grant": {"personal_id": "", "role": "clinician"},
        "system": {"name": "", "key": "", "scopes": list(DEFAULT_SCOPES)},
        "certificate": {"pem": ""},
    }
    if form is not None:
        forms[form.kind] = form.typed
    refused = form.refused if form is not None else None
    province = (await catalogs.codebook(session)).in_force(
        "province", facility.province_code, today_in_vietnam()
    )
    wards = await _ward_names(session, {facility.ward_code} if facility.ward_code else set())
    older = None
    if receipts.next_cursor is not None:
        older = f"/facility/{code}?{urlencode({'cursor': receipts.next_cursor})}#receipts"
    searched = {"staff_q": search.text} if search is not None else {}
    more_staff = None
    if staff.next_cursor is not None:
        following = {**searched, "staff": staff.next_cursor}
        more_staff = f"/facility/{code}?{urlencode(following)}#clinicians"
    return _book_page(
        request,
        "facility.html",
        refused.status_code if refused is not None else 200,
        at=f"/facility/{code}" if form is not None else None,  # (a form's: not its address)
        subject=who,
        facility=facility,
        province_name=province.title_vi if province is not None else None,
        ward_name=wards.get(facility.ward_code or ""),
        state=state.value,
        before=reached.value,
        steps=steps,
        next_by=_NEXT_BY[state],
        events=list(reversed(events)),
        actors=await _actors(session, {e.actor for e in events}, systems, lang),
        certificates=shown_certificates,
        systems=systems,
        staff=[
            {
                "id": g.id,
                "role": g.role,
                "name": names.get(g.personal_id),
                "last": g.personal_id[-4:],
                "since": _moment(g.granted_at),
                # (a facility's administrator ends clinicians' roles; the department any)
                "may_revoke": g.role == "clinician" or department,
            }
            for g in staff.grants
        ],
        staff_total=staff.total,
        more_staff_url=more_staff,
        staff_cursor=staff_cursor,
        # (the start of the list, or of the search; and what a row's revoke link carries)
        first_staff_url=f"/facility/{code}?{urlencode(searched or {'staff': ''})}#clinicians",
        staff_query=urlencode({**searched, **({"staff": staff_cursor} if staff_cursor else {})}),
        staff_q=search.text if search is not None else "",
        staff_refused=search.refused if search is not None else None,
        roles=[r for r in PAGE_ROLES if r == "clinician" or department],
        scopes=list(facilities.SCOPES),
        token_url=f"{settings.public_url}/oauth/token",
        notice=notice,
        opened=opened,
        ask_grant=asked.revoke_grant,
        ask_system=asked.revoke_system,
        ask_certificate=asked.revoke_certificate,
        forms=forms,
        refused=refused,
        refused_form=form.kind if refused is not None and form is not None else None,
        refused_words=_top_words(refused, form.problems)
        if refused is not None and form is not None
        else None,
        problems=form.problems if form is not None and refused is not None else {},
        receipts=[_receipt(r) for r in receipts.items],
        older_url=older,
        paged=cursor is not None,
        awaiting=[
            {
                "visit_key": a["visit_key"],
                "began_at": _moment(a["began_at"]),
                "checked_in_at": _moment(a["checked_in_at"]),
            }
            for a in awaiting
        ],
        csrf=csrf_token(settings, request.state.session_data),
        max_mb=settings.max_body_bytes // (1024 * 1024),
    )


def _notice(
    asked: _Asked,
    grant: Any,
    names: dict[str, str],
    systems: list[Any],
    certificates: list[dict[str, Any]],
    lang: Language,
) -> dict[str, Any] | None:
    """What was just done, in words, and the section it was done in (None when the address
    names nothing of this facility that fits)."""
    if asked.done in ("granted", "revoked") and grant is not None:
        if (asked.done == "granted") != (grant.revoked_at is None):
            return None
        name = names.get(grant.personal_id) or text(
            "web.facility.grant.unnamed", lang, {"last": grant.personal_id[-4:]}
        )
        words = {"role": text(f"web.role.{grant.role}", lang), "name": name}
        key = "web.facility.grant.done" if asked.done == "granted" else "web.facility.grant.revoked"
        return {"section": "clinicians", "words": text(key, lang, words)}
    system = next((c for c in systems if c.client_id == asked.client), None)
    if asked.done in ("system", "system_revoked") and system is not None:
        if (asked.done == "system") != (system.status == "active"):
            return None
        key = (
            "web.facility.system.done" if asked.done == "system" else "web.facility.system.revoked"
        )
        words = {"name": system.name, "client_id": system.client_id}
        return {
            "section": "systems",
            "words": text(key, lang, words),
            "system": system if asked.done == "system" else None,
        }
    shown = next((c for c in certificates if c["row"].id == asked.certificate), None)
    if asked.done == "certificate" and shown is not None:
        day = "%d/%m/%Y"
        words = {
            "subject": shown["row"].subject,
            "start": shown["start"].astimezone(VIETNAM).strftime(day) if shown["start"] else "",
            "end": shown["end"].astimezone(VIETNAM).strftime(day) if shown["end"] else "",
        }
        return {"section": "certificates", "words": text("web.facility.cert.done", lang, words)}
    if asked.done == "certificate_revoked" and shown is not None:
        if shown["row"].status != "revoked":
            return None
        words = {"subject": shown["row"].subject}
        return {
            "section": "certificates",
            "words": text("web.facility.cert.revoked", lang, words),
        }
    return None


def _top_words(refused: VnehrError, problems: dict[str, dict[str, str]]) -> dict[str, str]:
    """What the box above a refused form says: the refusal's own words when none is said
    beside a field (they would say it twice)."""
    return dict.fromkeys(LANGUAGES, "") if problems else refused.messages()


def _certificate(row: Any, now: datetime) -> dict[str, Any]:
    """A certificate as the page shows it: its dates, and whether it serves now: ``flag``
    "expired", "not_yet" or "expiring" (within ``EXPIRING_DAYS``), or "" (fine)."""
    start, end = _moment(row.not_before), _moment(row.not_after)
    flag = ""
    if row.status == "active" and end is not None and start is not None:
        if end <= now:
            flag = "expired"
        elif start > now:
            flag = "not_yet"
        elif end - now <= timedelta(days=EXPIRING_DAYS):
            flag = "expiring"
    usable = row.status == "active" and flag in ("", "expiring")
    days = max(0, (end - now).days) if end is not None else 0
    return {"row": row, "start": start, "end": end, "flag": flag, "usable": usable, "days": days}


def _checklist(
    reached: facilities.State, certificates: list[dict[str, Any]], systems: list[Any]
) -> list[_Step]:
    """What the facility needs to connect, in order (``facilities.move`` and the intake
    decide: training is the department's to record; a certificate valid today moves a trained
    facility on; a system's accepted test file moves it to ``test_passed``; the department
    connects it). ``reached``: the state, or the one held before a suspension."""
    order = list(facilities.State)
    at = order.index(reached)
    return [
        _Step("code", True, "department"),
        _Step("training", at >= order.index(facilities.State.trained), "department"),
        _Step("certificate", any(c["usable"] for c in certificates), "facility"),
        _Step("system", any(s.status == "active" for s in systems), "facility"),
        _Step("test", at >= order.index(facilities.State.test_passed), "facility"),
        _Step("connected", reached == facilities.State.connected, "department"),
    ]


def _receipt(item: dict[str, Any]) -> dict[str, Any]:
    """A listed receipt as the page shows it: when, what, how many visits accepted, with
    warnings and rejected, and the visits whose issues are listed (rejected ones first)."""
    visits = item.get("visits") or []
    statuses = [v.get("status") for v in visits]
    listed = [v for v in visits if v.get("status") == "rejected"]
    listed += [v for v in visits if v.get("status") == "accepted_with_warnings"]
    return {
        "id": str(item.get("id", "")),
        "kind": item.get("kind", "visit_file"),
        "at": _moment(item.get("received_at")),
        "status": item.get("status", ""),
        "test_mode": bool(item.get("test_mode")),
        "accepted": statuses.count("accepted"),
        "warned": statuses.count("accepted_with_warnings"),
        "rejected": statuses.count("rejected"),
        "rows": item.get("rows", 0),
        "visit_keys": item.get("visit_keys") or [],
        "visits": listed,
        "issues": item.get("issues") or [],  # a check-in's
        "warnings": item.get("warnings") or [],  # the file's
    }


# ------------------------------------------------------------------ what the page registers


def _problem(kind: str, name: str, **words: Any) -> dict[str, str]:
    """A field's problem in every language (``web.problem.*``), naming it by its label."""
    return {
        lang: text(f"web.problem.{kind}", lang, {"field": texts(_LABELS[name]), **words})
        for lang in LANGUAGES
    }


def _beside(kind: str, error: VnehrError) -> dict[str, dict[str, str]]:
    """The refusal of a service, said beside the field it is about (none: at the top)."""
    name = _FIELDS[kind].get(error.code)
    return {name: error.messages()} if name else {}


async def _acting(
    request: Request, session: AsyncSession, subject: Subject | None, code: str, csrf: str
) -> tuple[Subject, Any] | Response:
    """Who sends the form and the facility, if the form is the session's and they may open the
    facility's page; else what to answer with (the sign-in, or the error page)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        return who, await _administered(session, who, code)
    except VnehrError as exc:
        return _error_page(request, exc)


async def _upload_text(upload: UploadFile | None) -> str | None:
    """The text of a file chosen in a form (None: no file chosen); a file that is not text,
    or longer than ``TEXT_MAX``, comes back as its first ``TEXT_MAX`` + 1 characters that
    read, for the field's own checks to refuse."""
    if upload is None or not upload.filename:
        return None
    data = await upload.read(TEXT_MAX * 4 + 1)
    return data.decode("utf-8", errors="replace")[: TEXT_MAX + 1]


def _done(code: str, section: str, **query: str | int) -> Response:
    """After acting, the page again (a reload does not act twice), saying what was done."""
    return RedirectResponse(f"/facility/{code}?{urlencode(query)}#{section}", status_code=303)


@router.post("/facility/{code}/staff", response_class=HTMLResponse)
async def facility_grant(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    personal_id: Annotated[str, Form(max_length=40)] = "",
    role: Annotated[str, Form(max_length=40)] = "clinician",
    step: Annotated[Literal["check", "confirm", "edit"], Form()] = "check",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Give a person a role at the facility, as ``POST /api/v1/grants`` does
    (``identity.add_grant``: a facility's administrator gives ``clinician``, the department
    ``facility_admin`` too): ``check`` names the person as recorded and asks (the look-up is
    in their access log), ``confirm`` gives the role and goes back to the page, ``edit``
    brings the form back as typed. A refusal comes back on the form (D193)."""
    acting = await _acting(request, session, subject, code, csrf)
    if isinstance(acting, Response):
        return acting
    who, facility = acting
    typed = {"personal_id": personal_id.strip(), "role": role}
    problems: dict[str, dict[str, str]] = {}
    if step == "edit":
        return await _render(request, session, session, who, code, form=_Form("grant", typed))
    if not typed["personal_id"]:
        problems["personal_id"] = _problem("missing", "personal_id")
    if role not in PAGE_ROLES:
        problems["role"] = _problem("format", "role")
    if problems:
        invalid = RequestInvalid(count=len(problems))
        form = _Form("grant", typed, problems, invalid)
        return await _render(request, session, session, who, code, form=form)
    try:
        if step == "check":
            holder, held = await identity.check_grant(
                session, who, personal_id=typed["personal_id"], role=role, facility_code=code
            )
            return _book_page(
                request,
                "facility_grant.html",
                at=f"/facility/{code}",
                subject=who,
                facility=facility,
                typed=typed,
                holder=holder,
                held=held,
                csrf=csrf_token(_settings(request), request.state.session_data),
            )
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            grant = await identity.add_grant(
                session, who, personal_id=typed["personal_id"], role=role, facility_code=code
            )
    except VnehrError as exc:
        shown = _beside("grant", exc)
        if exc.code == "AUTH-0002":  # the role is the department's to give
            shown = {"role": texts("web.facility.grant.not_yours")}
        form = _Form("grant", typed, shown, exc)
        return await _render(request, session, session, who, code, form=form)
    return _done(code, "clinicians", done="granted", grant=grant.id)


@router.post("/facility/{code}/staff/{grant_id}/revoke", response_class=HTMLResponse)
async def facility_revoke_grant(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    grant_id: _ROW,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """End a role given at the facility, as ``POST /api/v1/grants/{id}/revoke`` does (the page
    asks first: ``?revoke_grant=``); a role of another facility is not found here."""
    acting = await _acting(request, session, subject, code, csrf)
    if isinstance(acting, Response):
        return acting
    who, _ = acting
    try:
        grant = await identity.staff_grant(session, who, code, grant_id)
        if grant is None:
            raise identity.BadGrant(reason=f"no grant {grant_id}")
        await identity.revoke_grant(session, who, grant_id)
    except VnehrError as exc:
        return _error_page(request, exc)
    return _done(code, "clinicians", done="revoked", grant=grant_id)


@router.post("/facility/{code}/systems", response_class=HTMLResponse)
async def facility_add_system(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    name: Annotated[str, Form(max_length=400)] = "",
    key: Annotated[str, Form(max_length=TEXT_MAX * 2)] = "",
    key_file: Annotated[UploadFile | None, File()] = None,
    scopes: Annotated[list[str] | None, Form(max_length=20)] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Register a facility system, as ``POST /api/v1/facilities/{code}/clients`` does
    (``facilities.add_client``), with its public key pasted or uploaded as a JWKS, one JWK
    or PEM (``facilities.key_set``); the page then shows its client id and what its IT does
    next. A refusal comes back on the form with what was typed (D193)."""
    acting = await _acting(request, session, subject, code, csrf)
    if isinstance(acting, Response):
        return acting
    who, _ = acting
    uploaded = await _upload_text(key_file)
    typed: dict[str, Any] = {
        "name": name.strip(),
        "key": (uploaded if uploaded is not None else key).strip(),
        "scopes": [s for s in scopes or [] if s in facilities.SCOPES],
    }
    problems: dict[str, dict[str, str]] = {}
    try:  # the name and scopes as the API's schema takes them
        facilities.ClientCreate(name=typed["name"], jwks={}, scopes=typed["scopes"])
    except ValidationError as exc:
        problems = _problems_by_field(exc)
    if not typed["scopes"]:
        problems["scopes"] = _problem("missing", "scopes")
    refused: VnehrError | None = None
    jwks: dict[str, Any] = {}
    if not typed["key"]:
        problems["key"] = _problem("missing", "key")
    elif len(typed["key"]) > TEXT_MAX:
        problems["key"] = _problem("too_long", "key", max=TEXT_MAX)
    else:
        try:
            jwks = facilities.key_set(typed["key"])
        except VnehrError as exc:
            problems["key"], refused = exc.messages(), exc
    try:
        if problems:
            raise refused if refused and len(problems) == 1 else RequestInvalid(count=len(problems))
        data = facilities.ClientCreate(name=typed["name"], jwks=jwks, scopes=typed["scopes"])
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            system = await facilities.add_client(session, who, code, data)
    except VnehrError as exc:
        if (exc.detail or {}).get("cause") == "private":
            typed["key"] = ""  # (a private key is not written into the page again)
        form = _Form("system", typed, problems or _beside("system", exc), exc)
        return await _render(request, session, session, who, code, form=form)
    return _done(code, "systems", done="system", client=system.client_id)


def _problems_by_field(exc: ValidationError) -> dict[str, dict[str, str]]:
    """A schema's problems with a form, in words, by the field each is about."""
    words = _problems_in_words(exc, _LABELS)
    return {str((e.get("loc") or ("",))[0]): w for e, w in zip(exc.errors(), words, strict=True)}


@router.post("/facility/{code}/systems/{client_id}/revoke", response_class=HTMLResponse)
async def facility_revoke_system(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    client_id: _CLIENT,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Revoke a facility system, as ``POST /api/v1/facilities/{code}/clients/{id}/revoke``
    does (the page asks first: ``?revoke_system=``): its tokens stop within seconds."""
    acting = await _acting(request, session, subject, code, csrf)
    if isinstance(acting, Response):
        return acting
    who, _ = acting
    try:
        await facilities.revoke_client(session, who, code, client_id)
    except VnehrError as exc:
        return _error_page(request, exc)
    return _done(code, "systems", done="system_revoked", client=client_id)


@router.post("/facility/{code}/certificates", response_class=HTMLResponse)
async def facility_add_certificate(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    pem: Annotated[str, Form(max_length=TEXT_MAX * 2)] = "",
    pem_file: Annotated[UploadFile | None, File()] = None,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Register the facility's signing certificate, as ``POST
    /api/v1/facilities/{code}/certificates`` does (``facilities.add_certificate``), pasted or
    uploaded as PEM; the page then shows its subject and validity. A refusal (expired, not a
    certificate, not for signing) comes back in words beside the field, the text kept."""
    acting = await _acting(request, session, subject, code, csrf)
    if isinstance(acting, Response):
        return acting
    who, _ = acting
    uploaded = await _upload_text(pem_file)
    typed = {"pem": (uploaded if uploaded is not None else pem).strip()}
    try:
        if not typed["pem"]:
            raise RequestInvalid(count=1)
        try:
            data = facilities.CertificateCreate(pem=typed["pem"])
        except ValidationError as exc:  # too short to be one, or too long: not one
            raise facilities.BadCertificate(
                {"cause": "unreadable"}, reason=texts("certificate.reason.unreadable")
            ) from exc
        async with session.begin_nested():
            row = await facilities.add_certificate(session, who, code, data.pem)
    except VnehrError as exc:
        shown = _beside("certificate", exc)
        if not typed["pem"]:
            shown = {"pem": _problem("missing", "pem")}
        if (exc.detail or {}).get("cause") == "private_key":
            typed["pem"] = ""  # (a private key is not written into the page again)
        form = _Form("certificate", typed, shown, exc)
        return await _render(request, session, session, who, code, form=form)
    return _done(code, "certificates", done="certificate", certificate=row.id)


@router.post("/facility/{code}/certificates/{certificate_id}/revoke", response_class=HTMLResponse)
async def facility_revoke_certificate(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: _CODE,
    certificate_id: _ROW,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Revoke a signing certificate of the facility, as ``POST
    /api/v1/facilities/{code}/certificates/{id}/revoke`` does (``facilities.revoke_certificate``:
    its rules, its audit row; the page asks first: ``?revoke_certificate=``): from now on a
    file signed with it is refused. Another facility's certificate is not found here."""
    acting = await _acting(request, session, subject, code, csrf)
    if isinstance(acting, Response):
        return acting
    who, _ = acting
    try:
        await facilities.revoke_certificate(session, who, code, certificate_id)
    except VnehrError as exc:
        return _error_page(request, exc)
    return _done(code, "certificates", done="certificate_revoked", certificate=certificate_id)
