"""The XML boundary: the only module that reads the national documents.

Parsing is safe by construction: no DTD, no entity expansion, no network; caps on size, depth and
element count; the declared encoding must be UTF-8. Base64 inner documents are decoded and parsed
under the same caps. Text (CDATA included) is kept exactly as sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree

from vnehr.submissions import errors
from vnehr.submissions.spec import FREE_TEXT_FIELDS, Table, table

_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", re.I)
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.I)


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_depth: int = 32
    max_elements: int = 500_000


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


def parse(data: bytes, limits: Limits, *, what: str = "document") -> etree._Element:
    """A well-formed, DTD-free, UTF-8 XML document within the caps, or a ``FileRefused``."""
    if not data.strip():
        raise errors.EmptyBody(what=what)
    if len(data) > limits.max_bytes:
        raise errors.TooLarge(what=what, size=len(data), limit=limits.max_bytes)
    if _DOCTYPE.search(data):
        raise errors.DtdForbidden(what=what)
    declared = _DECLARATION.match(data)
    if declared and declared.group(1).decode("ascii").lower().replace("_", "-") not in (
        "utf-8",
        "utf8",
    ):
        raise errors.WrongEncoding(what=what, encoding=declared.group(1).decode("ascii"))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.WrongEncoding(what=what, encoding=f"not UTF-8 at byte {exc.start}") from exc
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise errors.NotWellFormed(
            what=what, line=exc.lineno or 0, column=exc.offset or 0, reason=str(exc.msg)
        ) from exc
    _check_shape(root, len(data), limits, what)
    return root


def _check_shape(root: etree._Element, size: int, limits: Limits, what: str) -> None:
    """The element count and depth caps, counted by libxml2's XPath (in C: walking the tree
    in Python cost as much as parsing it)."""
    if _too_deep(limits.max_depth)(root):
        raise errors.TooComplex(what=what, reason=f"deeper than {limits.max_depth}")
    if size > 4 * limits.max_elements and root.xpath("count(//*)") > limits.max_elements:
        # (an element takes at least 4 bytes, "<a/>": a smaller document cannot have too many)
        raise errors.TooComplex(what=what, reason=f"more than {limits.max_elements} elements")


@lru_cache(maxsize=8)
def _too_deep(depth: int) -> etree.XPath:
    """True when some element lies deeper than ``depth`` (the root is at depth 1)."""
    return etree.XPath("boolean(/" + "/".join(["*"] * (depth + 1)) + ")")


def b64decode(text: str, *, what: str) -> bytes:
    try:  # the usual case, one unbroken line: checked and decoded in C, twice as fast
        return binascii.a2b_base64(text, strict_mode=True)  # (a str: no ASCII copy first)
    except ValueError:  # binascii.Error, or a character outside ASCII
        pass  # line breaks, or something to refuse: the general path decides
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.BadBase64(what=what) from exc


def text_of(element: etree._Element | None) -> str | None:
    """The element's text exactly as sent ("" for an empty element, None when absent)."""
    if element is None:
        return None
    return element.text or ""


# ------------------------------------------------------------------ envelope


@dataclass(slots=True)
class FileEntry:
    kind: str  # LOAIHOSO, e.g. "XML1"
    content: str  # NOIDUNGFILE (base64)


@dataclass(slots=True)
class Envelope:
    facility_code: str
    created: str | None
    declared_count: str | None
    records: list[list[FileEntry]] = field(default_factory=list)  # one list per HOSO
    signature: etree._Element | None = None
    root: etree._Element | None = None


def read_envelope(data: bytes, limits: Limits) -> Envelope:
    root = parse(data, limits, what="GIAMDINHHS")
    if etree.QName(root).localname != "GIAMDINHHS":
        raise errors.WrongRoot(expected="GIAMDINHHS", found=etree.QName(root).localname)
    facility = text_of(root.find("THONGTINDONVI/MACSKCB"))
    listing = root.find("THONGTINHOSO/DANHSACHHOSO")
    if not facility or listing is None:
        raise errors.EnvelopeIncomplete(
            missing="THONGTINDONVI/MACSKCB" if not facility else "THONGTINHOSO/DANHSACHHOSO"
        )
    envelope = Envelope(
        facility_code=facility.strip(),
        created=text_of(root.find("THONGTINHOSO/NGAYLAP")),
        declared_count=text_of(root.find("THONGTINHOSO/SOLUONGHOSO")),
        signature=root.find("CHUKYDONVI"),
        root=root,
    )
    for record in listing.findall("HOSO"):
        envelope.records.append(
            [
                FileEntry(
                    kind=(text_of(entry.find("LOAIHOSO")) or "").strip().upper(),
                    content=text_of(entry.find("NOIDUNGFILE")) or "",
                )
                for entry in record.findall("FILEHOSO")
            ]
        )
    if not envelope.records:
        raise errors.NoVisits()
    return envelope


