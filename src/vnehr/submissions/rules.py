"""Validation of one visit (one HOSO): field format from the national tables, catalogue codes in
force on the visit date, and the cross-field rules. Pure: no database; catalogue codes come from a
``CodeBook`` (the database snapshot in the service, the packaged lists in ``vnehr validate``).

Errors reject the visit; warnings are stored with it. Every issue names table, row and field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from vnehr import identity, papers
from vnehr.kit.clock import (
    EARLIEST_DAY,
    LATEST_DAY,
    VIETNAM,
    out_of_range,
    parse_day,
    parse_moment,
)
from vnehr.kit.errors import VnehrError
from vnehr.kit.i18n import LANGUAGES, texts
from vnehr.kit.logging import get_logger
from vnehr.kit.numerals import numbers_in
from vnehr.kit.settings import intake_pure_python
from vnehr.submissions.spec import (
    BIRTH_FIELDS,
    DATE_FIELDS,
    DATETIME_FIELDS,
    DAY_OR_MOMENT_FIELDS,
    DECIMAL_PLACES,
    MULTI_VALUE_FIELDS,
    ORDERED_MOMENTS,
    SAME_AS_XML1,
    table,
)
from vnehr.submissions.spec import tables as tables_spec

if TYPE_CHECKING:  # (xmlio reads with this module's checks: no import at run time)
    from vnehr.submissions.xmlio import TableDoc

try:  # the compiled reader and money check (D115, D120); without it, the same in Python
    from vnehr.submissions import _fast
except ImportError:  # pragma: no cover - a checkout used without installing
    _fast = None  # type: ignore[assignment]

#: Whether the compiled module is in use (``xmlio.pure_python`` turns it off for comparing);
#: ``VNEHR_INTAKE_PURE_PYTHON=true`` (``1``, ``yes``, ``on``; the environment or ``.env``): the
#: Python reader and checks only (to compare, or to rule the compiled module out).
COMPILED = [False]


def built_from(module: Any, source: Path) -> bool:
    """Whether the compiled ``module`` was built from ``source`` as it is now (when the source
    is there: an installed wheel ships the module alone). A module left from an earlier
    checkout would call what its callers no longer match, or vouch for rows under rules the
    Python code has since tightened: it is not used (D123)."""
    if module is None:
        return False
    if not source.exists():
        return True
    built = getattr(module, "SOURCE_SHA256", "")
    return bool(built) and built == hashlib.sha256(source.read_bytes()).hexdigest()


if _fast is not None and not built_from(_fast, Path(__file__).with_name("_fast.pyx")):
    get_logger("vnehr.intake").warning(
        "compiled_reader_stale",
        note="vnehr.submissions._fast was built from another _fast.pyx; the intake runs in "
        "Python until `pip install -e .` (or `make run`/`make test`) builds it again",
    )
else:
    COMPILED[0] = _fast is not None and not intake_pure_python()  # (a yes or no, env or .env)

Severity = Literal["error", "warning"]
Rows = Mapping[str, list[dict[str, str]]]
CENT = Decimal("0.01")
#: Digits the money rules compute with: three numbers of 20 characters (``parse_number``)
#: multiplied, and their sums, are exact (Decimal's default 28 made them raise).
MONEY_DIGITS = 100
REFORM_DAY = date(2025, 7, 1)


class CodeBook(Protocol):
    def has(self, list_name: str, code: str, day: date) -> bool: ...

    def in_force(self, list_name: str, code: str, day: date) -> Any: ...


@dataclass(frozen=True, slots=True)
class Issue:
    code: str
    severity: Severity
    table: str | None = None
    row: int | None = None  # 1-based, as a person counts rows
    field: str | None = None
    params: dict[str, Any] = dc_field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        where = {"table": self.table or "", "row": self.row or "", "field": self.field or ""}
        return {
            "code": self.code,
            "severity": self.severity,
            "table": self.table,
            "row": self.row,
            "field": self.field,
            "message": texts(self.code, {**where, **self.params, **self._numbers()}),
            "detail": self.params,
        }

    def _numbers(self) -> dict[str, dict[str, str]]:
        """The amounts and quantities of a money rule as each language writes numbers
        ("503.677,82" / "503,677.82", D206), their decimals as written."""
        return {
            name: {language: numbers_in(str(self.params[name]), language) for language in LANGUAGES}
            for name in _NUMBERS.get(self.code, ())
            if self.params.get(name) not in (None, "")
        }


#: The parameters of money rules that are numbers: the text writes them in the reader's way,
#: the detail keeps them as the file wrote them (or as computed).
_NUMBERS: dict[str, tuple[str, ...]] = {
    "SUB-0132": ("value", "expected"),
    "SUB-0133": ("value", "expected"),
    "SUB-0134": ("value", "expected", "quantity", "price", "share"),
}


#: Issues listed per visit; beyond them one SUB-0117 says the rest were not listed (a file of
#: thousands of empty rows would otherwise make hundreds of thousands, and a receipt of tens of
#: megabytes).
MAX_ISSUES = 200


@dataclass(slots=True)
class Findings:
    issues: list[Issue] = dc_field(default_factory=list)
    summary: int | None = None  # where SUB-0117 stands in ``issues``, once the cap is reached

    def error(self, code: str, table: str | None = None, row: int | None = None,
              field_: str | None = None, **params: Any) -> None:  # fmt: skip
        self._add(code, "error", table, row, field_, params)

    def warning(self, code: str, table: str | None = None, row: int | None = None,
                field_: str | None = None, **params: Any) -> None:  # fmt: skip
        self._add(code, "warning", table, row, field_, params)

    def _add(self, code: str, severity: Severity, table: str | None, row: int | None,
             field_: str | None, params: dict[str, Any]) -> None:  # fmt: skip
        issues = self.issues
        if len(issues) < MAX_ISSUES:
            issues.append(Issue(code, severity, table, row, field_, params))
            return
        if self.summary is None:
            self.summary = len(issues)
            issues.append(Issue("SUB-0117", severity, params={"listed": MAX_ISSUES}))
        elif severity == "error" and issues[self.summary].severity != "error":
            # an error among the unlisted: the visit is rejected, and its last line says so
            issues[self.summary] = Issue("SUB-0117", "error", params={"listed": MAX_ISSUES})

    @property
    def full(self) -> bool:
        """The cap is reached with an error among the unlisted: more checks change nothing."""
        return self.summary is not None and self.issues[self.summary].severity == "error"

    @property
    def rejected(self) -> bool:
        return any(i.severity == "error" for i in self.issues)


# ------------------------------------------------------------------ value readers


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?|-?\.[0-9]+", re.ASCII)


def parse_number(value: str) -> Decimal | None:
    """A plain decimal number with "." as the separator (no exponent, no thousands marks)."""
    text = value.strip()
    if len(text) > 20 or not _NUMBER.fullmatch(text):  # no field holds more than 15 digits
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only lets numbers through
        return None


def is_number(value: str) -> bool:
    return _NUMBER.fullmatch(value.strip()) is not None


#: Births before it are not read (SUB-0113), nor after ``LATEST_DAY``.
BIRTH_EARLIEST_YEAR = 1850


def birth_of(value: str) -> tuple[int, date | None] | None:
    """NGAY_SINH: 12 characters where unknown day/month/time are zeros. (year, date or None)."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return None
    year = int(value[:4])
    month, day = int(value[4:6]), int(value[6:8])
    if not BIRTH_EARLIEST_YEAR <= year <= LATEST_DAY.year or (month == 0 and day != 0):
        # (a day without its month means nothing)
        return None
    if int(value[8:10]) > 23 or int(value[10:12]) > 59:  # the time of birth, 24 h
        return None
    if month == 0:
        return year, None
    try:
        return year, date(year, month, max(day, 1))
    except ValueError:
        return None


