"""What a paper's QR holds: a minimal FHIR R4 Bundle (SMART Health Cards style: ``resource:N``
references, no ids, no narrative) with only the facts a verifier needs to decide; never the
diagnosis. And the way back: the facts a verification shows, read from the signed Bundle.

- every paper: Patient (name, birth date, sex),
  DocumentReference (kind, number, signing date, validity period; the facility as its author);
- driver: Observation, fitness to drive (fit / unfit / fit with conditions), licence classes,
  drug and alcohol tests;
- referral: ServiceRequest to the receiving facility;
- re_exam: Appointment, its date and time;
- sick_leave: the DocumentReference period is the leave;
- birth: Patient (the newborn: name, sex, birth date, temporary card) and Observation birth
  weight (LOINC 8339-4);
- discharge: Encounter, admission and discharge.
"""

from __future__ import annotations

from typing import Any

#: Short system URIs: every byte of the card is in the QR code.
KIND_SYSTEM = "https://vnehr.vn/fhir/paper-kind"
FACILITY_SYSTEM = "https://vnehr.vn/fhir/facility"
NUMBER_SYSTEM = "https://vnehr.vn/fhir/paper-number"
FACT_SYSTEM = "https://vnehr.vn/fhir/paper-fact"
TEMP_CARD_SYSTEM = "https://vnehr.vn/fhir/temporary-card"
LOINC = "http://loinc.org"

KIND_TITLES = {
    "driver": ("Giấy khám sức khỏe lái xe", "Driver's health certificate"),
    "referral": ("Giấy chuyển tuyến", "Referral paper"),
    "re_exam": ("Giấy hẹn khám lại", "Re-examination appointment"),
    "sick_leave": ("Giấy chứng nhận nghỉ việc hưởng BHXH", "Sick-leave certificate"),
    "birth": ("Giấy chứng sinh", "Birth certificate"),
    "discharge": ("Giấy ra viện", "Discharge paper"),
}
FITNESS = {
    "fit": "Đủ điều kiện sức khỏe lái xe",
    "unfit": "Không đủ điều kiện sức khỏe lái xe",
    "fit_with_conditions": "Đủ điều kiện sức khỏe lái xe có điều kiện",
}


def _fact(code: str) -> dict[str, Any]:
    return {"coding": [{"system": FACT_SYSTEM, "code": code}]}


def _moment(value: str) -> str:
    """A FHIR dateTime with the Vietnam offset (values are stored as local ISO times)."""
    return value if len(value) <= 10 or "+" in value[10:] else f"{value}+07:00"


def bundle(content: dict[str, Any]) -> dict[str, Any]:
    kind = content["kind"]
    holder = content["holder"]
    facts = content.get("facts") or {}
    patient: dict[str, Any] = {"resourceType": "Patient", "name": [{"text": holder["name"]}]}
    if holder.get("birth_date"):
        patient["birthDate"] = holder["birth_date"]
    if holder.get("sex"):
        patient["gender"] = holder["sex"]
    facility = content["facility"]
    period = {"start": content["valid_from"]}
    if content.get("valid_until"):
        period["end"] = content["valid_until"]
    author = {
        "identifier": {"system": FACILITY_SYSTEM, "value": facility["code"]},
        "display": facility.get("name") or facility["code"],
    }
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [
            {"system": NUMBER_SYSTEM, "value": content["number"]},
        ],
        "status": "current",
        "type": {"coding": [{"system": KIND_SYSTEM, "code": kind}]},
        "subject": {"reference": "resource:0"},
        "date": f"{content['signed_on']}T00:00:00+07:00",
        "author": [author],
        "content": [{"attachment": {"contentType": "application/pdf"}}],
        "context": {"period": period},
    }
    entries: list[dict[str, Any]] = [patient, document]
    entries += _kind_resources(kind, facts, author)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"resource:{i}", "resource": r} for i, r in enumerate(entries)],
    }


