"""Reporting: the six-monthly report to the Ministry of Health and the department's dashboard,
from rollups that an event consumer keeps up to date (checked against the stored rows)."""

from vnehr.reporting.api import router
from vnehr.reporting.held import out_of_book
from vnehr.reporting.metrics import Period
from vnehr.reporting.outputs import charts, html, to_csv, to_json, to_pdf, to_xlsx
from vnehr.reporting.rollup import consumers, intake_counter, rebuild
from vnehr.reporting.service import (
    Checked,
    build,
    check,
    checked,
    declare,
    figures,
    load_population,
    period_of,
    set_notes,
)
from vnehr.reporting.svg import charts as page_charts

__all__ = [
    "Checked",
    "Period",
    "build",
    "charts",
    "check",
    "checked",
    "consumers",
    "declare",
    "figures",
    "html",
    "intake_counter",
    "load_population",
    "out_of_book",
    "page_charts",
    "period_of",
    "rebuild",
    "router",
    "set_notes",
    "to_csv",
    "to_json",
    "to_pdf",
    "to_xlsx",
]
