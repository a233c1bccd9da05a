"""What the facilities context takes and shows."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Kind(StrEnum):
    hospital = "hospital"  # bệnh viện
    medical_centre = "medical_centre"  # trung tâm y tế
    polyclinic = "polyclinic"  # phòng khám đa khoa
    specialty_clinic = "specialty_clinic"  # phòng khám chuyên khoa
    health_station = "health_station"  # trạm y tế xã
    maternity_home = "maternity_home"  # nhà hộ sinh
    other = "other"


class Level(StrEnum):
    """Technical levels of the Law on Medical Examination and Treatment 2023."""

    initial = "initial"  # cấp khám bệnh, chữa bệnh ban đầu
    basic = "basic"  # cấp cơ bản
    specialised = "specialised"  # cấp chuyên sâu


class Ownership(StrEnum):
    public = "public"
    private = "private"


class State(StrEnum):
    registered = "registered"
    trained = "trained"
    certificate_registered = "certificate_registered"
    test_passed = "test_passed"
    connected = "connected"
    suspended = "suspended"


class FacilityCreate(BaseModel):
    """A facility to put in the registry. Leave ``code`` empty to issue a new one; give it to
    register a code the facility already has (e.g. from the BHXH portal)."""

    name: str = Field(min_length=2, max_length=300, examples=["Bệnh viện Đa khoa Xanh Pôn"])
    kind: Kind
    level: Level
    ownership: Ownership
    province_code: str = Field(pattern=r"^\d{2}$", examples=["01"])
    ward_code: str | None = Field(default=None, pattern=r"^\d{5}$", examples=["00070"])
    address: str | None = Field(default=None, max_length=500)
    code: str | None = Field(default=None, max_length=10, examples=["01013"])


class Facility(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    kind: Kind
    level: Level
    ownership: Ownership
    province_code: str
    ward_code: str | None
    address: str | None
    status: State
    issued: bool = Field(description="True: code issued here; false: an existing code registered")
    created_at: datetime
    created_by: str


class Receiver(BaseModel):
    """A facility that receives records (connected to the exchange), as a citizen finds it to
    share with: its public facts only."""

    code: str = Field(description="Facility code (mã cơ sở KCB), what a share names")
    name: str
    kind: Kind
    address: str | None
    ward_code: str | None
    ward: str | None = Field(description="The ward's name today (catalogue ward)")
    province_code: str
    province: str | None = Field(description="The province's name today")


class ReceiverSearch(BaseModel):
    items: list[Receiver] = Field(description="By name; every word of the search matches")
    more: bool = Field(description="More facilities match than are listed: add words")


class Transition(BaseModel):
    to_state: State
    reason: str | None = Field(default=None, max_length=500)
    override: bool = Field(
        default=False,
        description="move although the state's fact is missing (no usable certificate, no "
        "test file passed): needs a reason; recorded in the history and the audit log",
    )


class OnboardingEvent(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_state: State | None
    to_state: State
    actor: str
    reason: str | None
    at: datetime


class PractitionerCreate(BaseModel):
    practitioner_id: str = Field(
        min_length=3,
        max_length=60,
        description="National practitioner id or practising-certificate number (CCHN)",
    )
    full_name: str = Field(min_length=2, max_length=200)
    personal_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    title: str | None = Field(default=None, max_length=100, examples=["Bác sĩ"])
    role: str = Field(default="doctor", max_length=60)
    valid_from: date | None = None


class Practitioner(BaseModel):
    practitioner_id: str
    full_name: str
    personal_id: str | None
    title: str | None
    role: str
    facility_code: str
    valid_from: date
    valid_to: date | None


class ClientCreate(BaseModel):
    name: str = Field(min_length=2, max_length=200, examples=["HIS bệnh viện"])
    jwks: dict[str, Any] = Field(description="Public keys the system signs assertions with")
    scopes: list[str] = Field(min_length=1, examples=[["submission.write", "checkin.write"]])


class Client(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str
    facility_code: str
    name: str
    scopes: list[str]
    status: str
    created_at: datetime
    token_endpoint: str = Field(description="Audience to put in client assertions")


class CertificateCreate(BaseModel):
    pem: str = Field(min_length=100, max_length=20000, description="X.509 certificate, PEM")


class Certificate(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    facility_code: str
    fingerprint_sha256: str
    subject: str
    serial_number: str
    not_before: datetime
    not_after: datetime
    status: str
    registered_at: datetime


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int
    scope: str
