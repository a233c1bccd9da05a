"""Submissions: intake of the national XML at visit end (GIAMDINHHS, XML0 check-in), safe
parsing, validation with stable codes, receipts, versions per (facility, MA_LK)."""

from vnehr.submissions.api import router
from vnehr.submissions.service import (
    CardCheck,
    IntakeOptions,
    analyse,
    import_file,
    raw_file,
    render_visit,
    submit,
    validation_report,
)
from vnehr.submissions.xmlio import Limits

__all__ = [
    "CardCheck",
    "IntakeOptions",
    "Limits",
    "analyse",
    "import_file",
    "raw_file",
    "render_visit",
    "router",
    "submit",
    "validation_report",
]
