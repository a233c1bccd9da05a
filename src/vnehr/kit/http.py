"""HTTP building blocks shared by every context: error handlers, request ids, typed state."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vnehr.kit.db import Database
from vnehr.kit.errors import (
    BadRequest,
    BodyTooLarge,
    ControlCharacter,
    DatabaseUnavailable,
    InternalError,
    MethodNotAllowed,
    NotFound,
    RequestInvalid,
    VnehrError,
)
from vnehr.kit.logging import get_logger
from vnehr.kit.metrics import HTTP_SECONDS
from vnehr.kit.outage import LONGEST_WAIT, RETRY_AFTER_SECONDS, Lost, database_lost
from vnehr.kit.startup import StartupRefused

log = get_logger("vnehr.http")
#: The same logger on the stdlib side: asked first whether access lines are wanted at all
#: (structlog would build the whole event before the level drops it).
_access = logging.getLogger("vnehr.http")
REQUEST_ID_HEADER = "x-request-id"
#: Sent with every answer that does not choose its own: a page's address may name a patient
#: (``/clinic/patient/{personal_id}/...``, ``?for=``), and a browser sends the address of the
#: page a link or a form is on to the next site. ``same-origin``: a Referer within this site
#: only (the sign-in's "back to the form's page" needs it, D77), none to anyone else.
_REFERRER_POLICY = b"referrer-policy"

#: Set, in the request's own task, when the middleware cuts an answer that had begun because
#: the database went away (D112): the server then closes the connection and says "returned
#: without completing response", which is no error of its own to report.
_cut_for_outage: ContextVar[bool] = ContextVar("vnehr_cut_for_outage", default=False)
_UNFINISHED = "ASGI callable returned without completing response"


class _CutForOutage(logging.Filter):
    """Drops uvicorn's line about an unfinished answer when the middleware cut it for a lost
    database (already said in ``database_unavailable``); every other such line stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_cut_for_outage.get() and str(record.msg).startswith(_UNFINISHED))


def _quiet_cut_answers() -> None:
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _CutForOutage) for f in server_log.filters):
        server_log.addFilter(_CutForOutage())


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "detail"],
    "properties": {
        "code": {"type": "string", "example": "CAT-0001"},
        "message": {
            "type": "object",
            "properties": {"vi": {"type": "string"}, "en": {"type": "string"}},
        },
        "detail": {"type": "object"},
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can return."""
    return {
        status: {
            "description": "Error with a stable code and Vietnamese/English text",
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for status in statuses
    }


def request_cap(max_document: int) -> int:
    """Bytes read from a request that carries a document of at most ``max_document`` bytes:
    base64 adds a third, its line breaks and a form's percent-escapes a little more."""
    return max_document * 3 // 2 + 4096


def error_response(error: VnehrError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code)


async def _vnehr_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, VnehrError):  # registered for this type only
        raise exc
    return error_response(exc)


def request_invalid(exc: RequestValidationError) -> RequestInvalid:
    """KIT-0422 with one problem per field that failed (for the JSON handler and the pages,
    which render the same error as a page)."""
    problems = [
        {
            "location": [str(part) for part in problem.get("loc", ())],
            "message": problem.get("msg", ""),
            "type": problem.get("type", ""),
        }
        for problem in exc.errors()
    ]
    return RequestInvalid({"problems": problems}, count=len(problems))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    return error_response(request_invalid(exc))


def http_error(request: Request, exc: StarletteHTTPException) -> VnehrError:
    """The coded error of an HTTP exception: a body over the cap, NUL in a body, no such
    address, another method (for the JSON handler and the pages alike). The address is named
    as the log names it (``logged_path``): bodies and pages are kept, forwarded and pasted into
    tickets, and the caller already knows which patient it asked for."""
    if isinstance(exc, _OverCap):
        return BodyTooLarge(limit=exc.limit)
    if isinstance(exc, _NulInBody):
        return ControlCharacter(where="body")
    if exc.status_code == 404:
        return NotFound(path=logged_path(request.url.path))
    if exc.status_code == 405:
        return MethodNotAllowed(method=request.method, path=logged_path(request.url.path))
    return BadRequest({"status": exc.status_code, "reason": str(exc.detail)})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # registered for this type only
        raise exc
    response = error_response(http_error(request, exc))
    if exc.status_code not in (404, 405):
        response.status_code = exc.status_code
    if exc.headers:
        response.headers.update(exc.headers)
    return response


#: PostgreSQL's answers to text it cannot store: NUL in a text value (22021), ``\u0000`` in a
#: JSON value (22P05). The middleware refuses most such requests before any route runs; a
#: value reaching the database another way (a multipart field, a JSON body in UTF-16, ...) is
#: the caller's bad input all the same, and its transaction is rolled back whole.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


