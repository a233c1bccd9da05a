"""HTTP routes of the submissions context: visit files, check-ins, validation, receipts."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.routing import Route

from vnehr import catalogs, papers
from vnehr.kit.auth import CurrentSubject, current_subject, optional_subject
from vnehr.kit.clock import AwareMoment
from vnehr.kit.errors import ControlCharacter, RequestInvalid, VnehrError
from vnehr.kit.http import (
    ReadSession,
    WriteSession,
    database,
    error_response,
    error_responses,
    holds_control,
    request_cap,
)
from vnehr.kit.paging import Page
from vnehr.kit.settings import Settings
from vnehr.submissions import errors, service
from vnehr.submissions.queue import IntakeQueue
from vnehr.submissions.xmlio import Limits, b64decode

router = APIRouter(prefix="/api/v1", tags=["submissions"])
FILE_ERRORS = error_responses(400, 401, 403, 413, 422)
BODY_DOC = {
    "requestBody": {
        "content": {
            "application/xml": {"schema": {"type": "string"}},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"fileHSBase64": {"type": "string"}},
                    "required": ["fileHSBase64"],
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "One file part with the XML document (any field name), or "
                    "the field fileHSBase64",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "fileHSBase64": {"type": "string"},
                    },
                }
            },
        }
    }
}


def _limits(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.max_body_bytes)


async def read_document(request: Request, limits: Limits) -> bytes:
    """The XML document of a request: the raw body, or the base64 field ``fileHSBase64`` of a
    form (as the BHXH portal takes it). Reading stops past the size cap."""
    cap = request_cap(limits.max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise errors.TooLarge(what="request", size=size, limit=limits.max_bytes)
        chunks.append(chunk)
    body = b"".join(chunks)
    content_type = request.headers.get("content-type", "")
    media_type = content_type.lower()  # (media types are case-insensitive, RFC 9110)
    if media_type.startswith("multipart/form-data"):
        body = _from_multipart(body, content_type)
    elif media_type.startswith("application/x-www-form-urlencoded"):
        try:
            fields = parse_qs(body.decode("ascii", "replace"), max_num_fields=20)
        except ValueError as exc:  # more fields than any portal form has
            raise errors.EmptyBody(what="fileHSBase64") from exc
        encoded = (fields.get("fileHSBase64") or [""])[0]
        if not encoded:
            raise errors.EmptyBody(what="fileHSBase64")
        body = b64decode(encoded, what="fileHSBase64")
    if len(body) > limits.max_bytes:
        raise errors.TooLarge(what="document", size=len(body), limit=limits.max_bytes)
    return body


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)

    def disposition(self) -> tuple[str | None, bool]:
        """The part's field name, and whether it is a file (has a filename)."""
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        return (name.decode("utf-8", "replace") if name is not None else None), (
            b"filename" in options
        )