def patient_named(xml1: Mapping[str, str]) -> tuple[str, date | None, str | None]:
    """Who XML1 says its patient is, as ``identity.PatientMatch.differs`` compares it with what
    VNeID confirmed: HO_TEN, and NGAY_SINH as a day, or as "2006" / "2008-11" when its day (and
    month) are zeros (known to the year or month only)."""
    ngay_sinh = xml1.get("NGAY_SINH") or ""
    born = birth_of(ngay_sinh)
    partial = None
    if born and ngay_sinh[6:8] == "00":
        partial = f"{born[0]:04d}" if ngay_sinh[4:6] == "00" else f"{born[0]:04d}-{ngay_sinh[4:6]}"
    return (
        xml1.get("HO_TEN") or "",
        born[1] if born and partial is None else None,
        partial,
    )


# ------------------------------------------------------------------ the checks


def check_visit(
    tables: Rows,
    *,
    envelope_facility: str,
    codes: CodeBook,
    variants: Mapping[str, str] | None = None,
    unknown_fields: Iterable[tuple[str, int, str]] = (),
    checked: Mapping[str, Sequence[tuple[str, ...] | None]] | None = None,
) -> Findings:
    """Every rule for one visit. ``tables`` maps table name to its rows (field -> exact text);
    ``checked``, per table, what the compiled reader found (``TableDoc.checked``)."""
    found = Findings()
    variants = variants or {}
    for name, row_index, tag in unknown_fields:
        found.warning("SUB-0115", name, row_index + 1, tag)
    xml1 = (tables.get("XML1") or [{}])[0]
    begun = parse_moment(xml1.get("NGAY_VAO") or "") or parse_moment(xml1.get("NGAY_RA") or "")
    optional = _optional(begun.date() if begun else None)
    for name, rows in tables.items():
        check_rows(
            found,
            name,
            rows,
            variants.get(name, "4750"),
            optional=optional,
            checked=checked.get(name) if checked else None,
        )
    if found.full:
        return found
    if not tables.get("XML1"):
        found.error("SUB-0104", "XML1")
        return found
    summary = tables["XML1"][0]
    _cross_checks(found, tables, summary, envelope_facility, codes)
    papers.check_visit_papers(found, tables, envelope_facility)
    return found


