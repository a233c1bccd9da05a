"""From a FHIR transaction Bundle to the national tables of one visit (the reverse of
``mapping``), so a visit sent as FHIR goes through exactly the same intake as the XML.

A Bundle is a visit when it holds an Encounter whose subject is a Patient carrying the 12-digit
personal ID. Its tables are built from:
- FHIR elements, by the table in docs/fhir-mapping.md (Patient + Encounter + Condition + body
  weight -> XML1, MedicationRequest -> XML2, Procedure -> XML3, Observation -> XML4);
- extensions ``{BASE}/StructureDefinition/xml/{FIELD}`` on those resources, for national fields
  that have no FHIR element (money, codes of the national lists...); an extension wins over the
  element;
- whole national tables embedded in the Encounter (extension ``.../xml-table`` with ``name`` and
  ``content``, the base64 inner document exactly as GIAMDINHHS carries it), for tables with no
  FHIR resource here (supplies, progress notes, papers, the record summary...).
Rows of one table, from resources and from embedded documents, are ordered by STT. An
Observation's referenceRange goes to XML4's reserve field DU_PHONG (``KTC: ...``, D29). Members of
other types (AllergyIntolerance, DiagnosticReport...) make no rows: they are stored as sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from vnehr import submissions
from vnehr.fhir import mapping
from vnehr.kit.clock import VIETNAM
from vnehr.kit.errors import VnehrError

Resource = dict[str, Any]
#: Members of a visit that become rows of its tables; a member of any other type (an
#: AllergyIntolerance, a DiagnosticReport...) has no national table and is stored as sent.
TABLED = frozenset({"Condition", "MedicationRequest", "Procedure", "Observation"})
XML_FIELD = f"{mapping.BASE}/StructureDefinition/xml/"
XML_TABLE = f"{mapping.BASE}/StructureDefinition/xml-table"
WEIGHT = "29463-7"


class BadEmbeddedTable(VnehrError):
    """An embedded national table that is not one of XML2..XML15."""

    status_code = 422
    code = "FHIR-0010"


@dataclass(slots=True)
class VisitBundle:
    """The parts of a transaction that make one visit, by their fullUrl."""

    patient: Resource
    patient_url: str
    encounter: Resource
    encounter_url: str
    members: dict[str, Resource] = field(default_factory=dict)  # fullUrl -> resource

    @property
    def personal_id(self) -> str:
        return personal_id_of(self.patient) or ""


def personal_id_of(patient: Mapping[str, Any]) -> str | None:
    for identifier in patient.get("identifier") or []:
        if identifier.get("system") == mapping.PERSONAL_ID and identifier.get("value"):
            return str(identifier["value"])
    return None


def full_name_of(patient: Mapping[str, Any]) -> str:
    """The Patient's name as XML1 HO_TEN takes it: its first name's text, else family and
    given names ("" when it has none)."""
    names = patient.get("name") or [{}]
    name = names[0] if isinstance(names[0], dict) else {}
    text = name.get("text") or " ".join([name.get("family") or "", *(name.get("given") or [])])
    return str(text).strip()


def lacking(patient: Mapping[str, Any]) -> list[str]:
    """The elements (``name``, ``birthDate``) a Patient leaves out of what XML1 asks of every
    patient (HO_TEN, NGAY_SINH) and what is compared with VNeID (D150): a name as HO_TEN takes
    it (``full_name_of``), a birth date that is a day, or a year or month alone ("1985",
    "1985-03"); one with the form of a date that is none (1985-02-30) is not one."""
    born = str(patient.get("birthDate") or "")
    try:
        dated = bool(born) and (len(born) < 10 or bool(date.fromisoformat(born[:10])))
    except ValueError:
        dated = False
    found = {"name": bool(full_name_of(patient)), "birthDate": dated}
    return [element for element, there in found.items() if not there]


def _text(value: Any) -> str:
    """A JSON value as the national tables write it (decimals exactly as sent)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value).strip()


def _moment(value: Any) -> str:
    """A FHIR dateTime as ``yyyyMMddHHmm`` in Vietnam time."""
    if not isinstance(value, str) or len(value) < 16:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(VIETNAM)
    return moment.strftime("%Y%m%d%H%M")


def _code(concept: Any, system: str) -> str:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    return ""


def _display(concept: Any, system: str) -> str:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("system") == system and coding.get("display"):
            return str(coding["display"])
    return str((concept or {}).get("text") or "")


def _reference_id(reference: Any) -> str:
    """A practitioner code from a Reference (logical id or identifier value)."""
    if not isinstance(reference, dict):
        return ""
    if isinstance(reference.get("identifier"), dict):
        return _text(reference["identifier"].get("value"))
    target = str(reference.get("reference") or "")
    return target.split("/")[-1] if "/" in target else ""


def _extensions(resource: Mapping[str, Any]) -> dict[str, str]:
    found = {}
    for extension in resource.get("extension") or []:
        url = str(extension.get("url") or "")
        if url.startswith(XML_FIELD):
            value = next((v for k, v in extension.items() if k.startswith("value")), "")
            found[url[len(XML_FIELD) :]] = _text(value)
    return found


