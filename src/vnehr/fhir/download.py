"""The health book as a data file (``GET /api/v1/me/book.json``): the holder's whole record
as one FHIR R4 Bundle to save and move to another app (data portability). The same
compartment, mapping and rules as ``Patient/$everything`` (``store.compartment``): a
representative of a person of 16 or 17 gets it without the visits they may not read (D132)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import healthbook
from vnehr.fhir import store
from vnehr.kit.auth import CurrentSubject, Subject
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.http import ReadSession, error_responses

FHIR_JSON = "application/fhir+json"
Resource = dict[str, Any]

router = APIRouter(prefix="/api/v1/me", tags=["health book"])


def _instant(moment: Any) -> str:
    return str(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def collection(base: str, resources: list[Resource]) -> Resource:
    """A ``collection`` Bundle of these resources, each with its full URL: the whole record
    in one file (a searchset would be a page of a search, with links back to this server)."""
    now = _instant(utcnow())
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now},
        "type": "collection",
        "timestamp": now,
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }


async def book_json_answer(
    request: Request, session: AsyncSession, subject: Subject, personal_id: str | None
) -> Response:
    """The record of the caller (or of ``personal_id``, whom they represent today) as a FHIR
    Bundle to download, for this route and the book's page; a download of someone else's
    record is audited (``healthbook.exported``) before the answer leaves."""
    who = await healthbook.holder(session, subject, personal_id)
    base = f"{request.app.state.settings.public_url}/fhir/R4"
    scope = await store.scope_of(session, subject, base=base)
    pool = await store.compartment(session, scope, [who.id])
    bundle = collection(base, store.everything_of(pool, str(who.id)))
    body = orjson.dumps(bundle)
    await healthbook.settle(
        request, healthbook.Read(None, healthbook.exported(subject, who, "json"), who)
    )
    name = healthbook.file_name(who, today_in_vietnam(), ".json")
    return healthbook.download(body, FHIR_JSON, name)


@router.get(
    "/book.json",
    response_class=Response,
    responses={
        200: {"content": {FHIR_JSON: {}}, "description": "The record as a FHIR R4 Bundle"},
        **error_responses(401, 403, 404, 422),
    },
)
async def my_book_json(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    person: healthbook.ForWhom = None,
) -> Response:
    """My whole record (or a represented person's) as one FHIR R4 ``collection`` Bundle, to
    save and move to another app: what ``Patient/$everything`` gives, in one file. A
    representative of a person of 16 or 17 gets it without the visits they do not read."""
    return await book_json_answer(request, session, subject, person)
