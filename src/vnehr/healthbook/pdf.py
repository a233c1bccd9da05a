"""A visit as a clean Vietnamese PDF (A4, DejaVu/Noto fonts), as VNeID offers for download."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from vnehr.healthbook import schemas as s
from vnehr.kit.clock import VIETNAM
from vnehr.kit.numerals import install as install_numerals

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _local(value: datetime | None, pattern: str = "%d/%m/%Y %H:%M") -> str:
    return value.astimezone(VIETNAM).strftime(pattern) if value else ""


_env.filters["local"] = _local
install_numerals(_env, "vi")


def visit_html(visit: s.Visit, *, holder_name: str, printed_at: datetime) -> str:
    return _env.get_template("visit.html").render(
        visit=visit, holder_name=holder_name, printed_at=printed_at
    )


def visit_pdf(visit: s.Visit, *, holder_name: str, printed_at: datetime) -> bytes:
    """The PDF bytes (WeasyPrint is imported here: it is heavy and only this needs it)."""
    from weasyprint import HTML

    html = visit_html(visit, holder_name=holder_name, printed_at=printed_at)
    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