def _row(mapped: Mapping[str, str], resource: Mapping[str, Any]) -> dict[str, str]:
    row = {k: v for k, v in mapped.items() if v}
    row.update({k: v for k, v in _extensions(resource).items() if v})
    return row


def find_visit(entries: list[tuple[str, Resource]]) -> VisitBundle | None:
    """The visit in a transaction's entries (fullUrl, resource), if there is one."""
    by_url = dict(entries)
    for url, resource in entries:
        if resource.get("resourceType") != "Encounter":
            continue
        subject = str((resource.get("subject") or {}).get("reference") or "")
        patient = by_url.get(subject)
        if patient is None or patient.get("resourceType") != "Patient":
            continue
        if personal_id_of(patient) is None:
            continue
        visit = VisitBundle(patient, subject, resource, url)
        for member_url, member in entries:
            if member is resource or member is patient:
                continue
            encounter_ref = (member.get("encounter") or {}).get("reference") or ""
            if encounter_ref == url:
                visit.members[member_url] = member
        return visit
    return None


def weight_of(members: Iterable[Resource]) -> Resource | None:
    """The body-weight Observation that becomes XML1 CAN_NANG (the first), not an XML4 row."""
    return next(
        (
            m for m in members
            if m["resourceType"] == "Observation" and _code(m.get("code"), mapping.LOINC) == WEIGHT
        ),
        None,
    )  # fmt: skip


def tables_of(
    visit: VisitBundle, facility_code: str, limits: submissions.Limits
) -> dict[str, list[dict[str, str]]]:
    """The national tables of the visit (rows of non-empty fields, as intake stores them)."""
    encounter, patient = visit.encounter, visit.patient
    identifiers = [
        _text(i.get("value"))
        for i in encounter.get("identifier") or []
        if i.get("system") == mapping.VISIT_KEY
    ] or [_text(i.get("value")) for i in encounter.get("identifier") or []]
    visit_key = (
        identifiers[0].split("/", 1)[1]
        if identifiers and identifiers[0].startswith(f"{facility_code}/")
        else (identifiers[0] if identifiers else "")
    )
    members = list(visit.members.values())
    conditions = sorted(
        (m for m in members if m["resourceType"] == "Condition"),
        key=lambda c: _rank(encounter, visit, c),
    )
    codes = [_code(c.get("code"), mapping.ICD10) for c in conditions]
    codes = [c for c in codes if c]
    weight = weight_of(members)
    cards = [
        _text(i.get("value"))
        for i in patient.get("identifier") or []
        if i.get("system") == mapping.INSURANCE_CARD
    ]
    birth = _text(patient.get("birthDate")).replace("-", "")
    xml1 = _row(
        {
            "MA_LK": visit_key,
            "MA_BN": _medical_record_number(patient) or visit.personal_id,
            "HO_TEN": full_name_of(patient),
            "SO_CCCD": visit.personal_id,
            "NGAY_SINH": f"{birth}0000" if len(birth) == 8 else "",
            "GIOI_TINH": {"male": "1", "female": "2"}.get(str(patient.get("gender")), "3"),
            "MA_THE_BHYT": ";".join(cards),
            "DIA_CHI": _text((patient.get("address") or [{}])[0].get("text")),
            "LY_DO_VV": _text((encounter.get("reasonCode") or [{}])[0].get("text")),
            "MA_BENH_CHINH": codes[0] if codes else "",
            "MA_BENH_KT": ";".join(codes[1:]),
            "NGAY_VAO": _moment((encounter.get("period") or {}).get("start")),
            "NGAY_RA": _moment((encounter.get("period") or {}).get("end")),
            "MA_LOAI_RV": _code(
                (encounter.get("hospitalization") or {}).get("dischargeDisposition"),
                mapping.code_system("discharge-type"),
            ),
            "MA_LOAI_KCB": next(
                (_code(t, mapping.code_system("care-type")) for t in encounter.get("type") or []
                 if _code(t, mapping.code_system("care-type"))),
                "",
            ),
            "MA_CSKCB": facility_code,
            "CAN_NANG": _text(((weight or {}).get("valueQuantity") or {}).get("value")),
        },
        {"extension": (patient.get("extension") or []) + (encounter.get("extension") or [])},
    )  # fmt: skip
    tables: dict[str, list[dict[str, str]]] = {"XML1": [xml1]}
    rows: dict[str, list[dict[str, str]]] = {}
    for position, member in enumerate(
        (m for m in members if m["resourceType"] == "MedicationRequest"), start=1
    ):
        rows.setdefault("XML2", []).append(_drug(member, visit_key, position))
    for position, member in enumerate(
        (m for m in members if m["resourceType"] == "Procedure"), start=1
    ):
        rows.setdefault("XML3", []).append(_service(member, visit_key, position))
    for position, member in enumerate(
        (m for m in members if m["resourceType"] == "Observation" and m is not weight), start=1
    ):
        rows.setdefault("XML4", []).append(_result(member, visit_key, position))
    for name_, embedded in _embedded(encounter, limits):
        rows.setdefault(name_, []).extend(embedded)
    for name_, table_rows in rows.items():
        tables[name_] = sorted(table_rows, key=_stt)
    return tables


