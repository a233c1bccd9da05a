"""``Patient/$summary``: an International Patient Summary document Bundle (Composition first,
then everything its sections point to), built from the same compartment as every read."""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from vnehr import healthbook, records
from vnehr.fhir import mapping
from vnehr.fhir.store import Pool, current_allergy
from vnehr.kit.clock import VIETNAM

Resource = dict[str, Any]
RECENT = timedelta(days=90)
#: The entries a section shows at most; a timeline row keeps when its visit's newest
#: ``records.NEWEST`` results and services were, and this may not be more.
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


#: A visit as its timeline row tells it: its id, start, end and what the row keeps of it.
Told = tuple[int, datetime | None, datetime | None, records.Facts]


def visits_shown(visits: Sequence[Told], titles: healthbook.Titles, *, now: datetime) -> set[int]:
    """Of these visits of a patient (newest first, as a compartment maps them), those some of
    whose resources ``document`` may show, from what their timeline rows keep (D233): those
    holding the newest ``MAX_ENTRIES`` medicine orders that may be of the last 90 days,
    results, weights and services, and the newest problem of each of the first
    ``MAX_ENTRIES`` names, each ordered as ``document`` orders them (by its time as FHIR
    writes it, ties in the order of the visits). A visit without an end is among them (its
    codes are read on the day it arrived, which its row does not tell). What the document
    shows of the rest of the compartment (resources kept as sent) can only push a visit's
    entries out: the document made from the visits named here is the whole compartment's."""
    shown: set[int] = set()
    # (``document`` compares the day an order was written, in Vietnam, with the UTC day 90
    # days ago: a margin of two days covers the difference; the newest come first either way)
    since = now - RECENT - timedelta(days=2)
    orders: list[tuple[str | None, int, int]] = []
    results: list[tuple[str | None, int, int]] = []
    weights: list[tuple[str | None, int, int]] = []
    services: list[tuple[str | None, int, int]] = []
    problems: list[tuple[str | None, int, str]] = []
    for visit_id, started_at, ended_at, found in visits:
        orders += [
            (mapping.instant(at), visit_id, count)
            for at, count in found.orders
            if at is not None and at >= since
        ]
        results += [(mapping.instant(at), visit_id, count) for at, count in found.results]
        services += [(mapping.instant(at), visit_id, count) for at, count in found.services]
        if mapping.body_weight(found.xml1) is not None:
            weights.append((mapping.instant(started_at or ended_at), visit_id, 1))
        if ended_at is None:
            shown.add(visit_id)
            continue
        day = ended_at.astimezone(VIETNAM).date()
        for code in mapping.condition_codes(found.xml1, titles, day):
            name = _name({"resourceType": "Condition", "code": code})
            problems.append((mapping.instant(ended_at), visit_id, name))
    for entries in (orders, results, weights, services):
        taken = 0
        for _, visit_id, count in sorted(entries, key=lambda e: e[0] or "", reverse=True):
            if taken >= MAX_ENTRIES:
                break
            shown.add(visit_id)
            taken += count
    names: set[str] = set()
    for _, visit_id, name in sorted(problems, key=lambda e: e[0] or "", reverse=True):
        if len(names) >= MAX_ENTRIES:
            break
        if name not in names:
            names.add(name)
            shown.add(visit_id)
    return shown


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
