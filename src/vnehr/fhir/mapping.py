"""The one mapping from the national XML tables to HL7 FHIR R4 (4.0.1) resources.

``docs/fhir-mapping.md`` is the same table in prose; keep the two together. Resources are plain
dicts (serialised with orjson): building pydantic models for every read would cost more than the
rest of the request.

Ids are derived, so every resource of a visit is addressable without a second store:
``Encounter/{visit}`` (the health book's visit id, stable across corrections), children
``{Type}/{visit}-{kind}{n}``, ``Patient/{person}``, ``Organization/{facility code}``,
``Practitioner/{practitioner id}``, ``Location/{facility}-{department}``,
``Provenance/{visit version}``. A child's ``versionId`` is its visit's version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from vnehr import audit, healthbook
from vnehr.kit import i18n
from vnehr.kit.clock import VIETNAM, vietnam_moment

Resource = dict[str, Any]
Rows = Mapping[str, list[dict[str, str]]]

# ------------------------------------------------------------------ systems (D30)

BASE = "https://fhir.vnehr.vn"
PERSONAL_ID = f"{BASE}/sid/so-dinh-danh-ca-nhan"  # the 12-digit personal ID
INSURANCE_CARD = f"{BASE}/sid/ma-the-bhyt"  # the health-insurance card number
FACILITY = f"{BASE}/sid/ma-cskcb"  # the 5-character facility code
PRACTITIONER = f"{BASE}/sid/ma-bac-si"  # practising-certificate number (MA_BAC_SI)
VISIT_KEY = f"{BASE}/sid/ma-lk"  # MA_LK; its value is "{facility code}/{MA_LK}"
SUBMISSION = f"{BASE}/sid/submission"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"


def code_system(list_name: str) -> str:
    """The CodeSystem URL of a national list (``care-type`` -> .../CodeSystem/care-type)."""
    return f"{BASE}/CodeSystem/{list_name}"


DRUG = code_system("ma-thuoc")
SERVICE = code_system("ma-dich-vu")
SUPPLY = code_system("ma-vat-tu")
LAB_INDEX = code_system("ma-chi-so")
ROUTE = code_system("duong-dung")
DEPARTMENT = code_system("ma-khoa")

#: DON_VI_DO as Vietnamese laboratories write it -> its UCUM code (D30). "G/L" and "T/L" are
#: giga and tera cells per litre (blood counts), not grams: UCUM writes them 10*9/L, 10*12/L.
#: A unit not listed keeps its text only (no guessed code).
UCUM_UNITS: Mapping[str, str] = {
    "g/L": "g/L", "g/l": "g/L", "g/dL": "g/dL", "g/dl": "g/dL",
    "mg/L": "mg/L", "mg/l": "mg/L", "mg/dL": "mg/dL", "mg/dl": "mg/dL",
    "mmol/L": "mmol/L", "mmol/l": "mmol/L", "nmol/L": "nmol/L", "pmol/L": "pmol/L",
    "µmol/L": "umol/L", "μmol/L": "umol/L", "umol/L": "umol/L", "µmol/l": "umol/L",
    "U/L": "U/L", "U/l": "U/L", "UI/L": "[IU]/L", "IU/L": "[IU]/L", "mIU/L": "m[IU]/L",
    "mEq/L": "meq/L", "ng/mL": "ng/mL", "ng/ml": "ng/mL", "pg/mL": "pg/mL", "pg/ml": "pg/mL",
    "%": "%", "G/L": "10*9/L", "10^9/L": "10*9/L", "T/L": "10*12/L", "10^12/L": "10*12/L",
    "fL": "fL", "fl": "fL", "pg": "pg", "L/L": "L/L", "mm/h": "mm/h", "s": "s", "mmHg": "mm[Hg]",
    "Leu/µL": "{Leu}/uL", "Leu/μL": "{Leu}/uL", "kg": "kg", "cm": "cm",
}  # fmt: skip
#: How a reference range travels in XML4's reserve field DU_PHONG (D29), ``healthbook``'s.
RANGE_PREFIX = healthbook.RANGE_PREFIX


def quantity(value: int | float, unit: str | None) -> dict[str, Any]:
    """A valueQuantity: the unit as written, with its UCUM code when it is a known one."""
    found: dict[str, Any] = {"value": value}
    if unit:
        found["unit"] = unit
        code = UCUM_UNITS.get(unit.replace(" ", ""))
        if code is not None:
            found["system"] = UCUM
            found["code"] = code
    return found


_RANGE = re.compile(r"^\s*(-?[0-9]+(?:[.,][0-9]+)?)\s*[-–—]\s*(-?[0-9]+(?:[.,][0-9]+)?)\s*$")


def _reference_range(text: str, unit: str | None) -> Resource:
    """An Observation.referenceRange: the text as given, low and high when it is "a - b"."""
    found: Resource = {"text": text}
    bounds = _RANGE.match(text)
    if bounds is not None:
        low, high = (_decimal(b.replace(",", ".")) for b in bounds.groups())
        if low is not None and high is not None and low <= high:
            found["low"] = quantity(_number(low), unit)
            found["high"] = quantity(_number(high), unit)
    return found


#: MA_LOAI_KCB -> Encounter.class (v3 ActCode).
ENCOUNTER_CLASS = {
    "01": "AMB", "02": "AMB", "03": "IMP", "04": "SS", "05": "AMB", "06": "OBSENC",
    "07": "AMB", "08": "AMB", "09": "SS",
}  # fmt: skip
CLASS_DISPLAY = {
    "AMB": "ambulatory", "IMP": "inpatient encounter", "SS": "short stay",
    "OBSENC": "observation encounter", "VR": "virtual", "HH": "home health",
}  # fmt: skip

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def fhir_id(value: str | None) -> str | None:
    """``value`` if it is a valid FHIR logical id, else None."""
    text = (value or "").strip()
    return text if _ID.match(text) else None


def instant(value: datetime | None) -> str | None:
    """A FHIR dateTime in Vietnam time with its offset (what people read)."""
    return value.astimezone(VIETNAM).isoformat(timespec="seconds") if value else None


def _text(row: Mapping[str, str], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _moment(row: Mapping[str, str], name: str) -> str | None:
    return instant(vietnam_moment(row.get(name)))


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal((value or "").strip()) if (value or "").strip() else None
    except InvalidOperation:
        return None


def _number(value: Decimal) -> int | float:
    """A JSON number: integers stay integers; others become the nearest float, which orjson
    writes shortest-exact (so "7.2" stays 7.2; trailing zeros are not kept)."""
    if "." not in str(value) and value == value.to_integral_value():
        return int(value)
    return float(value)


def _coding(system: str, code: str | None, display: str | None = None) -> dict[str, str] | None:
    if not code:
        return None
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(
    system: str, code: str | None, display: str | None = None, text: str | None = None
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    coding = _coding(system, code, display)
    if coding:
        concept["coding"] = [coding]
    if text or display:
        concept["text"] = text or display
    return concept


def _meta(version: int, updated: datetime | None) -> dict[str, str]:
    meta = {"versionId": str(version)}
    if updated is not None:
        meta["lastUpdated"] = updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return meta


def ref(resource_type: str, resource_id: str | int, display: str | None = None) -> dict[str, str]:
    reference = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        reference["display"] = display
    return reference


def _practitioner_ref(code: str | None) -> dict[str, Any] | None:
    """A practitioner by MA_BAC_SI (the first of a ``;`` list)."""
    first = (code or "").split(";")[0].strip()
    if not first:
        return None
    pid = fhir_id(first)
    if pid is None:
        return {"identifier": {"system": PRACTITIONER, "value": first}}
    return ref("Practitioner", pid)


# ------------------------------------------------------------------ one visit


@dataclass(frozen=True, slots=True)
class VisitSource:
    """One stored version of a visit, as the mapping needs it."""

    visit_id: int  # the timeline entry id: Encounter id
    version: int
    version_id: int  # the visit_version row: Provenance id
    facility_code: str
    facility_name: str | None
    visit_key: str
    person_id: int | None
    tables: Rows
    received_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    submission_id: str
    first_version: bool


def condition_codes(
    xml1: Mapping[str, str], titles: healthbook.Titles, day: date
) -> list[Resource]:
    """The ``code`` of each Condition of a visit with this XML1 row, in order (the main
    diagnosis first, then MA_BENH_KT), its titles those in force on ``day``."""
    return [
        _concept(ICD10, diagnosis.code, diagnosis.vi or diagnosis.en)
        for diagnosis in healthbook.diagnoses(xml1, titles, day)
    ]


def body_weight(xml1: Mapping[str, str]) -> Decimal | None:
    """The weight (kg) of a visit's body-weight Observation (XML1 CAN_NANG); None without one
    (none written, or not above 0)."""
    weight = _decimal(xml1.get("CAN_NANG"))
    return weight if weight is not None and weight > 0 else None


def visit_resources(src: VisitSource, titles: healthbook.Titles) -> list[Resource]:
    """Every resource of one visit version: Encounter first, then its children, Provenance last."""
    xml1 = (src.tables.get("XML1") or [{}])[0]
    vid = src.visit_id
    meta = _meta(src.version, src.received_at)
    day = (src.ended_at or src.received_at).astimezone(VIETNAM).date()
    subject = ref("Patient", src.person_id) if src.person_id is not None else None
    encounter_ref = ref("Encounter", vid)
    out: list[Resource] = []

    def child(resource_type: str, suffix: str, body: Resource) -> Resource:
        resource: Resource = {"resourceType": resource_type, "id": f"{vid}-{suffix}", "meta": meta}
        if subject is not None and resource_type != "DocumentReference":
            resource["subject"] = subject
        resource.update(body)
        out.append(resource)
        return resource

    # Conditions: main diagnosis first (rank 1), then MA_BENH_KT.
    diagnosis_refs = []
    for index, code in enumerate(condition_codes(xml1, titles, day), start=1):
        child(
            "Condition",
            f"c{index}",
            {
                "clinicalStatus": None,
                "verificationStatus": {
                    "coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]
                },
                "category": [
                    {"coding": [{"system": CONDITION_CATEGORY, "code": "encounter-diagnosis"}]}
                ],
                "code": code,
                "encounter": encounter_ref,
                "recordedDate": instant(src.ended_at),
            },
        )
        diagnosis_refs.append(
            {
                "condition": ref("Condition", f"{vid}-c{index}"),
                "use": {"coding": [{"system": DIAGNOSIS_ROLE, "code": "DD"}]},
                "rank": index,
            }
        )
    for resource in out:
        resource.pop("clinicalStatus", None)

    # Body weight from XML1 CAN_NANG (vital signs).
    weight = body_weight(xml1)
    if weight is not None:
        child(
            "Observation",
            "w",
            {
                "status": "final",
                "category": [
                    {"coding": [{"system": OBS_CATEGORY, "code": "vital-signs"}]}
                ],
                "code": _concept(LOINC, "29463-7", "Body weight", "Cân nặng"),
                "encounter": encounter_ref,
                "effectiveDateTime": instant(src.started_at or src.ended_at),
                "valueQuantity": {
                    "value": _number(weight), "unit": "kg", "system": UCUM, "code": "kg",
                },
            },
        )  # fmt: skip

    # Results (XML4): one Observation per row; one DiagnosticReport per service.
    reports: dict[str, list[tuple[str, Mapping[str, str]]]] = {}
    for index, row in enumerate(src.tables.get("XML4") or [], start=1):
        index_code, service_code = _text(row, "MA_CHI_SO"), _text(row, "MA_DICH_VU")
        value_text = _text(row, "GIA_TRI")
        value = _decimal(value_text)
        body: Resource = {
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": OBS_CATEGORY,
                            "code": "laboratory" if index_code else "imaging",
                        }
                    ]
                }
            ],
            "code": _concept(
                LAB_INDEX if index_code else SERVICE,
                index_code or service_code,
                None,
                _text(row, "TEN_CHI_SO"),
            ),
            "encounter": encounter_ref,
            "effectiveDateTime": _moment(row, "NGAY_KQ"),
        }
        if value is not None and value_text is not None:
            body["valueQuantity"] = quantity(_number(value), _text(row, "DON_VI_DO"))
        elif value_text:
            body["valueString"] = value_text
        range_text = healthbook.reference_range(row)
        if range_text is not None:
            body["referenceRange"] = [_reference_range(range_text, _text(row, "DON_VI_DO"))]
        notes = [t for t in (_text(row, "MO_TA"), _text(row, "KET_LUAN")) if t]
        if notes:
            body["note"] = [{"text": t} for t in notes]
        performer = _practitioner_ref(row.get("MA_BS_DOC_KQ"))
        if performer:
            body["performer"] = [performer]
        child("Observation", f"o{index}", body)
        reports.setdefault(service_code or "-", []).append((f"{vid}-o{index}", row))
    for index, (service_code, members) in enumerate(reports.items(), start=1):
        conclusions = [c for _, r in members if (c := _text(r, "KET_LUAN"))]
        single = _text(members[0][1], "TEN_CHI_SO") if len(members) == 1 else None
        code = _concept(SERVICE, None if service_code == "-" else service_code, None, single)
        body = {
            "status": "final",
            "code": code or {"text": "Kết quả cận lâm sàng"},
            "encounter": encounter_ref,
            "effectiveDateTime": _moment(members[0][1], "NGAY_KQ"),
            "result": [ref("Observation", oid) for oid, _ in members],
        }
        if conclusions:
            body["conclusion"] = "; ".join(conclusions)
        child("DiagnosticReport", f"r{index}", body)

    # Drugs (XML2): MedicationRequest (D31).
    for index, row in enumerate(src.tables.get("XML2") or [], start=1):
        name = _text(row, "TEN_THUOC") or _text(row, "MA_THUOC") or "?"
        strength = _text(row, "HAM_LUONG")
        dosage: Resource = {}
        if _text(row, "LIEU_DUNG"):
            dosage["text"] = _text(row, "LIEU_DUNG")
        if _text(row, "CACH_DUNG"):
            dosage["patientInstruction"] = _text(row, "CACH_DUNG")
        if _text(row, "DUONG_DUNG"):
            dosage["route"] = _concept(ROUTE, _text(row, "DUONG_DUNG"))
        body = {
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": _concept(
                DRUG, _text(row, "MA_THUOC"), None, healthbook.schemas.with_strength(name, strength)
            ),
            "encounter": encounter_ref,
            "authoredOn": _moment(row, "NGAY_YL"),
        }
        if dosage:
            body["dosageInstruction"] = [dosage]
        count = _decimal(row.get("SO_LUONG"))
        if count is not None:
            amount: dict[str, Any] = {"value": _number(count)}
            if _text(row, "DON_VI_TINH"):
                amount["unit"] = _text(row, "DON_VI_TINH")
            body["dispenseRequest"] = {"quantity": amount}
        requester = _practitioner_ref(row.get("MA_BAC_SI"))
        if requester:
            body["requester"] = requester
        child("MedicationRequest", f"m{index}", body)

    # Services (XML3 rows with MA_DICH_VU; supplies are not procedures).
    for index, row in enumerate(src.tables.get("XML3") or [], start=1):
        if not _text(row, "MA_DICH_VU"):
            continue
        body = {
            "status": "completed",
            "code": _concept(SERVICE, _text(row, "MA_DICH_VU"), None, _text(row, "TEN_DICH_VU")),
            "encounter": encounter_ref,
            "performedDateTime": _moment(row, "NGAY_TH_YL") or _moment(row, "NGAY_YL"),
        }
        performer = _practitioner_ref(row.get("MA_BAC_SI") or row.get("NGUOI_THUC_HIEN"))
        if performer:
            body["performer"] = [{"actor": performer}]
        child("Procedure", f"p{index}", body)

    # The visit's document: the record summary (XML8) and the PDF of the health book.
    xml8 = next(iter(src.tables.get("XML8") or []), None)
    document: Resource = {
        "status": "current",
        "type": _concept(LOINC, "34133-9", "Summary of episode note", "Tóm tắt lượt khám"),
        "subject": subject,
        "date": instant(src.received_at),
        "author": [ref("Organization", src.facility_code, src.facility_name)],
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "url": f"/api/v1/me/visits/{vid}.pdf",
                    "title": "Sổ sức khỏe điện tử — lượt khám",
                    "language": "vi",
                }
            }
        ],
        "context": {"encounter": [encounter_ref]},
    }
    if subject is None:
        document.pop("subject")
    if xml8 is not None:
        parts = [_text(xml8, f) for f in ("QT_BENHLY", "TOMTAT_KQ", "PP_DIEUTRI", "GHI_CHU")]
        document["description"] = " | ".join(p for p in parts if p)[:2000] or None
        if document["description"] is None:
            document.pop("description")
    child("DocumentReference", "d", document)

    # The Encounter itself, first in the list.
    care_type = _text(xml1, "MA_LOAI_KCB")
    klass = ENCOUNTER_CLASS.get(care_type or "", "VR" if (care_type or "") >= "10" else "AMB")
    care = healthbook.coded(titles, "care-type", care_type, day)
    encounter: Resource = {
        "resourceType": "Encounter",
        "id": str(vid),
        "meta": meta,
        "identifier": [{"system": VISIT_KEY, "value": f"{src.facility_code}/{src.visit_key}"}],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": klass, "display": CLASS_DISPLAY[klass]},
        "type": [_concept(code_system("care-type"), care_type, care.vi if care else None)],
        "period": {
            k: v
            for k, v in (("start", instant(src.started_at)), ("end", instant(src.ended_at)))
            if v
        },
        "serviceProvider": ref("Organization", src.facility_code, src.facility_name),
    }
    if subject is not None:
        encounter["subject"] = subject
    if _text(xml1, "LY_DO_VV"):
        encounter["reasonCode"] = [{"text": _text(xml1, "LY_DO_VV")}]
    if diagnosis_refs:
        encounter["diagnosis"] = diagnosis_refs
    discharge = _text(xml1, "MA_LOAI_RV")
    if discharge:
        encounter["hospitalization"] = {
            "dischargeDisposition": _concept(code_system("discharge-type"), discharge)
        }
    departments = [d.strip() for d in (_text(xml1, "MA_KHOA") or "").split(";") if d.strip()]
    locations = [
        {"location": ref("Location", lid)}
        for d in departments
        if (lid := fhir_id(f"{src.facility_code}-{d}"))
    ]
    if locations:
        encounter["location"] = locations
    out.insert(0, _drop_empty(encounter))

    out.append(
        {
            "resourceType": "Provenance",
            "id": str(src.version_id),
            "meta": _meta(1, src.received_at),
            "target": [
                {"reference": f"Encounter/{vid}/_history/{src.version}"},
                *[{"reference": f"{r['resourceType']}/{r['id']}"} for r in out[1:]],
            ],
            "recorded": instant(src.received_at),
            "activity": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                        "code": "CREATE" if src.first_version else "UPDATE",
                    }
                ]
            },
            "agent": [{"who": ref("Organization", src.facility_code, src.facility_name)}],
            "entity": [
                {
                    "role": "source",
                    "what": {"identifier": {"system": SUBMISSION, "value": src.submission_id}},
                }
            ],
        }
    )
    return [_drop_empty(r) for r in out]


def _drop_empty(resource: Resource) -> Resource:
    """FHIR forbids empty elements: drop None, empty strings, lists and objects (deeply)."""
    cleaned: Resource = _clean(resource)
    return cleaned


def _clean(value: Any) -> Any:
    # every resource of every visit read passes here (a third of a compartment's CPU when
    # written as comprehensions comparing each value with four empties): one pass, tests
    # by kind
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, dict | list):
                item = _clean(item)
                if item:
                    kept[key] = item
            elif item is not None and item != "":
                kept[key] = item
        return kept
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            if isinstance(item, dict | list):
                item = _clean(item)
                if item:
                    items.append(item)
            elif item is not None and item != "":
                items.append(item)
        return items
    return value


# ------------------------------------------------------------------ registries


def patient(
    holder: Any, cards: Iterable[str], *, version: int = 1, updated: datetime | None = None
) -> Resource:
    """A person as a Patient: the personal ID and the insurance cards seen in their visits."""
    family, _, given = (holder.full_name or "").partition(" ")
    identifiers = []
    if holder.personal_id:
        identifiers.append(
            {
                "use": "official",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}
                    ]
                },
                "system": PERSONAL_ID,
                "value": holder.personal_id,
            }
        )
    identifiers += [
        {"use": "secondary", "system": INSURANCE_CARD, "value": card} for card in sorted(set(cards))
    ]
    resource: Resource = {
        "resourceType": "Patient",
        "id": str(holder.id),
        "meta": _meta(version, updated),
        "identifier": identifiers,
        "active": True,
        "name": [
            {"use": "official", "text": holder.full_name, "family": family, "given": given.split()}
        ],
        "gender": {"male": "male", "female": "female"}.get(holder.sex or "", "unknown"),
        # what is known, no invented day: R4's date takes "1980" and "1980-05" (D106)
        "birthDate": (
            holder.birth_date.isoformat()
            if isinstance(holder.birth_date, date)
            else getattr(holder, "birth_partial", None)
        ),
    }
    return _drop_empty(resource)


def organization(facility: Any) -> Resource:
    return _drop_empty(
        {
            "resourceType": "Organization",
            "id": facility.code,
            "meta": _meta(1, facility.created_at),
            "identifier": [{"system": FACILITY, "value": facility.code}],
            "active": facility.status.value != "suspended",
            "type": [_concept(code_system("facility-kind"), facility.kind.value)],
            "name": facility.name,
            "address": [{"text": facility.address, "country": "VN"}] if facility.address else [],
        }
    )


def practitioner(practitioner_id: str, name: str | None) -> Resource:
    return _drop_empty(
        {
            "resourceType": "Practitioner",
            "id": practitioner_id,
            "meta": _meta(1, None),
            "identifier": [{"system": PRACTITIONER, "value": practitioner_id}],
            "name": [{"text": name}] if name else [],
        }
    )


def location(location_id: str, facility_code: str, facility_name: str | None) -> Resource:
    department = location_id[len(facility_code) + 1 :]
    return _drop_empty(
        {
            "resourceType": "Location",
            "id": location_id,
            "meta": _meta(1, None),
            "identifier": [{"system": DEPARTMENT, "value": department}],
            "status": "active",
            "name": f"{facility_name or facility_code} — {department}",
            "physicalType": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                        "code": "wa",
                    }
                ]
            },
            "managingOrganization": ref("Organization", facility_code, facility_name),
        }
    )


BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: Why a record was read, from the read's basis (D35): treatment, emergency treatment, or the
#: patient's own request (themselves or a representative).
PURPOSE = {"consent": "TREAT", "emergency": "ETREAT", "default": "TREAT"}


def audit_event(row: Any, *, unnamed: bool = False, bare: bool = False) -> Resource:
    """An audit row as a FHIR AuditEvent, shaped after IHE Basic Audit Log Patterns (BALP): a
    read of a patient's data is an ``IHE.BasicAudit.PatientRead`` (the client and the server
    as agents, the patient and the data as entities, the purpose of use). ``unnamed`` (a
    representative of a person of 16 or more, D109): the requestor is "a medical facility"
    when a facility wrote the row (nobody when someone else did), and the data its type only.
    ``bare``: the data its type only, the requestor named."""
    verb = row.action.rsplit(".", 1)[-1]
    action = {"read": "R", "exported": "R", "received": "C", "opened": "R"}.get(verb, "E")
    detail = row.detail or {}
    reading = action == "R" and row.person_id is not None
    purpose = PURPOSE.get(str(detail.get("basis") or ""), "PATRQT" if detail.get("as") else None)
    requestor: Resource = {"display": row.actor}
    what = row.object_type if bare else f"{row.object_type}/{row.object_id}"
    if unnamed:
        by_facility = (
            row.action in audit.READS
            or row.actor.startswith("facility_system:")
            or "facility" in detail
            or "facility_code" in detail
        )
        requestor = {"display": i18n.text("web.access.a_facility", "vi")} if by_facility else {}
        what = row.object_type
    return _drop_empty(
        {
            "resourceType": "AuditEvent",
            "id": str(row.id),
            "meta": {**_meta(1, row.at),
                     **({"profile": [f"{BALP}/IHE.BasicAudit.PatientRead"]} if reading else {})},
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
                "display": "RESTful Operation",
            },
            "subtype": [
                *([{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}]
                  if action == "R" else []),
                {"system": code_system("audit-action"), "code": row.action},
            ],
            "action": action,
            "recorded": instant(row.at),
            "outcome": "4" if row.action in audit.REFUSED else "0",  # 4: minor failure
            "purposeOfEvent": ([{"coding": [{"system": ACT_REASON, "code": purpose}]}]
                               if purpose else []),
            "agent": [
                {"type": {"coding": [{"system": DCM, "code": "110153",
                                      "display": "Source Role ID"}]},
                 "who": requestor, "requestor": True,
                 **({"purposeOfUse": [{"coding": [{"system": ACT_REASON, "code": purpose}]}]}
                    if purpose else {})},
                {"type": {"coding": [{"system": DCM, "code": "110152",
                                      "display": "Destination Role ID"}]},
                 "who": {"display": "vnehr"}, "requestor": False},
            ],
            "source": {
                "observer": {"display": "vnehr"},
                "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                          "code": "4", "display": "Application Server"}],
            },
            "entity": [
                {
                    "what": {"display": what},
                    "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
                    **({"detail": [{"type": "as", "valueString": str(detail.get("as"))}]}
                       if detail.get("as") else {}),
                }
            ]
            + ([{"what": ref("Patient", row.person_id),
                 "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                 "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}}]
               if row.person_id else []),
        }
    )  # fmt: skip


PAPER_KIND = f"{BASE}/CodeSystem/paper-kind"


def paper_document(paper: Any, today: date) -> Resource:
    """An electronic paper as a DocumentReference: its kind, number, issuer, validity and the
    signed PDF; a revoked or replaced paper is ``superseded``."""
    status = "current" if paper.status in ("valid", "used") else "superseded"
    period = {"start": paper.valid_from.isoformat()}
    if paper.valid_until is not None:
        period["end"] = paper.valid_until.isoformat()
    expired = paper.valid_until is not None and today > paper.valid_until
    shown = "expired" if expired and paper.status == "valid" else paper.status
    return _drop_empty(
        {
            "resourceType": "DocumentReference",
            "id": f"paper-{paper.id}",
            "meta": _meta(paper.version, paper.revoked_at or paper.used_at or paper.issued_at),
            "identifier": [
                {
                    "system": f"{BASE}/sid/paper-number/{paper.facility_code}/{paper.kind}",
                    "value": paper.number,
                },
                {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{paper.id}"},
            ],
            "status": status,
            "docStatus": "final",
            "type": {"coding": [{"system": PAPER_KIND, "code": paper.kind}]},
            "category": [
                {"coding": [{"system": PAPER_KIND, "code": "paper", "display": "Giấy tờ điện tử"}]}
            ],
            "subject": ref("Patient", paper.person_id) if paper.person_id else None,
            "date": instant(paper.issued_at),
            "author": [ref("Organization", paper.facility_code)],
            "description": "; ".join(filter(None, [f"status: {shown}", paper.revoke_reason])),
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "url": f"/api/v1/papers/{paper.id}.pdf",
                        "language": "vi",
                    }
                }
            ],
            "context": {"period": period},
        }
    )


def consent(row: Any, now: datetime, *, unnamed: bool = False) -> Resource:
    """A sharing directive as a FHIR Consent (patient-privacy, opt-in, with its period, the
    facility it is for, and the sensitive categories it includes). ``unnamed`` (a
    representative of a person of 16 or more, D109, D116): the facility is "a medical
    facility", with no reference to it; that there is one, the scope and the period stay."""
    active = row.revoked_at is None and (row.valid_to is None or now < row.valid_to)
    recipient = (
        {"display": i18n.text("web.access.a_facility", "vi")}
        if unnamed
        else ref("Organization", row.grantee)
    )
    actor = (
        [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                               "code": "IRCP"}]},
          "reference": recipient}]
        if row.grantee != "*" else []
    )  # fmt: skip
    return _drop_empty(
        {
            "resourceType": "Consent",
            "id": f"c{row.id}",
            "meta": _meta(2 if row.revoked_at else 1, row.revoked_at or row.created_at),
            "status": "active" if active else "inactive",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0",
                                      "display": "Patient Consent"}]}],
            "patient": ref("Patient", row.person_id),
            "dateTime": instant(row.created_at),
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": {
                "type": "permit",
                "period": {"start": instant(row.valid_from),
                           "end": instant(row.revoked_at or row.valid_to)},
                "actor": actor,
                "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                        "code": "access"}],
                            "text": row.scope}],
                "securityLabel": [{"system": code_system("sensitive-category"), "code": name}
                                  for name in row.sensitive],
            },
        }
    )  # fmt: skip