def _rank(encounter: Resource, visit: VisitBundle, condition: Resource) -> int:
    """Encounter.diagnosis.rank of a Condition (unranked ones after, in Bundle order)."""
    url = next((u for u, m in visit.members.items() if m is condition), "")
    for diagnosis in encounter.get("diagnosis") or []:
        if (diagnosis.get("condition") or {}).get("reference") == url:
            return int(diagnosis.get("rank") or 999)
    return 1000 + list(visit.members).index(url)


def _medical_record_number(patient: Mapping[str, Any]) -> str:
    for identifier in patient.get("identifier") or []:
        for coding in (identifier.get("type") or {}).get("coding") or []:
            if coding.get("code") == "MR":
                return _text(identifier.get("value"))
    return ""


def _stt(row: Mapping[str, str]) -> int:
    value = row.get("STT", "")
    return int(value) if value.isdigit() else 10**9


def _drug(resource: Resource, visit_key: str, position: int) -> dict[str, str]:
    concept = resource.get("medicationCodeableConcept") or {}
    dosage = (resource.get("dosageInstruction") or [{}])[0]
    quantity = (resource.get("dispenseRequest") or {}).get("quantity") or {}
    return _row(
        {
            "MA_LK": visit_key,
            "STT": str(position),
            "MA_THUOC": _code(concept, mapping.DRUG),
            "TEN_THUOC": _display(concept, mapping.DRUG),
            "LIEU_DUNG": _text(dosage.get("text")),
            "CACH_DUNG": _text(dosage.get("patientInstruction")),
            "DUONG_DUNG": _code(dosage.get("route"), mapping.ROUTE),
            "SO_LUONG": _text(quantity.get("value")),
            "DON_VI_TINH": _text(quantity.get("unit")),
            "NGAY_YL": _moment(resource.get("authoredOn")),
            "MA_BAC_SI": _reference_id(resource.get("requester")),
        },
        resource,
    )


def _service(resource: Resource, visit_key: str, position: int) -> dict[str, str]:
    performer = (resource.get("performer") or [{}])[0].get("actor")
    return _row(
        {
            "MA_LK": visit_key,
            "STT": str(position),
            "MA_DICH_VU": _code(resource.get("code"), mapping.SERVICE),
            "TEN_DICH_VU": _display(resource.get("code"), mapping.SERVICE),
            "NGAY_TH_YL": _moment(resource.get("performedDateTime")),
            "MA_BAC_SI": _reference_id(performer),
        },
        resource,
    )


def _result(resource: Resource, visit_key: str, position: int) -> dict[str, str]:
    quantity = resource.get("valueQuantity") or {}
    code = resource.get("code")
    return _row(
        {
            "MA_LK": visit_key,
            "STT": str(position),
            "MA_CHI_SO": _code(code, mapping.LAB_INDEX),
            "TEN_CHI_SO": _text((code or {}).get("text")) or _display(code, mapping.LAB_INDEX),
            "GIA_TRI": _text(quantity.get("value")) or _text(resource.get("valueString")),
            "DON_VI_DO": _text(quantity.get("unit")),
            "NGAY_KQ": _moment(resource.get("effectiveDateTime")),
            "MA_BS_DOC_KQ": _reference_id((resource.get("performer") or [None])[0]),
            "DU_PHONG": _range(resource.get("referenceRange")),
        },
        resource,
    )


def _range(ranges: Any) -> str:
    """Observation.referenceRange in XML4's reserve field (the tables have none, D29): its
    text, else "low - high", several ranges joined by "; "."""
    found = []
    for item in ranges if isinstance(ranges, list) else []:
        if not isinstance(item, dict):
            continue
        text = _text(item.get("text"))
        if not text:
            low = _text((item.get("low") or {}).get("value"))
            high = _text((item.get("high") or {}).get("value"))
            text = f"{low} - {high}" if low and high else (f"≥ {low}" if low else "")
            text = text or (f"≤ {high}" if high else "")
        if text:
            found.append(text)
    return f"{mapping.RANGE_PREFIX} {'; '.join(found)}"[:255] if found else ""


def _embedded(
    encounter: Resource, limits: submissions.Limits
) -> Iterable[tuple[str, list[dict[str, str]]]]:
    for extension in encounter.get("extension") or []:
        if extension.get("url") != XML_TABLE:
            continue
        parts = {e.get("url"): e for e in extension.get("extension") or []}
        name = _text((parts.get("name") or {}).get("valueCode"))
        content = (parts.get("content") or {}).get("valueBase64Binary") or ""
        if name not in submissions.TABLES_IN_ENVELOPE or name == "XML1":
            raise BadEmbeddedTable(name=name or "?")
        data = submissions.b64decode(content, what=name)
        yield name, submissions.read_table(name, data, limits).rows
