"""Pages of the web portals, rendered on the server with Jinja2 templates: VNeID sign-in, the
citizen's page (open or close the health book), the department's facility registry."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import inspect
import re
import secrets
import time
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlparse

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi import Path as UrlPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import pass_context
from jinja2.runtime import Context
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from vnehr import (
    __version__,
    catalogs,
    exchange,
    facilities,
    healthbook,
    identity,
    papers,
    records,
    reporting,
    sharing,
)
from vnehr.kit.auth import (
    SESSION_COOKIE,
    Forbidden,
    OptionalSubject,
    Subject,
    check_csrf,
    csrf_token,
    end_session,
    make_session_cookie,
    optional_subject,
    session_cookie_options,
)
from vnehr.kit.clock import VIETNAM, today_in_vietnam, utcnow
from vnehr.kit.errors import RequestInvalid, VnehrError
from vnehr.kit.http import ReadSession, WriteSession, database, http_error, request_invalid
from vnehr.kit.i18n import LANGUAGE_COOKIE, LANGUAGES, Language, born, catalogue, text, texts
from vnehr.kit.numerals import install as install_numerals
from vnehr.kit.settings import Settings

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["t"] = text
install_numerals(templates.env)  # numbers in the page's language (1.234,5 / 1,234.5)
templates.env.filters["local"] = lambda value, pattern="%d/%m/%Y %H:%M": (
    value.astimezone(VIETNAM).strftime(pattern) if value else ""
)


def _revoke_reason(reason: str | None, lang: Language) -> str:
    """Why a paper was revoked: the hub's own reasons (a corrected visit's paper replaced,
    a withdrawn visit's paper withdrawn, none on record) in words, a facility's as it wrote
    it (the API takes free text)."""
    if not reason:
        return ""
    return catalogue(lang).get(f"web.papers.reason.{reason}", reason)


templates.env.globals["revoke_reason"] = _revoke_reason

#: What the registry writes as the reason of its own onboarding moves (facilities/service.py):
#: the key of their words; any other reason is what a person typed.
_OWN_MOVES = {
    "issued": "issued",
    "existing code registered": "existing_code",
    "certificate": "certificate",
    "test submission passed": "test_passed",
}
_OVERRIDE = re.compile(r"override \(([a-z_]+)\): (.*)", re.S)


def move_reason(reason: str | None, lang: Language) -> str:
    """Why a facility moved along onboarding, in words: the registry's own reasons (a code
    issued, a certificate registered, a test file passed) and an override's missing fact
    from the catalogue, with what the department typed kept as typed."""
    if not reason:
        return ""
    own = _OWN_MOVES.get(reason)
    if own is not None:
        return text(f"web.department.reason.{own}", lang)
    override = _OVERRIDE.fullmatch(reason)
    if override is not None:
        fact = text(f"web.department.fact.{override[1]}", lang)
        return text("web.department.reason.override", lang, {"fact": fact, "why": override[2]})
    return reason


templates.env.globals["move_reason"] = move_reason


templates.env.globals["coded_name"] = healthbook.coded_name


def _born(day: date | None, partial: str | None, lang: Language) -> str:
    """A birth as far as it is known: "14/05/1980", or "tháng 05/1980" / "năm 1980" when the
    record has only the month or the year (D106), never an invented day; "" when unknown.
    ``partial`` may also be a paper's FHIR birthDate ("1980-05-14", "1980-05", "1980")."""
    return born(day if day is not None else partial, lang)


templates.env.globals["born"] = _born


def _when(value: str | None, lang: Language) -> str:
    """A paper's date or moment (FHIR's date and dateTime) as the book writes them:
    "28/10/2026", a moment "10:30 11/11/2026" in Vietnam time (as the paper's PDF prints it),
    a date known by its month or year only as a birth is ("tháng 05/1980"); else as it came."""
    if not value:
        return ""
    if re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", value):
        return born(value, lang)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(VIETNAM)
    return moment.strftime("%H:%M %d/%m/%Y")