def _optional(begun: date | None) -> frozenset[str]:
    """Required fields that may be empty for a visit begun on ``begun``: districts were
    abolished on 2025-07-01, the field stays in the tables but may be empty (and when the
    visit's dates are unreadable, itself an error, nobody can tell)."""
    if begun is None or begun >= REFORM_DAY:
        return frozenset({"MAHUYEN_CU_TRU"})
    return frozenset()


def check_paper_row(name: str, row: dict[str, str], begun: date | None) -> list[dict[str, Any]]:
    """The format of every field of one row of a paper table sent without its visit file
    (the papers API: ``papers.RowCheck``), as issues: the checks the same row gets in a visit
    file, for a visit begun on ``begun``."""
    found = Findings()
    check_rows(found, name, [row], optional=_optional(begun))
    return [issue.as_dict() for issue in found.issues]


def check_rows(
    found: Findings,
    name: str,
    rows: list[dict[str, str]],
    variant: str = "4750",
    optional: frozenset[str] = frozenset(),
    checked: Sequence[tuple[str, ...] | None] | None = None,
) -> None:
    """Format of every field of every row of one table (``optional``: required fields that may
    be empty in this case; ``checked``: per row, what the compiled reader found, as
    ``TableDoc.checked``)."""
    checks = _field_checks(name, table(name, variant).fields)
    for index, row in enumerate(rows, start=1):
        if found.full:
            return
        if checked is not None:
            blank = checked[index - 1]
            if blank is not None and optional.issuperset(blank):
                continue  # the compiled reader found nothing to say (D115)
        _check_fields(found, name, index, row, checks, optional)


def check_checkin(doc: TableDoc, *, facility: str, codes: CodeBook) -> Findings:
    """Every rule for an XML0 check-in (D62) as ``xmlio.read_checkin`` read it: the fields'
    format (only for the rows the compiled reader could not vouch for, as in a visit file), what
    the document holds that cannot be read, each row's facility, codes, identity and card, its
    moments in order and not ahead of now, and each visit once."""
    found = Findings()
    rows = doc.rows
    for code, row_index, tag in doc.unreadable:
        found.error(code, "XML0", None if row_index is None else row_index + 1, tag)
    for row_index, tag in doc.unknown:
        found.warning("SUB-0115", "XML0", row_index + 1, tag)
    check_rows(found, "XML0", rows, checked=doc.checked)
    _check_order(found, {"XML0": rows})
    first_row: dict[str, int] = {}
    for index, row in enumerate(rows, start=1):
        if found.full:
            break
        if (row.get("MA_CSKCB") or "").strip() != facility:
            found.error(
                "SUB-0152", "XML0", index, "MA_CSKCB", value=row.get("MA_CSKCB"), expected=facility
            )
        key = (row.get("MA_LK") or "").strip()
        if key and key in first_row:
            found.error("SUB-0153", "XML0", index, "MA_LK", value=key, first=first_row[key])
        first_row.setdefault(key, index)
        _check_not_ahead(found, "XML0", index, row, ("NGAY_VAO", "NGAY_VAO_NOI_TRU", "NGAY_YL"))
        begun = parse_moment(row.get("NGAY_VAO") or "")
        if begun is not None:
            _check_row_codes(found, "XML0", index, row, codes, begun.date())
        _check_identity(found, row, begun.date() if begun else None, "XML0", index)
    return found


