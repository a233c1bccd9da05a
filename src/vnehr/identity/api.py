"""HTTP routes of the identity context (``/api/v1/me``, accounts, persons, grants)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from vnehr.identity import service
from vnehr.identity.accounts_errors import UnknownPerson
from vnehr.identity.schemas import (
    Account,
    AssignId,
    AssistedEnrolment,
    Card,
    CardCreate,
    CloseRequest,
    EnrolmentResult,
    GrantCreate,
    GrantOut,
    LinkOut,
    Me,
    NewbornCreate,
    PersonOut,
    RepresentativeCreate,
    RepresentativeEnd,
    RepresentativeOut,
    Represented,
    ResidenceUpdate,
)
from vnehr.kit.auth import CurrentSubject
from vnehr.kit.http import ReadSession, WriteSession, error_responses

router = APIRouter(prefix="/api/v1", tags=["identity"])
ERRORS = error_responses(401, 403, 404, 422)
PersonalId = Annotated[str, Path(pattern=r"^\d{12}$")]
#: A row id in a path: the database's ids are 64-bit, a larger number finds nothing (422).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/me", response_model=Me, responses=ERRORS)
async def me(session: ReadSession, subject: CurrentSubject) -> Me:
    """The signed-in person, their health account, roles and whom they may act for."""
    person, account, grants, represented = await service.profile(session, subject)
    return Me(
        personal_id=subject.id,
        full_name=person.full_name,
        birth_date=person.birth_date,
        sex=person.sex,
        assurance_level=subject.assurance_level,
        account=Account.model_validate(account) if account else None,
        grants=[GrantOut.model_validate(g) for g in grants],
        representing=[
            Represented(
                person_id=p.id,
                personal_id=p.personal_id,
                full_name=p.full_name,
                birth_date=p.birth_date,
                relation=r.relation,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                provisional=p.provisional,
            )
            for r, p in represented
        ],
    )


@router.post("/me/account", response_model=Account, responses={**ERRORS, **error_responses(403)})
async def open_account(session: WriteSession, subject: CurrentSubject) -> Account:
    """Open (or reopen) my health book. Needs VNeID identity at level 2 (ID-0101 otherwise)."""
    return Account.model_validate(await service.open_account(session, subject))


@router.post("/me/account/close", response_model=Account, responses=ERRORS)
async def close_account(
    session: WriteSession, subject: CurrentSubject, body: CloseRequest
) -> Account:
    """Close my health book on request."""
    return Account.model_validate(await service.close_account(session, subject, body.reason))


@router.post("/enrolments", response_model=EnrolmentResult, status_code=201, responses=ERRORS)
async def assisted_enrolment(
    session: WriteSession, subject: CurrentSubject, body: AssistedEnrolment
) -> EnrolmentResult:
    """Open a citizen's health book at the ward office (ward officers of that ward)."""
    done = await service.assisted_open(
        session,
        subject,
        personal_id=body.personal_id,
        full_name=body.full_name,
        birth_date=body.birth_date,
        sex=body.sex,
        ward_code=body.ward_code,
    )
    return EnrolmentResult(
        person=PersonOut.model_validate(done.person), account=Account.model_validate(done.account)
    )


@router.post("/persons/{personal_id}/cards", response_model=Card, status_code=201, responses=ERRORS)
async def add_card(
    session: WriteSession, subject: CurrentSubject, personal_id: PersonalId, body: CardCreate
) -> Card:
    """Add an insurance card to a person's card history."""
    row = await service.add_card(
        session,
        subject,
        personal_id,
        card_number=body.card_number,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        registered_facility=body.registered_facility,
    )
    return Card.model_validate(row)


@router.get("/persons/{personal_id}/cards", response_model=list[Card], responses=ERRORS)
async def list_cards(
    session: WriteSession, subject: CurrentSubject, personal_id: PersonalId
) -> list[Card]:
    """A person's insurance cards, newest first (the person, or the department of the province
    they live in). A write session: reading someone else's cards is audited."""
    return [Card.model_validate(c) for c in await service.cards(session, subject, personal_id)]


@router.put("/persons/{personal_id}/residence", response_model=PersonOut, responses=ERRORS)
async def set_residence(
    session: WriteSession, subject: CurrentSubject, personal_id: PersonalId, body: ResidenceUpdate
) -> PersonOut:
    """Record where a person lives (the ward officer of that ward, or its department); this
    decides which ward office and department act as registrar for them."""
    return PersonOut.model_validate(
        await service.set_residence(session, subject, personal_id, body.ward_code)
    )


@router.post(
    "/representatives", response_model=RepresentativeOut, status_code=201, responses=ERRORS
)
async def add_representative(
    session: WriteSession, subject: CurrentSubject, body: RepresentativeCreate
) -> RepresentativeOut:
    """Record a parent or guardian acting for a person (ward officers, department)."""
    target: int | str | None = body.subject_person_id or body.subject_personal_id
    if target is None:
        raise UnknownPerson(personal_id="(none given)")
    row = await service.add_representative(
        session,
        subject,
        agent_personal_id=body.agent_personal_id,
        subject_person=target,
        relation=body.relation,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
    )
    return RepresentativeOut.model_validate(row)