templates.env.globals["when"] = _when
LANG_COOKIE = LANGUAGE_COOKIE
LOGIN_COOKIE = "vnehr_login"
LOGIN_MAX_AGE = 600
#: Facilities on one page of the department's registry; the "next" link pages through the rest.
REGISTRY_PAGE = 200
#: Reads on one page of the citizen's access log; "Xem thêm" shows the older ones.
ACCESS_LOG_PAGE = 100
#: Dispute cases on one page of the review queue; a link pages through the rest.
DISPUTE_PAGE = 100
#: Emergency accesses on one page of the review queue; a link pages through the rest.
EMERGENCY_PAGE = 100


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _page(request: Request, name: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    # every page of a signed-in person carries the sign-out form, with the session's token
    data = getattr(request.state, "session_data", None)
    signout = csrf_token(_settings(request), data) if data else ""
    return templates.TemplateResponse(
        request,
        name,
        {"version": __version__, "signout_csrf": signout, **context},
        status_code=http_status,
    )


def _error_page(
    request: Request, error: VnehrError, problems: list[dict[str, str]] | None = None
) -> HTMLResponse:
    """The error page in the reader's language (the other one below), its header naming
    whoever is signed in, with a way back to the page of this site the browser came from."""
    lang = _language(request)
    here = _this_page(request)
    return _page(
        request,
        "error.html",
        error.status_code,
        code=error.code,
        message=error.messages(),
        problems=problems or [],
        subject=_signed_in_as(request),
        lang=lang,
        # (an address naming a person is not repeated in the page: pages are kept and pasted)
        switch_url=_with_lang(here if _names_nobody(here) else "/portal", _other(lang)),
        back=_came_from(request),
    )


def _other(lang: str) -> str:
    return "en" if lang == "vi" else "vi"


def _names_nobody(address: str) -> bool:
    """Whether an address holds no personal ID (no run of 12 digits), so a page may show it."""
    return re.search(r"\d{12}", address) is None


def _signed_in_as(request: Request) -> Subject | None:
    """Whom an error page's header names: the person of the request's session when its
    route read it (``optional_subject`` keeps it on the request), else nobody."""
    data = getattr(request.state, "session_data", None)
    if not data or "personal_id" not in data:
        return None
    return Subject(
        kind="person",
        id=str(data["personal_id"]),
        name=str(data.get("name", "")),
        assurance_level=data.get("assurance_level"),
    )


def _came_from(request: Request) -> str | None:
    """The page of this site the browser came from (its Referer), other than this very
    address read again; None for another site's or none."""
    referer = urlparse(request.headers.get("referer", ""))
    ours = urlparse(_settings(request).public_url).netloc
    if referer.scheme not in ("http", "https") or referer.netloc not in (ours, request.url.netloc):
        return None
    page = referer.path + (f"?{referer.query}" if referer.query else "")
    if _safe_next(page) != page or (request.method == "GET" and page == _this_page(request)):
        return None
    return page if _names_nobody(page) else None


def _this_page(request: Request) -> str:
    """The page a request shows: its own address for a GET, else the page its form was on."""
    if request.method in ("GET", "HEAD"):
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _came_from(request) or "/portal"


def _with_lang(address: str, lang: str) -> str:
    """``address`` in language ``lang`` (its language switch)."""
    parts = urlparse(address)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    return f"{parts.path}?{urlencode([*query, ('lang', lang)])}"


#: The kinds of a validator's problem, by the words a page says them in (``web.problem.*``).
_PROBLEMS = {
    "missing": "missing",
    "int_parsing": "number",
    "int_from_float": "number",
    "greater_than": "number",
    "greater_than_equal": "number",
    "less_than": "number",
    "less_than_equal": "number",
    "string_too_long": "too_long",
    "string_too_short": "too_short",
    "string_pattern_mismatch": "format",
    "literal_error": "format",
    "enum": "format",
}


def _problems_in_words(
    exc: RequestValidationError | ValidationError, labels: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """What was wrong with a page's address or form, in words (``web.problem.*``), naming the
    field by its label (``labels``: a form's own, by field name; else ``web.field.*``) or, for
    one without, by where it is: never the validator's English message and location
    ("path.visit_id: Input should be ...")."""
    found: list[dict[str, str]] = []
    for problem in exc.errors():
        where = [str(part) for part in problem.get("loc", ())] or ["body"]
        field = f"web.field.{where[-1]}"
        if len(where) < 2 or field not in catalogue("vi"):
            field = f"web.field.{where[0]}"
        if field not in catalogue("vi"):
            field = "web.field.body"
        field = (labels or {}).get(where[-1], field)
        kind = _PROBLEMS.get(str(problem.get("type", "")), "other")
        context = problem.get("ctx") or {}
        words = {
            "field": texts(field),
            "max": context.get("max_length", ""),
            "min": context.get("min_length", ""),
        }
        found.append({lang: text(f"web.problem.{kind}", lang, words) for lang in LANGUAGES})
    return found


def _invalid_page(request: Request, exc: RequestValidationError) -> HTMLResponse:
    return _error_page(request, request_invalid(exc), _problems_in_words(exc))


def _http_error_page(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
    response = _error_page(request, http_error(request, exc))
    response.status_code = exc.status_code
    if exc.headers:
        response.headers.update(exc.headers)
    return response


class _PageRoute(APIRoute):
    """A page's route: bad input (an id that is not a number, a field over its length, an
    unknown action), a body over the cap, another method on a page's address, and any coded
    error the route lets through are answered with the error page, in the status and code the
    API would give, rather than the API's JSON body (a person reads it in a browser); so is a
    lost database, which the middleware answers (503 KIT-0008, D101). What the middleware
    refuses before any route runs (a control character in the address, a declared length over
    the cap) stays JSON."""

    def render_error(self, request: Request, error: VnehrError) -> Response:
        """An error the middleware answers for this page (a lost database): the error page."""
        return _error_page(request, error)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _invalid_page(request, exc)
            except StarletteHTTPException as exc:
                return _http_error_page(request, exc)
            except VnehrError as exc:
                return _error_page(request, exc)

        return page_handler

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().handle(scope, receive, send)
        except StarletteHTTPException as exc:  # 405: the page's address with another method
            request = Request(scope, receive)
            await _read_who(request)
            await _http_error_page(request, exc)(scope, receive, send)


router = APIRouter(include_in_schema=False, route_class=_PageRoute)

#: Where a person's browser goes: an address under one of these that no route answers gets
#: the error page, as a page's own errors do (``_PageRoute``); the API keeps its JSON.
PAGE_ADDRESSES = (
    "/portal",
    "/book",
    "/clinic",
    "/review",
    "/department",
    "/verify",
    "/facility",
    "/ward",
)


def install_error_pages(app: FastAPI) -> None:
    """Answer "no such address" under ``PAGE_ADDRESSES`` with the error page, its header
    naming whoever is signed in; every other address as the app's handler does."""
    as_json = app.exception_handlers[StarletteHTTPException]

    async def answer(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if isinstance(exc, StarletteHTTPException) and any(
            path == page or path.startswith(f"{page}/") for page in PAGE_ADDRESSES
        ):
            await _read_who(request)
            return _http_error_page(request, exc)
        answered = as_json(request, exc)
        return await answered if inspect.isawaitable(answered) else answered

    app.add_exception_handler(StarletteHTTPException, answer)


async def _read_who(request: Request) -> None:
    """Read the session of an error page no route answered, for its header (``_signed_in_as``)
    only: a bad bearer token is the API's to refuse, and is not the page's concern."""
    with contextlib.suppress(VnehrError):
        await optional_subject(request)


def _login_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key.get_secret_value(), salt="vnehr.login")


def _safe_next(value: str | None) -> str:
    """Only paths on this site (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/portal"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, subject: OptionalSubject) -> HTMLResponse:
    """Landing page: what vnehr is and where to go next."""
    return _page(request, "home.html", subject=subject)


# ------------------------------------------------------------------ VNeID sign-in


@router.get("/auth/login")
async def login(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    """Start VNeID sign-in: remember state, nonce and PKCE verifier in a signed cookie and send
    the browser to the identity provider."""
    settings = _settings(request)
    pending = identity.PendingLogin.new(_safe_next(next))
    try:
        url = await request.app.state.oidc.authorization_url(pending)
    except VnehrError as exc:
        return _error_page(request, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        _login_serializer(settings).dumps(
            [pending.state, pending.nonce, pending.verifier, pending.return_to]
        ),
        max_age=LOGIN_MAX_AGE,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/auth",
    )
    return response


@router.get("/auth/callback")
async def callback(
    request: Request,
    session: WriteSession,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Finish VNeID sign-in: check state, exchange the code with the verifier, verify the ID
    token, record the person and start a portal session."""
    settings = _settings(request)
    try:
        raw = request.cookies.get(LOGIN_COOKIE, "")
        try:
            saved = _login_serializer(settings).loads(raw, max_age=LOGIN_MAX_AGE)
        except BadSignature as exc:
            raise identity.SignInFailed(reason="sign-in expired or started elsewhere") from exc
        pending = identity.PendingLogin(*saved)
        if error:
            raise identity.SignInFailed(reason=error)
        if not code or not state:
            raise identity.SignInFailed(reason="code or state missing")
        claims = await request.app.state.oidc.finish(pending, code=code, state=state)
        person = await identity.sign_in(session, claims)
    except VnehrError as exc:
        return _error_page(request, exc)
    response = RedirectResponse(pending.return_to, status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path="/auth")
    response.set_cookie(
        SESSION_COOKIE,
        make_session_cookie(
            settings,
            {
                "personal_id": person.personal_id,
                "name": person.full_name,
                "assurance_level": int(claims.get("assurance_level", 1)),
            },
        ),
        **session_cookie_options(settings),
    )
    return response


@router.post("/auth/logout")
async def logout(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """End the portal session (and the provider's, when it offers a logout endpoint). The
    session's id is recorded as ended, so a copy of the cookie stops working too; a form with
    the session's token, so that another site cannot sign anyone out."""
    settings = _settings(request)
    data = getattr(request.state, "session_data", None)
    if subject is None or data is None:  # already signed out: only the cookie is left
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    try:
        check_csrf(settings, request, csrf)
    except VnehrError as exc:
        return _error_page(request, exc)
    await end_session(session, settings, data)
    target = await request.app.state.oidc.logout_url(f"{settings.public_url}/") or "/"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------ citizen portal


def _signed_in(request: Request, subject: Subject | None) -> Subject | RedirectResponse:
    if subject is None or subject.kind != "person":
        return RedirectResponse(
            "/auth/login?" + urlencode({"next": _return_to(request)}), status_code=303
        )
    return subject


def _signed_in_form(request: Request, subject: Subject | None, csrf: str) -> Subject | Response:
    """Who sends a form: a signed-in person (else on to sign in) whose form carries the
    session's token (else the error page)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
    except VnehrError as exc:
        return _error_page(request, exc)
    return who


def _return_to(request: Request) -> str:
    """Where to come back after signing in: the page asked for, with its query; for a form
    sent while signed out, the page the form was on (the browser comes back with a GET, which
    a form's address does not answer), when that page is on this site, else the portal."""
    if request.method in ("GET", "HEAD"):
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    referer = urlparse(request.headers.get("referer", ""))
    ours = urlparse(_settings(request).public_url).netloc
    if referer.scheme in ("http", "https") and referer.netloc in (ours, request.url.netloc):
        return _safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))
    return "/portal"


#: Messages on one page of the portal; "Thông báo cũ hơn" shows the older ones.
MESSAGES_PAGE = 10


@router.get("/portal", response_class=HTMLResponse)
async def portal(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The citizen's page: who they are, their health book, roles, whom they act for, and
    their messages, ``MESSAGES_PAGE`` at a time (``cursor``: where the page before ended),
    each leading to what it tells of; in the reader's language, as the book (``?lang=``)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    person, account, grants, represented = await identity.profile(session, who)
    # the messages tell of the health book: none below level 2 (D12), the upgrade text instead;
    # a parent's include their children's, each named (as /api/v1/me/notifications does)
    messages: list[tuple[Any, dict[str, dict[str, str]]]] = []
    unread = 0
    agents: list[dict[str, Any]] = []  # who acts for the viewer (none shown below level 2)
    agents_of: dict[int, list[dict[str, Any]]] = {}  # and for each person they act for
    links: dict[int, str] = {}
    more_url = None
    if (who.assurance_level or 1) >= 2:
        whose = {person.id: None} | {p.id: p.full_name for _, p in represented}
        held = {p.id: identity.Holder.of(p, r.relation) for r, p in represented}
        found = await exchange.inbox(
            session,
            whose,
            limit=MESSAGES_PAGE,
            cursor=cursor,
            confided=exchange.confided(held.values()),
        )
        if found.next_cursor is not None:
            more_url = f"/portal?{urlencode({'cursor': found.next_cursor})}#messages"
        people = {p.id: p for _, p in represented}
        links = await _message_links(request, session, who, person.id, people, found.items)
        rendered = await exchange.texts_of(
            session,
            [(m.kind, m.params) for m in found.items],
            [whose[m.person_id] for m in found.items],  # a child's name the child, not "your"
            [
                m.person_id in held and exchange.facility_withheld(m.kind, held[m.person_id])
                for m in found.items
            ],
        )
        messages = list(zip(found.items, rendered, strict=True))
        unread = found.unread
        agents, agents_of = await _representation_of(session, who, [p for _, p in represented])
    # below level 2 nobody is named: only that someone acts for them, if anyone does
    represented_hidden = (who.assurance_level or 1) < 2 and await identity.has_representatives(
        session, who
    )
    return _book_page(
        request,
        "portal.html",
        subject=who,
        person=person,
        account=account,
        grants=grants,
        represented=represented,
        agents=agents,
        agents_of=agents_of,
        represented_hidden=represented_hidden,
        places=await _places_of(session, grants),
        csrf=csrf_token(_settings(request), request.state.session_data),
        level_message=texts("ID-0101", {"level": who.assurance_level or 1, "required": 2})
        if (who.assurance_level or 1) < 2
        else None,
        notice=request.query_params.get("notice"),
        messages=messages,
        unread=unread,
        links=links,
        more_url=more_url,
        older=cursor is not None,
    )


#: Ended representation links a list on the portal shows, the newest recorded first.
ENDED_LINKS_SHOWN = 10


async def _representation_of(
    session: AsyncSession, who: Subject, represented: list[Any]
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """Who acts for the viewer, and for each person they act for today (by the person's id),
    as the portal lists them (``_links_shown``), each link with the case the viewer or another
    representative opened about it (``contest_link``), if any."""
    mine = await identity.my_links(session, who)
    theirs = {p.id: await identity.representation_links(session, p.id) for p in represented}
    every = {x.id for x in mine} | {x.id for links in theirs.values() for x in links}
    cases = await healthbook.link_disputes(session, who, every)
    return _links_shown(mine, cases), {i: _links_shown(x, cases) for i, x in theirs.items()}


def _links_shown(
    links: list[identity.Link], cases: dict[int, healthbook.Dispute | None]
) -> list[dict[str, Any]]:
    """A person's representation links as a list shows them: those in force or to come first,
    then at most ``ENDED_LINKS_SHOWN`` ended ones (greyed), each with its case, and whether
    one may be opened ("not right?" on a current link whose recording is on record)."""
    current = [x for x in links if x.state in ("in_force", "not_yet")]
    ended = [x for x in links if x.state not in ("in_force", "not_yet")][:ENDED_LINKS_SHOWN]
    return [
        {
            "link": x,
            "current": x in current,
            "case": cases.get(x.id),
            "contest": x in current and x.id in cases,
        }
        for x in current + ended
    ]


#: Notices about who acts for the person they are about: a link recorded or ended, and the
#: day one begins or its end takes effect (D247). The agent's own (``representative_released``,
#: ``representative_acting``, ``representative_release_effective``) lead nowhere.
_ABOUT_THE_LINKS = frozenset(
    {
        "representative",
        "representative_ended",
        "representative_began",
        "representative_end_effective",
    }
)


async def _message_links(
    request: Request,
    session: AsyncSession,
    who: Subject,
    own: int,
    people: dict[int, Any],
    items: list[Any],
) -> dict[int, str]:
    """Where each message leads (by its id): a new visit to the visit, while it is in the book
    it was told to; a paper to the papers of that book; a read or an emergency access to that
    book's "who viewed" page; a new representative of someone the viewer acts for to that
    book. A book of someone the viewer acts for is named by ``?p=``, never
    by the personal ID; one without a personal ID (a newborn not yet registered) has no page
    of its own to lead to."""
    links = {}
    for m in items:
        whom = people.get(m.person_id)
        book: str | None = _holder_query(request, who, whom) if whom is not None else ""
        if m.person_id != own and not book:
            book = None
        if m.kind == "visit":
            entry = await records.entry_by_key(
                session, str(m.params.get("facility", "")), str(m.params.get("visit_key", ""))
            )
            if entry is not None and entry.person_id == m.person_id:
                links[m.id] = f"/portal/book/visits/{entry.id}"
        elif book is None:
            continue
        elif m.kind == "paper":
            links[m.id] = f"/portal/book/papers{book}"
        elif m.kind in ("viewed", "emergency", "emergency_unjustified"):
            links[m.id] = f"/portal/book/access-log{book}"
        elif m.kind in _ABOUT_THE_LINKS and m.person_id == own:
            # the person's own notice of a link recorded or ended: to the links on this page
            # ("Người đại diện cho bạn"), where a wrong one is reported
            links[m.id] = "/portal#representatives"
        elif m.kind in _ABOUT_THE_LINKS:
            # a representative (the new one too) is led to the book they read; a former agent's
            # own notice (``representative_released``) leads nowhere: that book is closed to them
            links[m.id] = f"/portal/book{book}"
    return links


async def _places_of(session: AsyncSession, grants: list[Any]) -> dict[str, str]:
    """The names of the facilities, provinces and wards the roles are held at, as the portal
    shows them ("facility:01002" -> its registered name, "province:01" -> "Thành phố Hà Nội",
    "ward:00070" -> the ward's name today); a code without a name is left out (shown as is)."""
    named = await facilities.directory(
        session, {g.facility_code for g in grants if g.facility_code}
    )
    places = {f"facility:{code}": f.name for code, f in named.items() if f.name}
    if any(g.province_code or g.ward_code for g in grants):
        codes, today = await catalogs.codebook(session), today_in_vietnam()
        for g in grants:
            for kind, code in (("province", g.province_code), ("ward", g.ward_code)):
                found = codes.in_force(kind, code, today) if code else None
                if found is not None and found.title_vi:
                    places[f"{kind}:{code}"] = found.title_vi
    return places


@router.post("/portal/notifications/read-all")
async def portal_read_all(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Mark every message on the portal page (the citizen's and their children's) as read:
    the page lists the newest ten, so older unread ones are cleared here."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        holders = await identity.book_holders(session, who)
        confided = exchange.confided(holders)
        await exchange.mark_all_read(session, [h.id for h in holders], confided=confided)
    except VnehrError as exc:
        return _error_page(request, exc)
    return RedirectResponse("/portal", status_code=303)


@router.post("/portal/representatives/{link_id}/contest")
async def portal_contest_link(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    link_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
    reason: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """ "Không đúng? Báo Sở Y tế" (not right?): tell the health department that a
    representation link of the viewer's, or of a person they act for, is wrong (a case in its
    review queue; the same form sent again, the same case); back to the link on the portal,
    which says it was sent."""
    who = _signed_in_form(request, subject, csrf)
    if isinstance(who, Response):
        return who
    try:
        await healthbook.contest_link(session, who, link_id, reason.strip() or None)
    except VnehrError as exc:
        return _error_page(request, exc)
    return RedirectResponse(f"/portal?notice=contested#link-{link_id}", status_code=303)


@router.post("/portal/account/{action}")
async def portal_account(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    action: Literal["open", "close"],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Open or close the health book from the portal."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        if action == "open":
            await identity.open_account(session, who)
        else:
            await identity.close_account(session, who, "closed by the citizen in the portal")
    except VnehrError as exc:
        return _error_page(request, exc)
    notice = "opened" if action == "open" else "closed"
    return RedirectResponse(f"/portal?notice={notice}", status_code=303)


# ------------------------------------------------------------------ department


@router.get("/department/facilities", response_class=HTMLResponse)
async def department_facilities(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    status: str | None = None,
    q: str | None = None,
    after: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{5}$")] = None,
) -> Response:
    """The health department's registry: facilities, their codes and onboarding states, a
    page at a time in code order (``after`` the last code of the page before)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    if not who.is_department_admin():
        return _error_page(request, Forbidden(action="open the department pages"))
    return await _registry_page(request, session, who, status=status, q=q, after=after)


async def _registry_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    *,
    status: str | None = None,
    q: str | None = None,
    after: str | None = None,
    refused: VnehrError | None = None,
    problems: list[dict[str, str]] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    """The registry's page: a page of facilities, their counts by state, and the form that
    issues a code; a refused form (``refused``, the validator's ``problems`` in words) comes
    back on it with what was typed (``form``)."""
    # an unknown state (a hand-edited address) filters nothing rather than reach the database
    state = status if status in {s.value for s in facilities.State} else None
    rows = await facilities.listing(
        session, who, status=state, q=q or None, after=after, limit=REGISTRY_PAGE + 1
    )
    next_url = None
    if len(rows) > REGISTRY_PAGE:
        more = {"status": state, "q": q or None, "after": rows[REGISTRY_PAGE - 1].code}
        next_url = f"/department/facilities?{urlencode({k: v for k, v in more.items() if v})}"
    counts = await facilities.status_counts(session, who)
    return _book_page(
        request,
        "department_facilities.html",
        refused.status_code if refused is not None else 200,
        at="/department/facilities" if refused is not None else None,  # (not the form's)
        subject=who,
        rows=rows[:REGISTRY_PAGE],
        wards=await _ward_names(session, {f.ward_code for f in rows if f.ward_code}),
        next_url=next_url,
        counts=counts,
        states=[s.value for s in facilities.State],
        kinds=[k.value for k in facilities.Kind],
        levels=[v.value for v in facilities.Level],
        csrf=csrf_token(_settings(request), request.state.session_data),
        issued=request.query_params.get("issued") if refused is None else None,
        status=state or "",
        q=q or "",
        refused=refused,
        problems=problems or [],
        form=form or {"province_code": "01"},
    )


#: The labels of the registration form's fields (``department_facilities.html``), by which a
#: refusal names them.
_REGISTRATION_LABELS = {
    "name": "web.department.name",
    "kind": "web.department.kind",
    "level": "web.department.level",
    "ownership": "web.department.ownership",
    "province_code": "web.province",
    "ward_code": "web.department.ward",
    "address": "web.department.address",
    "code": "web.field.facility",
}


@router.post("/department/facilities")
async def department_register(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    level: Annotated[str, Form()] = "",
    ownership: Annotated[str, Form()] = "",
    province_code: Annotated[str, Form()] = "",
    ward_code: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Issue a code (or register an existing one) from the department page; a refused form
    comes back on the registry's page, said in words, with what was typed (D193)."""
    who = _signed_in_form(request, subject, csrf)
    if isinstance(who, Response):
        return who
    if not who.is_department_admin():
        return _error_page(request, Forbidden(action="open the department pages"))
    typed = {
        "name": name,
        "kind": kind,
        "level": level,
        "ownership": ownership,
        "province_code": province_code,
        "ward_code": ward_code,
        "address": address,
        "code": code,
    }
    try:
        data = facilities.FacilityCreate(
            name=name,
            kind=kind,
            level=level,
            ownership=ownership,
            province_code=province_code,
            ward_code=ward_code or None,
            address=address or None,
            code=code or None,
        )
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            facility = await facilities.register(session, who, data)
    except ValidationError as exc:
        problems = _problems_in_words(exc, _REGISTRATION_LABELS)
        invalid = RequestInvalid(count=exc.error_count())
        return await _registry_page(
            request, session, who, refused=invalid, problems=problems, form=typed
        )
    except VnehrError as exc:
        return await _registry_page(request, session, who, refused=exc, form=typed)
    return RedirectResponse(f"/department/facilities?issued={facility.code}", status_code=303)


async def _ward_names(session: AsyncSession, codes: set[str]) -> dict[str, str]:
    """Wards by their names today ("00070" -> "Phường Hoàn Kiếm"); a code without one is left
    out (shown as is)."""
    if not codes:
        return {}
    book, today = await catalogs.codebook(session), today_in_vietnam()
    found = {code: book.in_force("ward", code, today) for code in codes}
    return {code: v.title_vi for code, v in found.items() if v is not None and v.title_vi}


async def _actors(
    session: AsyncSession, labels: set[str], systems: list[Any], lang: Language
) -> dict[str, str]:
    """Who made each onboarding move, as the department knows them: a person by name (never
    the personal ID), the facility's system by the name it was registered with; someone the
    registry no longer knows, and the operators' own scripts (the demo loader), in words."""
    people = [label.split(":", 1)[1] for label in labels if label.startswith("person:")]
    named = await identity.names_by_personal_id(
        session, [p for p in people if re.fullmatch(r"\d{12}", p)]
    )
    registered = {f"facility_system:{c.client_id}": c.name for c in systems}
    shown = {}
    for label in labels:
        kind, _, who = label.partition(":")
        if kind == "person" and who in named:
            shown[label] = named[who]
        elif kind == "person" and re.fullmatch(r"\d{12}", who):
            shown[label] = text("web.department.actor.person", lang)
        elif kind == "facility_system" and registered.get(label):
            shown[label] = text("web.department.actor.system", lang, {"name": registered[label]})
        elif kind == "facility_system":
            shown[label] = text("web.department.actor.a_system", lang)
        else:
            shown[label] = text("web.department.actor.operator", lang)
    return shown


async def _facility_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    code: str,
    *,
    refused: VnehrError | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    """One facility for the department: its details, where it stands in onboarding and what
    it may move to, the history of its moves (who by name, why in words), its certificates
    and its systems."""
    try:
        facility = await facilities.get(session, who, code)
        events = await facilities.history(session, who, code)
        certificates = await facilities.certificates(session, who, code)
        systems = await facilities.clients(session, who, code)
    except VnehrError as exc:
        return _error_page(request, exc)
    lang: Language = "en" if _language(request) == "en" else "vi"
    return _book_page(
        request,
        "department_facility.html",
        refused.status_code if refused is not None else 200,
        subject=who,
        facility=facility,
        ward_name=(await _ward_names(session, {facility.ward_code or ""} - {""})).get(
            facility.ward_code or ""
        ),
        actors=await _actors(session, {e.actor for e in events}, systems, lang),
        moves=[s.value for s in facilities.next_states(facility)],
        events=list(reversed(events)),
        certificates=certificates,
        systems=systems,
        csrf=csrf_token(_settings(request), request.state.session_data),
        moved=request.query_params.get("moved") if refused is None else None,
        refused=refused,
        form=form or {},
    )


@router.get("/department/facilities/{code}", response_class=HTMLResponse)
async def department_facility(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    code: Annotated[str, UrlPath(pattern=r"^[0-9A-Z]{5}$")],
) -> Response:
    """A facility's page for the health department (D155)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    if not who.is_department_admin():
        return _error_page(request, Forbidden(action="open the department pages"))
    return await _facility_page(request, session, who, code)


@router.post("/department/facilities/{code}/move")
async def department_move(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    code: Annotated[str, UrlPath(pattern=r"^[0-9A-Z]{5}$")],
    to_state: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=400)] = "",
    override: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Move a facility along its onboarding from its page; a move whose fact is missing is
    shown on the page again with the refusal, the reason kept, for an override (D155)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    if not who.is_department_admin():
        return _error_page(request, Forbidden(action="open the department pages"))
    try:
        check_csrf(_settings(request), request, csrf)
        if to_state not in {s.value for s in facilities.State}:
            raise RequestInvalid(count=1)
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            await facilities.move(
                session,
                who,
                code,
                facilities.State(to_state),
                reason.strip() or None,
                override=override == "on",
            )
    except VnehrError as exc:
        if exc.code in _SHOWN_ON_THE_FACILITY:
            form = {"to_state": to_state, "reason": reason, "override": override}
            return await _facility_page(request, session, who, code, refused=exc, form=form)
        return _error_page(request, exc)
    return RedirectResponse(
        f"/department/facilities/{code}?{urlencode({'moved': to_state})}", status_code=303
    )


#: Refusals of a move the department can act on from the facility's page (a missing fact to
#: override, a reason to give, a step not allowed from here): shown on it, the form kept.
_SHOWN_ON_THE_FACILITY = frozenset({"FAC-0008", "FAC-0009", "FAC-0027", "FAC-0005"})


# ------------------------------------------------------------------ the health book


def _language(request: Request) -> str:
    """Vietnamese first; ``?lang=en`` switches (and is remembered in a cookie)."""
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return wanted if wanted in ("vi", "en") else "vi"


def _book_page(
    request: Request, name: str, http_status: int = 200, *, at: str | None = None, **context: Any
) -> HTMLResponse:
    """A page in the reader's language with its switch; ``at``: the page's own address when
    it answers a form sent to another (the switch goes there, not to the form's address)."""
    lang = _language(request)
    other = "en" if lang == "vi" else "vi"
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    viewer = context.get("subject")
    if "for" in query and isinstance(viewer, Subject):  # an old link's: by reference
        query["p"] = _seal_ref(_settings(request), _BOOK_REF, viewer.label, query.pop("for"))
    if context.get("expired"):  # the page shows the viewer's own book: so does its switch
        query = {k: v for k, v in query.items() if k not in ("p", "cursor")}
    response = _page(
        request,
        name,
        http_status,
        lang=lang,
        switch_url=_with_lang(at, other)
        if at is not None
        else f"{request.url.path}?{urlencode({**query, 'lang': other})}",
        **context,
    )
    if request.query_params.get("lang") in ("vi", "en"):
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", httponly=True
        )
    return response


#: How long a link to the book of someone the viewer represents (``?p=``) names them: a
#: parent's bookmark of a child's book keeps working for a month (D127).
BOOK_REF_MAX_AGE = 30 * 24 * 3600
_BOOK_REF = b"vnehr.book-holder"
#: The viewer of a reference made for a signed-out visitor's sign-in (an old ``?for=`` link):
#: whoever signs in, while a sign-in lasts; the page then makes one for them.
_SIGNING_IN = "signing-in"


@pass_context
def _book_query(context: Context, whom: Any, **extra: str | None) -> str:
    """The query of a link to a page of ``whom``'s book (a ``Holder``, or a person the viewer
    represents): ``?p=`` names them, encrypted for the viewer; none for the viewer's own."""
    return _holder_query(context["request"], context.get("subject"), whom, **extra)


def _holder_query(request: Request, subject: Any, whom: Any, **extra: str | None) -> str:
    """``_book_query`` for a page's route (the viewer ``subject``)."""
    query = {k: v for k, v in extra.items() if v is not None}
    own = isinstance(whom, identity.Holder) and not whom.relation
    if whom is not None and not own and whom.personal_id and isinstance(subject, Subject):
        settings = _settings(request)
        query["p"] = _seal_ref(settings, _BOOK_REF, subject.label, whom.personal_id)
    return f"?{urlencode(query)}" if query else ""


templates.env.globals["book_query"] = _book_query


def _book_whom(
    request: Request, subject: Subject | None, person: str | None, p: str | None
) -> tuple[Subject, str | None, bool] | RedirectResponse:
    """Whose book a page shows: the viewer, their own (None) or the personal ID the page's
    ``?p=`` names (``?for=`` for links made before), and whether a ``?p=`` made for someone
    else or too long ago was set aside (the viewer's own book then, with a notice). Only the
    name: the representation check of the read still decides."""
    settings = _settings(request)
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("for", "p")]
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        if person is None:
            return who
        # an old link: the sign-in's "next" (an address too) names the child by reference
        query.append(("p", _seal_ref(settings, _BOOK_REF, _SIGNING_IN, person)))
        back = f"{request.url.path}?{urlencode(query)}"
        return RedirectResponse("/auth/login?" + urlencode({"next": back}), status_code=303)
    if person is not None or p is None:
        return who, person, False
    found = _open_ref(settings, _BOOK_REF, who.label, p, BOOK_REF_MAX_AGE)
    if found is None:
        made = _open_ref(settings, _BOOK_REF, _SIGNING_IN, p, 2 * LOGIN_MAX_AGE)
        if made is not None:  # just signed in: on to an address made for this viewer
            query.append(("p", _seal_ref(settings, _BOOK_REF, who.label, made)))
            return RedirectResponse(f"{request.url.path}?{urlencode(query)}", status_code=303)
    return who, found, found is None


@router.get("/portal/book", response_class=HTMLResponse)
async def book(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    cursor: str | None = None,
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The health book: the visits of the signed-in person (or of a child they act for,
    named by ``?p=``, or ``?for=`` in links made before)."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    if expired:  # the cursor was of the other book's timeline
        cursor = None
    try:
        read = await healthbook.timeline(
            database(request), who, personal_id=person, cursor=cursor, limit=20
        )
        holders = await identity.book_holders(session, who)
    except VnehrError as exc:
        return _error_page(request, exc)
    await healthbook.settle(request, read)
    items, next_cursor = read.value
    return _book_page(
        request,
        "book.html",
        subject=who,
        holder=read.holder or holders[0],
        holders=holders,
        items=items,
        next_cursor=next_cursor,
        expired=expired,
    )


@router.get("/portal/book/summary", response_class=HTMLResponse)
async def book_summary(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The one-page health summary (of a child named as on the book's page)."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    try:
        read = await healthbook.summary(session, who, personal_id=person)
    except VnehrError as exc:
        return _error_page(request, exc)
    await healthbook.settle(request, read)
    return _book_page(
        request,
        "book_summary.html",
        subject=who,
        holder=read.holder,
        summary=read.value,
        expired=expired,
    )


@router.get("/portal/book/visits/{visit_id}", response_class=HTMLResponse)
async def book_visit(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    visit_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
) -> Response:
    """One visit in full, with its PDF."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        read = await healthbook.visit(session, who, visit_id)
    except VnehrError as exc:
        return _error_page(request, exc)
    await healthbook.settle(request, read)
    return _book_page(request, "book_visit.html", subject=who, holder=read.holder, visit=read.value)


@router.get("/portal/book/access-log", response_class=HTMLResponse)
async def book_access_log(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Who viewed my record (and the records of those I act for), with "I don't recognise
    this" on each entry: the newest reads, and "Xem thêm" for the older ones (``before`` the
    last entry shown), every one of them open to a dispute. From the book of someone I act for
    (``?p=``, as on the book's pages), the reads of their record alone."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    try:
        holders, person, entries = await _log_of(
            session, who, person, limit=ACCESS_LOG_PAGE + 1, before=before
        )
    except VnehrError as exc:
        return _error_page(request, exc)
    holder = next((h for h in holders if h.personal_id == person), holders[0])
    last = entries[ACCESS_LOG_PAGE - 1].id if len(entries) > ACCESS_LOG_PAGE else None
    older = (
        f"/portal/book/access-log{_holder_query(request, who, holder, before=str(last))}"
        if last is not None
        else None
    )
    return _book_page(
        request,
        "book_access.html",
        subject=who,
        holder=holder if person is not None else None,
        entries=entries[:ACCESS_LOG_PAGE],
        older_url=older,
        csrf=csrf_token(_settings(request), request.state.session_data),
        notice=request.query_params.get("notice"),
        expired=expired,
    )


async def _log_of(
    session: AsyncSession, who: Subject, person: str | None, *, limit: int, before: int | None
) -> tuple[list[Any], str | None, list[Any]]:
    """The books the viewer holds, whose log is read (None: the viewer's own, also when
    ``person`` names them), and that log's entries ``before`` an id."""
    holders = await identity.book_holders(session, who)
    if person == holders[0].personal_id:  # the viewer's own: their log, as without
        person = None
    entries = await healthbook.access_log(
        session, who, limit=limit, before=before, personal_id=person
    )
    return holders, person, entries


@router.get("/portal/book/access-log/{event_id}/dispute", response_class=HTMLResponse)
async def book_dispute_ask(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    # (read as the page before ``event_id + 1``: one less than the largest row id)
    event_id: Annotated[int, UrlPath(ge=1, le=2**63 - 2)],
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Before a read is reported as not recognised (a report cannot be taken back): the read
    as the log shows it, what the report does, and the form that sends it; a read reported
    already says so. From the log of someone the viewer acts for (``?p=``), of theirs."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    try:
        holders, person, found = await _log_of(session, who, person, limit=1, before=event_id + 1)
        if not found or found[0].id != event_id:
            raise healthbook.NotInYourLog(id=event_id)
    except VnehrError as exc:
        return _error_page(request, exc)
    holder = next((h for h in holders if h.personal_id == person), holders[0])
    return _book_page(
        request,
        "book_access.html",
        subject=who,
        holder=holder if person is not None else None,
        entries=found,
        confirm=event_id,
        csrf=csrf_token(_settings(request), request.state.session_data),
        expired=expired,
    )


@router.post("/portal/book/access-log/{event_id}/dispute")
async def book_dispute(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    event_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
    csrf: Annotated[str, Form()] = "",
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Report a read the citizen does not recognise; back to the log it was on (of the person
    its address names, ``?p=``)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        await healthbook.dispute(session, who, event_id, None)
    except VnehrError as exc:
        return _error_page(request, exc)
    back = {"notice": "disputed", **({"p": p} if p else {})}
    return RedirectResponse(f"/portal/book/access-log?{urlencode(back)}", status_code=303)


# ------------------------------------------------------------------ clinicians


#: How long the clinic page's address for a patient (``?p=``) names them: a working shift.
PATIENT_REF_MAX_AGE = 12 * 3600


def _ref_key(settings: Settings, purpose: bytes) -> AESGCM:
    secret = settings.secret_key.get_secret_value().encode()
    return AESGCM(hashlib.sha256(purpose + b":" + secret).digest())


def _seal_ref(settings: Settings, purpose: bytes, viewer: str, personal_id: str) -> str:
    """A personal ID encrypted for one viewer (their label as associated data) and one kind
    of page (its own key), stamped with the time it was made: an address that names nobody."""
    nonce = secrets.token_bytes(12)
    plain = f"{int(time.time())}:{personal_id}".encode()
    sealed = _ref_key(settings, purpose).encrypt(nonce, plain, viewer.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def _open_ref(
    settings: Settings, purpose: bytes, viewer: str, ref: str, max_age: int
) -> str | None:
    """The personal ID of a ``_seal_ref`` made for this viewer and purpose in the last
    ``max_age`` seconds, else None."""
    try:
        raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
        plain = _ref_key(settings, purpose).decrypt(raw[:12], raw[12:], viewer.encode())
    except (ValueError, InvalidTag):
        return None
    issued, _, personal_id = plain.decode().partition(":")
    if not issued.isdigit() or time.time() - int(issued) > max_age:
        return None
    return personal_id


_CLINIC_REF = b"vnehr.clinic-patient"


def _patient_ref(settings: Settings, clinician: Subject, personal_id: str) -> str:
    """The clinic page's address for a patient: the personal ID encrypted for this clinician,
    so the address bar, the history and a copied link name nobody (unlike ``?id=``)."""
    return _seal_ref(settings, _CLINIC_REF, clinician.label, personal_id)


def _patient_of(settings: Settings, clinician: Subject, ref: str) -> str | None:
    """The personal ID of a ``_patient_ref`` made for this clinician in the last
    ``PATIENT_REF_MAX_AGE`` seconds, else None."""
    return _open_ref(settings, _CLINIC_REF, clinician.label, ref, PATIENT_REF_MAX_AGE)


def _clinic_address(settings: Settings, clinician: Subject, personal_id: str, facility: str) -> str:
    back = {"p": _patient_ref(settings, clinician, personal_id)}
    return "/clinic/patient?" + urlencode(back | ({"facility": facility} if facility else {}))


@router.get("/clinic", response_class=HTMLResponse)
@router.get("/clinic/patient", response_class=HTMLResponse)
async def clinic(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    id: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
    facility: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{5}$")] = None,
) -> Response:
    """A clinician looks a patient up by personal ID and sees what consent allows (or, without
    consent, enters the patient's reception code or opens the record in an emergency). A
    clinician of several facilities chooses the one they work at now: the read is that
    facility's, as the API's ``?facility=``. The look-up form is sent by POST and answered
    with this page at ``?p=`` (the ID encrypted for the clinician); ``?id=`` still works for
    links made before."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    expired = False
    if id is None and p is not None:
        id = _patient_of(_settings(request), who, p)
        expired = id is None
    mine = _clinic_facilities(who)
    context = await _clinic_context(request, session, who, id, facility, expired)
    if not mine:  # nothing to look up: said plainly, not "no role at facility -"
        context["error"] = texts("web.clinic.not_a_clinician")
        return _book_page(request, "clinic.html", 403, **context)
    if id is not None and facility is None and len(mine) > 1:
        context["choose"] = True
    elif id is not None:
        try:
            found, summary, visits, row = await sharing.patient_record(
                session,
                who,
                id,
                facility=facility,
                purpose="treatment",
                default=_settings(request).sharing_default,
            )
            async with database(request).session() as write:
                await sharing.settle_read(write, row)
            # each visit opens at an address naming the patient as this page's does
            ref = _patient_ref(_settings(request), who, id)
            context["view"] = {
                "basis": found.kind,
                "scope": found.scope,
                "summary": summary,
                "visits": visits,
                "visit_query": urlencode({"p": ref} | ({"facility": facility} if facility else {})),
            }
        except sharing.NoConsent:
            context["refused"] = True
        except VnehrError as exc:  # the page answers in the API's status (403, 404, ...)
            context["error"] = exc.messages()
            return _book_page(request, "clinic.html", exc.status_code, **context)
    return _book_page(request, "clinic.html", **context)


def _clinic_facilities(who: Subject) -> list[str]:
    """The facilities the clinician works at (the clinic page's choice when more than one)."""
    return sorted({g.facility_code for g in who.grants_for("clinician") if g.facility_code})


async def _clinic_context(
    request: Request,
    session: AsyncSession,
    who: Subject,
    personal_id: str | None,
    facility: str | None,
    expired: bool = False,
) -> dict[str, Any]:
    """What the clinic page shows in every state: the look-up form (the patient's ID, the
    facility chosen), and the query of the address its forms about the patient are sent to
    (``?p=``: the ID encrypted for the clinician, never the ID itself, D127)."""
    mine = _clinic_facilities(who)
    places = await facilities.directory(session, mine) if len(mine) > 1 else {}
    ref = _patient_ref(_settings(request), who, personal_id) if personal_id else None
    return {
        "subject": who,
        "personal_id": personal_id,
        "reasons": sharing.REASONS,
        "csrf": csrf_token(_settings(request), request.state.session_data),
        "facilities": [(code, places.get(code)) for code in mine] if len(mine) > 1 else [],
        "facility": facility,
        "expired": expired,
        "act_query": urlencode({"p": ref}) if ref else "",
        "form": {},
    }


@router.get("/clinic/visits/{visit_id}", response_class=HTMLResponse)
async def clinic_visit(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    visit_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
    p: Annotated[str | None, Query(max_length=200)] = None,
    facility: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{5}$")] = None,
) -> Response:
    """One visit of the patient of the clinic page (named by its ``?p=``), opened from the
    page's list: the API's read of ``/api/v1/patients/{id}/visits/{visit_id}``, its basis
    checked, refused and audited there, answered in the API's status and code when refused.
    A reference made for another clinician, or too long ago, goes back to the clinic page,
    which says so; an address naming no patient, to the look-up form."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    if p is None:
        return RedirectResponse("/clinic", status_code=303)
    settings = _settings(request)
    back = "/clinic/patient?" + urlencode({"p": p} | ({"facility": facility} if facility else {}))
    personal_id = _patient_of(settings, who, p)
    if personal_id is None:
        return RedirectResponse(back, status_code=303)
    try:
        _, visit, row = await sharing.patient_visit(
            session,
            who,
            personal_id,
            visit_id,
            facility=facility,
            purpose="treatment",
            default=settings.sharing_default,
        )
    except VnehrError as exc:
        return _error_page(request, exc)
    async with database(request).session() as write:
        await sharing.settle_read(write, row)
    return _book_page(request, "clinic_visit.html", subject=who, visit=visit, back=back)


@router.post("/clinic/patient")
async def clinic_lookup(
    request: Request,
    subject: OptionalSubject,
    id: Annotated[str, Form(pattern=r"^\d{12}$")],
    csrf: Annotated[str, Form()] = "",
    facility: Annotated[str, Form(pattern=r"^([0-9A-Z]{5})?$")] = "",
) -> Response:
    """The look-up form: on to the patient's page, whose address does not show the ID."""
    who = _signed_in_form(request, subject, csrf)
    if isinstance(who, Response):
        return who
    return RedirectResponse(_clinic_address(_settings(request), who, id, facility), 303)


@router.post("/clinic/patient/code")
@router.post("/clinic/patient/break-glass")
async def clinic_act_on_patient(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    p: Annotated[str | None, Query(max_length=200)] = None,
    csrf: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    facility: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """The patient page's forms, the patient named by ``?p=`` as the page's address does:
    use the code the patient shows, or open the record in an emergency. A refusal is shown on
    the patient's page, what was typed kept; an address too old, or made for another
    clinician, goes back to the page, which says so."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    personal_id = _patient_of(_settings(request), who, p) if p else None
    if personal_id is None:
        back = {"p": p or ""} | ({"facility": facility} if _FACILITY.fullmatch(facility) else {})
        return RedirectResponse(f"/clinic/patient?{urlencode(back)}", status_code=303)
    action = "code" if request.url.path.endswith("/code") else "break-glass"
    typed = {"csrf": csrf, "code": code, "reason": reason, "text": text, "facility": facility}
    return await _clinic_act(request, session, who, personal_id, action, typed)


_FACILITY = re.compile(r"[0-9A-Z]{5}")


@router.post("/clinic/patient/{personal_id}/{action}")
async def clinic_act(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    personal_id: Annotated[str, UrlPath(pattern=r"^\d{12}$")],
    action: Literal["code", "break-glass"],
    csrf: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    facility: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """``clinic_act_on_patient`` for forms made before their address named the patient by
    reference (D127): the page no longer makes this address."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    typed = {"csrf": csrf, "code": code, "reason": reason, "text": text, "facility": facility}
    return await _clinic_act(request, session, who, personal_id, action, typed)


async def _clinic_act(
    request: Request,
    session: AsyncSession,
    who: Subject,
    personal_id: str,
    action: str,
    typed: dict[str, str],
) -> Response:
    """Use the code the patient shows, or open the record in an emergency (for the facility
    chosen on the page, when the clinician has several); on to the patient's page. Refused,
    the patient's page again, the refusal by its forms and what was typed kept (a wrong code
    is recorded all the same: the request commits it, D74)."""
    settings = _settings(request)
    facility = typed["facility"]
    try:
        check_csrf(settings, request, typed["csrf"])
        if action == "code":
            await sharing.redeem(session, who, personal_id, typed["code"], facility or None)
        else:
            await sharing.break_glass(
                session,
                who,
                personal_id,
                facility=facility or None,
                reason_code=typed["reason"],
                reason_text=typed["text"],
                hours=settings.emergency_access_hours,
                bar_days=settings.emergency_bar_days,
            )
    except VnehrError as exc:
        chosen = facility if _FACILITY.fullmatch(facility) else None
        context = await _clinic_context(request, session, who, personal_id, chosen)
        context |= {"refused": True, "refusal": exc, "form": typed | {"action": action}}
        page = _clinic_address(settings, who, personal_id, chosen or "")
        return _book_page(request, "clinic.html", exc.status_code, at=page, **context)
    return RedirectResponse(_clinic_address(settings, who, personal_id, facility), status_code=303)


# ------------------------------------------------------------------ electronic papers


@router.get("/portal/book/papers", response_class=HTMLResponse)
async def book_papers(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The papers in the health book, each with its QR and PDF (of a child named as on the
    book's page)."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    try:
        holder, rows = await papers.of_holder(session, who, person)
    except VnehrError as exc:
        return _error_page(request, exc)
    today = today_in_vietnam()
    shown = [
        {
            "paper": p,
            "status": papers.status_of(p, today),
            "title": papers.KIND_TITLES[p.kind],
            "qr": papers.qr_svg(p.jws) if papers.status_of(p, today) == "valid" else None,
        }
        for p in rows
    ]
    return _book_page(
        request, "book_papers.html", subject=who, holder=holder, items=shown, expired=expired
    )


@router.get("/verify", response_class=HTMLResponse)
async def verify_page(request: Request) -> HTMLResponse:
    """Public: scan or paste a paper's QR."""
    return _book_page(request, "verify.html", result=None, qr="")


@router.post("/verify", response_class=HTMLResponse)
async def verify_submit(
    request: Request, session: ReadSession, qr: Annotated[str, Form(max_length=20_000)] = ""
) -> HTMLResponse:
    """Public: the verdict on a pasted or scanned QR."""
    result = await papers.verify(session, papers.keys_for(_settings(request)), qr)
    titles = papers.KIND_TITLES.get((result.get("paper") or {}).get("kind") or "")
    return _book_page(request, "verify.html", result=result, qr=qr, titles=titles)


# ------------------------------------------------------------------ the department's dashboard


def _default_period() -> str:
    today = today_in_vietnam()
    return f"{today.year}H{1 if today.month <= 6 else 2}"


@router.get("/department/report", response_class=HTMLResponse)
async def department_report(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    period: str | None = None,
    province: str | None = None,
    ward: str | None = None,
    facility: str | None = None,
) -> Response:
    """The six-monthly figures with charts, filterable by ward and facility; the files to
    download; the notes on difficulties and recommendations."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    provinces = sorted(
        {g.province_code for g in who.grants_for("department_admin") if g.province_code}
    )
    chosen = province or (provinces[0] if provinces else None)
    wanted = period or _default_period()
    try:
        figures = await reporting.build(
            session,
            who,
            wanted,
            province=chosen,
            ward=ward or None,
            facility=facility or None,
            cost_per_record=_settings(request).report_cost_per_record,
        )
    except VnehrError as exc:
        return _error_page(request, exc)
    drawn = reporting.page_charts(figures)  # plain SVG: a millisecond, no matplotlib
    query = urlencode(
        {k: v for k, v in {"province": chosen, "ward": ward, "facility": facility}.items() if v}
    )
    all_facilities = await facilities.registry(session, chosen)
    ward_codes = {x.ward_code for x in all_facilities if x.ward_code}
    ward_names = await _ward_names(session, ward_codes)
    province_name = None
    if chosen:
        found = (await catalogs.codebook(session)).in_force("province", chosen, today_in_vietnam())
        province_name = found.title_vi if found is not None else None
    return _book_page(
        request,
        "department_report.html",
        subject=who,
        f=figures,
        period=figures["period"],
        starts=date.fromisoformat(figures["from"]),
        ends=date.fromisoformat(figures["to"]),
        body=reporting.html(figures, drawn, fragment=True),
        query=query,
        province=chosen,
        province_name=province_name,
        # the filter's wards by name, in the order of their names
        wards=sorted(ward_codes, key=lambda w: (ward_names.get(w, "~"), w)),
        ward_names=ward_names,
        facility_list=all_facilities,
        ward=ward or "",
        facility=facility or "",
        csrf=csrf_token(_settings(request), request.state.session_data),
    )


@router.post("/department/report/notes")
async def department_report_notes(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    period: Annotated[str, Form()] = "",
    province: Annotated[str, Form()] = "",
    text: Annotated[str, Form(max_length=20_000)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        await reporting.set_notes(session, who, period, province or None, text)
    except VnehrError as exc:
        return _error_page(request, exc)
    target = urlencode({"period": period, **({"province": province} if province else {})})
    return RedirectResponse(f"/department/report?{target}#notes", status_code=303)


# ------------------------------------------------------------------ review queues


@router.get("/review", response_class=HTMLResponse)
async def review_queues(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    status: str = "open",
    cases_cursor: str | None = None,
    emergencies_cursor: str | None = None,
) -> Response:
    """Emergency accesses to review (facility administrators: their facility's; the
    department: its province's), ``EMERGENCY_PAGE`` at a time, and, for the department, the
    citizens' "I don't recognise this" cases, ``DISPUTE_PAGE`` at a time (each cursor: where
    that queue's page before ended; paging one keeps the other where it is). A case about a
    representation link names it, with a form that ends it."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    return await _review_page(request, session, who, status, cases_cursor, emergencies_cursor)


async def _review_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    status: str,
    cases_cursor: str | None,
    emergencies_cursor: str | None,
    *,
    refused: dict[str, Any] | None = None,
) -> Response:
    """The page of ``review_queues``; ``refused``: a form the page refused (``case`` or
    ``emergency``: the row's id, ``words``: the refusal, ``code``, ``form``: what was typed),
    shown again on that row with what was typed, in the refusal's status."""
    wanted = status if status in ("open", "reviewed", "all") else "open"
    contested: dict[int, healthbook.ContestedLink] = {}
    cases: list[Any] = []
    more_cases_url = more_emergencies_url = None
    here = {"emergencies_cursor": emergencies_cursor, "cases_cursor": cases_cursor}

    def more(queue: str, cursor: str) -> str:
        query = {"status": wanted, **{k: v for k, v in here.items() if v}}
        query[f"{queue}_cursor"] = cursor
        return f"/review?{urlencode(query)}#{queue}"

    try:
        emergencies, next_emergencies = await sharing.emergency_queue(
            session,
            who,
            None if wanted == "all" else wanted,
            cursor=emergencies_cursor,
            limit=EMERGENCY_PAGE,
        )
        if next_emergencies is not None:
            more_emergencies_url = more("emergencies", next_emergencies)
        if who.is_department_admin():
            page = await healthbook.disputes(
                session,
                who,
                None if wanted == "all" else ("open" if wanted == "open" else "closed"),
                cursor=cases_cursor,
                limit=DISPUTE_PAGE,
            )
            cases = list(page.items)
            if page.next_cursor is not None:
                more_cases_url = more("cases", page.next_cursor)
            contested = await healthbook.contested_links(session, who, cases)
    except VnehrError as exc:
        return _error_page(request, exc)
    if refused is not None:  # (its row beyond this page: said above the queue)
        if "emergency" in refused:
            refused["on_row"] = any(e.id == refused["emergency"] for e in emergencies)
        else:
            refused["on_row"] = any(c.id == refused["case"] for c in cases)
    # the clinician and the reviewer by name, as the reviewer knows them (not person:<ID>)
    labels = {e.clinician for e in emergencies} | {e.reviewed_by or "" for e in emergencies}
    ids = [label.split(":", 1)[1] for label in labels if label.startswith("person:")]
    named = await identity.names_by_personal_id(session, ids)
    return _book_page(
        request,
        "review.html",
        refused["status"] if refused is not None else 200,
        at="/review" if refused is not None else None,  # (not the form's address)
        subject=who,
        emergencies=emergencies,
        facility_names=await facilities.directory(session, {e.facility_code for e in emergencies}),
        names={f"person:{pid}": name for pid, name in named.items()},
        more_emergencies_url=more_emergencies_url,
        cases=cases,
        more_cases_url=more_cases_url,
        contested=contested,
        refused=refused,
        status=wanted,
        csrf=csrf_token(_settings(request), request.state.session_data),
        reasons=sharing.REASONS,
        outcomes=sharing.OUTCOMES,
    )


@router.post("/review/emergency/{access_id}")
async def review_emergency(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    access_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
    note: Annotated[str, Form(max_length=1000)] = "",
    outcome: Annotated[str, Form(max_length=20)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        await sharing.review(session, who, access_id, note, outcome or None)
    except (sharing.NoteMissing, sharing.OutcomeMissing) as exc:
        # (a browser without the fields' checks) said on its row, the note typed kept
        refused: dict[str, Any] = {"emergency": access_id, "status": exc.status_code}
        refused |= {"code": exc.code, "words": _in_page_days(exc)}
        refused["form"] = {"note": note, "outcome": outcome}
        return await _review_page(request, session, who, "open", None, None, refused=refused)
    except VnehrError as exc:
        return _error_page(request, exc)
    return RedirectResponse("/review?done=emergency", status_code=303)


@router.post("/review/dispute/{dispute_id}")
async def review_dispute(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    dispute_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
    finding: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    try:
        check_csrf(_settings(request), request, csrf)
        await healthbook.close_dispute(session, who, dispute_id, finding)
    except healthbook.FindingMissing as exc:  # (a browser without the field's check) on its row
        refused = {"case": dispute_id, "status": exc.status_code, "form": {}}
        refused |= {"code": exc.code, "words": _in_page_days(exc)}
        return await _review_page(request, session, who, "open", None, None, refused=refused)
    except VnehrError as exc:
        return _error_page(request, exc)
    return RedirectResponse("/review?done=dispute", status_code=303)


@router.post("/review/dispute/{dispute_id}/end-link")
async def review_end_link(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    dispute_id: Annotated[int, UrlPath(ge=1, le=2**63 - 1)],
    reason: Annotated[str, Form(max_length=1000)] = "",
    ends_on: Annotated[str, Form(max_length=20)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """End the representation link a citizen's case is about, from ``ends_on`` (today when
    blank; dd/mm/yyyy or the date field's yyyy-mm-dd), for ``reason``, the reviewer its
    registrar (their department grant: the people of their province), and close the case
    with the reason as its finding. A refusal (a day before today, no reason, a link ended
    already, a case about a read) is said on the case's row, what was typed kept, nothing
    changed; a case the department does not handle, the error page."""
    who = _signed_in_form(request, subject, csrf)
    if isinstance(who, Response):
        return who
    typed = {"reason": reason, "ends_on": ends_on}
    try:
        day = _typed_day(ends_on)
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            await healthbook.end_contested_link(
                session, who, dispute_id, ends_on=day, reason=reason
            )
    except (healthbook.UnknownDispute, healthbook.CaseClosed, Forbidden) as exc:
        return _error_page(request, exc)  # no row of this page to say it on (closed: not listed)
    except VnehrError as exc:
        refused = {"case": dispute_id, "status": exc.status_code, "form": typed}
        refused |= {"code": exc.code, "words": _in_page_days(exc)}
        return await _review_page(request, session, who, "open", None, None, refused=refused)
    return RedirectResponse("/review?done=dispute", status_code=303)


_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_PAGE_DAY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def _typed_day(typed: str) -> date | None:
    """A day typed in a form: dd/mm/yyyy as the pages write dates, or yyyy-mm-dd as a date
    field sends it; None when blank. Anything else is refused, naming the field."""
    typed = typed.strip()
    if not typed:
        return None
    iso, page = _ISO_DAY.fullmatch(typed), _PAGE_DAY.fullmatch(typed)
    try:
        if iso is not None:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if page is not None:
            return date(int(page[3]), int(page[2]), int(page[1]))
    except ValueError:
        pass
    raise RequestInvalid({"problems": [{"field": "ends_on"}]}, count=1)


def _in_page_days(error: VnehrError) -> dict[str, str]:
    """An error's message with its dates as the pages write them (dd/mm/yyyy), not the API's
    (yyyy-mm-dd); a form's field refused, named by its label."""
    if isinstance(error, RequestInvalid) and error.detail.get("problems"):
        field = texts(f"web.field.{error.detail['problems'][0]['field']}")
        return texts("web.problem.format", {"field": field})
    said: dict[str, str] = {}
    for lang in LANGUAGES:
        params = {
            name: _ISO_DAY.sub(r"\3/\2/\1", value) if isinstance(value, str) else value
            for name, value in error.shown(lang).items()
        }
        said[lang] = text(error.code, lang, params)
    return said


# ------------------------------------------------------------------ the citizen's sharing


@router.get("/portal/book/sharing", response_class=HTMLResponse)
async def book_sharing(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
    revoke: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    find: str | None = None,
    pick: str | None = None,
) -> Response:
    """Who my record (or that of a child I act for, named as on the book's pages) is shared
    with: share with a facility or every facility, the summary or all of it, sensitive
    categories by name, for a while; revoke (``?revoke=`` asks first, on the share's row);
    show a code at reception (from its cookie, never the address: addresses stay in browser
    history and proxy logs). Of a person of 16 or more, a representative reads only that the
    young person decides (D132). ``?find=`` lists the facilities that receive records by
    name, ward or code; ``?pick=`` puts the one chosen in the share's form."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    return await _sharing_page(
        request, session, who, person, expired, revoke=revoke, find=find, pick=pick
    )


async def _sharing_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    person: str | None,
    expired: bool,
    *,
    revoke: int | None = None,
    refused: VnehrError | None = None,
    form: dict[str, Any] | None = None,
    find: str | None = None,
    pick: str | None = None,
    ask_every: bool = False,
) -> Response:
    """The sharing page of ``book_sharing``; a form it refused (``refused``) is shown on it
    again in the refusal's status, with what was typed (``form``): a refusal of the facility
    beside its box. A search (``find``) lists the facilities that receive records, or asks for
    more letters; the facility picked from it (``pick``), or typed in a refused form, is named
    above the form when it receives. ``ask_every``: the share with every facility the form
    chose is asked to be confirmed, on the form, nothing shared yet."""
    rows: list[Any] = []
    confided = False
    search: dict[str, Any] | None = None
    form = form or {"scope": "summary", "sensitive": [], "whom": "one"}
    try:
        holders = await identity.book_holders(session, who)
        try:
            rows = await sharing.directives(session, who, person)
        except sharing.SharesThemselves:
            confided = True
        holder = next(h for h in holders if h.personal_id == person) if person else holders[0]
        names = await facilities.directory(session, {r.grantee for r in rows} - {"*"})
        if find is not None and not confided:
            find = find[:200]
            try:
                found, more = await facilities.receivers(session, find)
                search = {"found": found, "more": more}
            except facilities.SearchTooShort as exc:
                search = {"short": exc}
        wanted = str(form.get("facility") or pick or "").strip().upper()
        chosen = await facilities.receives(session, wanted) if _CODE.fullmatch(wanted) else None
    except VnehrError as exc:
        return _error_page(request, exc)
    if chosen is not None and "facility" not in form:
        form["facility"] = chosen.code
    now = utcnow()
    code = None if confided else _reception_code_shown(request, person or who.id)
    return _book_page(
        request,
        "book_sharing.html",
        refused.status_code if refused is not None else 200,
        subject=who,
        holder=holder,
        holders=holders,
        expired=expired,
        confided=confided,
        rows=[{"row": r, "state": _share_state(r, now)} for r in rows],
        names={code: f.name for code, f in names.items()},
        sensitive=sharing.SENSITIVE,
        csrf=csrf_token(_settings(request), request.state.session_data),
        code=code,
        code_qr=_code_qr(code) if code else None,
        confirm=revoke,
        refused=refused,
        form=form,
        find=find,
        search=search,
        search_limit=facilities.SEARCH_LIMIT,
        chosen=chosen,
        facility_refused=_refuses_facility(refused),
        ask_every=ask_every,
        whose=_seal_ref(_settings(request), _BOOK_REF, who.label, person) if person else None,
    )


#: A facility code as a share names it (D161).
_CODE = re.compile(r"[0-9A-Z]{5}")


def _refuses_facility(refused: VnehrError | None) -> bool:
    """Whether a refused share was refused for its facility: said beside the facility's box."""
    if isinstance(refused, sharing.NoFacilityChosen | sharing.UnknownFacility):
        return True
    return isinstance(refused, RequestInvalid) and refused.detail.get("problems") == [
        {"field": "facility"}
    ]


def _share_state(row: Any, now: datetime) -> str:
    """The words of a directive's status: in force, revoked, or ended (its time ran out)."""
    if sharing.in_force(row, now):
        return "active"
    return "revoked" if row.revoked_at is not None else "inactive"


def _sharing_address(request: Request, viewer: Subject, person: str | None) -> str:
    """The sharing page of the viewer's book, or of the person they act for (``?p=``)."""
    if person is None:
        return "/portal/book/sharing"
    ref = _seal_ref(_settings(request), _BOOK_REF, viewer.label, person)
    return f"/portal/book/sharing?{urlencode({'p': ref})}"


RECEPTION_COOKIE = "vnehr_reception"


def _reception_tag(request: Request, personal_id: str) -> str:
    """Binds the reception-code cookie to this portal session and to the person the code is
    for: a code made in this browser is not shown to the next person who signs in on it, nor a
    child's code on the parent's own page."""
    key = csrf_token(_settings(request), request.state.session_data).encode()
    return hmac.new(key, personal_id.encode(), hashlib.sha256).hexdigest()


def _reception_code_shown(request: Request, personal_id: str) -> str | None:
    code, _, tag = request.cookies.get(RECEPTION_COOKIE, "").partition(".")
    wanted = _reception_tag(request, personal_id)
    if code.isdigit() and hmac.compare_digest(tag.encode(), wanted.encode()):
        return code
    return None


def _code_qr(code: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(code, image_factory=qrcode.image.svg.SvgPathImage)
    return str(image.to_string(encoding="unicode"))


@router.post("/portal/book/sharing")
async def book_sharing_change(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    action: Annotated[str, Form()] = "",
    share_with: Annotated[str, Form(alias="whom", max_length=5)] = "one",
    everyone: Annotated[str, Form(max_length=9)] = "",
    facility: Annotated[str, Form(max_length=5)] = "",
    scope: Annotated[str, Form()] = "summary",
    days: Annotated[str, Form(max_length=4)] = "",
    directive: Annotated[str, Form(max_length=12)] = "",
    csrf: Annotated[str, Form()] = "",
    find: Annotated[str, Form(max_length=200)] = "",
    person: Annotated[str | None, Query(alias="for")] = None,
    p: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The sharing page's forms, for the viewer or the child its address names (``?p=``): an
    address too old, or made for someone else, does nothing and goes back to the page, which
    says so. A refused share comes back with the search it was picked from (``find``). A share
    is with one facility (``whom=one``, the default: an empty code is refused, SHR-0021) or,
    chosen and then confirmed (``everyone=confirmed``), with every facility."""
    whom = _book_whom(request, subject, person, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    if expired:
        return RedirectResponse(f"/portal/book/sharing?{urlencode({'p': p})}", status_code=303)
    back = _sharing_address(request, who, person)
    form = await request.form()
    sensitive = [str(v) for v in form.getlist("sensitive")]
    # what was typed in the share's form, shown again if it is refused or asked about
    every = share_with == "every"
    typed: dict[str, Any] = {"action": action, "facility": facility, "scope": scope}
    typed |= {"sensitive": sensitive, "days": days, "whom": "every" if every else "one"}
    try:
        check_csrf(_settings(request), request, csrf)
        if action == "share":
            # every facility is a choice of its own, never an empty box: a citizen who searched
            # and picked nothing is told so (a form from before the choice sends no ``whom``)
            grantee = "*" if every else facility.strip().upper()
            if not grantee:
                raise sharing.NoFacilityChosen()
            if grantee != "*" and not _CODE.fullmatch(grantee):
                raise RequestInvalid({"problems": [{"field": "facility"}]}, count=1)
            # the form says "blank: until revoked"; any other text is a number of days
            wanted = days.strip()
            if wanted and not re.fullmatch(r"-?[0-9]+", wanted):
                raise RequestInvalid({"problems": [{"field": "days"}]}, count=1)
            if every and everyone != "confirmed":
                return await _sharing_page(
                    request, session, who, person, False, form=typed, find=find or None,
                    ask_every=True,
                )  # fmt: skip
            async with session.begin_nested():  # (a refusal shown on the page writes nothing)
                made = await sharing.create_directive(
                    session,
                    who,
                    grantee=grantee,
                    scope="full" if scope == "full" else "summary",
                    sensitive=sensitive,
                    days=int(wanted) if wanted else None,
                    personal_id=person,
                )
            # the share made, or the same one in force already (a form sent twice)
            return RedirectResponse(f"{back}#share-{made.id}", status_code=303)
        elif action == "revoke" and directive.isdigit():
            await sharing.revoke(session, who, int(directive), person)
        elif action == "code":
            code, _ = await sharing.reception_code(session, who, person)
            response = RedirectResponse(f"{back}#code", status_code=303)
            # shown to this browser's session only, on the page of whom it is for, while the
            # code lasts
            response.set_cookie(
                RECEPTION_COOKIE,
                f"{code}.{_reception_tag(request, person or who.id)}",
                max_age=900,
                httponly=True,
                samesite="strict",
                secure=_settings(request).cookie_secure,
            )
            return response
    except VnehrError as exc:
        # said on the page, by the form sent, what was typed kept (the share's form)
        return await _sharing_page(
            request, session, who, person, False, refused=exc, form=typed, find=find or None
        )
    return RedirectResponse(back, status_code=303)