_PLAIN, _MOMENT, _DAY, _NUMBER_KIND, _BIRTH, _DAY_OR_MOMENT = range(6)
#: The kinds above by name, for the compiled reader (``xmlio._plan``).
KINDS = ("plain", "moment", "day", "number", "birth", "day_or_moment")

#: (name, required, max length, several values, kind, decimal places or None)
_Check = tuple[str, bool, int | None, bool, int, int | None]
_CHECKS: dict[tuple[str, int], tuple[Any, tuple[_Check, ...]]] = {}


def _field_checks(name: str, fields: Any) -> tuple[_Check, ...]:
    """Per field of a table, what to check, worked out once per table (the spec's field
    tuple, kept alive here) instead of once per row."""
    found = _CHECKS.get((name, id(fields)))
    if found is not None:
        return found[1]
    places = DECIMAL_PLACES.get(name, {})
    checks = []
    for spec in fields:
        if spec.name in BIRTH_FIELDS:
            kind = _BIRTH
        elif spec.name in DAY_OR_MOMENT_FIELDS:
            kind = _DAY_OR_MOMENT
        elif spec.name in DATETIME_FIELDS:
            kind = _MOMENT
        elif spec.name in DATE_FIELDS:
            kind = _DAY
        elif spec.type == "number":
            kind = _NUMBER_KIND
        else:
            kind = _PLAIN
        multi = spec.name in MULTI_VALUE_FIELDS
        checks.append((spec.name, spec.required, spec.max, multi, kind, places.get(spec.name)))
    _CHECKS[(name, id(fields))] = (fields, tuple(checks))
    return _CHECKS[(name, id(fields))][1]


def field_checks(name: str, fields: Any) -> tuple[_Check, ...]:
    """What ``check_rows`` checks in each field of a table (``fields``: its spec's), for the
    compiled reader, which must agree with it."""
    return _field_checks(name, fields)


def _check_fields(
    found: Findings,
    name: str,
    index: int,
    row: dict[str, str],
    checks: tuple[_Check, ...],
    optional: frozenset[str],
) -> None:
    for field, required, longest, multi, kind, places in checks:
        value = row.get(field)
        if not value or value.isspace():  # absent, empty or blank
            if required and field not in optional:
                found.error("SUB-0110", name, index, field)
            continue
        if longest is not None and len(value) > longest:
            found.error("SUB-0111", name, index, field, length=len(value), max=longest)
            continue
        if kind == _PLAIN:
            continue
        for part in value.split(";") if multi else (value,):
            if kind == _MOMENT:
                if parse_moment(part) is None:
                    _not_a_date(found, "SUB-0113", name, index, field, part)
            elif kind == _DAY:
                if parse_day(part) is None:
                    _not_a_date(found, "SUB-0114", name, index, field, part)
            elif kind == _NUMBER_KIND:
                if part.isascii() and part.isdigit():
                    continue  # (most numbers are whole: checked without the pattern)
                if places is not None and _WITHIN[places].fullmatch(part.strip()):
                    continue  # (a number with its places in one pattern: the usual case)
                if not is_number(part):
                    found.error("SUB-0112", name, index, field, value=part[:40])
                elif places is not None:
                    found.error("SUB-0118", name, index, field, value=part, places=places)
            elif kind == _BIRTH:  # zeros for what is not known; 8 characters in some tables
                if longest == 8:
                    if len(part) != 8 or birth_of(part + "0000") is None:
                        found.error("SUB-0114", name, index, field, value=part)
                elif birth_of(part) is None:
                    found.error("SUB-0113", name, index, field, value=part)
            elif len(part) == 8:  # _DAY_OR_MOMENT
                if parse_day(part) is None:
                    _not_a_date(found, "SUB-0114", name, index, field, part)
            elif parse_moment(part) is None:
                _not_a_date(found, "SUB-0113", name, index, field, part)


