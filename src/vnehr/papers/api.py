"""HTTP routes of the electronic papers: issuing (facility systems and staff), the citizen's
papers, the PDF and QR, revocation, public verification, and the issuer's keys and
revocation list where SMART Health Card verifiers look for them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from vnehr.kit.auth import CurrentSubject
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.db import Database
from vnehr.kit.http import ReadSession, WriteSession, database, error_response, error_responses
from vnehr.kit.text import fold
from vnehr.papers import errors, pdf, service, shc
from vnehr.papers.models import Paper

router = APIRouter(tags=["papers"])
PaperId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]
Kind = Literal["driver", "referral", "re_exam", "sick_leave", "birth", "discharge"]


class HolderIn(BaseModel):
    personal_id: str = Field(pattern=r"^\d{12}$")
    name: str = Field(min_length=1, max_length=200)
    birth_date: date
    sex: Literal["male", "female"] | None = None


class DriverIn(BaseModel):
    """A driver's health certificate (TT 36/2024)."""

    kind: Literal["driver"]
    facility_code: str | None = Field(
        default=None, pattern=r"^[0-9A-Z]{5}$", description="Staff only: the facility issuing"
    )
    number: str | None = Field(default=None, max_length=60, description="None: numbered here")
    holder: HolderIn
    examined_on: date
    classes: list[str] = Field(min_length=1, max_length=15, description="Licence classes")
    drug_test: Literal["negative", "positive"]
    alcohol: Literal["negative", "positive"]
    conclusion: Literal["fit", "unfit", "fit_with_conditions"]
    conditions: str | None = Field(default=None, max_length=500)
    doctor_id: str | None = Field(default=None, max_length=60)
    doctor_name: str | None = Field(default=None, max_length=200)


class TablePaperIn(BaseModel):
    """A paper of a national table (XML7, XML9, XML11, XML13, XML14) for a visit already sent:
    ``fields`` is the table row, with the table's field names."""

    kind: Literal["referral", "re_exam", "sick_leave", "birth", "discharge"]
    facility_code: str | None = Field(default=None, pattern=r"^[0-9A-Z]{5}$")
    visit_key: str = Field(min_length=1, max_length=100, description="MA_LK of the visit")
    fields: dict[str, str | int] = Field(max_length=60)


class PaperOut(BaseModel):
    id: str
    kind: str
    number: str
    version: int
    facility_code: str
    visit_key: str | None
    status: str = Field(description="valid | used | expired | revoked")
    signed_on: date
    valid_from: date
    valid_until: date | None
    issued_at: datetime
    used_by: str | None
    revoked_at: datetime | None
    revoke_reason: str | None
    content: dict[str, Any]
    qr: str = Field(description="The shc:/ text of the QR code")
    outcome: str | None = Field(default=None, description="issued | replaced | unchanged")


def out(paper: Paper, outcome: str | None = None) -> PaperOut:
    return PaperOut(
        id=paper.id,
        kind=paper.kind,
        number=paper.number,
        version=paper.version,
        facility_code=paper.facility_code,
        visit_key=paper.visit_key,
        status=service.status_of(paper, today_in_vietnam()),
        signed_on=paper.signed_on,
        valid_from=paper.valid_from,
        valid_until=paper.valid_until,
        issued_at=paper.issued_at,
        used_by=paper.used_by,
        revoked_at=paper.revoked_at,
        revoke_reason=paper.revoke_reason,
        content=paper.content,
        qr=shc.qr_text(paper.jws),
        outcome=outcome,
    )


def keys(request: Request) -> service.PaperKeys:
    return service.keys_for(request.app.state.settings)