def _unstorable_text(exc: BaseException) -> bool:
    found: BaseException | None = exc
    for _ in range(6):  # the driver's error, wrapped by SQLAlchemy's adapter and by SQLAlchemy
        if found is None:
            return False
        for name in ("sqlstate", "pgcode"):
            if getattr(found, name, None) in _UNSTORABLE_TEXT:
                return True
        found = getattr(found, "orig", None) or found.__cause__
    return False


def unavailable_response(request: Request | None = None) -> Response:
    """503 KIT-0008 with ``Retry-After``: the database is lost for the moment (D101). In the
    form of the route that failed when its class has one, a method ``render_error(request,
    error)`` (FHIR's OperationOutcome, the pages' error page); else the JSON body."""
    error = DatabaseUnavailable(retry_after=RETRY_AFTER_SECONDS)
    render = getattr(request.scope.get("route"), "render_error", None) if request else None
    response: Response = render(request, error) if callable(render) else error_response(error)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class _Refusals:
    """Requests refused for a lost database are logged in one line at most every
    ``LONGEST_WAIT`` seconds, with how many were refused since the last line (no traceback:
    an outage is not a bug, and a traceback per request would bury the log)."""

    def __init__(self) -> None:
        self.count = 0
        self.said_at: float | None = None

    def note(self, path: str, lost: Lost) -> None:
        self.count += 1
        now = time.monotonic()
        if self.said_at is not None and now - self.said_at < LONGEST_WAIT:
            return
        log.warning("database_unavailable", path=logged_path(path), error=lost.error,
                    reason=lost.reason, refused=self.count)  # fmt: skip
        self.count, self.said_at = 0, now


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    if _unstorable_text(exc):
        return error_response(ControlCharacter(where="body"))
    lost = database_lost(exc)
    if lost is not None:  # (the middleware answers these first; this is for apps without it)
        _Refusals().note(request.url.path, lost)
        return unavailable_response(request)
    request_id = structlog.contextvars.get_contextvars().get("request_id", "-")
    log.exception("unhandled_error", path=logged_path(request.url.path), error=type(exc).__name__)
    return error_response(InternalError(request_id=request_id))


