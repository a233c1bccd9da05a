"""HTTP routes of the submissions context: visit files, check-ins, validation, receipts."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime

from vnehr import catalogs, papers
from vnehr.kit.auth import CurrentSubject
from vnehr.kit.http import ReadSession, database, error_responses
from vnehr.kit.settings import Settings
from vnehr.submissions import errors, service
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
        }
    }
}


def _limits(settings: Settings) -> Limits:
    return Limits(max_bytes=settings.max_body_bytes)


async def read_document(request: Request, limits: Limits) -> bytes:
    """The XML document of a request: the raw body, or the base64 field ``fileHSBase64`` of a
    form (as the BHXH portal takes it). Reading stops past the size cap."""
    cap = limits.max_bytes * 4 // 3 + 4096  # base64 and form overhead
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise errors.TooLarge(what="request", size=size, limit=limits.max_bytes)
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
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
    )
    service.require_sender(subject)
    db = database(request)
    async with db.read_session() as session:
        codes = await catalogs.codebook(session)
    # Parsing is CPU work: off the event loop, and before the write transaction starts (on
    # SQLite that transaction holds the database's write lock).
    analysis = await asyncio.to_thread(service.analyse, data, codes=codes, limits=limits)
    async with db.session() as session:
        receipt = await service.accept(session, subject, data, analysis, options)
    # The transaction is committed here: only now is the receipt handed out.
    return JSONResponse(receipt, status_code=201)


@router.post("/submissions/validate", responses=FILE_ERRORS, openapi_extra=BODY_DOC)
async def validate(
    request: Request, session: ReadSession, subject: CurrentSubject
) -> dict[str, Any]:
    """The same checks as a submission, nothing stored: for facility IT while building exports."""
    limits = _limits(request.app.state.settings)
    data = await read_document(request, limits)
    codes = await catalogs.codebook(session)
    analysis = await asyncio.to_thread(service.analyse, data, codes=codes, limits=limits)
    return service.validation_report(analysis)


@router.get("/submissions/{submission_id}", responses=error_responses(401, 403, 404))
async def get_receipt(
    session: ReadSession,
    subject: CurrentSubject,
    submission_id: Annotated[str, Path(max_length=36)],
) -> dict[str, Any]:
    """The receipt of a submission, again."""
    return await service.receipt(session, subject, submission_id)


@router.get("/submissions", responses=error_responses(401, 403, 422))
async def list_receipts(
    session: ReadSession,
    subject: CurrentSubject,
    facility: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 with its time zone, e.g. +07:00")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Receipts of a facility, newest first."""
    return await service.listing(session, subject, facility=facility, since=since, limit=limit)


@router.get(
    "/visits/{facility}/{visit_key}/xml",
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


@router.post(
    "/checkins",
    status_code=201,
    responses={201: {"description": "Check-in receipt"}, **FILE_ERRORS},
    openapi_extra=BODY_DOC,
)
async def checkin(request: Request, subject: CurrentSubject) -> JSONResponse:
    """Send an XML0 check-in (CHI_TIEU_TRANG_THAI_KCB) right after a visit's first cost."""
    limits = _limits(request.app.state.settings)
    data = await read_document(request, limits)
    async with database(request).session() as session:
        receipt = await service.check_in(session, subject, data, limits)
    return JSONResponse(receipt, status_code=201)
