"""Submissions: intake of the national XML at visit end (GIAMDINHHS, XML0 check-in), safe
parsing, validation with stable codes, receipts, versions per (facility, MA_LK)."""

from vnehr.submissions.api import fast_routes, router
from vnehr.submissions.held import held_warnings, note_held, unconfirmed_fields
from vnehr.submissions.importer import Totals as ImportTotals
from vnehr.submissions.importer import import_folder, read_file, visit_files
from vnehr.submissions.rules import check_paper_row
from vnehr.submissions.service import (
    BatchCounter,
    CardCheck,
    IntakeOptions,
    admitted,
    analyse,
    awaiting_visits,
    import_file,
    listing,
    raw_file,
    rejections,
    render_visit,
    require_sender,
    staff_report,
    submit,
    validation_report,
)
from vnehr.submissions.spec import TABLES_IN_ENVELOPE
from vnehr.submissions.xmlio import Limits, b64decode, read_table

__all__ = [
    "TABLES_IN_ENVELOPE",
    "BatchCounter",
    "CardCheck",
    "ImportTotals",
    "IntakeOptions",
    "Limits",
    "admitted",
    "analyse",
    "awaiting_visits",
    "b64decode",
    "check_paper_row",
    "fast_routes",
    "held_warnings",
    "import_file",
    "import_folder",
    "listing",
    "note_held",
    "raw_file",
    "read_file",
    "read_table",
    "rejections",
    "render_visit",
    "require_sender",
    "router",
    "staff_report",
    "submit",
    "unconfirmed_fields",
    "validation_report",
    "visit_files",
]