def _kind_resources(
    kind: str, facts: dict[str, Any], author: dict[str, Any]
) -> list[dict[str, Any]]:
    if kind == "driver":
        components = [
            {
                "code": _fact("licence-classes"),
                "valueString": ", ".join(facts["classes"]),
            },
            {
                "code": _fact("drug-test"),
                "valueCodeableConcept": _fact(facts["drug_test"]),
            },
            {
                "code": _fact("alcohol-test"),
                "valueCodeableConcept": _fact(facts["alcohol"]),
            },
        ]
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": _fact("fitness-to-drive"),
            "subject": {"reference": "resource:0"},
            "valueCodeableConcept": _fact(facts["conclusion"]),
            "component": components,
        }
        if facts.get("conditions"):
            observation["note"] = [{"text": facts["conditions"]}]
        return [observation]
    if kind == "referral":
        return [
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "code": _fact("referral"),
                "subject": {"reference": "resource:0"},
                "requester": author,
                "performer": [
                    {
                        "identifier": {
                            "system": FACILITY_SYSTEM,
                            "value": facts.get("to_facility") or "",
                        }
                    }
                ],
            }
        ]
    if kind == "re_exam":
        return [
            {
                "resourceType": "Appointment",
                "status": "booked",
                "start": _moment(facts["appointment"]),
                "participant": [
                    {"actor": {"reference": "resource:0"}, "status": "accepted"},
                ],
            }
        ]
    if kind == "birth":
        child: dict[str, Any] = {"resourceType": "Patient"}
        if facts.get("child_name"):
            child["name"] = [{"text": facts["child_name"]}]
        if facts.get("child_sex"):
            child["gender"] = facts["child_sex"]
        if facts.get("born_at"):
            child["birthDate"] = facts["born_at"][:10]
        if facts.get("temp_card"):
            child["identifier"] = [{"system": TEMP_CARD_SYSTEM, "value": facts["temp_card"]}]
        child["link"] = [{"other": {"reference": "resource:0"}, "type": "seealso"}]
        weight = {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [{"system": LOINC, "code": "8339-4", "display": "Birth weight Measured"}]
            },
            "subject": {"reference": "resource:2"},
            "valueQuantity": {
                "value": facts.get("weight_g") or 0,
                "unit": "g",
                "system": "http://unitsofmeasure.org",
                "code": "g",
            },
        }
        return [child, weight] if facts.get("weight_g") else [child]
    if kind == "discharge":
        period = {"start": _moment(facts["admitted"])} if facts.get("admitted") else {}
        if facts.get("discharged"):
            period["end"] = _moment(facts["discharged"])
        return [
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "IMP",
                    "display": "inpatient encounter",
                },
                "subject": {"reference": "resource:0"},
                "period": period,
            }
        ]
    return []  # sick_leave: the DocumentReference period says it all


# ------------------------------------------------------------------ reading a card back


def _resources(card_bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e.get("resource") or {} for e in card_bundle.get("entry") or []]


def _code(concept: dict[str, Any] | None) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        return str(coding.get("code"))
    return None


def read(card_bundle: dict[str, Any]) -> dict[str, Any]:
    """The facts a verifier sees, taken from the signed Bundle only."""
    found = _resources(card_bundle)
    if len(found) < 2 or found[1].get("resourceType") != "DocumentReference":
        raise ValueError("not a vnehr paper")
    patient, document = found[0], found[1]
    author = (document.get("author") or [{}])[0]
    identifiers = {i.get("system", ""): i.get("value") for i in document.get("identifier") or []}
    number = identifiers.get(NUMBER_SYSTEM)
    period = (document.get("context") or {}).get("period") or {}
    kind = _code(document.get("type")) or ""
    facts: dict[str, Any] = {}
    rest = found[2:]
    if kind == "driver" and rest:
        observation = rest[0]
        facts["conclusion"] = _code(observation.get("valueCodeableConcept"))
        facts["examined_on"] = str(document.get("date") or "")[:10]
        for component in observation.get("component") or []:
            name = _code(component.get("code"))
            if name == "licence-classes":
                facts["classes"] = component.get("valueString")
            elif name in ("drug-test", "alcohol-test"):
                facts[name.replace("-", "_")] = _code(component.get("valueCodeableConcept"))
        if observation.get("note"):
            facts["conditions"] = observation["note"][0].get("text")
    elif kind == "referral" and rest:
        performers = rest[0].get("performer") or [{}]
        facts["to_facility"] = (performers[0].get("identifier") or {}).get("value")
    elif kind == "re_exam" and rest:
        facts["appointment"] = rest[0].get("start")
    elif kind == "birth" and rest:
        child = rest[0]
        facts["child_name"] = ((child.get("name") or [{}])[0]).get("text")
        facts["child_sex"] = child.get("gender")
        facts["born_on"] = child.get("birthDate")
        if len(rest) > 1:
            facts["weight_g"] = (rest[1].get("valueQuantity") or {}).get("value")
    elif kind == "discharge" and rest:
        facts["admitted"] = (rest[0].get("period") or {}).get("start")
        facts["discharged"] = (rest[0].get("period") or {}).get("end")
    return {
        "kind": kind,
        "number": number,
        "holder": {
            "name": ((patient.get("name") or [{}])[0]).get("text"),
            "birth_date": patient.get("birthDate"),
        },
        "facility": {
            "code": (author.get("identifier") or {}).get("value"),
            "name": author.get("display"),
        },
        "signed_on": str(document.get("date") or "")[:10],
        "valid_from": period.get("start"),
        "valid_until": period.get("end"),
        "facts": facts,
    }