@router.post(
    "/api/v1/papers",
    status_code=201,
    response_model=PaperOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def issue(
    request: Request,
    session: WriteSession,
    subject: CurrentSubject,
    body: Annotated[DriverIn | TablePaperIn, Field(discriminator="kind")],
) -> PaperOut | Response:
    """Issue a paper: a driver's health certificate, or a paper of a national table for a visit
    already sent. The answer comes after the commit; the citizen is notified. A paper whose
    holder (a birth certificate's mother) has signed in with VNeID and whose name or birth
    date for them differ from what VNeID confirmed is refused (PAP-0008, naming the fields)."""
    data = body.model_dump()
    try:
        if isinstance(body, DriverIn):
            data["holder"] = body.holder.model_dump()
            paper, outcome = await service.issue_driver(session, keys(request), subject, data)
        else:
            paper, outcome = await service.issue_for_visit(
                session, keys(request), subject, data, request.app.state.paper_row_check
            )
    except errors.NotTheHolder as exc:
        return error_response(exc)  # the session commits the refusal's audit row, only that
    await session.flush()
    return out(paper, outcome)


@router.get(
    "/api/v1/papers/{paper_id}.pdf",
    responses={200: {"content": {"application/pdf": {}}}, **error_responses(401, 404)},
)
async def paper_pdf(
    request: Request, session: WriteSession, subject: CurrentSubject, paper_id: PaperId
) -> Response:
    """The paper as a Vietnamese PDF with its QR, signed by the doctor and the facility."""
    paper = await service.readable(session, subject, paper_id)
    status = service.status_of(paper, today_in_vietnam())
    svg = shc.qr_svg(paper.jws)
    body = await anyio.to_thread.run_sync(
        lambda: pdf.render(paper.content, paper_id=paper.id, status=status, qr_svg=svg)
    )
    signed = await pdf.sign(body, pdf.signers_of(paper.content), keys(request).signing)
    name = f"{paper.kind}-{paper.number}".replace("/", "-")
    return Response(
        signed, media_type="application/pdf", headers={"Content-Disposition": attachment(name)}
    )


def attachment(name: str) -> str:
    """A download named ``name``.pdf: a number may hold Vietnamese letters, quotes or
    anything else, so the name is given in UTF-8 (RFC 6266, RFC 5987) after a plain ASCII
    one for old clients (an HTTP header is Latin-1)."""
    plain = re.sub(r"[^a-z0-9._ -]+", "_", fold(name)).strip("_ ") or "paper"
    return f"attachment; filename=\"{plain}.pdf\"; filename*=UTF-8''{quote(name + '.pdf', safe='')}"


@router.get(
    "/api/v1/papers/{paper_id}/qr.png",
    responses={200: {"content": {"image/png": {}}}, **error_responses(401, 404)},
)
async def paper_qr(session: WriteSession, subject: CurrentSubject, paper_id: PaperId) -> Response:
    paper = await service.readable(session, subject, paper_id)
    return Response(shc.qr_png(paper.jws, box=6), media_type="image/png")


@router.get(
    "/api/v1/papers/{paper_id}", response_model=PaperOut, responses=error_responses(401, 404)
)
async def one(session: WriteSession, subject: CurrentSubject, paper_id: PaperId) -> PaperOut:
    """A paper, for its holder (or their representative) and its issuing facility."""
    return out(await service.readable(session, subject, paper_id))


class RevokeIn(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


@router.post(
    "/api/v1/papers/{paper_id}/revoke",
    response_model=PaperOut,
    responses=error_responses(401, 403, 404, 409),
)
async def revoke(
    session: WriteSession, subject: CurrentSubject, paper_id: PaperId, body: RevokeIn
) -> PaperOut:
    """Revoke a paper (the issuing facility only), with a reason; verification fails at once."""
    return out(await service.revoke(session, subject, paper_id, body.reason))


class MyPapers(BaseModel):
    holder: str
    papers: list[PaperOut]


@router.get("/api/v1/me/papers", response_model=MyPapers, responses=error_responses(401, 404))
async def my_papers(
    session: WriteSession,
    subject: CurrentSubject,
    for_: Annotated[str | None, Query(alias="for", pattern=r"^\d{12}$")] = None,
) -> MyPapers:
    """The papers in my health book (or in the book of a child or ward I act for)."""
    who, rows = await service.of_holder(session, subject, for_)
    return MyPapers(holder=who.full_name, papers=[out(p) for p in rows])


class VerifyIn(BaseModel):
    qr: str = Field(min_length=1, max_length=20_000, description="shc:/... or the JWS")


@router.post("/api/v1/papers/verify")
async def verify(request: Request, session: ReadSession, body: VerifyIn) -> dict[str, Any]:
    """Public: is this paper authentic, and valid today? Only the facts needed to decide."""
    return await service.verify(session, keys(request), body.qr)


class PdfCheck(BaseModel):
    signatures: list[dict[str, Any]]
    authentic: bool = Field(description="Signed by the hub's signers, nothing changed since")
    valid: bool = Field(description="Authentic, and the paper is valid today")
    status: str | None = Field(
        default=None, description="The paper's status today, as /verify: valid | used | ..."
    )
    reason: str | None = Field(
        default=None,
        description="Not authentic: why (no_signature | not_intact | not_trusted | "
        "changed_after_signing | too_large); revoked: the revocation's reason",
    )
    paper_id: str | None = None


@router.post("/api/v1/papers/verify-pdf", response_model=PdfCheck)
async def verify_pdf(request: Request, session: ReadSession) -> PdfCheck:
    """Public: check the PDF signatures of a paper (body: the PDF bytes, at most 5 MB), then,
    as /verify does for the QR, the paper's status today: a revoked paper's PDF stays
    authentic (its signatures are genuine) but is not valid."""
    data = await request.body()
    if len(data) > 5_000_000:
        return PdfCheck(signatures=[], authentic=False, valid=False, reason="too_large")
    found = await pdf.check(data, keys(request).trusted_roots)
    signatures = [
        {
            "field": s.field,
            "signer": s.signer,
            "intact": s.intact,
            "trusted": s.trusted,
            "covers": s.covers,
            "changed_after": s.changed_after,
        }
        for s in found
    ]
    problem = pdf.problem(found)
    if problem is not None:
        return PdfCheck(signatures=signatures, authentic=False, valid=False, reason=problem)
    paper_id = pdf.paper_id_of(data)
    status, reason = (
        await service.status_now(session, paper_id) if paper_id else ("unknown", "not_on_record")
    )
    return PdfCheck(
        signatures=signatures,
        authentic=True,
        valid=status == "valid",
        status=status,
        reason=reason,
        paper_id=paper_id,
    )


#: The revocation list is read in slices of this many rows, each in a short read of its
#: own: a slow download holds no database connection and the list is never in memory whole.
CRL_BATCH = 5_000


def _fresh(request: Request, etag: str) -> bool:
    """Whether the caller already has the representation ``etag`` (``If-None-Match``)."""
    asked = request.headers.get("if-none-match")
    if not asked:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in asked.split(",")}
    return "*" in tags or etag in tags


def _public(etag: str, cache: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": cache, "Access-Control-Allow-Origin": "*"}


def _not_modified(headers: dict[str, str]) -> Response:
    return Response(status_code=304, headers=headers)


@router.get("/.well-known/jwks.json", include_in_schema=False)
async def jwks(request: Request, session: ReadSession) -> Response:
    cards = keys(request).cards  # the current key first, then the previous secrets' (D37)
    version = await service.revocation_version(session, utcnow())
    headers = _public(f'"{".".join(c.kid for c in cards)}.{version}"', "public, max-age=300")
    if _fresh(request, headers["ETag"]):
        return _not_modified(headers)
    body = {"keys": [card.public_jwk(version) for card in cards]}
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


async def _whole_list(db: Database, kid: str, version: int) -> AsyncIterator[bytes]:
    yield orjson.dumps({"kid": kid, "method": "rid", "ctr": version})[:-1] + b',"rids":['
    after: tuple[datetime, str] | None = None
    first = True
    while True:
        async with db.read_session() as session:
            rows = await service.revoked_after(session, after, CRL_BATCH)
        if rows:
            chunk = b",".join(orjson.dumps(rid) for _, rid in rows)
            yield chunk if first else b"," + chunk
            first = False
        if len(rows) < CRL_BATCH:
            break
        after = rows[-1]
    yield b"]}"


@router.get(
    "/.well-known/crl/{kid}.json",
    responses={304: {"description": "The caller's copy (If-None-Match) is current"},
               **error_responses(400, 422)},
)  # fmt: skip
async def crl(
    request: Request,
    session: ReadSession,
    kid: str,
    since: Annotated[
        str | None,
        Query(max_length=200, description="Go on after this cursor (a page's ``next``)"),
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=service.PAGE_MAX, description="A page of this many at most")
    ] = None,
) -> Response:
    """The SMART Health Cards revocation list of a hub key (``rid`` method): the current
    key's and each previous secret's in the JWKS list the same revoked papers.

    Without parameters, the whole list (``ctr`` is the JWKS key's ``crlVersion``), streamed;
    a verifier sending the ``ETag`` it has in ``If-None-Match`` gets 304 while no paper was
    revoked since. With ``limit`` and then ``since``, one page at a time in the order of
    revocation: ``next`` is the cursor to go on from (keep it, and ask again later to get
    only the revocations since), ``more`` says to ask again at once (the page was full).
    Revocations of the last few minutes come again on the next read until they are settled
    (a revocation may commit late); a page with ``more`` never changes and may be cached for
    good."""
    # one list of every revoked rid serves each of our keys (a rid is unlinkable, so the
    # other keys' rids tell a verifier nothing); a kid of none of them is answered as the
    # current key's
    cards = keys(request).cards
    listed = kid if any(c.kid == kid for c in cards) else cards[0].kid
    now = utcnow()
    if since is None and limit is None:
        version = await service.revocation_version(session, now)
        headers = _public(f'"{listed}.{version}"', "public, max-age=300")
        if _fresh(request, headers["ETag"]):
            return _not_modified(headers)
        return StreamingResponse(
            _whole_list(database(request), listed, version),
            media_type="application/json",
            headers=headers,
        )
    page = await service.revocations_since(session, since, limit or 1000, now)
    body = orjson.dumps(
        {"kid": listed, "method": "rid", "rids": page.rids, "next": page.next, "more": page.more}
    )
    cache = "public, max-age=31536000, immutable" if page.more else "public, max-age=60"
    headers = _public(f'"{hashlib.sha256(body).hexdigest()[:32]}"', cache)
    if _fresh(request, headers["ETag"]):
        return _not_modified(headers)
    return Response(body, media_type="application/json", headers=headers)
