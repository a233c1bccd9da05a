"""HL7 FHIR R4 (4.0.1) at /fhir/R4: the stored visits mapped to FHIR on read (one mapping,
docs/fhir-mapping.md), searched within the caller's compartment. Other contexts use this
surface only."""

from vnehr.fhir.api import router
from vnehr.fhir.download import book_json_answer
from vnehr.fhir.download import router as download_router
from vnehr.fhir.held import Released, release_strangers, release_unconfirmed
from vnehr.fhir.mapping import INSURANCE_CARD, PERSONAL_ID, VISIT_KEY
from vnehr.fhir.store import allergy_reader

__all__ = [
    "INSURANCE_CARD",
    "PERSONAL_ID",
    "VISIT_KEY",
    "Released",
    "allergy_reader",
    "book_json_answer",
    "download_router",
    "release_strangers",
    "release_unconfirmed",
    "router",
]
