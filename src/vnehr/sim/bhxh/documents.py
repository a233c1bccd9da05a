"""Reading what the portal receives: the GIAMDINHHS envelope and the XML0 check-in.

The simulator reads only what it needs (facility, each HOSO's XML1 fields, a content hash)
with its own safe lxml parser: no DTD, no entities, no network, a size cap. It does not import
the product's reader, so a bug there cannot hide behind the same bug here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from lxml import etree

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.I)
_TABLE = re.compile(r"^XML([1-9]|1[0-5])$")
#: XML1 fields kept for the card-lookup history (dsLichSuKCB2018).
_XML1_FIELDS = (
    "MA_LK",
    "MA_THE_BHYT",
    "NGAY_VAO",
    "NGAY_RA",
    "CHAN_DOAN_RV",
    "KET_QUA_DTRI",
    "MA_LOAI_RV",
    "MA_DOITUONG_KCB",
)


class Refused(Exception):
    """The document cannot be accepted; ``code`` is the ``maKetQua`` to answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Visit:
    """One HOSO of a received file."""

    ma_lk: str
    content_sha256: str
    tables: tuple[str, ...]
    xml1: dict[str, str]


@dataclass(frozen=True, slots=True)
class Envelope:
    facility: str
    visits: tuple[Visit, ...]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def decode_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("422", f"{what}: không giải mã được base64") from None


def parse(data: bytes, what: str, max_bytes: int) -> etree._Element:
    if not data.strip():
        raise Refused("422", f"{what}: nội dung rỗng")
    if len(data) > max_bytes:
        raise Refused("422", f"{what}: dung lượng vượt quá {max_bytes} byte")
    if _DOCTYPE.search(data):
        raise Refused("422", f"{what}: không chấp nhận DOCTYPE/ENTITY")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise Refused("422", f"{what}: XML không hợp lệ ({exc.msg})") from None
    return root


def _local(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


def _child_text(parent: etree._Element, name: str) -> str:
    for child in parent:
        if isinstance(child.tag, str) and _local(child) == name:
            return (child.text or "").strip()
    return ""


def read_envelope(data: bytes, max_bytes: int) -> Envelope:
    """The GIAMDINHHS document: its MACSKCB and, per HOSO, MA_LK, XML1 fields and a hash.

    The hash is SHA-256 of the decoded inner documents concatenated in table order
    (XML1, XML2, ... XML15), whatever their order in the envelope.
    """
    root = parse(data, "GIAMDINHHS", max_bytes)
    if _local(root) != "GIAMDINHHS":
        raise Refused("422", f"Thẻ gốc phải là GIAMDINHHS, nhận được {_local(root)}")
    facility = (root.findtext("THONGTINDONVI/MACSKCB") or "").strip()
    if not facility:
        raise Refused("422", "Thiếu THONGTINDONVI/MACSKCB")
    listing = root.find("THONGTINHOSO/DANHSACHHOSO")
    records = [] if listing is None else listing.findall("HOSO")
    if not records:
        raise Refused("422", "Hồ sơ không có HOSO nào trong DANHSACHHOSO")
    declared = (root.findtext("THONGTINHOSO/SOLUONGHOSO") or "").strip()
    if declared and declared != str(len(records)):
        raise Refused("422", f"SOLUONGHOSO = {declared} nhưng hồ sơ có {len(records)} HOSO")
    visits = [_read_hoso(index, hoso, max_bytes) for index, hoso in enumerate(records, 1)]
    return Envelope(facility=facility, visits=tuple(visits))


def _read_hoso(index: int, hoso: etree._Element, max_bytes: int) -> Visit:
    documents: dict[int, bytes] = {}
    xml1: dict[str, str] | None = None
    for entry in hoso.findall("FILEHOSO"):
        kind = (entry.findtext("LOAIHOSO") or "").strip().upper()
        match = _TABLE.match(kind)
        if not match:
            raise Refused("422", f"HOSO {index}: LOAIHOSO '{kind}' không hợp lệ (XML1..XML15)")
        number = int(match.group(1))
        if number in documents:
            raise Refused("422", f"HOSO {index}: {kind} xuất hiện nhiều lần")
        what = f"HOSO {index} {kind}"
        content = decode_base64(entry.findtext("NOIDUNGFILE") or "", what)
        inner = parse(content, what, max_bytes)
        documents[number] = content
        if number == 1:
            if _local(inner) != "TONG_HOP":
                raise Refused("422", f"{what}: thẻ gốc phải là TONG_HOP")
            xml1 = {name: _child_text(inner, name) for name in _XML1_FIELDS}
    if xml1 is None:
        raise Refused("422", f"HOSO {index}: thiếu bảng XML1")
    if not xml1["MA_LK"]:
        raise Refused("422", f"HOSO {index}: XML1 thiếu MA_LK")
    digest = hashlib.sha256(b"".join(documents[n] for n in sorted(documents))).hexdigest()
    return Visit(
        ma_lk=xml1["MA_LK"],
        content_sha256=digest,
        tables=tuple(f"XML{n}" for n in sorted(documents)),
        xml1=xml1,
    )


def read_checkin(data: bytes, max_bytes: int) -> list[str]:
    """The XML0 document; answers the MA_LK of each TRANG_THAI_KCB row."""
    root = parse(data, "XML0", max_bytes)
    if _local(root) != "CHI_TIEU_TRANG_THAI_KCB":
        raise Refused("422", f"Thẻ gốc phải là CHI_TIEU_TRANG_THAI_KCB, nhận được {_local(root)}")
    rows = root.findall("DSACH_TRANG_THAI_KCB/TRANG_THAI_KCB")
    if not rows:
        raise Refused("422", "XML0 không có TRANG_THAI_KCB nào")
    keys = [_child_text(row, "MA_LK") for row in rows]
    if not all(keys):
        raise Refused("422", "XML0: có dòng thiếu MA_LK")
    return keys
