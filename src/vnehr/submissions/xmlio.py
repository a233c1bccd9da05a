"""The XML boundary: the only module that reads the national documents.

Parsing is safe by construction: no DTD, no entity expansion, no network; caps on size, depth and
element count; the declared encoding must be UTF-8. Base64 inner documents are decoded and parsed
under the same caps. Text (CDATA included) is kept exactly as sent.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache

from lxml import etree

from vnehr.kit.i18n import texts
from vnehr.submissions import errors
from vnehr.submissions.rules import COMPILED, KINDS, field_checks
from vnehr.submissions.spec import FREE_TEXT_FIELDS, Table, table

try:  # the compiled reader (D115), built by every install; without it, the same in Python
    from vnehr.submissions import _fast
except ImportError:  # pragma: no cover - a checkout used without installing
    _fast = None  # type: ignore[assignment]

#: Whether the compiled reader (D115) is in use: the rules' flag (``pure_python`` turns both
#: off).
_compiled = COMPILED

_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", re.I)
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.I)
#: Where "<!DOCTYPE" is only text: CDATA sections, comments and processing instructions, each
#: ending where XML ends it (the first "]]>", "-->" or "?>"; a "<" cannot occur in attribute
#: values), or at the end of the data when never closed (one match for the rest: an unclosed
#: "<!--" repeated made the search quadratic, 31 s for 160 KB).
_TEXT_ONLY = re.compile(rb"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)|<\?.*?(?:\?>|\Z)", re.S)
_UTF8_BOM = b"\xef\xbb\xbf"
#: libxml2 refuses a text node over 10,000,000 characters unless told the document is huge; a
#: document under our own size cap may hold one (a large inner table in NOIDUNGFILE).
HUGE_TEXT = 9_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_depth: int = 32
    max_elements: int = 500_000
    max_visits: int = 1_000  # HOSO in one file (a visit's file holds one; a day's, hundreds)


class _Refuse(etree.Resolver):  # type: ignore[misc]
    """Every external DTD, entity or include resolves to nothing: libxml2 opens no file, even
    for a document that slipped past the DOCTYPE check."""

    def resolve(self, url: str | None, pubid: str | None, context: object) -> object:
        return self.resolve_string("", context)


_DS = "http://www.w3.org/2000/09/xmldsig#"
_parsers = threading.local()  # a parser serves one thread at a time


def _parser(huge: bool = False) -> etree.XMLParser:
    found: etree.XMLParser | None = getattr(_parsers, "huge" if huge else "usual", None)
    if found is None:
        found = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=huge,
            remove_blank_text=False,
            collect_ids=False,
        )
        found.resolvers.add(_Refuse())
        setattr(_parsers, "huge" if huge else "usual", found)
    return found


def parse(
    data: bytes, limits: Limits, *, what: str = "document", depth: bool = True
) -> etree._Element:
    """A well-formed, DTD-free, UTF-8 XML document within the caps, or a ``FileRefused``.
    ``depth=False``: the caller checks the depth cap itself (``read_table``, which looks at
    the depth anyway)."""
    if not data or data.isspace():
        raise errors.EmptyBody(what=what)
    if len(data) > limits.max_bytes:
        raise errors.TooLarge(what=what, size=len(data), limit=limits.max_bytes)
    head = data[:4]
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 or UTF-32 (NUL bytes are valid UTF-8, but no XML document holds one)
        raise errors.WrongEncoding(
            {"encoding": "UTF-16 or UTF-32"}, what=what, encoding=texts("xml.encoding.utf16")
        )
    if len(data) > 4 * limits.max_elements and _nodes(data) > limits.max_elements:
        # (first: the cheapest refusal of a huge document. A node takes at least 4 bytes,
        # "<a/>": a smaller document cannot have too many)
        raise _too_complex(what, "elements", limits.max_elements)
    if _DOCTYPE.search(data) and _DOCTYPE.search(_TEXT_ONLY.sub(b"", data)):
        raise errors.DtdForbidden(what=what)  # (one quoted inside CDATA or a comment is text)
    declared = _DECLARATION.match(data[3:] if data.startswith(_UTF8_BOM) else data)
    if declared and declared.group(1).decode("ascii").lower().replace("_", "-") not in (
        "utf-8",
        "utf8",
    ):
        raise errors.WrongEncoding(what=what, encoding=declared.group(1).decode("ascii"))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.WrongEncoding(
            {"encoding": f"not UTF-8 at byte {exc.start}"},
            what=what,
            encoding=texts("xml.encoding.broken", {"at": exc.start + 1}),
        ) from exc
    try:
        root = etree.fromstring(data, _parser(huge=len(data) > HUGE_TEXT))
    except etree.XMLSyntaxError as exc:
        raise _not_well_formed(exc, what) from exc
    info = root.getroottree().docinfo
    if info.internalDTD is not None or info.doctype:  # (a second line behind the check above)
        raise errors.DtdForbidden(what=what)
    if (info.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise errors.WrongEncoding(what=what, encoding=info.encoding)
    if depth:
        _check_depth(root, limits, what)
    return root


#: libxml2's words for the usual faults of a facility's export, by its error number, as our
#: text (``xml.problem.*``); the parser's own words stay in the detail (and are quoted, for any
#: other fault).
_PROBLEMS = {
    4: "no_start",
    5: "extra_content",
    9: "bad_char",
    23: "entity_semicolon",
    38: "lt_in_attribute",
    39: "attribute_quotes",
    68: "bare_ampersand",
    73: "unclosed_start_tag",
    76: "tag_mismatch",
    77: "cut_short",
}
_WHERE = re.compile(r",? line \d+, column \d+$")
_TAGS = {
    "unclosed_start_tag": re.compile(r"Start Tag (?P<tag>\S+)"),
    "tag_mismatch": re.compile(r"mismatch: (?P<tag>\S+) line \d+ and (?P<closing>\S+)"),
    "cut_short": re.compile(r"in tag (?P<tag>\S+)"),
}


def _not_well_formed(exc: etree.XMLSyntaxError, what: str) -> errors.NotWellFormed:
    """SUB-0002 in words in every language: where the parser stopped (line, and column counted
    from 1 as editors do), and why, as our text for the usual faults; the parser's message in
    the detail."""
    said = _WHERE.sub("", str(exc.msg or "")).strip()
    problem = _PROBLEMS.get(exc.code or 0, "")
    if problem == "no_start" and said.startswith("Document is empty"):
        problem = "empty"
    elif problem == "bare_ampersand" and not said.startswith("xmlParseEntityRef"):
        problem = ""  # (the same number for a tag's invalid name: quoted as said)
    names: dict[str, str] = {}
    if problem in _TAGS:
        found = _TAGS[problem].search(said)
        names = found.groupdict() if found else {}
        if not found:
            problem = ""
    key = f"xml.problem.{problem or 'other'}"
    reason = texts(key, {"said": said, **names})
    return errors.NotWellFormed(
        {"reason": said},
        what=what,
        line=exc.lineno or 0,
        column=(exc.offset or 0) + 1,
        reason=reason,
    )


def _too_complex(what: str, cap: str, limit: int) -> errors.TooComplex:
    """SUB-0006 in words: over the cap of elements or of depth (``xml.complex.*``)."""
    machine = f"more than {limit} elements" if cap == "elements" else f"deeper than {limit}"
    return errors.TooComplex(
        {"reason": machine}, what=what, reason=texts(f"xml.complex.{cap}", {"limit": limit})
    )


def compiled() -> bool:
    """Whether inner tables are read (and their fields' format checked) by the compiled
    module: built and not turned off."""
    return _compiled[0]


@contextmanager
def pure_python() -> Iterator[None]:
    """Inner tables read and money checked in Python only, as without the compiled module
    (for comparing)."""
    before = _compiled[0]
    _compiled[0] = False
    try:
        yield
    finally:
        _compiled[0] = before


def _check_depth(root: etree._Element, limits: Limits, what: str) -> None:
    if _too_deep(limits.max_depth)(root):
        raise _too_complex(what, "depth", limits.max_depth)


def _nodes(data: bytes) -> int:
    """Elements, comments, processing instructions and CDATA sections (each begins with "<",
    an end tag with "</"), and attributes (each has its "="; one in text counts too, an
    overestimate that matters only near the cap). Counted in C before anything is built: a
    tree of millions of nodes or attributes takes gigabytes."""
    declaration = 1 if data.lstrip(_UTF8_BOM).startswith(b"<?xml") else 0
    return data.count(b"<") - data.count(b"</") - declaration + data.count(b"=")


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
    if len(element):  # a comment or processing instruction inside: its text is not the value
        return (element.text or "") + "".join(inner.tail or "" for inner in element)
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
    records = listing.findall("HOSO")
    if len(records) > limits.max_visits:
        raise errors.TooManyVisits(count=len(records), limit=limits.max_visits)
    for record in records:
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
    # SOLUONGHOSO left out or empty is not checked (nor by the portal); "02" is 2 (compared
    # as digits: int() of thousands of them is refused by Python itself)
    declared = (envelope.declared_count or "").strip()
    number = declared.lstrip("0") or "0"
    if declared and not (declared.isascii() and number.isdigit() and number == str(len(records))):
        raise errors.DeclaredCountMismatch(declared=declared[:20], count=len(records))
    return envelope


# ------------------------------------------------------------------ inner tables


@dataclass(slots=True)
class TableDoc:
    name: str
    variant: str
    rows: list[dict[str, str]]
    unknown: list[tuple[int, str]]  # (row index, element name) not in the spec
    #: what was sent but cannot be read as the table says: (code, row index or None, element)
    unreadable: list[tuple[str, int | None, str]] = field(default_factory=list)
    #: an XML0 check-in sent alone carries its own signature (CHUKYDONVI under the root)
    signed: bool = False
    #: per row, what the compiled reader found by the format checks of ``rules.check_rows``:
    #: the required fields that are blank or absent (every other field well-formed), or None
    #: when it cannot tell; None for the whole table when read in Python
    checked: list[tuple[str, ...] | None] | None = None


#: The fields only one variant of XML13 (the referral) has: QĐ 3176's form names the two
#: facilities by code and the patient's condition; QĐ 4750's names the places and the care.
_XML13_ONLY = {
    "3176": frozenset({"MA_CSKCB_DI", "MA_CSKCB_DEN", "TINH_TRANG_CT"}),
    "4750": frozenset({"MA_NOI_DI", "MA_NOI_DEN", "TEN_DICH_VU", "TEN_THUOC", "PP_DIEU_TRI"}),
}


def variant_for(name: str, fields: Iterable[str]) -> str:
    """Which variant of a table these field names are: XML13 by the fields only one of its
    forms has (more of 3176's than of 4750's: 3176, e.g. a referral leaving the optional
    MA_CSKCB_DI out); every other table has one form."""
    if name != "XML13":
        return "4750"
    present = set(fields)
    own = {v: len(present & only) for v, only in _XML13_ONLY.items()}
    return "3176" if own["3176"] > own["4750"] else "4750"


def variant_of(name: str, root: etree._Element) -> str:
    if name != "XML13":
        return "4750"
    return variant_for(name, (_local(c.tag) for c in root.iter() if isinstance(c.tag, str)))


def read_table(name: str, data: bytes, limits: Limits) -> TableDoc:
    """An inner document (already base64-decoded) as rows of field -> exact text."""
    root = parse(data, limits, what=name, depth=False)
    compiled = _compiled[0]
    # An element inside a field (root > field > element, or root > list > row > field >
    # element) is rare; without one, the document is shallow enough for every depth cap.
    shallow = 4 if table(name).repeating else 2
    nested = _fast.deeper(root, shallow) if compiled else _too_deep(shallow)(root)
    if nested:
        _check_depth(root, limits, name)
    spec: Table = table(name, variant_of(name, root))
    localname = etree.QName(root).localname
    if spec.root is not None and localname != spec.root:
        raise errors.WrongRoot(expected=spec.root, found=localname)
    # Comments, processing instructions or elements inside a field are rare: looked for
    # once per document, and only then field by field.
    odd = b"<!--" in data or data.find(b"<?", 6) >= 0
    mixed = nested or odd
    checked: list[tuple[str, ...] | None] | None = None
    fast = None
    # The plain case is read in C (D115). A check-in's signature lies deep beside its rows:
    # the compiled reader leaves it alone and gives up by itself on an element in a field.
    if compiled and not odd and (not nested or name == "XML0"):
        beside = b"CHUKYDONVI" if name == "XML0" else None
        plan = _plan(name, spec)
        fast = _fast.read_rows(root, _encoded(spec.list), _encoded(spec.row), plan, beside)
    if fast is not None:
        rows, unknown, unreadable, checked = fast
    else:
        rows, unknown, unreadable = _read_rows(name, spec, root, mixed)
    if b"\xcc" in data or b"\xcd" in data:
        # Combining marks (U+0300–U+036F start with these bytes in UTF-8): text written
        # decomposed (NFD), as some systems send Vietnamese. Kept composed (NFC), the form
        # searches and comparisons use, so the same words are the same text (D78); the
        # usual NFC file pays two byte searches.
        rows = [{k: unicodedata.normalize("NFC", v) for k, v in row.items()} for row in rows]
        checked = None  # (checked before; NFC may change a length)
    variant = "3176" if spec.name.endswith("_3176") else "4750"
    signed = name == "XML0" and root.find(f".//{{{_DS}}}Signature") is not None
    return TableDoc(name, variant, rows, unknown, unreadable, signed, checked)


_plans: dict[str, _fast.Plan] = {}


def _plan(name: str, spec: Table) -> _fast.Plan:
    """What the compiled reader needs of a table: its fields and the checks of each (those
    of ``rules.check_rows``, the one source), worked out once per table."""
    plan = _plans.get(spec.name)
    if plan is None:
        checks = [
            (field, required, longest, multi, _fast.KINDS[KINDS[kind]], places)
            for field, required, longest, multi, kind, places in field_checks(name, spec.fields)
        ]
        plan = _plans[spec.name] = _fast.Plan(checks, ("CHUKYDONVI",))
    return plan


def _read_rows(
    name: str, spec: Table, root: etree._Element, mixed: bool
) -> tuple[list[dict[str, str]], list[tuple[int, str]], list[tuple[str, int | None, str]]]:
    """The rows of an inner table, its unknown fields, and what cannot be read (in Python:
    every document; ``_fast.read_rows`` reads the plain ones the same)."""
    unreadable: list[tuple[str, int | None, str]] = []
    if spec.repeating:
        # (names compared without their namespace, as the root's and the fields' are)
        container = root.find("{*}" + (spec.list or ""))
        elements = [] if container is None else container.findall("{*}" + (spec.row or ""))
        if container is not None and len(elements) != len(container):
            unreadable += [
                ("SUB-0107", None, _local(other.tag))
                for other in container
                if isinstance(other.tag, str) and _local(other.tag) != spec.row
            ]
        if len(root) != 1:  # a second list, or rows beside the list, would not be read
            unreadable += [
                ("SUB-0107", None, _local(other.tag))
                for other in root
                if isinstance(other.tag, str)
                and other is not container
                and not (name == "XML0" and _local(other.tag) == "CHUKYDONVI")
            ]
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
                if tag in row:
                    unreadable.append(("SUB-0106", index, tag))
                row[tag] = _text(child, index, tag, unreadable) if mixed else child.text or ""
            elif tag not in ("CHUKYDONVI",):
                unknown.append((index, tag))
        rows.append(row)
    return rows, unknown, unreadable


@cache
def _encoded(name: str | None) -> bytes | None:
    return None if name is None else name.encode()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text(
    element: etree._Element, index: int, tag: str, unreadable: list[tuple[str, int | None, str]]
) -> str:
    """A field's whole text: comments and processing instructions inside it are left out
    (before, the text stopped at the first one); an element inside it is an issue."""
    if not len(element):
        return element.text or ""
    parts = [element.text or ""]
    for inner in element:
        if isinstance(inner.tag, str):
            unreadable.append(("SUB-0108", index, tag))
        parts.append(inner.tail or "")
    return "".join(parts)


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
            # (free text in CDATA, as BHXH's generators write it; but a carriage return in
            # CDATA is turned into a line feed by every reader, so such text is escaped)
            cdata = f.name in FREE_TEXT_FIELDS and value and "\r" not in value
            child.text = etree.CDATA(value) if cdata else value
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
