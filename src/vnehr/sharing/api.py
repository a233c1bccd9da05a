"""HTTP routes of sharing: the citizen's directives, the clinician's view of a patient,
break-glass and its review queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from vnehr import healthbook
from vnehr.kit.auth import CurrentSubject
from vnehr.kit.clock import utcnow
from vnehr.kit.http import ReadSession, WriteSession, database, error_response, error_responses
from vnehr.kit.paging import Page
from vnehr.sharing import errors, service
from vnehr.sharing.models import ConsentDirective, EmergencyAccess

router = APIRouter(tags=["sharing"])
PersonalId = Annotated[str, Path(pattern=r"^\d{12}$")]
#: Row ids are 64-bit: a larger number is a 422, not a database overflow.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: Whose sharing, as the health book's ``for``: a person the caller represents today.
ForWhom = Annotated[
    str | None,
    Query(
        alias="for",
        pattern=r"^\d{12}$",
        description="Personal ID of a child or ward you represent (default: yourself); not of"
        " a person of 16 or more, who decides their sharing themselves (SHR-0014)",
    ),
]


class DirectiveIn(BaseModel):
    facility: str = Field(pattern=r"^(\*|[0-9A-Z]{5})$", description='A facility code, or "*"')
    scope: Literal["summary", "full"] = "summary"
    sensitive: list[Literal["hiv", "tb", "mental", "reproductive"]] = Field(
        default_factory=list, description="Sensitive categories you choose to include"
    )
    days: int | None = Field(default=None, ge=1, le=3650, description="None: until revoked")


class Directive(BaseModel):
    id: int
    facility: str
    scope: str
    sensitive: list[str]
    valid_from: datetime
    valid_to: datetime | None
    revoked_at: datetime | None
    in_force: bool


def _directive(row: ConsentDirective) -> Directive:
    return Directive(
        id=row.id, facility=row.grantee, scope=row.scope, sensitive=list(row.sensitive),
        valid_from=row.valid_from, valid_to=row.valid_to, revoked_at=row.revoked_at,
        in_force=service.in_force(row, utcnow()),
    )  # fmt: skip


@router.get(
    "/api/v1/me/consents", response_model=list[Directive], responses=error_responses(401, 403)
)
async def my_directives(
    session: ReadSession, subject: CurrentSubject, person: ForWhom = None
) -> list[Directive]:
    """My sharing directives (or those of a child I represent, ``?for=``), newest first
    (revoked ones too)."""
    return [_directive(r) for r in await service.directives(session, subject, person)]


@router.post(
    "/api/v1/me/consents",
    status_code=201,
    response_model=Directive,
    responses=error_responses(401, 403, 422),
)
async def share(
    session: WriteSession, subject: CurrentSubject, body: DirectiveIn, person: ForWhom = None
) -> Directive:
    """Share my record (or a child's I represent, ``?for=``) with a facility of the registry
    (or every facility): the summary or all of it, with the sensitive categories I name, for a
    number of days or until I revoke it. A code not in the registry is SHR-0015."""
    row = await service.create_directive(
        session, subject, grantee=body.facility, scope=body.scope,
        sensitive=list(body.sensitive), days=body.days, personal_id=person,
    )  # fmt: skip
    return _directive(row)


@router.delete(
    "/api/v1/me/consents/{directive_id}",
    response_model=Directive,
    responses=error_responses(401, 403, 404),
)
async def revoke(
    session: WriteSession, subject: CurrentSubject, directive_id: RowId, person: ForWhom = None
) -> Directive:
    """Revoke a directive (of a child I represent: ``?for=``), with immediate effect."""
    return _directive(await service.revoke(session, subject, directive_id, person))


class PatientView(BaseModel):
    basis: str = Field(description="emergency | consent | default")
    scope: str = Field(description="summary | full")
    summary: healthbook.schemas.Summary
    visits: list[healthbook.schemas.TimelineItem]


Facility = Annotated[str | None, Query(pattern=r"^[0-9A-Z]{5}$")]
Purpose = Annotated[str, Query(max_length=40)]


async def _settle(request: Request, row: Any) -> None:
    async with database(request).session() as session:
        await service.settle_read(session, row)


@router.get(
    "/api/v1/patients/{personal_id}/record",
    response_model=PatientView,
    responses=error_responses(401, 403, 404),
)
async def patient_record(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    personal_id: PersonalId,
    facility: Facility = None,
    purpose: Purpose = "treatment",
) -> PatientView:
    """A clinician's view of a patient: what consent (or an emergency access) allows."""
    found, summary, visits, row = await service.patient_record(
        session, subject, personal_id, facility=facility, purpose=purpose,
        default=request.app.state.settings.sharing_default,
    )  # fmt: skip
    await _settle(request, row)
    return PatientView(basis=found.kind, scope=found.scope, summary=summary, visits=visits)


@router.get(
    "/api/v1/patients/{personal_id}/visits/{visit_id}",
    response_model=healthbook.schemas.Visit,
    responses=error_responses(401, 403, 404),
)
async def patient_visit(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    personal_id: PersonalId,
    visit_id: RowId,
    facility: Facility = None,
    purpose: Purpose = "treatment",
) -> healthbook.schemas.Visit:
    """One visit of a patient, when the full record is shared with the clinician."""
    _, visit, row = await service.patient_visit(
        session, subject, personal_id, visit_id, facility=facility, purpose=purpose,
        default=request.app.state.settings.sharing_default,
    )  # fmt: skip
    await _settle(request, row)
    return visit


class BreakGlassIn(BaseModel):
    reason: Literal["unconscious", "life-threatening", "urgent-treatment", "other"]
    text: str = Field(min_length=5, max_length=1000)
    facility: str | None = Field(default=None, pattern=r"^[0-9A-Z]{5}$")


class Emergency(BaseModel):
    id: int
    facility: str
    clinician: str
    reason: str
    text: str
    opened_at: datetime
    expires_at: datetime
    status: str
    review_note: str | None
    outcome: str | None = Field(
        description="The review's finding: justified | unjustified (None: not reviewed, or"
        " reviewed before findings were recorded)"
    )
    in_force: bool = Field(
        description="Whether it still opens the record: not expired, not found unjustified"
    )


def _emergency(row: EmergencyAccess) -> Emergency:
    return Emergency(
        id=row.id, facility=row.facility_code, clinician=row.clinician, reason=row.reason_code,
        text=row.reason_text, opened_at=row.opened_at, expires_at=row.expires_at,
        status=row.status, review_note=row.review_note, outcome=row.review_outcome,
        in_force=service.emergency_running(row, utcnow()),
    )  # fmt: skip


@router.post(
    "/api/v1/patients/{personal_id}/break-glass",
    status_code=201,
    response_model=Emergency,
    responses=error_responses(401, 403, 404, 422),
)
async def break_glass(
    request: Request,
    session: WriteSession,
    subject: CurrentSubject,
    personal_id: PersonalId,
    body: BreakGlassIn,
) -> Emergency:
    """Emergency access without consent: a reason, time-boxed; the citizen is told at once.
    Refused to a clinician whose access to this patient was found unjustified in the last
    ``VNEHR_EMERGENCY_BAR_DAYS`` days (SHR-0020), and at a facility not connected (SHR-0018,
    SHR-0019)."""
    row = await service.break_glass(
        session, subject, personal_id, facility=body.facility, reason_code=body.reason,
        reason_text=body.text, hours=request.app.state.settings.emergency_access_hours,
        bar_days=request.app.state.settings.emergency_bar_days,
    )  # fmt: skip
    return _emergency(row)


@router.get(
    "/api/v1/emergency-accesses",
    response_model=Page[Emergency],
    responses=error_responses(400, 401, 403, 422),
)
async def emergency_queue(
    session: ReadSession,
    subject: CurrentSubject,
    status: str | None = "open",
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[Emergency]:
    """The review queue, newest first, ``limit`` at a time (pass ``next_cursor`` back as
    ``cursor`` for the next page; absent on the last): a facility's administrators see their
    facility's, the department its province's."""
    rows, next_cursor = await service.emergency_queue(
        session, subject, status, cursor=cursor, limit=limit
    )
    return Page[Emergency](items=[_emergency(r) for r in rows], next_cursor=next_cursor)


class ReviewIn(BaseModel):
    note: str = Field(min_length=1, max_length=1000)
    outcome: Literal["justified", "unjustified"] | None = Field(
        default=None,
        description="Required: whether the access was justified. unjustified ends it at once;"
        " justified lets it run its time (SHR-0016 without it).",
    )


@router.post(
    "/api/v1/emergency-accesses/{access_id}/review",
    response_model=Emergency,
    responses=error_responses(401, 404, 422),
)
async def review(
    session: WriteSession,
    subject: CurrentSubject,
    access_id: RowId,
    body: ReviewIn,
) -> Emergency:
    """A supervisor closes the review of an emergency access with a note and a finding: found
    unjustified, the access ends at once (the clinician reads nothing more under it); found
    justified, it runs until it expires."""
    return _emergency(await service.review(session, subject, access_id, body.note, body.outcome))


class ReceptionCodeOut(BaseModel):
    code: str = Field(description="6 digits; shown once")
    expires_at: datetime


@router.post(
    "/api/v1/me/reception-codes",
    status_code=201,
    response_model=ReceptionCodeOut,
    responses=error_responses(401, 403),
)
async def new_reception_code(
    session: WriteSession, subject: CurrentSubject, person: ForWhom = None
) -> ReceptionCodeOut:
    """A one-time code to show at reception: the clinician who enters it reads my full record
    (or that of the child I represent, ``?for=``) for this visit (one day)."""
    code, expires = await service.reception_code(session, subject, person)
    return ReceptionCodeOut(code=code, expires_at=expires)


class RedeemIn(BaseModel):
    code: str = Field(pattern=r"^\d{6}$")
    facility: str | None = Field(default=None, pattern=r"^[0-9A-Z]{5}$")


@router.post(
    "/api/v1/patients/{personal_id}/reception-code",
    status_code=201,
    response_model=Directive,
    responses=error_responses(401, 403, 404, 422),
)
async def redeem_reception_code(
    session: WriteSession, subject: CurrentSubject, personal_id: PersonalId, body: RedeemIn
) -> Directive | Response:
    """The clinician enters the code the patient shows. A wrong code is answered as an error
    without undoing its record: five in a row spend the patient's code."""
    try:
        row = await service.redeem(session, subject, personal_id, body.code, body.facility)
    except errors.BadReceptionCode as exc:
        return error_response(exc)  # the session commits the wrong try's audit row
    return _directive(row)