def _from_multipart(body: bytes, content_type: str) -> bytes:
    """The document of a multipart form (D46): its one file part as sent (the XML file a
    facility's staff picks in a browser, or ``curl -F file=@visit.xml``), else the
    ``fileHSBase64`` field decoded. Parsed with python-multipart over the body already read
    under the size cap, in memory; a second file, a crowded or cut-off form is refused, and a
    text field (a part without a filename: the portal's ``maCSKCB``, ``fileHSBase64``) holding
    a control character other than tab, LF or CR is KIT-0002, as on every form (D86)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise errors.FormUnreadable(reason="no_boundary")
    parts: list[_Part] = []
    header: list[bytes] = [b"", b""]

    def begin() -> None:
        if len(parts) >= 20:
            raise errors.FormUnreadable(reason="too_many_parts")
        parts.append(_Part())

    def header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def header_end() -> None:
        parts[-1].headers[bytes(header[0]).lower()] = bytes(header[1])
        header[0], header[1] = b"", b""

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    ended: list[bool] = [False]
    try:  # (the parser's constructor refuses a boundary over 256 bytes)
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": begin,
                "on_header_field": header_field,
                "on_header_value": header_value,
                "on_header_end": header_end,
                "on_part_data": part_data,
                "on_end": lambda: ended.__setitem__(0, True),
            },
        )
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:  # (MultipartParseError is one)
        raise errors.FormUnreadable(reason=str(exc) or "malformed") from exc
    if not ended[0]:
        raise errors.FormUnreadable(reason="ends_early")
    named = [(part, *part.disposition()) for part in parts]
    if any(not is_file and holds_control(part.data) for part, _, is_file in named):
        raise ControlCharacter(where="body")
    files = [(part, name) for part, name, is_file in named if is_file]
    if len(files) > 1:
        raise errors.FormUnreadable(reason="more_than_one_file")
    if files:
        part, name = files[0]
        if not part.data:
            raise errors.EmptyBody(what=name or "file")
        return bytes(part.data)
    encoded = next((p.data for p, name, _ in named if name == "fileHSBase64"), None)
    if not encoded:
        raise errors.FormUnreadable(reason="no_file")
    return b64decode(bytes(encoded).decode("ascii", "replace"), what="fileHSBase64")


@router.post(
    "/submissions",
    status_code=201,
    responses={201: {"description": "Receipt, given after the commit"}, **FILE_ERRORS},
    openapi_extra=BODY_DOC,
)
async def submit(request: Request, subject: CurrentSubject) -> JSONResponse:
    """Send a GIAMDINHHS file (one or more HOSO) at the end of a visit. Each visit is validated
    and stored on its own: one bad visit does not reject the others. The receipt lists every
    visit with its status and issues (code, table, row, field, Vietnamese and English text)."""
    settings: Settings = request.app.state.settings
    limits = _limits(settings)
    data = await read_document(request, limits)
    options = service.IntakeOptions(
        limits=limits,
        require_signature=settings.require_signature,
        card_check=request.app.state.card_check,
        papers=papers.keys_for(settings),
        count=request.app.state.report_counter,
    )
    service.require_sender(subject)
    db = database(request)
    # the catalogue copy checked against the database at most 5 s ago (D47)
    codes = await catalogs.recent_codebook(db)
    # Parsed before the write transaction starts (on SQLite that transaction holds the
    # database's write lock).
    analysis = await _check(settings, service.prepare, data, codes=codes, limits=limits)
    # Written with the files that arrived at the same moment, in one transaction (D49); the
    # receipt comes back only after that transaction has committed.
    receipt = await intake_queue(request).accept(subject, data, analysis, options)
    return JSONResponse(receipt, status_code=201)


async def submit_fast(request: Request) -> Response:
    """``POST /api/v1/submissions`` as a plain Starlette route, like the timeline (D34, D55):
    the write at the end of every visit skips FastAPI's dependency solving and endpoint
    wrapping. It answers exactly like ``submit`` above (which it calls, and which stays for
    the OpenAPI description): the same caller check, body, receipt and errors."""
    request.scope["route"] = SUBMIT_ROUTE  # for the request metrics' route label
    try:
        return await submit(request, await current_subject(await optional_subject(request)))
    except VnehrError as exc:
        return error_response(exc)


SUBMIT_ROUTE = Route("/api/v1/submissions", submit_fast, methods=["POST"])
#: Routes the app puts ahead of its FastAPI routes.
fast_routes = [SUBMIT_ROUTE]


async def _check(
    settings: Settings, check: Callable[..., service.Analysis], data: bytes, **kwargs: Any
) -> service.Analysis:
    """Parse and check a file: a usual one (one visit, tens of KB, about 2 ms) right here on
    the event loop, a large one in a thread so that the loop keeps serving (D52). Handing every
    file to a thread cost more CPU than the check itself: the thread and the loop fight over
    the GIL under load."""
    if len(data) <= settings.intake_inline_max_bytes and data.count(b"<HOSO") <= 8:
        # (a small file of many visits costs per visit: it goes to a thread too)
        return check(data, **kwargs)
    return await asyncio.to_thread(check, data, **kwargs)


def intake_queue(request: Request) -> IntakeQueue:
    """This process's group-commit queue (made at the first file; closed with the app)."""
    state = request.app.state
    queue: IntakeQueue | None = getattr(state, "intake_queue", None)
    if queue is None:
        settings: Settings = state.settings
        queue = state.intake_queue = IntakeQueue(
            database(request),
            max_files=settings.intake_batch_files,
            max_wait=settings.intake_batch_wait_ms / 1000,
        )
    return queue


@router.post("/submissions/validate", responses=FILE_ERRORS, openapi_extra=BODY_DOC)
async def validate(
    request: Request, session: ReadSession, subject: CurrentSubject
) -> dict[str, Any]:
    """The same checks as a submission, nothing stored: for facility IT while building exports.
    The file-level ones too (the sender is the facility's own system, the file is its own,
    the facility may send, the signature), so "accepted" here means accepted there."""
    settings: Settings = request.app.state.settings
    service.require_sender(subject)
    limits = _limits(settings)
    data = await read_document(request, limits)
    codes = await catalogs.codebook(session)
    analysis = await _check(settings, service.analyse, data, codes=codes, limits=limits)
    options = service.IntakeOptions(limits=limits, require_signature=settings.require_signature)
    return await service.validation_report_for(session, subject, data, analysis, options)


@router.get("/submissions/{submission_id}", responses=error_responses(401, 403, 404))
async def get_receipt(
    session: ReadSession,
    subject: CurrentSubject,
    submission_id: Annotated[str, Path(max_length=36)],
) -> dict[str, Any]:
    """The receipt of a submission, again, for the facility that sent it (its systems and
    administrators) and its province's department. Another facility's receipt is answered
    exactly as an id that does not exist (404 SUB-0015): the answer tells nobody else which
    ids exist."""
    return await service.receipt(session, subject, submission_id)


