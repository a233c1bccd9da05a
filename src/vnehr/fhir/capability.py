"""The CapabilityStatement: generated from the same tables the server runs on (the types
served and their search parameters, ``search``; the types written and those with a conditional
create, ``write``), so it states exactly what is supported."""

from __future__ import annotations

from typing import Any

from vnehr import __version__
from vnehr.fhir.search import PARAMS
from vnehr.fhir.write import CONDITIONAL, WRITABLE

#: _include / _revinclude values worth advertising per type.
INCLUDES: dict[str, list[str]] = {
    "Encounter": ["Encounter:patient", "Encounter:subject", "Encounter:service-provider",
                  "Encounter:location", "Encounter:diagnosis"],
    "Condition": ["Condition:patient", "Condition:encounter"],
    "Observation": ["Observation:patient", "Observation:encounter", "Observation:performer"],
    "MedicationRequest": ["MedicationRequest:patient", "MedicationRequest:encounter",
                          "MedicationRequest:requester"],
    "Procedure": ["Procedure:patient", "Procedure:encounter", "Procedure:performer"],
    "DiagnosticReport": ["DiagnosticReport:patient", "DiagnosticReport:encounter",
                         "DiagnosticReport:result"],
    "DocumentReference": ["DocumentReference:patient", "DocumentReference:encounter",
                          "DocumentReference:author"],
    "Location": ["Location:organization"],
    "Provenance": ["Provenance:target", "Provenance:agent"],
    "AllergyIntolerance": ["AllergyIntolerance:patient", "AllergyIntolerance:recorder"],
}  # fmt: skip
REVINCLUDES: dict[str, list[str]] = {
    "Encounter": ["Condition:encounter", "Observation:encounter", "MedicationRequest:encounter",
                  "Procedure:encounter", "DiagnosticReport:encounter",
                  "DocumentReference:encounter", "Provenance:target"],
    "Patient": ["Encounter:patient", "Condition:patient", "Observation:patient",
                "MedicationRequest:patient", "AllergyIntolerance:patient"],
}  # fmt: skip
DOCS = {
    "Patient": "The persons of your compartment (a citizen: themselves and whom they represent; "
    "a facility system: patients it sent visits of, found by identifier).",
    "Encounter": "One per visit (MA_LK); id stable across corrections, versions = corrections.",
    "AllergyIntolerance": "Kept as sent by facility systems (POST/PUT, or in a visit's "
    "transaction): the national tables have no allergy field (D29). Current ones show in the "
    "health book's summary and in Patient/$summary.",
}
#: What every type served has: the read routes of ``api`` (read, vread, history, search).
READ = ("read", "vread", "history-instance", "search-type")
#: What a type ``write.WRITABLE`` names adds: ``write.store`` behind POST and PUT.
WRITE = ("create", "update")
_WRITTEN = (
    " Facility systems (scope submission.write) create and update it as sent (a PUT to a new "
    "id creates it; the resources mapped from a visit change only through the intake)."
)
_CONDITIONAL = " Conditional create: If-None-Exist: identifier=[system|]value."


def interactions(type_: str) -> list[str]:
    """The interactions one type supports, as the routes and the writer decide them."""
    return [*READ, *(WRITE if type_ in WRITABLE else ())]


def statement(base: str) -> dict[str, Any]:
    resources = []
    for type_, params in PARAMS.items():
        resources.append(
            {
                "type": type_,
                "documentation": DOCS.get(type_, "Mapped from the national XML tables "
                                          "(docs/fhir-mapping.md).")
                + (_WRITTEN if type_ in WRITABLE else "")
                + (_CONDITIONAL if type_ in CONDITIONAL else ""),
                "interaction": [{"code": code} for code in interactions(type_)],
                "versioning": "versioned",
                "readHistory": True,
                "updateCreate": type_ in WRITABLE,
                "conditionalCreate": type_ in CONDITIONAL,
                "conditionalUpdate": False,
                "conditionalDelete": "not-supported",
                "searchInclude": INCLUDES.get(type_, []),
                "searchRevInclude": REVINCLUDES.get(type_, []),
                "searchParam": [
                    {
                        "name": p.name,
                        "definition": p.url,
                        "type": p.kind,
                        "documentation": p.expression,
                    }
                    for p in params
                ],
                **(
                    {"operation": [
                        {"name": "everything",
                         "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                        {"name": "summary",
                         "definition": "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"},
                    ]}
                    if type_ == "Patient" else {}
                ),
            }
        )  # fmt: skip
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "publisher": "vnehr",
        "kind": "instance",
        "software": {"name": "vnehr", "version": __version__},
        "implementation": {"description": "vnehr health-data exchange", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Facility systems (bearer token, scope submission.write) "
                "write: a visit as a transaction Bundle (an Encounter of a Patient with the "
                "personal ID) goes through the same intake as the national XML "
                "(/api/v1/submissions); other resources are kept as sent (create, update, "
                "conditional create on identifier; no delete or patch). Citizens read their own "
                "compartment (portal session); facility systems (scope record.read) read the "
                "visits they sent, one patient at a time, and what they wrote. Paging: _count "
                "(max 500) and next/previous links.",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth 2.0 client credentials with private_key_jwt at "
                    "/oauth/token for facility systems; VNeID (OpenID Connect) sessions for "
                    "citizens.",
                },
                "resource": resources,
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": "A visit (Encounter of a Patient with the personal ID) "
                        "goes through the intake: all or nothing.",
                    },
                    {
                        "code": "batch",
                        "documentation": "GET, POST and PUT entries, each carried out on its own.",
                    },
                ],
                "searchParam": [
                    {"name": "_count", "type": "number"},
                    {"name": "_sort", "type": "string"},
                ],
            }
        ],
    }