# ------------------------------------------------------------------ inner tables


@dataclass(slots=True)
class TableDoc:
    name: str
    variant: str
    rows: list[dict[str, str]]
    unknown: list[tuple[int, str]]  # (row index, element name) not in the spec


def variant_of(name: str, root: etree._Element) -> str:
    if name == "XML13" and root.find("MA_CSKCB_DI") is not None:
        return "3176"
    return "4750"


def read_table(name: str, data: bytes, limits: Limits) -> TableDoc:
    """An inner document (already base64-decoded) as rows of field -> exact text."""
    root = parse(data, limits, what=name)
    spec: Table = table(name, variant_of(name, root))
    localname = etree.QName(root).localname
    if spec.root is not None and localname != spec.root:
        raise errors.WrongRoot(expected=spec.root, found=localname)
    if spec.repeating:
        container = root.find(spec.list or "")
        elements = [] if container is None else container.findall(spec.row or "")
    else:
        elements = [root]
    known = spec.by_name
    rows: list[dict[str, str]] = []
    unknown: list[tuple[int, str]] = []
    for index, element in enumerate(elements):
        row: dict[str, str] = {}
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comments and processing instructions
            if tag[0] == "{":  # a namespaced element: compare local names
                tag = tag.rpartition("}")[2]
            if tag in known:
                row[tag] = child.text or ""
            elif tag not in ("CHUKYDONVI",):
                unknown.append((index, tag))
        rows.append(row)
    variant = "3176" if spec.name.endswith("_3176") else "4750"
    return TableDoc(name=name, variant=variant, rows=rows, unknown=unknown)


def read_checkin(data: bytes, limits: Limits) -> TableDoc:
    """The XML0 check-in document (sent alone, not inside GIAMDINHHS)."""
    return read_table("XML0", data, limits)


# ------------------------------------------------------------------ writing back


def write_table(name: str, rows: list[dict[str, str]], variant: str = "4750") -> bytes:
    """A table as the national XML again: fields in the standard's order, free text in CDATA,
    UTF-8 with a declaration (how a stored visit is exported or relayed)."""
    spec = table(name, variant)
    root = etree.Element(spec.root or name)
    parent = etree.SubElement(root, spec.list) if spec.list else root
    for row in rows:
        element = etree.SubElement(parent, spec.row) if spec.row else parent
        for f in spec.fields:
            if f.name not in row:
                continue
            child = etree.SubElement(element, f.name)
            value = row[f.name]
            child.text = etree.CDATA(value) if f.name in FREE_TEXT_FIELDS and value else value
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def write_envelope(facility_code: str, created: str, records: list[dict[str, bytes]]) -> bytes:
    """A GIAMDINHHS document: one HOSO per record (table name -> inner document), each inner
    document base64-encoded in NOIDUNGFILE, an empty CHUKYDONVI for the facility to sign."""
    root = etree.Element("GIAMDINHHS")
    unit = etree.SubElement(root, "THONGTINDONVI")
    etree.SubElement(unit, "MACSKCB").text = facility_code
    info = etree.SubElement(root, "THONGTINHOSO")
    etree.SubElement(info, "NGAYLAP").text = created
    etree.SubElement(info, "SOLUONGHOSO").text = str(len(records))
    listing = etree.SubElement(info, "DANHSACHHOSO")
    for record in records:
        hoso = etree.SubElement(listing, "HOSO")
        for kind in sorted(record, key=lambda name: int(name[3:])):
            entry = etree.SubElement(hoso, "FILEHOSO")
            etree.SubElement(entry, "LOAIHOSO").text = kind
            etree.SubElement(entry, "NOIDUNGFILE").text = base64.b64encode(record[kind]).decode()
    etree.SubElement(root, "CHUKYDONVI")
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data