def _not_a_date(found: Findings, code: str, name: str, index: int, field: str, part: str) -> None:
    """``part`` is not read as a day or moment: out of the tables' days (SUB-0119, which a
    facility must hear as such: "no date" written as year 1), or ``code``, not a date at all."""
    if out_of_range(part):
        found.error("SUB-0119", name, index, field, value=part, **_RANGE)
    else:
        found.error(code, name, index, field, value=part)


#: The days SUB-0119 names.
_RANGE = {"earliest": EARLIEST_DAY.isoformat(), "latest": LATEST_DAY.isoformat()}


#: A number with at most N decimal places, trailing zeros not counted ("25300.000" has 2).
_WITHIN = {
    places: re.compile(
        rf"-?(?:[0-9]+(?:\.(?=[0-9])[0-9]{{0,{places}}}0*)?|\.(?=[0-9])[0-9]{{0,{places}}}0*)",
        re.ASCII,
    )
    for places in (2, 3)
}


def _money(row: Mapping[str, str], name: str) -> Decimal:
    return parse_number(row.get(name) or "0") or Decimal(0)


def _cross_checks(
    found: Findings, tables: Rows, xml1: dict[str, str], facility: str, codes: CodeBook
) -> None:
    ma_lk = xml1.get("MA_LK", "")
    # the same visit key in every table
    for name, rows in tables.items():
        for index, row in enumerate(rows, start=1):
            if name != "XML1" and row.get("MA_LK", ma_lk) != ma_lk:
                found.error(
                    "SUB-0131", name, index, "MA_LK", expected=ma_lk, value=row.get("MA_LK")
                )
    if (xml1.get("MA_CSKCB") or "").strip() != facility:
        found.error(
            "SUB-0139", "XML1", 1, "MA_CSKCB", value=xml1.get("MA_CSKCB"), expected=facility
        )
    start = parse_moment(xml1.get("NGAY_VAO") or "")
    end = parse_moment(xml1.get("NGAY_RA") or "")
    _check_not_ahead(found, "XML1", 1, xml1, ("NGAY_VAO", "NGAY_RA"))
    _check_order(found, tables)
    _check_repeated(found, tables, xml1)
    known = end or start
    if known is not None:
        # (without a well-formed date, which is itself an error, nothing is checked against a
        # made-up day)
        day = known.date()
        _check_codes(found, tables, codes, day)
        _check_places(found, xml1, codes, start.date() if start else day)
    _check_money(found, tables, xml1)
    _check_days(found, xml1, start, end)
    _check_identity(found, xml1, known.date() if known else None)


#: How far ahead of the hub's clock a facility's clock may run before its moments are
#: impossible (a visit is sent when it ends: it cannot end later than it is received).
CLOCK_SKEW = timedelta(minutes=10)


def _check_not_ahead(
    found: Findings, name: str, index: int, row: dict[str, str], fields: tuple[str, ...]
) -> None:
    """A visit that began or ended after the moment it is checked (a wrong year, a clock set
    wrong) would count as sent on time and sort first in the health book. The issue shows the
    hub's now and the tolerance, not their sum (which is no time anyone's clock showed)."""
    now = datetime.now(VIETNAM)
    latest = (now + CLOCK_SKEW).strftime("%Y%m%d%H%M")
    for field_name in fields:
        value = row.get(field_name) or ""
        # (well-formed moments compare as text; others are errors of their own)
        if value > latest and parse_moment(value) is not None:
            found.error("SUB-0148", name, index, field_name, value=value,
                        now=now.strftime("%Y%m%d%H%M"), minutes=_SKEW_MINUTES)  # fmt: skip


