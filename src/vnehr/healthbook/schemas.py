"""What the health book shows: one visit in full, the timeline's rows, the summary."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, Field, computed_field


def with_strength(name: str, strength: str | None) -> str:
    """A drug's name with its strength (HAM_LUONG), unless the name already ends with it:
    facilities often write TEN_THUOC as "Omeprazol 20mg", and "Omeprazol 20mg 20mg" reads
    as a different dose."""
    if not strength:
        return name
    squeezed = name.replace(" ", "").casefold()
    if squeezed.endswith(strength.replace(" ", "").casefold()):
        return name
    return f"{name} {strength}"


class Coded(BaseModel):
    """A code of a national list with its titles (titles absent when the code is unknown)."""

    code: str
    vi: str | None = None
    en: str | None = None


class FacilityRef(BaseModel):
    code: str
    name: str | None = None


class Diagnosis(Coded):
    main: bool = False
    stated: str | None = Field(
        default=None,
        description="The facility's own words for this diagnosis: its part of CHAN_DOAN_RV, "
        "when the ';'-separated parts match the codes one to one (the book shows them where "
        "the catalogue has no Vietnamese title)",
    )


class Drug(BaseModel):
    line: int | None = Field(description="STT of the XML2 row")
    code: str | None = None
    name: str
    strength: str | None = None
    unit: str | None = None
    route: str | None = None
    dose: str | None = Field(default=None, description="LIEU_DUNG, as the doctor wrote it")
    instructions: str | None = Field(default=None, description="CACH_DUNG")
    quantity: Decimal | None = None
    unit_price: Decimal | None = Field(default=None, exclude=True, description="DON_GIA")
    amount: Decimal | None = Field(default=None, exclude=True, description="THANH_TIEN_BV")
    ordered_at: datetime | None = None
    prescriber: str | None = None


class Service(BaseModel):
    line: int | None = None
    code: str | None = None
    name: str
    unit: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = Field(default=None, exclude=True, description="DON_GIA_BV")
    amount: Decimal | None = Field(default=None, exclude=True, description="THANH_TIEN_BV")
    ordered_at: datetime | None = None
    performed_at: datetime | None = None
    result_at: datetime | None = None
    supply: bool = Field(default=False, description="A medical supply (MA_VAT_TU), not a service")


class Result(BaseModel):
    line: int | None = None
    service_code: str | None = None
    code: str | None = Field(default=None, description="MA_CHI_SO")
    name: str
    value: str | None = None
    unit: str | None = None
    reference_range: str | None = Field(
        default=None, description="Shown when the sender gave one (the XML tables carry none)"
    )
    description: str | None = None
    conclusion: str | None = None
    at: datetime | None = None


class Note(BaseModel):
    at: datetime | None = None
    text: str
    stage: str | None = None
    consultation: str | None = None
    surgery: str | None = None
    by: str | None = None


class RecordSummary(BaseModel):
    """The record summary of XML8 (tóm tắt hồ sơ bệnh án)."""

    admission_diagnosis: str | None = None
    discharge_diagnosis: str | None = None
    course: str | None = Field(default=None, description="QT_BENHLY")
    key_results: str | None = Field(default=None, description="TOMTAT_KQ")
    treatment: str | None = Field(default=None, description="PP_DIEUTRI")
    notes: str | None = Field(default=None, description="GHI_CHU")
    signed_on: datetime | None = None


class Costs(BaseModel):
    """What the visit cost and who paid, in đồng, as the facility's bill (XML1) gives it.

    Shown to the citizen on the visit's page and PDF only: the JSON API keeps its shape (the
    fields holding money are left out of its output), and a clinician's view leaves them out.
    """

    total: Decimal = Field(description="T_TONGCHI_BV")
    insurance: Decimal | None = Field(default=None, description="T_BHTT")
    patient: Decimal | None = Field(default=None, description="T_BNTT + T_BNCCT")
    other: Decimal | None = Field(default=None, description="T_NGUONKHAC")


class PaperRef(BaseModel):
    """A paper that came with the visit (its full handling is the papers issue's)."""

    kind: str  # discharge | birth | sick_leave | referral | re_exam | leave | assessment
    table: str
    number: str | None = None
    issued_on: str | None = None


class TimelineItem(BaseModel):
    id: int
    facility: FacilityRef
    care_type: Coded | None
    started_at: datetime | None
    ended_at: datetime | None
    main_diagnosis: Coded | None
    outcome: Coded | None
    insured: bool
    version: int


class Visit(TimelineItem):
    person_name: str | None = None
    reason: str | None = None
    diagnosis_text: str | None = None
    diagnoses: list[Diagnosis] = []
    traditional_diagnoses: list[str] = []
    discharge_type: Coded | None = None
    blood_group: str | None = None
    weight_kg: Decimal | None = None
    re_exam_on: list[date] = []
    days_of_treatment: int | None = None
    drugs: list[Drug] = []
    services: list[Service] = []
    results: list[Result] = []
    notes: list[Note] = []
    summary: RecordSummary | None = None
    papers: list[PaperRef] = []
    received_at: datetime | None = None
    costs: Costs | None = Field(default=None, exclude=True)


class Measurement(BaseModel):
    kind: str  # weight | height
    value: Decimal
    unit: str
    at: datetime | None
    visit_id: int


class Condition(Coded):
    stated: str | None = Field(default=None, description="As ``Diagnosis.stated``")
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    visits: int = 1


class CurrentMedicine(BaseModel):
    name: str
    strength: str | None = None
    dose: str | None = None
    prescribed_at: datetime | None = None
    visit_id: int
    facility: FacilityRef

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """The name with its strength, written once."""
        return with_strength(self.name, self.strength)


class Allergy(BaseModel):
    """An allergy or intolerance a facility sent as FHIR AllergyIntolerance (the national
    tables have no allergy field, D29)."""

    substance: str = Field(description="AllergyIntolerance.code, as the facility wrote it")
    category: str | None = Field(default=None, description="food | medication | environment...")
    criticality: str | None = Field(default=None, description="low | high | unable-to-assess")
    reaction: str | None = Field(default=None, description="The reactions' manifestations")
    recorded_at: datetime | None = None
    facility: FacilityRef
    visit_id: int | None = Field(default=None, description="The visit it was recorded in")


class TrendPoint(BaseModel):
    at: datetime | None
    value: float
    visit_id: int


class LabTrend(BaseModel):
    """One laboratory index over the visits (numeric results only), newest first."""

    code: str | None
    name: str
    unit: str | None
    points: list[TrendPoint]
    direction: str | None = Field(
        default=None, description="up | down | steady (the newest against the one before)"
    )


class RiskFactor(BaseModel):
    code: str = Field(description="hypertension, diabetes, dyslipidaemia, obesity, tobacco...")
    vi: str
    en: str
    basis: str = Field(description="What it was read from, e.g. an ICD-10 code")


class Summary(BaseModel):
    """The citizen's one-page summary, built from every visit in the book."""

    person_name: str
    personal_id: str | None
    allergies: list[Allergy] = Field(
        default_factory=list,
        description="Recorded allergies, newest first. The national XML tables have no allergy "
        "field, so this lists what facilities send as FHIR AllergyIntolerance (current ones).",
    )
    chronic_conditions: list[Condition]
    current_medicines: list[CurrentMedicine]
    blood_group: str | None
    measurements: list[Measurement]
    last_visits: list[TimelineItem]
    lab_trends: list[LabTrend] = Field(default_factory=list)
    risk_factors: list[RiskFactor] = Field(default_factory=list)
