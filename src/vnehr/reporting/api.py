"""HTTP routes of the reports: the figures as JSON, the files (XLSX, CSV, PDF), the department's
notes, the visits facilities declare, and the ward populations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from vnehr.kit.auth import CurrentSubject
from vnehr.kit.http import ReadSession, WriteSession, error_responses
from vnehr.reporting import outputs, service

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
Province = Annotated[str | None, Query(pattern=r"^\d{2}$", description="None: the country")]
Ward = Annotated[str | None, Query(pattern=r"^\d{5}$")]
Facility = Annotated[str | None, Query(pattern=r"^[0-9A-Z]{5}$")]
MEDIA = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "pdf": "application/pdf",
}


async def _figures(
    request: Request,
    session: Any,
    subject: Any,
    period: str,
    province: str | None,
    ward: str | None,
    facility: str | None,
) -> dict[str, Any]:
    return await service.build(
        session,
        subject,
        period,
        province=province,
        ward=ward,
        facility=facility,
        cost_per_record=request.app.state.settings.report_cost_per_record,
    )


@router.get(
    "/{period}.{fmt}",
    responses={**error_responses(401, 403, 422), 200: {"content": {m: {} for m in MEDIA.values()}}},
)
async def report_file(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    period: str,
    fmt: Literal["xlsx", "csv", "pdf"],
    province: Province = None,
    ward: Ward = None,
    facility: Facility = None,
) -> Response:
    """The report as the Ministry's XLSX form, a CSV of every figure, or a PDF with charts."""
    figures = await _figures(request, session, subject, period, province, ward, facility)
    writer = {"xlsx": outputs.to_xlsx, "csv": outputs.to_csv, "pdf": outputs.to_pdf}[fmt]
    body = await anyio.to_thread.run_sync(writer, figures)
    name = outputs.file_name(figures, fmt)
    return Response(
        body,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/{period}", responses=error_responses(401, 403, 422))
async def report(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    period: str,
    province: Province = None,
    ward: Ward = None,
    facility: Facility = None,
) -> dict[str, Any]:
    """The six-monthly report (2026H1 = January-June) of a province, or of the country for a
    national administrator, optionally narrowed to a ward or a facility."""
    return await _figures(request, session, subject, period, province, ward, facility)


class NotesIn(BaseModel):
    text: str = Field(max_length=20_000)


@router.put("/{period}/notes", status_code=204, responses=error_responses(401, 403, 422))
async def notes(
    session: WriteSession,
    subject: CurrentSubject,
    period: str,
    body: NotesIn,
    province: Province = None,
) -> Response:
    """The department's difficulties and recommendations for this report."""
    await service.set_notes(session, subject, period, province, body.text)
    return Response(status_code=204)


class Declared(BaseModel):
    category: str
    insured: bool
    visits: int = Field(ge=0, le=100_000_000)


@router.put(
    "/{period}/declared/{facility_code}",
    status_code=204,
    responses=error_responses(401, 403, 404, 422),
)
async def declare(
    session: WriteSession,
    subject: CurrentSubject,
    period: str,
    facility_code: str,
    body: list[Declared],
) -> Response:
    """The visits the facility made in the period (its own count), per care category."""
    await service.declare(
        session, subject, period, facility_code, {(d.category, d.insured): d.visits for d in body}
    )
    return Response(status_code=204)


@router.post("/population", responses=error_responses(401, 403, 422))
async def population(
    request: Request, session: WriteSession, subject: CurrentSubject
) -> dict[str, int]:
    """Ward populations (CSV ``ward_code,population[,as_of]``); national administrators."""
    service.require_reader(subject, None)
    text = (await request.body())[:5_000_000].decode("utf-8-sig", errors="replace")
    return {"loaded": await service.load_population(session, text)}
