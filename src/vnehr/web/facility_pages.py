"""The facility administrator's page (``/facility/{code}``): the facility, where it stands in
onboarding and what it still needs to connect, its systems, certificates and staff, its latest
receipts and the visits checked in but never sent, and a form that checks a visit file before
its system sends it (nothing stored). Every read goes through the context that owns it, scoped
to the signed-in person as its API is."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as UrlPath
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs, facilities, identity, submissions
from vnehr.kit.auth import Forbidden, OptionalSubject, Subject, check_csrf, csrf_token
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.errors import VnehrError
from vnehr.kit.http import ReadSession, WriteSession
from vnehr.kit.i18n import LANGUAGES, Language, text
from vnehr.kit.numerals import number
from vnehr.web.pages import (
    _actors,
    _book_page,
    _error_page,
    _language,
    _PageRoute,
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
) -> Response:
    """A facility for its administrator: the facility, its onboarding and what it still
    needs, systems, certificates, staff, the latest receipts (newest first, ``cursor``: where
    the page before ended), the visits checked in but never sent, and the file check form."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    return await _render(request, session, primary, who, code, cursor=cursor)


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
    cursor: str | None,
) -> Response:
    lang: Language = "en" if _language(request) == "en" else "vi"
    try:
        facility = await _administered(session, who, code)
        events = await facilities.history(session, who, code)
        certificates = await facilities.certificates(session, who, code)
        systems = await facilities.clients(session, who, code)
        staff = await identity.staff_of(session, who, code)
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
    names = await identity.names_by_personal_id(session, [g.personal_id for g in staff])
    province = (await catalogs.codebook(session)).in_force(
        "province", facility.province_code, today_in_vietnam()
    )
    wards = await _ward_names(session, {facility.ward_code} if facility.ward_code else set())
    older = None
    if receipts.next_cursor is not None:
        older = f"/facility/{code}?{urlencode({'cursor': receipts.next_cursor})}#receipts"
    return _book_page(
        request,
        "facility.html",
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
                "role": g.role,
                "name": names.get(g.personal_id),
                "last": g.personal_id[-4:],
                "since": _moment(g.granted_at),
            }
            for g in staff
        ],
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
        csrf=csrf_token(_settings(request), request.state.session_data),
        max_mb=_settings(request).max_body_bytes // (1024 * 1024),
    )


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