_SKEW_MINUTES = int(CLOCK_SKEW.total_seconds() // 60)


def _check_repeated(found: Findings, tables: Rows, xml1: dict[str, str]) -> None:
    """What the referral and the re-exam appointment repeat from XML1, when they give it, is
    what XML1 says (spaces around and between words, and around ";", aside)."""
    for name, fields in SAME_AS_XML1.items():
        for index, row in enumerate(tables.get(name) or [], start=1):
            for field, source in fields.items():
                mine = row.get(field)
                if not mine or mine.isspace():
                    continue
                summary = xml1.get(source) or ""
                if _same_text(mine, field) != _same_text(summary, field):
                    found.error("SUB-0147", name, index, field, value=mine[:100],
                                expected=summary[:100])  # fmt: skip


def _same_text(value: str, field: str) -> object:
    if field in MULTI_VALUE_FIELDS:
        return [" ".join(part.split()) for part in value.split(";")]
    return " ".join(value.split())


@cache
def _ordered_in(name: str) -> tuple[tuple[str, str], ...]:
    """The pairs of ``ORDERED_MOMENTS`` a table carries (either variant)."""
    fields = {f.name for key, spec in tables_spec().items() if key.partition("_")[0] == name
              for f in spec.fields}  # fmt: skip
    return tuple((a, b) for a, b in ORDERED_MOMENTS if a in fields and b in fields)


def _check_order(found: Findings, tables: Rows) -> None:
    """In every row, a moment that must not come before another (NGAY_RA and NGAY_VAO, the
    inpatient admission, an order's execution and its result after the order)."""
    for name, rows in tables.items():
        pairs = _ordered_in(name)
        if not pairs:
            continue
        for index, row in enumerate(rows, start=1):
            for later, earlier in pairs:
                after, before = row.get(later), row.get(earlier)
                # (well-formed moments, yyyyMMddHHmm, compare as text; others are errors of
                # their own)
                if not after or not before or after >= before:
                    continue
                if parse_moment(after) is None or parse_moment(before) is None:
                    continue
                if later == "NGAY_RA":
                    found.error("SUB-0130", name, index, later, start=before, end=after)
                else:
                    found.error(
                        "SUB-0145", name, index, later, value=after, other=earlier, limit=before
                    )


#: Coded fields checked against their list in every table that carries them (XML1, and the
#: summary, referral and re-exam tables that repeat them).
CODED_FIELDS = (
    ("MA_LOAI_KCB", "care-type"),
    ("KET_QUA_DTRI", "treatment-result"),
    ("MA_LOAI_RV", "discharge-type"),
    ("GIOI_TINH", "gender"),
    ("MA_DOITUONG_KCB", "patient-category"),
)
_CODED = frozenset(f for f, _ in CODED_FIELDS) | {"MA_BENH_CHINH", "MA_BENH_KT"}


@cache
def _tables_with_codes() -> frozenset[str]:
    return frozenset(
        name.partition("_")[0]
        for name, spec in tables_spec().items()
        if _CODED.intersection(f.name for f in spec.fields)
    )


def _check_codes(found: Findings, tables: Rows, codes: CodeBook, day: date) -> None:
    with_codes = _tables_with_codes()
    for name, rows in tables.items():
        if name not in with_codes:
            continue  # drug, service and result lines carry no coded field
        for index, row in enumerate(rows, start=1):
            _check_row_codes(found, name, index, row, codes, day)


def _check_row_codes(
    found: Findings, name: str, index: int, row: dict[str, str], codes: CodeBook, day: date
) -> None:
    for field_name, list_name in CODED_FIELDS:
        value = (row.get(field_name) or "").strip()
        if value and not codes.has(list_name, value, day):
            found.error(
                "SUB-0120",
                name,
                index,
                field_name,
                value=value,
                catalog=list_name,
                on=day.isoformat(),
            )
    main = (row.get("MA_BENH_CHINH") or "").strip()
    if main and not codes.has("icd10", main, day):
        found.error("SUB-0121", name, index, "MA_BENH_CHINH", value=main)
    secondary = [c.strip() for c in (row.get("MA_BENH_KT") or "").split(";") if c.strip()]
    if len(secondary) > 12:
        found.error("SUB-0116", name, index, "MA_BENH_KT", count=len(secondary))
    for code in secondary:
        if not codes.has("icd10", code, day):
            found.error("SUB-0121", name, index, "MA_BENH_KT", value=code)


def _check_places(found: Findings, xml1: dict[str, str], codes: CodeBook, where_day: date) -> None:
    """Where the patient lives, by the units in force when the visit began."""
    province = (xml1.get("MATINH_CU_TRU") or "").strip()
    if province and not codes.has("province", province[-2:], where_day):
        found.error(
            "SUB-0122", "XML1", 1, "MATINH_CU_TRU", value=province, on=where_day.isoformat()
        )
    district = (xml1.get("MAHUYEN_CU_TRU") or "").strip()
    if district:
        if where_day >= REFORM_DAY:
            found.warning("SUB-0123", "XML1", 1, "MAHUYEN_CU_TRU", value=district)
        elif not codes.has("district", district, where_day):
            found.error(
                "SUB-0122", "XML1", 1, "MAHUYEN_CU_TRU", value=district, on=where_day.isoformat()
            )
    ward = (xml1.get("MAXA_CU_TRU") or "").strip()
    if ward and not codes.has("ward", ward, where_day):
        found.error("SUB-0122", "XML1", 1, "MAXA_CU_TRU", value=ward, on=where_day.isoformat())
    elif ward and province and codes.has("province", province[-2:], where_day):
        home = _province_of(codes, ward, where_day)
        if home is not None and home != province[-2:]:
            found.error("SUB-0124", "XML1", 1, "MAXA_CU_TRU", value=ward, province=province,
                        found=home, on=where_day.isoformat())  # fmt: skip


def _province_of(codes: CodeBook, ward: str, day: date) -> str | None:
    """The province a ward belonged to on ``day`` (through its district before the reform)."""
    unit = codes.in_force("ward", ward, day)
    for _ in range(3):
        if unit is None or unit.parent_code is None:
            return None
        if unit.parent_list == "province":
            return str(unit.parent_code)
        unit = codes.in_force(unit.parent_list, unit.parent_code, day)
    return None


def _check_money(found: Findings, tables: Rows, xml1: dict[str, str]) -> None:
    """The line amounts, their sum and T_BHTT (``check_money_decimal``): worked out on
    integers in C for a visit whose numbers are plain, where it finds nothing wrong (D120);
    the Decimal code decides everything else, and says what is wrong."""
    if COMPILED[0] and _fast.money_clean(tables, xml1):
        return
    check_money_decimal(found, tables, xml1)


def check_money_decimal(found: Findings, tables: Rows, xml1: dict[str, str]) -> None:
    """The money rules in Decimal, the rule (and the reference of ``_fast.money_clean``):
    THANH_TIEN_BV = SO_LUONG x DON_GIA (XML3: x TYLE_TT_DV / 100) to 0.01 half up, T_TONGCHI_BV
    the sum of THANH_TIEN_BV, T_BHTT = T_TONGCHI_BH - T_BNCCT, both to 0.01 (half to even).
    Exact: numbers of up to 20 characters make products of up to 60 digits (D120)."""
    with localcontext() as context:
        context.prec = MONEY_DIGITS
        total = Decimal(0)
        for name, price in (("XML2", "DON_GIA"), ("XML3", "DON_GIA_BV")):
            for index, row in enumerate(tables.get(name, []), start=1):
                amount = _money(row, "THANH_TIEN_BV")
                total += amount
                quantity, unit = (
                    parse_number(row.get("SO_LUONG") or ""),
                    parse_number(row.get(price) or ""),
                )
                if quantity is None or unit is None:
                    continue
                # XML3 (4750 correction): x TYLE_TT_DV, the share of a service paid for, in % (a
                # bed day split between two departments on the same day is billed 50 + 50)
                share = parse_number(row.get("TYLE_TT_DV") or "") if name == "XML3" else None
                exact = quantity * unit if share is None else quantity * unit * share / 100
                expected = exact.quantize(CENT, rounding=ROUND_HALF_UP)
                if amount.quantize(CENT, rounding=ROUND_HALF_UP) != expected:
                    found.error(
                        "SUB-0134", name, index, "THANH_TIEN_BV", value=str(amount),
                        expected=str(expected), quantity=str(quantity), price=str(unit),
                        share="" if share is None or share == 100 else f" × {share}%",
                    )  # fmt: skip
        declared = parse_number(xml1.get("T_TONGCHI_BV") or "")
        if declared is not None and declared.quantize(CENT) != total.quantize(CENT):
            found.error(
                "SUB-0132", "XML1", 1, "T_TONGCHI_BV", value=str(declared), expected=str(total)
            )
        bh, cct, bhtt = (
            parse_number(xml1.get(k) or "") for k in ("T_TONGCHI_BH", "T_BNCCT", "T_BHTT")
        )
        if (
            bh is not None
            and cct is not None
            and bhtt is not None
            and (bh - cct).quantize(CENT) != bhtt.quantize(CENT)
        ):
            found.error("SUB-0133", "XML1", 1, "T_BHTT", value=str(bhtt), expected=str(bh - cct))


def _check_days(
    found: Findings, xml1: dict[str, str], start: datetime | None, end: datetime | None
) -> None:
    care = (xml1.get("MA_LOAI_KCB") or "").strip()
    declared = parse_number(xml1.get("SO_NGAY_DTRI") or "")
    if declared is None or start is None or end is None:
        return
    if care in ("01", "07", "09"):
        expected = 0
    elif care in ("02", "03", "04", "06"):
        expected = (end.date() - start.date()).days + 1
    else:
        return  # 05 (days of drug use) and 08 (days with services) need data we do not have
    if declared != expected:
        found.error(
            "SUB-0135",
            "XML1",
            1,
            "SO_NGAY_DTRI",
            value=str(declared),
            expected=expected,
            care_type=care,
        )


def _check_identity(
    found: Findings, xml1: dict[str, str], day: date | None, table: str = "XML1", index: int = 1
) -> None:
    """SO_CCCD, NGAY_SINH and GIOI_TINH agree; the cards are well formed and cover ``day``
    (XML1, or a check-in's row)."""
    number = (xml1.get("SO_CCCD") or "").strip()
    sex = {"1": "male", "2": "female"}.get((xml1.get("GIOI_TINH") or "").strip())
    born = birth_of(xml1.get("NGAY_SINH") or "")  # (its format is checked with the fields)
    if number:
        kind = identity.classify_document_number(number)
        if kind == "personal_id":
            birth_date = born[1] if born and born[1] else (date(born[0], 1, 1) if born else None)
            try:
                identity.check_personal_id(
                    number,
                    sex=sex,  # type: ignore[arg-type]
                    birth_date=birth_date,
                    any_birthplace=True,
                )
            except VnehrError as exc:
                found.error(
                    "SUB-0136", table, index, "SO_CCCD", cause=exc.code, reason=exc.messages()
                )
            else:
                if number[:3] not in identity.PERSONAL_ID_PROVINCE_CODES:
                    # a birth registered abroad carries a country code here (D57)
                    found.warning("SUB-0146", table, index, "SO_CCCD", prefix=number[:3])
        elif kind == "other":
            found.warning("SUB-0143", table, index, "SO_CCCD")
    cards = [c.strip() for c in (xml1.get("MA_THE_BHYT") or "").split(";") if c.strip()]
    starts = (xml1.get("GT_THE_TU") or "").split(";")
    ends = (xml1.get("GT_THE_DEN") or "").split(";")
    covered = well_formed = False
    for position, card in enumerate(cards):
        try:
            identity.check_insurance_card(card)
        except VnehrError as exc:
            found.error(
                "SUB-0137",
                table,
                index,
                "MA_THE_BHYT",
                value=card,
                cause=exc.code,
                reason=exc.messages(),
            )
            continue
        well_formed = True
        valid_from = parse_day(starts[position].strip()) if position < len(starts) else None
        valid_to = parse_day(ends[position].strip()) if position < len(ends) else None
        if valid_from and valid_to and valid_to < valid_from:
            found.error(
                "SUB-0138",
                table,
                index,
                "GT_THE_DEN",
                card=card,
                start=str(valid_from),
                end=str(valid_to),
            )
        elif day is None or (
            (valid_from is None or valid_from <= day) and (valid_to is None or valid_to >= day)
        ):
            covered = True
    if well_formed and not covered and day is not None:
        found.warning("SUB-0144", table, index, "GT_THE_TU", card=cards[0], on=day.isoformat())
