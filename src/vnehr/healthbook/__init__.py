"""The health book: what a citizen (or their representative) reads of their record: the
timeline, each visit in full, a PDF of a visit, the one-page summary, and the whole book to
download. Other contexts use this surface only."""

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
from vnehr.healthbook.api import (
    ForWhom,
    book_pdf_answer,
    department_router,
    download,
    fast_routes,
    router,
    settle,
)
from vnehr.healthbook.book import BOOK_VISITS, exported, file_name
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
from vnehr.healthbook.view import (
    RANGE_PREFIX,
    Header,
    Titles,
    coded,
    coded_name,
    diagnoses,
    reference_range,
)
from vnehr.healthbook.view import visit as visit_view

__all__ = [
    "BOOK_VISITS",
    "RANGE_PREFIX",
    "AllergyReader",
    "EmergencyReview",
    "ForWhom",
    "Header",
    "NoBookYet",
    "NotInYourBook",
    "NotInYourLog",
    "NotYourWard",
    "Read",
    "ReviewReader",
    "Titles",
    "access_log",
    "book_pdf_answer",
    "clinical_summary",
    "clinical_visit",
    "close_dispute",
    "coded",
    "coded_name",
    "department_router",
    "diagnoses",
    "dispute",
    "disputes",
    "download",
    "exported",
    "fast_routes",
    "file_name",
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
