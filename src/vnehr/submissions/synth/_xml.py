"""Writing the national XML: inner table documents and the GIAMDINHHS envelope (§1.1).

Conventions of the documents written here:

* UTF-8, declaration ``<?xml version="1.0" encoding="utf-8"?>``, one element per line, no
  indentation (whitespace between elements is ignored by readers and costs base64 bytes).
* Fields are written in the order of ``data/tables.json`` for the table and variant.
* Required fields are always written, as ``<NAME/>`` when empty; **optional fields that are
  empty are omitted**. Readers therefore see ``None`` (absent) for an empty optional field and
  ``""`` for an empty required one.
* Free-text fields (names, addresses, diagnoses, notes...; :data:`FREE_TEXT_FIELDS`) are wrapped
  in ``<![CDATA[...]]>`` as the BHXH generators do; every other value is escaped.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from vnehr.submissions.synth._visit import SynthVisit

_TABLES_JSON: Final = Path(__file__).resolve().parent.parent / "data" / "tables.json"
DECLARATION: Final = '<?xml version="1.0" encoding="utf-8"?>'
VARIANTS: Final = ("4750", "3176")

#: Free-text fields, written inside CDATA.
FREE_TEXT_FIELDS: Final = frozenset(
    {
        "HO_TEN", "DIA_CHI", "CHAN_DOAN_VAO", "CHAN_DOAN_RV", "LY_DO_VV", "LY_DO_VNT",
        "PP_DIEU_TRI", "PP_DIEUTRI", "GHI_CHU", "DU_PHONG", "TEN_THUOC", "TEN_DICH_VU",
        "TEN_VAT_TU", "TEN_CHI_SO", "MO_TA", "KET_LUAN", "DIEN_BIEN_LS", "HOI_CHAN",
        "PHAU_THUAT", "QT_BENHLY", "TOMTAT_KQ", "LIEU_DUNG", "CACH_DUNG", "HAM_LUONG",
        "DANG_BAO_CHE", "DAU_HIEU_LS", "HUONG_DIEU_TRI", "DON_VI", "GIAI_DOAN_BENH",
        "NGUYENNHAN_DINHCHI", "TEN_BS", "HO_TEN_CHA", "HO_TEN_ME", "NGUOI_GIAM_HO",
        "PHUONGTIEN_VC", "HOTEN_NGUOI_HT", "CHUCDANH_NGUOI_HT", "TINH_TRANG_CT",
    }
)  # fmt: skip
# Characters XML 1.0 cannot carry at all, even escaped.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str  # key in tables.json: XML1 ... or XML13_3176
    root: str
    list: str | None
    row: str | None
    fields: tuple[str, ...]
    required: frozenset[str]
    max_length: dict[str, int]


@cache
def _all_specs() -> dict[str, TableSpec]:
    raw = json.loads(_TABLES_JSON.read_text(encoding="utf-8"))
    specs: dict[str, TableSpec] = {}
    for name, spec in raw.items():
        if not spec["root"]:
            continue  # XML12: root element not known, never sent by facilities
        fields = spec["fields"]
        specs[name] = TableSpec(
            name=name,
            root=spec["root"],
            list=spec["list"],
            row=spec["row"],
            fields=tuple(f["name"] for f in fields),
            required=frozenset(f["name"] for f in fields if f["required"]),
            max_length={f["name"]: f["max"] for f in fields if f["max"] is not None},
        )
    return specs


def table_spec(table: str, variant: str = "4750") -> TableSpec:
    """The field list of ``table`` ("XML1" ... "XML15") in the given variant ("4750"/"3176")."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}, expected one of {VARIANTS}")
    specs = _all_specs()
    key = "XML13_3176" if table == "XML13" and variant == "3176" else table
    if key not in specs:
        raise ValueError(f"unknown table {table!r}")
    return specs[key]


def row_fields(table: str) -> tuple[str, ...]:
    """Keys of a row of ``table`` as :func:`make_visit` builds it: the 4750 fields, plus for
    XML13 the fields that only the 3176 variant has (so that one row can be written either way).
    """
    fields = table_spec(table).fields
    if table == "XML13":
        extra = tuple(f for f in table_spec(table, "3176").fields if f not in fields)
        return fields + extra
    return fields


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: str) -> str:
    if _ILLEGAL.search(value):
        raise ValueError(f"{name}: character not allowed in XML 1.0")
    if not value:
        return f"<{name}/>"
    body = _cdata(value) if name in FREE_TEXT_FIELDS else _escape(value)
    return f"<{name}>{body}</{name}>"