def install_error_handlers(app: FastAPI) -> None:
    """One handler per failure family; every body has the same shape."""
    app.add_exception_handler(VnehrError, _vnehr_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


class RequestContextMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` if sane), binds it to the log
    context, returns it in the response (with ``Referrer-Policy: same-origin`` unless the
    answer sets its own), and writes one access line per request. With
    ``max_body``, no route reads a longer request body: a longer declared length is answered
    413 at once, a longer stream fails its route's read (both KIT-0413). A path or query
    string holding a control character, or a JSON or URL-encoded body holding NUL, is refused
    with KIT-0002 before any route sees it (``_control_in_address``, ``_refusing_nul``); the
    text of a form is checked where a route reads one (``FORM_TEXT``). A request that fails
    because the database is lost is answered 503 KIT-0008 with ``Retry-After`` (D101), in its
    route's form (``unavailable_response``); one whose answer had already begun (a streamed
    download) is cut: the server closes the connection, so the client sees an incomplete body
    rather than one that ends early, and the log has the same line, no traceback (D112)."""

    def __init__(self, app: ASGIApp, max_body: int | None = None) -> None:
        self.app = app
        self.max_body = max_body
        self.refusals = _Refusals()
        _quiet_cut_answers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        # bound_contextvars restores the caller's context afterwards: requests the app makes to
        # itself (the in-process VNeID simulator) keep their own id without taking the outer's.
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self._handle(scope, receive, send, request_id)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A start refused on purpose (``StartupRefused``: a database it cannot use, D112) is
        told to the server as its one line, not as the traceback Starlette sends along."""

        async def send_refusal(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                refused = _refusal(sys.exc_info()[1])  # (sent while Starlette handles it)
                if refused is not None:
                    message = {**message, "message": refused.line}
            await send(message)

        try:
            await self.app(scope, receive, send_refusal)
        except StartupRefused:
            return  # told above; the server stops (uvicorn: "Application startup failed")

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        status = 500
        response_started = cut = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                if not any(name.lower() == _REFERRER_POLICY for name, _ in headers):
                    headers.append((_REFERRER_POLICY, b"same-origin"))
                message["headers"] = headers
            await send(message)

        try:
            where = _control_in_address(scope)
            if where is not None:
                await error_response(ControlCharacter(where=where))(scope, receive, send_with_id)
                return
            receive = _refusing_nul(scope, receive)
            if self.max_body is not None:
                if _content_length(scope) > self.max_body:
                    await error_response(BodyTooLarge(limit=self.max_body))(
                        scope, receive, send_with_id
                    )
                    return
                receive = _capped(receive, self.max_body)
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # The last line of defence: the caller still gets the coded JSON body and the id.
            if not response_started and isinstance(exc, VnehrError):
                # raised where no handler sees it (a dependency's exit: the commit)
                await error_response(exc)(scope, receive, send_with_id)
                return
            if _unstorable_text(exc) and not response_started:
                await error_response(ControlCharacter(where="body"))(scope, receive, send_with_id)
                return
            lost = database_lost(exc)
            if lost is not None:  # 503 KIT-0008, Retry-After; a line now and then (D101)
                self.refusals.note(scope["path"], lost)
                if response_started:  # returned unfinished: the server cuts the connection
                    _cut_for_outage.set(True)
                    cut = True
                    return
                response = unavailable_response(Request(scope, receive))
                await response(scope, receive, send_with_id)
                return
            log.exception(
                "unhandled_error", path=logged_path(scope["path"]), error=type(exc).__name__
            )
            if response_started:
                raise
            response = error_response(InternalError(request_id=request_id))
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            HTTP_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            if _access.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    method=scope["method"],
                    path=logged_path(scope["path"]),
                    status=status,
                    ms=round(elapsed * 1000, 2),
                    **({"cut": True} if cut else {}),
                )


#: A path holding a run of exactly 12 digits holds a personal ID (CCCD): the clinician's
#: routes name the patient so (``/api/v1/patients/{personal_id}/record``, ``/clinic/patient/
#: {personal_id}/code``). Logs keep its first 3 digits (the province) and last 2: enough to
#: tell lines apart, not to name anyone.
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
_PERSONAL_ID_IN_PATH = re.compile(r"(?<![0-9])([0-9]{3})[0-9]{7}([0-9]{2})(?![0-9])")


def _refusal(exc: BaseException | None) -> StartupRefused | None:
    for _ in range(8):  # the lifespan's own failure, as it is or wrapped by a context manager
        if exc is None or isinstance(exc, StartupRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def logged_path(path: str) -> str:
    """``path`` as a log line may carry it: personal IDs masked (``001*******74``). It runs for
    every request: a path without 12 digits in a row (nearly all) costs one search (~0.2 µs)."""
    if _TWELVE_DIGITS.search(path) is None:
        return path
    return _PERSONAL_ID_IN_PATH.sub(r"\1*******\2", path)


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = bytes(value).strip()
            return int(text) if text.isdigit() and len(text) < 19 else 0
    return 0


class _OverCap(StarletteHTTPException):
    """Raised by a capped ``receive`` (an HTTP exception: FastAPI passes those on while it
    reads a body, where it turns any other into "error parsing the body")."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


def _capped(receive: Receive, limit: int) -> Receive:
    """``receive`` that fails once the body it delivered exceeds ``limit`` bytes."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _OverCap(limit)
        return message

    return capped


#: C0 control characters but tab, line feed and carriage return (those XML 1.0 forbids too):
#: NUL cannot be stored in a PostgreSQL text column, and none of them belongs in an address.
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: The same characters in a query string, raw or percent-escaped.
_CONTROL_QUERY = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|%(?:0[0-8bcefBCEF]|1[0-9a-fA-F]|7[fF])"
)


def _control_in_address(scope: Scope) -> str | None:
    """``"path"`` or ``"query"`` if that part of the request holds a control character.
    One regular-expression search over a few hundred bytes: nothing next to a request."""
    if _CONTROL_TEXT.search(scope["path"]):  # the path as decoded by the server
        return "path"
    if _CONTROL_QUERY.search(scope.get("query_string", b"")):
        return "query"
    return None


class _NulInBody(StarletteHTTPException):
    """Raised by a ``receive`` that met NUL in a JSON or URL-encoded body (passed on like
    ``_OverCap``)."""

    def __init__(self) -> None:
        super().__init__(status_code=400)


#: What NUL looks like in a body, by media type: the JSON escape, the form percent-escape.
_NUL_JSON = b"\\u0000"
_NUL_FORM = b"%00"


def _media_type(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower().decode("latin-1")
    return None


def _refusing_nul(scope: Scope, receive: Receive) -> Receive:
    """``receive`` that fails once a JSON body holds the escape ``\\u0000`` or a URL-encoded
    body ``%00``: no text column can store NUL, so no route should meet it. A body without a
    media type is searched too (the FHIR API reads any body as JSON); other bodies (XML, PDF,
    multipart) are left to their readers: a multipart body is parsed only by a route that
    reads a form (``FORM_TEXT``, the intake's reader), never on its way to the others. A bytes
    search runs at memory speed."""
    media = _media_type(scope)
    if media is None or media == "application/json" or media.endswith("+json"):
        return _NulSearch(receive, _NUL_JSON, json_escapes=True)
    if media == "application/x-www-form-urlencoded":
        return _NulSearch(receive, _NUL_FORM, json_escapes=False)
    return receive


class _NulSearch:
    """Searches each chunk, and the few bytes before it, for ``needle``. In JSON a backslash
    may itself be escaped (``"\\\\u0000"`` is the text ``\\u0000``, no NUL): a match
    counts only after an even run of backslashes, the run carried over chunk boundaries."""

    def __init__(self, receive: Receive, needle: bytes, *, json_escapes: bool) -> None:
        self.receive = receive
        self.needle = needle
        self.json_escapes = json_escapes
        self.tail = b""  # the last bytes seen, shorter than the needle
        self.backslashes = 0  # backslashes right before ``tail``

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                self._search(self.tail + chunk)
        return message

    def _search(self, data: bytes) -> None:
        start = data.find(self.needle)
        while start >= 0:
            if not self.json_escapes or self._backslashes_before(data, start) % 2 == 0:
                raise _NulInBody
            start = data.find(self.needle, start + 1)
        keep = len(self.needle) - 1
        if self.json_escapes and len(data) > keep:
            self.backslashes = self._backslashes_before(data, len(data) - keep)
        self.tail = data[-keep:]

    def _backslashes_before(self, data: bytes, end: int) -> int:
        """The run of backslashes ending right before ``data[end]``, earlier chunks included
        (looked at in windows doubling in size: linear even in a body of backslashes)."""
        size = 64
        while True:
            low = max(0, end - size)
            window = data[low:end]
            run = len(window) - len(window.rstrip(b"\\"))
            if run < len(window) or low == 0:
                return run + (self.backslashes if run == end else 0)
            size *= 2


#: ``bytes.translate`` table: the bytes of ``_CONTROL_TEXT`` become 0, every other byte 1.
#: (Translating, then looking for 0, runs about five times faster than the regular
#: expression over a large field such as the portal's fileHSBase64.)
_CONTROL_MAP = bytes(0 if _CONTROL_TEXT.match(chr(b)) else 1 for b in range(256))


def holds_control(data: bytes | bytearray) -> bool:
    """Whether ``data`` (a form field's bytes, read as ASCII or UTF-8) holds a C0 control
    character other than tab, LF or CR, or DEL: about 1 ms a megabyte."""
    return 0 in data.translate(_CONTROL_MAP)


def _reads_form(route: object) -> bool:
    """Whether FastAPI reads the body of ``route`` as a form (its parameters are ``Form()`` or
    ``File()``): then the parsed form is on the request when its dependencies run."""
    body = getattr(route, "body_field", None)
    return body is not None and isinstance(body.field_info, params.Form)


async def _form_text(request: Request) -> None:
    """Refuses (KIT-0002) a form whose text holds a control character: a field name or text
    value, or a file's name, as the route receives it, that is after Starlette decoded it with
    the form's ``charset`` (UTF-7 turns ``+AAE-`` into U+0001 with no control byte sent).
    Runs only on routes that read a form, once FastAPI has read it within Starlette's limits
    (1,000 fields, 1,000 files, 1 MB a text field: past them, KIT-0400): a body other routes
    take as bytes or JSON is never parsed as a form. File contents may hold any byte."""
    if not _reads_form(request.scope.get("route")):
        return
    form = await request.form()  # (the form FastAPI has read, kept on the request)
    for name, value in form.multi_items():
        text = value if isinstance(value, str) else (value.filename or "")
        if _CONTROL_TEXT.search(name) or _CONTROL_TEXT.search(text):
            raise ControlCharacter(where="body")


#: The application's dependency that checks every form a route reads (``_form_text``):
#: ``FastAPI(dependencies=[FORM_TEXT])``.
FORM_TEXT = Depends(_form_text)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text = bytes(value).decode("latin-1")
            if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
                return text
    return None


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with database(request).session() as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with database(request).read_session() as session:
        yield session


#: A write transaction owned by the request: committed before the response is sent. (The
#: "function" scope ends it when the route returns; FastAPI's default would end it after the
#: answer went out, so a commit that fails would follow a success already sent.)
WriteSession = Annotated[AsyncSession, Depends(_session, scope="function")]
#: A read unit of work on the read engine (may be a replica), ended when the route returns.
ReadSession = Annotated[AsyncSession, Depends(_read_session, scope="function")]
