"""HTTP routes of the health book: ``/api/v1/me/...`` for the signed-in citizen (and, with
``?for=<personal ID>``, for a child or ward they represent)."""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.routing import Route

from vnehr.healthbook import access, book, pdf, service
from vnehr.healthbook import schemas as s
from vnehr.kit.auth import CurrentReader, CurrentSubject, Subject, current_reader
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.errors import RequestInvalid, VnehrError
from vnehr.kit.http import (
    ReadSession,
    WriteSession,
    database,
    error_response,
    error_responses,
)
from vnehr.kit.i18n import LANGUAGE_COOKIE, LANGUAGES, Language
from vnehr.kit.paging import Page

router = APIRouter(prefix="/api/v1/me", tags=["health book"])
#: Row ids are 64-bit: a larger number is a 422, not a database overflow.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

#: Whose book a route reads: a person the caller represents today (also the FHIR data file's,
#: ``fhir.download``).
ForWhom = Annotated[
    str | None,
    Query(
        alias="for",
        pattern=r"^\d{12}$",
        description="Personal ID of a child or ward you represent (default: yourself)",
    ),
]


class TimelinePage(BaseModel):
    items: list[s.TimelineItem]
    next_cursor: str | None = Field(default=None, description="Opaque; absent on the last page.")


async def settle(request: Request, read: service.Read[Any]) -> None:
    """Write the audit rows a read owes before its answer leaves."""
    if read.audit:
        async with database(request).session() as session:
            session.add_all(read.audit)


@router.get("/timeline", response_model=TimelinePage, responses=error_responses(401, 403, 404))
async def my_timeline(
    request: Request,
    subject: CurrentReader,
    person: ForWhom = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """My visits (or a represented person's), newest first, with cursor paging."""
    read = await service.timeline(
        database(request), subject, personal_id=person, cursor=cursor, limit=limit
    )
    await settle(request, read)
    items, next_cursor = read.value
    # Serialised here from plain dicts (TimelinePage documents the shape; validating 20 items
    # into models costs more than the query, D34).
    return Response(
        orjson.dumps({"items": items, "next_cursor": next_cursor}, option=orjson.OPT_UTC_Z),
        media_type="application/json",
    )


_PERSONAL_ID = re.compile(r"^\d{12}$")


async def timeline_fast(request: Request) -> Response:
    """``GET /api/v1/me/timeline`` as a plain Starlette route (D34): the busiest read of the
    system skips FastAPI's dependency solving and validation, which cost more than the query.
    It answers exactly like ``my_timeline`` above, which stays for the OpenAPI description and
    the same checks: the caller, ``for`` (12 digits), ``cursor``, ``limit`` (1..100)."""
    request.scope["route"] = TIMELINE_ROUTE  # for the request metrics' route label
    try:
        subject = await current_reader(request)
        params = request.query_params
        person = params.get("for")
        if person is not None and not _PERSONAL_ID.match(person):
            raise RequestInvalid({"problems": [{"field": "for", "problem": "12 digits"}]}, count=1)
        raw_limit = params.get("limit", "20")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise RequestInvalid({"problems": [{"field": "limit", "problem": "1..100"}]}, count=1)
        read = await service.timeline(
            database(request),
            subject,
            personal_id=person,
            cursor=params.get("cursor"),
            limit=int(raw_limit),
        )
        await settle(request, read)
    except VnehrError as exc:
        return error_response(exc)
    items, next_cursor = read.value
    return Response(
        orjson.dumps({"items": items, "next_cursor": next_cursor}, option=orjson.OPT_UTC_Z),
        media_type="application/json",
    )


TIMELINE_ROUTE = Route("/api/v1/me/timeline", timeline_fast, methods=["GET"])
#: Routes the app puts ahead of its FastAPI routes.
fast_routes = [TIMELINE_ROUTE]


@router.get("/summary", response_model=s.Summary, responses=error_responses(401, 403, 404))
async def my_summary(
    request: Request, session: ReadSession, subject: CurrentSubject, person: ForWhom = None
) -> s.Summary:
    """Long-term conditions, current medicines, blood group, weights and the last visits."""
    read = await service.summary(session, subject, personal_id=person)
    await settle(request, read)
    return read.value


async def book_pdf_answer(
    request: Request, subject: Subject, personal_id: str | None, lang: Language = "vi"
) -> Response:
    """The book of the caller (or of ``personal_id``, whom they represent) as a PDF download
    in ``lang``, for this route and the book's page; its audit row written before the answer
    leaves."""
    read = await book.book(database(request), subject, personal_id=personal_id)
    portal = f"{request.app.state.settings.public_url}/portal/book"
    body = await anyio.to_thread.run_sync(
        functools.partial(book.book_pdf, read.value, printed_at=utcnow(), portal=portal, lang=lang)
    )
    await settle(request, read)
    return download(
        body, "application/pdf", book.file_name(read.value.holder, today_in_vietnam(), ".pdf")
    )


def download(body: bytes, media_type: str, name: str) -> Response:
    """A file the browser saves (never kept by a cache on the way: it is a health record)."""
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "private, no-store",
        },
    )