@router.post(
    "/representatives/{link_id}/end",
    response_model=LinkOut,
    responses={**ERRORS, **error_responses(409)},
)
async def end_representative(
    session: WriteSession, subject: CurrentSubject, link_id: RowId, body: RepresentativeEnd
) -> LinkOut:
    """End a parent's or guardian's representation from ``ends_on`` (today by default, never
    before), with the reason: the ward office or department that may record the link (an
    adult's guardian: the department only), never its agent or the person represented. A
    link not begun by then is withdrawn. The person, those who still represent them and the
    former agent are told. Answers the link as it is now; a link ending on that day already
    is answered unchanged, one ending before it is refused (ID-0122)."""
    row = await service.end_representative(
        session, subject, link_id, ends_on=body.ends_on, reason=body.reason
    )
    [link] = [
        x for x in await service.representation_links(session, row.subject_id) if x.id == row.id
    ]
    return LinkOut.model_validate(link)


@router.get(
    "/persons/{personal_id}/representatives", response_model=list[LinkOut], responses=ERRORS
)
async def person_representatives(
    session: WriteSession, subject: CurrentSubject, personal_id: PersonalId
) -> list[LinkOut]:
    """Every representation link of a person (in force, to come, ended), newest first, for a
    registrar whose area they live in (their ward's officer, their province's department). A
    write session: the look-up is in the person's access log."""
    return [
        LinkOut.model_validate(x) for x in await service.person_links(session, subject, personal_id)
    ]


@router.get("/me/representatives", response_model=list[LinkOut], responses=ERRORS)
async def my_representatives(
    session: ReadSession,
    subject: CurrentSubject,
    personal_id: Annotated[
        str | None,
        Query(
            pattern=r"^\d{12}$",
            description="Personal ID of a child or ward you represent (default: yourself)",
        ),
    ] = None,
) -> list[LinkOut]:
    """Who acts, acted or will act for me (or for a person I represent today), newest first,
    each agent by name: ``agent_personal_id`` is given only on the caller's own link (to mark
    it "you"), never another's (D248). Needs VNeID identity at level 2, as the health book
    does (ID-0101)."""
    return [
        LinkOut.model_validate(x).model_copy(
            update={"agent_personal_id": subject.id if x.agent_personal_id == subject.id else None}
        )
        for x in await service.my_links(session, subject, personal_id)
    ]


@router.post("/persons/newborns", response_model=PersonOut, status_code=201, responses=ERRORS)
async def add_newborn(
    session: WriteSession, subject: CurrentSubject, body: NewbornCreate
) -> PersonOut:
    """A provisional identity for a newborn without a personal ID, linked to the mother."""
    child = await service.add_newborn(
        session,
        subject,
        mother_personal_id=body.mother_personal_id,
        birth_date=body.birth_date,
        sex=body.sex,
        full_name=body.full_name,
    )
    return PersonOut.model_validate(child)


@router.post(
    "/persons/{person_id}/personal-id",
    response_model=PersonOut,
    responses={**ERRORS, **error_responses(409)},
)
async def assign_personal_id(
    session: WriteSession,
    subject: CurrentSubject,
    person_id: RowId,
    body: AssignId,
) -> PersonOut:
    """The newborn's personal ID was issued: attach it, merging with an existing person."""
    return PersonOut.model_validate(
        await service.assign_personal_id(session, subject, person_id, body.personal_id)
    )


@router.post("/grants", response_model=GrantOut, status_code=201, responses=ERRORS)
async def add_grant(session: WriteSession, subject: CurrentSubject, body: GrantCreate) -> GrantOut:
    """Give a person a role (department, ward or facility staff)."""
    grant = await service.add_grant(
        session,
        subject,
        personal_id=body.personal_id,
        role=body.role,
        facility_code=body.facility_code,
        province_code=body.province_code,
        ward_code=body.ward_code,
    )
    return GrantOut.model_validate(grant)


@router.get("/grants", response_model=list[GrantOut], responses=ERRORS)
async def list_grants(
    session: WriteSession,
    subject: CurrentSubject,
    personal_id: Annotated[str, Query(pattern=r"^\d{12}$")],
) -> list[GrantOut]:
    """A person's current roles: all of them to the person themself; to the department, those
    it administers (its province's). A write session: reading someone else's roles is
    audited."""
    return [
        GrantOut.model_validate(g) for g in await service.grants_of(session, subject, personal_id)
    ]


@router.post("/grants/{grant_id}/revoke", response_model=GrantOut, responses=ERRORS)
async def revoke_grant(session: WriteSession, subject: CurrentSubject, grant_id: RowId) -> GrantOut:
    """End a role."""
    return GrantOut.model_validate(await service.revoke_grant(session, subject, grant_id))
