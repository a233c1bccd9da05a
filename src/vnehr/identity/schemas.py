"""What the identity context takes and shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from vnehr.kit.clock import EARLIEST_DAY, LATEST_DAY

PersonalIdField = Field(pattern=r"^\d{12}$", examples=["001085012345"])

#: A day a registry form or call takes (as the intake's, D145, D252): 01/01/0001 or 31/12/9999
#: is a typing slip, and every link or card recorded tells the citizen of its dates.
Day = Annotated[date, Field(ge=EARLIEST_DAY, le=LATEST_DAY)]


class Account(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: Literal["open", "closed"]
    channel: Literal["vneid", "assisted"]
    assisted_ward_code: str | None
    opened_at: datetime
    closed_at: datetime | None


class GrantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    personal_id: str
    role: str
    facility_code: str | None
    province_code: str | None
    ward_code: str | None
    granted_by: str
    granted_at: datetime


class Represented(BaseModel):
    person_id: int
    personal_id: str | None
    full_name: str
    birth_date: date | None
    relation: str
    valid_from: date
    valid_to: date | None
    provisional: bool


class Me(BaseModel):
    """The signed-in person: identity, health account, roles and whom they act for."""

    personal_id: str
    full_name: str
    birth_date: date | None
    sex: str | None
    assurance_level: int | None
    account: Account | None
    grants: list[GrantOut]
    representing: list[Represented]


class CloseRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class AssistedEnrolment(BaseModel):
    """A citizen enrolled at the ward office by a ward officer (identity checked on the chip ID)."""

    personal_id: str = PersonalIdField
    full_name: str = Field(min_length=2, max_length=200)
    birth_date: Day
    sex: Literal["male", "female"]
    ward_code: str = Field(pattern=r"^\d{5}$")


class PersonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    personal_id: str | None
    full_name: str
    birth_date: date | None
    sex: str | None
    provisional: bool
    mother_id: int | None
    merged_into_id: int | None
    residence_ward_code: str | None = None


class ResidenceUpdate(BaseModel):
    ward_code: str = Field(pattern=r"^\d{5}$", examples=["00070"])


class EnrolmentResult(BaseModel):
    person: PersonOut
    account: Account


class CardCreate(BaseModel):
    card_number: str = Field(min_length=1, max_length=20, examples=["DN4010123456789"])
    valid_from: Day | None = None
    valid_to: Day | None = None
    registered_facility: str | None = Field(default=None, pattern=r"^\d{5}$")


class Card(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    card_number: str
    social_insurance_number: str
    valid_from: date | None
    valid_to: date | None
    registered_facility: str | None
    recorded_at: datetime


class RepresentativeCreate(BaseModel):
    agent_personal_id: str = PersonalIdField
    subject_personal_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    subject_person_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="For a provisional newborn"
    )
    relation: Literal["parent", "guardian"]
    valid_from: Day
    valid_to: Day | None = None


class RepresentativeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agent_id: int
    subject_id: int
    relation: str
    valid_from: date
    valid_to: date | None


class RepresentativeEnd(BaseModel):
    """How a representation link ends (``POST /representatives/{link_id}/end``)."""

    ends_on: date | None = Field(
        default=None,
        description="The first day the representative no longer acts: today (the default) or "
        "later, never before today. A link not begun by then is withdrawn.",
    )
    reason: str = Field(
        max_length=2000,
        description="Why it ends (a court's decision, a wrong record): 1 to 500 characters, "
        "spaces around not counted (ID-0123 otherwise).",
        examples=["Quyết định số 12/2026/QĐ-TA của Tòa án nhân dân quận Hoàn Kiếm"],
    )


class LinkOut(BaseModel):
    """A representation link and what it is today."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    agent_name: str
    agent_personal_id: str | None = Field(
        description="To a registrar, the agent's personal ID; to the person and those who"
        " represent them (/me/representatives), only on the caller's own link, else None"
    )
    relation: Literal["parent", "guardian"]
    valid_from: date
    valid_to: date | None = Field(description="The last day in force, inclusive; None: open")
    recorded_at: datetime
    state: Literal["in_force", "not_yet", "ended", "of_age", "withdrawn"] = Field(
        description="in_force: represents today; not_yet: begins later; ended: its period is "
        "over; of_age: a parent's (or a guardianship begun in childhood) that stopped at the "
        "person's majority; withdrawn: ended before it began"
    )
    ended_at: datetime | None = Field(description="When a registrar ended it")
    end_reason: str | None


class NewbornCreate(BaseModel):
    mother_personal_id: str = PersonalIdField
    birth_date: date  # (the service says which day: in the future, before the mother, ID-0111/2)
    sex: Literal["male", "female"]
    full_name: str | None = Field(default=None, max_length=200)


class AssignId(BaseModel):
    personal_id: str = PersonalIdField


class GrantCreate(BaseModel):
    personal_id: str = PersonalIdField
    role: Literal["department_admin", "ward_officer", "facility_admin", "clinician"]
    facility_code: str | None = Field(default=None, pattern=r"^\d{5}$")
    province_code: str | None = Field(default=None, pattern=r"^\d{2}$")
    ward_code: str | None = Field(default=None, pattern=r"^\d{5}$")
