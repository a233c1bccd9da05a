"""The whole health book to download: who it is, the summary and every visit, newest first, as
one PDF to print or show a doctor, in Vietnamese or English. The summary follows the rules of
the book's (``service.printed_summary``), the visits are the timeline's (``service.timeline``):
a representative of a person of 16 or 17 gets the book without the visits ``records.withheld``
leaves out (D132), a visit held out of the book (D167) is in no one's timeline, and a download
by anyone but the person is one audit row."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from vnehr import audit, identity
from vnehr.healthbook import schemas as s
from vnehr.healthbook import service
from vnehr.healthbook.view import coded_name
from vnehr.kit.auth import Subject
from vnehr.kit.clock import VIETNAM
from vnehr.kit.db import Database
from vnehr.kit.i18n import Language, born, text
from vnehr.kit.numerals import install as install_numerals

#: The most visits a PDF lists (the newest): a book of thousands would be hundreds of pages,
#: and would be held whole in memory to render; the PDF says where the older ones are.
BOOK_VISITS = 500
#: Visits read per timeline page while gathering them.
PAGE = 100
#: The audit action of a download (``audit.READS``: the person's access log lists it).
EXPORTED = "book.exported"


@dataclass(frozen=True, slots=True)
class Book:
    holder: identity.Holder
    summary: s.Summary
    #: the newest ``BOOK_VISITS`` visits, as the timeline gives them (``schemas.TimelineItem``)
    visits: list[dict[str, Any]]
    #: whether older visits were left out of ``visits``
    more: bool


def exported(subject: Subject, who: identity.Holder, form: str) -> list[audit.AuditEvent]:
    """The audit rows a download of ``who``'s book owes: none when the person takes their own,
    else one, as a read of the book's timeline or summary is (D28), naming the file's form."""
    if who.relation is None:
        return []
    return [
        audit.audit_event(
            actor=subject.label,
            action=EXPORTED,
            object_type="health_book",
            object_id=str(who.id),
            person_id=who.id,
            detail={"as": who.relation, "format": form},
        )
    ]


async def book(
    db: Database, subject: Subject, *, personal_id: str | None = None
) -> service.Read[Book]:
    """The caller's book (or that of the person ``personal_id`` they represent today) to
    print: the summary (from what the timeline keeps of each visit, ``printed_summary``), and
    the newest ``BOOK_VISITS`` visits read a timeline page at a time (never the whole book at
    once)."""
    async with db.read_session() as session:
        who = await service.holder(session, subject, personal_id)
        summary = await service.printed_summary(session, who)
    most = BOOK_VISITS
    visits: list[dict[str, Any]] = []
    cursor: str | None = None
    more = False
    while True:
        page = await service.timeline(
            db, subject, personal_id=personal_id, cursor=cursor, limit=min(PAGE, most - len(visits))
        )
        items, cursor = page.value
        visits += items
        if cursor is None:
            break
        if len(visits) >= most:
            more = True
            break
    value = Book(who, summary, visits, more)
    return service.Read(value, exported(subject, who, "pdf"), who)


def file_name(who: identity.Holder, day: date, suffix: str) -> str:
    """``so-suc-khoe-nguyen-van-an-2026-11-27.pdf``: whose and of which day, in plain
    letters (a parent downloads several books)."""
    plain = unicodedata.normalize("NFKD", who.full_name.replace("đ", "d").replace("Đ", "D"))
    letters = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    slug = "-".join(re.findall(r"[a-z0-9]+", letters))[:60].strip("-")
    return f"so-suc-khoe-{slug + '-' if slug else ''}{day.isoformat()}{suffix}"


# ------------------------------------------------------------------ the PDF


def _local(value: datetime | None, pattern: str = "%d/%m/%Y %H:%M") -> str:
    """A stored moment (UTC inside) in Vietnam time."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(VIETNAM).strftime(pattern)


_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["local"] = _local
_env.globals["t"] = text
_env.globals["named"] = coded_name
_env.globals["born"] = born
install_numerals(_env)


def book_html(
    book: Book, *, printed_at: datetime, portal: str, most: int, lang: Language = "vi"
) -> str:
    return _env.get_template("book.html").render(
        book=book, printed_at=printed_at, portal=portal, most=most, lang=lang
    )


def book_pdf(book: Book, *, printed_at: datetime, portal: str, lang: Language = "vi") -> bytes:
    """The PDF bytes, its headings and labels in ``lang`` (Vietnamese by default, as the
    visit's PDF; what facilities recorded stays as recorded). WeasyPrint is imported here: it
    is heavy and only the PDFs need it. ``portal``: where the whole book is read."""
    from weasyprint import HTML

    html = book_html(book, printed_at=printed_at, portal=portal, most=len(book.visits), lang=lang)
    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
