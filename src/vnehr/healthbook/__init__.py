"""The health book: what a citizen (or their representative) reads of their record: the
timeline, each visit in full, a PDF of a visit, and the one-page summary. Other contexts use
this surface only."""

from vnehr.healthbook import schemas
from vnehr.healthbook.access import (
    EmergencyReview,
    ReviewReader,
    access_log,
    close_dispute,
    dispute,
    disputes,
    names_reader,
    read_emergency_reviews_with,
)
from vnehr.healthbook.api import department_router, fast_routes, router, settle
from vnehr.healthbook.errors import NoBookYet, NotInYourBook, NotInYourLog, NotYourWard
from vnehr.healthbook.service import (
    AllergyReader,
    Read,
    clinical_summary,
    clinical_visit,
    holder,
    read_allergies_with,
    summary,
    timeline,
    visit,
)
from vnehr.healthbook.view import RANGE_PREFIX, Header, Titles, coded, diagnoses, reference_range
from vnehr.healthbook.view import visit as visit_view

__all__ = [
    "RANGE_PREFIX",
    "AllergyReader",
    "EmergencyReview",
    "Header",
    "NoBookYet",
    "NotInYourBook",
    "NotInYourLog",
    "NotYourWard",
    "Read",
    "ReviewReader",
    "Titles",
    "access_log",
    "clinical_summary",
    "clinical_visit",
    "close_dispute",
    "coded",
    "department_router",
    "diagnoses",
    "dispute",
    "disputes",
    "fast_routes",
    "holder",
    "names_reader",
    "read_allergies_with",
    "read_emergency_reviews_with",
    "reference_range",
    "router",
    "schemas",
    "settle",
    "summary",
    "timeline",
    "visit",
    "visit_view",
]
