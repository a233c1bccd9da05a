"""The book page's downloads: the health book as a PDF and as a FHIR data file, of the
viewer's own book or of the person the page names by reference (``?p=``, D131: the address
names nobody, where the API's ``/api/v1/me/book.pdf?for=`` names the personal ID). The same
answers as the API's (``healthbook.book_pdf_answer``, ``fhir.book_json_answer``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from vnehr import fhir, healthbook
from vnehr.kit.auth import OptionalSubject, Subject
from vnehr.kit.errors import VnehrError
from vnehr.kit.http import ReadSession
from vnehr.kit.i18n import Language
from vnehr.web.pages import _book_whom, _error_page, _language, _PageRoute, templates

router = APIRouter(include_in_schema=False, route_class=_PageRoute)
#: the book page tells how many visits the PDF lists
templates.env.globals["book_visits"] = healthbook.BOOK_VISITS

Ref = Annotated[str | None, Query(max_length=200)]


async def _download(
    request: Request,
    subject: Subject | None,
    p: str | None,
    answer: Callable[[Subject, str | None], Awaitable[Response]],
) -> Response:
    whom = _book_whom(request, subject, None, p)
    if isinstance(whom, RedirectResponse):
        return whom
    who, person, expired = whom
    if expired:
        # made for someone else, or too long ago: nobody's file, and the book's page says why
        return RedirectResponse(f"/portal/book?{urlencode({'p': p})}", status_code=303)
    try:
        return await answer(who, person)
    except VnehrError as exc:
        return _error_page(request, exc)


@router.get("/portal/book/download.pdf")
async def book_pdf(request: Request, subject: OptionalSubject, p: Ref = None) -> Response:
    """The health book (of the person ``?p=`` names) as a PDF to print or show a doctor, in
    the reader's language."""

    async def answer(who: Subject, person: str | None) -> Response:
        # in the page's language: the one the reader chose there (its cookie), or ``?lang=``
        lang: Language = "en" if _language(request) == "en" else "vi"
        return await healthbook.book_pdf_answer(request, who, person, lang)

    return await _download(request, subject, p, answer)


@router.get("/portal/book/download.json")
async def book_json(
    request: Request, session: ReadSession, subject: OptionalSubject, p: Ref = None
) -> Response:
    """The record (of the person ``?p=`` names) as a FHIR R4 Bundle, to move to another app."""

    async def answer(who: Subject, person: str | None) -> Response:
        return await fhir.book_json_answer(request, session, who, person)

    return await _download(request, subject, p, answer)