@router.get(
    "/book.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The health book as a PDF"},
        **error_responses(401, 403, 404),
    },
)
async def my_book_pdf(
    request: Request,
    subject: CurrentSubject,
    person: ForWhom = None,
    lang: Annotated[
        Language | None,
        Query(
            description="The language of its headings and labels: vi or en (default: the "
            "language the portal remembers for this browser, else vi); what facilities "
            "recorded stays as recorded"
        ),
    ] = None,
) -> Response:
    """My health book (or a represented person's) as one PDF, to print or show a doctor:
    who, the summary (allergies, long-term conditions, medicines, risk factors) and the newest
    500 visits, newest first (the PDF says when older ones are left to the portal); in
    Vietnamese, or in English with ``?lang=en``. A representative of a person of 16 or 17
    gets it without the visits they do not read."""
    return await book_pdf_answer(request, subject, person, lang or _remembered(request))


def _remembered(request: Request) -> Language:
    """The language the portal remembers for this browser (its cookie), else Vietnamese."""
    found = request.cookies.get(LANGUAGE_COOKIE)
    return next((language for language in LANGUAGES if language == found), "vi")


@router.get(
    "/visits/{visit_id}.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The visit as a PDF"},
        **error_responses(401, 404),
    },
)
async def my_visit_pdf(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    visit_id: RowId,
) -> Response:
    """One visit as a Vietnamese PDF, for download."""
    read = await service.visit(session, subject, visit_id)
    body = pdf.visit_pdf(read.value, holder_name=subject.name, printed_at=utcnow())
    await settle(request, read)
    return download(body, "application/pdf", f"so-suc-khoe-luot-kham-{visit_id}.pdf")


@router.get("/visits/{visit_id}", response_model=s.Visit, responses=error_responses(401, 404))
async def my_visit(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    visit_id: RowId,
) -> s.Visit:
    """Everything of one visit: diagnoses, drugs, services, results, notes, record summary,
    papers."""
    read = await service.visit(session, subject, visit_id)
    await settle(request, read)
    return read.value


# ------------------------------------------------------------------ who looked


class DisputeBody(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


class CloseBody(BaseModel):
    finding: str = Field(min_length=1, max_length=1000)


@router.get(
    "/access-log", response_model=list[access.AccessEntry], responses=error_responses(401, 404)
)
async def my_access_log(
    session: ReadSession,
    subject: CurrentSubject,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[access.AccessEntry]:
    """Who read my record (and the records of those I act for), newest first."""
    return await access.access_log(session, subject, limit=limit, before=before)


@router.post(
    "/access-log/{event_id}/dispute",
    status_code=201,
    response_model=access.Dispute,
    responses=error_responses(401, 404, 422),
)
async def dispute_access(
    session: WriteSession,
    subject: CurrentSubject,
    event_id: RowId,
    body: DisputeBody | None = None,
) -> access.Dispute:
    """ "I don't recognise this": open a case for the health department about one read."""
    return await access.dispute(session, subject, event_id, body.reason if body else None)


@router.post(
    "/representatives/{link_id}/contest",
    status_code=201,
    response_model=access.Dispute,
    responses=error_responses(401, 403, 404, 422),
)
async def contest_representative(
    session: WriteSession,
    subject: CurrentSubject,
    link_id: RowId,
    body: DisputeBody | None = None,
) -> access.Dispute:
    """ "Not right? Tell the health department": open a case about one of my representation
    links (``GET /api/v1/me/representatives``), or of a person I act for, in the department's
    queue; the case already open about it is answered again. A link of anyone else: HB-0007."""
    return await access.contest_link(session, subject, link_id, body.reason if body else None)


department_router = APIRouter(prefix="/api/v1/access-disputes", tags=["health book"])


@department_router.get(
    "", response_model=Page[access.Dispute], responses=error_responses(400, 401, 403, 422)
)
async def dispute_queue(
    session: ReadSession,
    subject: CurrentSubject,
    status: str | None = "open",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[access.Dispute]:
    """The health department's queue of access disputes, newest first, ``limit`` at a time:
    pass ``next_cursor`` back as ``cursor`` for the next page (absent on the last)."""
    return await access.disputes(session, subject, status, cursor=cursor, limit=limit)


@department_router.post(
    "/{dispute_id}/close",
    response_model=access.Dispute,
    responses=error_responses(401, 403, 404, 409),
)
async def close_dispute(
    session: WriteSession,
    subject: CurrentSubject,
    dispute_id: RowId,
    body: CloseBody,
) -> access.Dispute:
    """Close a case with what the department found."""
    return await access.close_dispute(session, subject, dispute_id, body.finding)
