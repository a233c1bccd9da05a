"""``Patient/$summary``: an International Patient Summary document Bundle (Composition first,
then everything its sections point to), built from the same compartment as every read."""

from __future__ import annotations

import html
import uuid
from datetime import datetime, timedelta
from typing import Any

from vnehr.fhir import mapping
from vnehr.fhir.store import Pool, current_allergy

Resource = dict[str, Any]
RECENT = timedelta(days=90)
MAX_ENTRIES = 20
EMPTY = "http://terminology.hl7.org/CodeSystem/list-empty-reason"


def _when(resource: Resource, *fields: str) -> str:
    for name in fields:
        value = resource.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and value.get("end"):
            return str(value["end"])
    return ""


def _label(resource: Resource) -> str:
    """What a section's narrative says of an entry: a result with its value, unit and day."""
    name = _name(resource)
    if resource["resourceType"] != "Observation":
        return name
    quantity = resource.get("valueQuantity") or {}
    value = " ".join(
        str(v) for v in (quantity.get("value"), quantity.get("unit")) if v is not None
    ) or str(resource.get("valueString") or "")
    day = str(resource.get("effectiveDateTime") or "")[:10]
    return f"{name}: {value}{f' ({day})' if day else ''}" if value else name


def _name(resource: Resource) -> str:
    for key in ("code", "medicationCodeableConcept"):
        concept = resource.get(key) or {}
        if concept.get("text") or concept.get("coding"):
            coding = (concept.get("coding") or [{}])[0]
            code = coding.get("code")
            text = concept.get("text") or coding.get("display") or ""
            return f"{code} {text}".strip() if code and key == "code" else str(text)
    return str(resource["resourceType"])


def _section(
    title: str, loinc: str, display: str, entries: list[Resource], empty_text: str
) -> Resource:
    section: Resource = {
        "title": title,
        "code": {"coding": [{"system": mapping.LOINC, "code": loinc, "display": display}]},
    }
    if entries:
        items = "".join(f"<li>{html.escape(_label(r))}</li>" for r in entries)
        section["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{items}</ul></div>',
        }
        section["entry"] = [mapping.ref(r["resourceType"], r["id"]) for r in entries]
    else:
        section["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{html.escape(empty_text)}</div>',
        }
        section["emptyReason"] = {"coding": [{"system": EMPTY, "code": "unavailable"}]}
    return section


def _newest(resources: list[Resource], *fields: str) -> list[Resource]:
    return sorted(resources, key=lambda r: _when(r, *fields), reverse=True)


def document(base: str, pool: Pool, patient_id: str, *, now: datetime) -> Resource:
    patient = pool.get("Patient", patient_id)
    if patient is None:  # pragma: no cover - the caller checked the patient is reachable
        raise ValueError(patient_id)
    subject = f"Patient/{patient_id}"

    def mine(type_: str) -> list[Resource]:
        return [
            r for r in pool.of_type(type_) if (r.get("subject") or {}).get("reference") == subject
        ]

    allergies = [
        a
        for a in _newest(pool.of_type("AllergyIntolerance"), "recordedDate", "onsetDateTime")
        if (a.get("patient") or {}).get("reference") == subject and current_allergy(a)
    ][:MAX_ENTRIES]
    conditions: dict[str, Resource] = {}
    for condition in _newest(mine("Condition"), "recordedDate"):
        key = _name(condition)
        conditions.setdefault(key, condition)
    cutoff = (now - RECENT).isoformat()
    medicines = [
        m
        for m in _newest(mine("MedicationRequest"), "authoredOn")
        if _when(m, "authoredOn") >= cutoff[:10]
    ]
    observations = _newest(mine("Observation"), "effectiveDateTime")
    labs = [o for o in observations if _category(o) == "laboratory"][:MAX_ENTRIES]
    vitals = [o for o in observations if _category(o) == "vital-signs"][:MAX_ENTRIES]
    procedures = _newest(mine("Procedure"), "performedDateTime")[:MAX_ENTRIES]
    sections = [
        _section(
            "Dị ứng (Allergies and intolerances)",
            "48765-2",
            "Allergies and adverse reactions Document",
            allergies,
            "Chưa có thông tin dị ứng: bảng XML quốc gia không có trường này.",
        ),
        _section(
            "Thuốc đang dùng (Medication summary)",
            "10160-0",
            "History of Medication use Narrative",
            medicines[:MAX_ENTRIES],
            "Không có đơn thuốc trong 90 ngày gần đây.",
        ),
        _section(
            "Bệnh, vấn đề sức khỏe (Problems)",
            "11450-4",
            "Problem list - Reported",
            list(conditions.values())[:MAX_ENTRIES],
            "Không có chẩn đoán.",
        ),
        _section(
            "Kết quả xét nghiệm (Results)",
            "30954-2",
            "Relevant diagnostic tests/laboratory data Narrative",
            labs,
            "Không có kết quả.",
        ),
        _section(
            "Dấu hiệu sinh tồn (Vital signs)", "8716-3", "Vital signs", vitals, "Không có số đo."
        ),
        _section(
            "Thủ thuật, dịch vụ (History of procedures)",
            "47519-4",
            "History of Procedures Document",
            procedures,
            "Không có thủ thuật.",
        ),
    ]
    composition: Resource = {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "status": "final",
        "type": {
            "coding": [
                {"system": mapping.LOINC, "code": "60591-5", "display": "Patient summary Document"}
            ]
        },
        "subject": mapping.ref("Patient", patient_id),
        "date": mapping.instant(now),
        "author": [{"display": "vnehr — Sổ sức khỏe điện tử"}],
        "title": "Tóm tắt hồ sơ sức khỏe (International Patient Summary)",
        "confidentiality": "N",
        "section": sections,
    }
    included: dict[tuple[str, str], Resource] = {("Patient", patient_id): patient}
    for section in sections:
        for reference in section.get("entry", []):
            type_, _, id_ = reference["reference"].partition("/")
            found = pool.get(type_, id_)
            if found is not None:
                included[(type_, id_)] = found
    entries = [{"fullUrl": f"urn:uuid:{composition['id']}", "resource": composition}] + [
        {"fullUrl": f"{base}/{t}/{i}", "resource": r} for (t, i), r in included.items()
    ]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": mapping.instant(now),
        "entry": entries,
    }


def _category(observation: Resource) -> str:
    for concept in observation.get("category") or []:
        for coding in concept.get("coding") or []:
            return str(coding.get("code"))
    return ""