def _record(spec: TableSpec, row: dict[str, str], allowed: frozenset[str]) -> list[str]:
    unknown = [key for key in row if key not in allowed]
    if unknown:
        raise ValueError(f"{spec.name}: fields not in the table: {', '.join(sorted(unknown))}")
    lines = []
    for name in spec.fields:
        value = row.get(name, "")
        if value or name in spec.required:
            lines.append(_element(name, value))
    return lines


@cache
def _allowed(table: str) -> frozenset[str]:
    return frozenset(row_fields(table))


def table_document(table: str, rows: list[dict[str, str]], variant: str = "4750") -> bytes:
    """The inner XML document of one table (before base64), UTF-8.

    Repeating tables are written root > list > row*, flat tables (XML1, XML7, XML8, XML13,
    XML14...) with the fields directly under the root and exactly one row. A key of a row that
    is not a field of the table raises ``ValueError`` (XML13 rows may carry the fields of both
    variants; only those of ``variant`` are written).
    """
    spec = table_spec(table, variant)
    allowed = _allowed(table)
    lines = [DECLARATION, f"<{spec.root}>"]
    if spec.row is None:
        if len(rows) != 1:
            raise ValueError(f"{table} is a flat table: one row expected, got {len(rows)}")
        lines += _record(spec, rows[0], allowed)
    else:
        lines.append(f"<{spec.list}>")
        for row in rows:
            lines.append(f"<{spec.row}>")
            lines += _record(spec, row, allowed)
            lines.append(f"</{spec.row}>")
        lines.append(f"</{spec.list}>")
    lines.append(f"</{spec.root}>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _table_order(name: str) -> tuple[int, str]:
    digits = name[3:]
    return (int(digits), name) if digits.isdigit() else (10_000, name)


def _ended(visit: SynthVisit) -> date:
    if visit.ended is not None:
        return visit.ended.date()
    text = (visit.tables.get("XML1") or [{}])[0].get("NGAY_RA", "")
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date()  # noqa: DTZ007  (a calendar day)
    except ValueError:
        raise ValueError(f"{visit.ma_lk}: no discharge day; pass created=") from None


def envelope(
    visits: Sequence[SynthVisit],
    facility_code: str,
    *,
    created: date | None = None,
    variant: str = "4750",
) -> bytes:
    """The GIAMDINHHS document (§1.1): one HOSO per visit, one FILEHOSO per table present
    (``LOAIHOSO`` + ``NOIDUNGFILE`` = base64 of :func:`table_document`), tables in numeric
    order, ``SOLUONGHOSO`` = number of visits, an empty ``CHUKYDONVI`` (unsigned).

    ``created`` (``NGAYLAP``) defaults to the latest discharge day of the visits, so that the
    same visits always give the same bytes.
    """
    if not visits:
        raise ValueError("an envelope needs at least one visit")
    if created is None:
        created = max(_ended(v) for v in visits)
    parts = [
        DECLARATION,
        '<GIAMDINHHS xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        f"  <THONGTINDONVI>{_element('MACSKCB', facility_code)}</THONGTINDONVI>",
        "  <THONGTINHOSO>",
        f"    <NGAYLAP>{created:%Y%m%d}</NGAYLAP>",
        f"    <SOLUONGHOSO>{len(visits)}</SOLUONGHOSO>",
        "    <DANHSACHHOSO>",
    ]
    for visit in visits:
        parts.append("      <HOSO>")
        for name in sorted(visit.tables, key=_table_order):
            rows = visit.tables[name]
            if not rows:
                continue
            content = base64.b64encode(table_document(name, rows, variant)).decode("ascii")
            parts.append(
                f"        <FILEHOSO><LOAIHOSO>{name}</LOAIHOSO>"
                f"<NOIDUNGFILE>{content}</NOIDUNGFILE></FILEHOSO>"
            )
        parts.append("      </HOSO>")
    parts += ["    </DANHSACHHOSO>", "  </THONGTINHOSO>", "  <CHUKYDONVI/>", "</GIAMDINHHS>"]
    return ("\n".join(parts) + "\n").encode("utf-8")
