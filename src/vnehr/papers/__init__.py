"""Papers: electronic papers (driver's health certificate, referral, re-exam appointment, sick
leave, birth certificate, discharge paper): rules, SMART Health Card QR, signed PDF,
revocation and public verification."""

from vnehr.papers.api import router
from vnehr.papers.card import KIND_TITLES
from vnehr.papers.held import hold_unconfirmed
from vnehr.papers.moved import PapersLeft, leave_moved
from vnehr.papers.numbers import Cited, carried
from vnehr.papers.numbers import holders as number_holders
from vnehr.papers.rules import check_visit_papers, load_calendar
from vnehr.papers.service import (
    HeldPaper,
    Issued,
    PaperKeys,
    ToIssueAgain,
    VisitPapers,
    by_id,
    cite,
    first_issues,
    from_visit,
    from_visits,
    holders_named,
    issue_driver,
    keys_for,
    numbers_in_turn,
    of_holder,
    of_persons,
    of_visit,
    on_leaving_book,
    open_qr,
    status_of,
    unconfirmed_holders,
    verify,
)
from vnehr.papers.shc import qr_svg, qr_text

__all__ = [
    "KIND_TITLES",
    "Cited",
    "HeldPaper",
    "Issued",
    "PaperKeys",
    "PapersLeft",
    "ToIssueAgain",
    "VisitPapers",
    "by_id",
    "carried",
    "check_visit_papers",
    "cite",
    "first_issues",
    "from_visit",
    "from_visits",
    "hold_unconfirmed",
    "holders_named",
    "issue_driver",
    "keys_for",
    "leave_moved",
    "load_calendar",
    "number_holders",
    "numbers_in_turn",
    "of_holder",
    "of_persons",
    "of_visit",
    "on_leaving_book",
    "open_qr",
    "qr_svg",
    "qr_text",
    "router",
    "status_of",
    "unconfirmed_holders",
    "verify",
]