@router.get(
    "/submissions",
    response_model=Page[dict[str, Any]],
    responses=error_responses(400, 401, 403, 422, 503),
)
async def list_receipts(
    session: ReadSession,
    primary: WriteSession,
    subject: CurrentSubject,
    facility: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    since: Annotated[
        AwareMoment | None, Query(description="ISO 8601 with its time zone, e.g. +07:00")
    ] = None,
    kind: Annotated[
        Literal["visit_file", "checkin"] | None,
        Query(description="Only the receipts of visit files, or of check-ins (XML0)"),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[dict[str, Any]]:
    """Receipts of a facility received at or after `since`, **oldest first**, `limit` at a
    time: pass `next_cursor` back as `cursor` for the next page (null on the last). Each
    receipt is as it was given, with `kind`: `visit_file` or `checkin`. A system that lost
    the answer to a file (a timeout, an outage) finds its receipt here: ask from the moment
    it sent the file (a few minutes earlier, for clock differences) and read on; a file whose
    sender disconnected is still written, and its receipt appears once it is (D49). A receipt
    that appears later is never behind a cursor already given (D172, D173): a page stops
    before the receipts of the facility's files still being written (they come on a later
    page; nobody waits), and is read on the primary database. A person (the facility's
    administrator, the department) names the facility with `facility` (SUB-0025 without it);
    a facility's system may leave it out for its own."""
    return await service.listing(
        session,
        subject,
        primary=primary,
        facility=facility,
        since=since,
        limit=limit,
        kind=kind,
        cursor=cursor,
    )


@router.get(
    # (a MA_LK may hold "/": the key is the whole path between the facility and /xml)
    "/visits/{facility}/{visit_key:path}/xml",
    responses={200: {"content": {"application/xml": {}}}, **error_responses(401, 403, 404)},
    response_class=Response,
)
async def export_visit(
    request: Request,
    subject: CurrentSubject,
    facility: Annotated[str, Path(pattern=r"^\d{5}$")],
    visit_key: Annotated[str, Path(max_length=100)],
) -> Response:
    """A stored visit (its current version) as a GIAMDINHHS file, normalised."""
    async with database(request).session() as session:  # the audit row is committed first
        data = await service.export_visit(session, subject, facility, visit_key)
    return Response(data, media_type="application/xml")


@router.get("/checkins/awaiting-visits", responses=error_responses(401, 403, 422))
async def checkins_awaiting_visits(
    session: ReadSession,
    subject: CurrentSubject,
    facility: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    older_than_hours: Annotated[float, Query(ge=0, le=24 * 366)] = 24,
    within_days: Annotated[
        int | None,
        Query(
            ge=1,
            le=366,
            description="How far back to look: check-ins received in the last this many days "
            "(by default older_than_hours in whole days plus 30, at most 366).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Visits checked in (XML0) more than ``older_than_hours`` ago, and within the last
    ``within_days`` days, whose file never came: visits made but not sent, oldest first (the
    facility's systems and admins, the department). Without ``within_days`` the window reaches
    30 days past ``older_than_hours`` (in whole days: 31 days for the default 24 hours; at most
    366). A value out of range, or a window that ends before ``older_than_hours`` (it could
    list nothing), is KIT-0422; a check-in older than the window is not listed (a visit still
    unsent after a year is the BHXH appraisal's matter, not a reminder's)."""
    if within_days is None:
        within_days = min(366, math.ceil(older_than_hours / 24) + 30)
    if older_than_hours >= within_days * 24:
        message = (
            f"older_than_hours ({older_than_hours:g}) must be less than within_days × 24 "
            f"({within_days} × 24 = {within_days * 24}; within_days is at most 366): the "
            "window would hold no check-in old enough"
        )
        problem = {"location": ["query", "older_than_hours"], "message": message}
        raise RequestInvalid({"problems": [{**problem, "type": "less_than_window"}]}, count=1)
    return await service.awaiting_visits(
        session,
        subject,
        facility=facility,
        older_than=timedelta(hours=older_than_hours),
        within=timedelta(days=within_days),
        limit=limit,
    )


@router.post(
    "/checkins",
    status_code=201,
    responses={201: {"description": "Check-in receipt"}, **FILE_ERRORS},
    openapi_extra=BODY_DOC,
)
async def checkin(request: Request, subject: CurrentSubject) -> JSONResponse:
    """Send an XML0 check-in (CHI_TIEU_TRANG_THAI_KCB) right after a visit's first cost. The
    same file sent again (a retry) gets the first receipt again, and is relayed once; a file
    that was rejected is checked again when sent again (it may pass now)."""
    settings: Settings = request.app.state.settings
    limits = _limits(settings)
    data = await read_document(request, limits)
    db = database(request)
    codes = await catalogs.recent_codebook(db)
    options = service.IntakeOptions(limits=limits, require_signature=settings.require_signature)
    async with db.session() as session:
        receipt = await service.check_in(session, subject, data, options, codes)
    return JSONResponse(receipt, status_code=201)
