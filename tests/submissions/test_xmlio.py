"""Hostile and malformed XML is refused with its code, before anything is stored."""

from __future__ import annotations

import base64
import random
import unicodedata

import pytest

from vnehr.submissions import errors, xmlio
from vnehr.submissions.xmlio import Limits, read_envelope, read_table

LIMITS = Limits(max_bytes=64 * 1024, max_depth=32, max_elements=5_000)

XXE = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE GIAMDINHHS [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<GIAMDINHHS><THONGTINDONVI><MACSKCB>&xxe;</MACSKCB></THONGTINDONVI></GIAMDINHHS>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<GIAMDINHHS>&lol3;</GIAMDINHHS>"""


def envelope(*records: list[tuple[str, str]], facility: str = "01001") -> bytes:
    hoso = "".join(
        "<HOSO>"
        + "".join(
            f"<FILEHOSO><LOAIHOSO>{kind}</LOAIHOSO><NOIDUNGFILE>{content}</NOIDUNGFILE></FILEHOSO>"
            for kind, content in record
        )
        + "</HOSO>"
        for record in records
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><GIAMDINHHS>'
        f"<THONGTINDONVI><MACSKCB>{facility}</MACSKCB></THONGTINDONVI>"
        f"<THONGTINHOSO><NGAYLAP>20260115</NGAYLAP><SOLUONGHOSO>{len(records)}</SOLUONGHOSO>"
        f"<DANHSACHHOSO>{hoso}</DANHSACHHOSO></THONGTINHOSO><CHUKYDONVI/></GIAMDINHHS>"
    ).encode()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (XXE, "SUB-0003"),
        (BILLION_LAUGHS, "SUB-0003"),
        (b"", "SUB-0014"),
        (b"<GIAMDINHHS><THONGTINDONVI>", "SUB-0002"),
        (b"<TONG_HOP><MA_LK>1</MA_LK></TONG_HOP>", "SUB-0005"),
        (b'<?xml version="1.0" encoding="windows-1258"?><GIAMDINHHS/>', "SUB-0004"),
        (b'<?xml version="1.0" encoding="utf-8"?><GIAMDINHHS>\xff\xfe</GIAMDINHHS>', "SUB-0004"),
        (b"<GIAMDINHHS>" + b"<a>" * 40 + b"</a>" * 40 + b"</GIAMDINHHS>", "SUB-0006"),
        (b"<GIAMDINHHS>" + b"<a/>" * 6_000 + b"</GIAMDINHHS>", "SUB-0006"),
        (b"<GIAMDINHHS>" + b" " * (70 * 1024) + b"</GIAMDINHHS>", "SUB-0001"),
        (b"<GIAMDINHHS><THONGTINHOSO/></GIAMDINHHS>", "SUB-0008"),
        (envelope(), "SUB-0013"),
    ],
)
def test_a_bad_file_is_refused_whole_with_its_code(data: bytes, code: str) -> None:
    with pytest.raises(errors.FileRefused) as caught:
        read_envelope(data, LIMITS)
    assert caught.value.code == code
    assert caught.value.messages()["vi"] != caught.value.messages()["en"]


@pytest.mark.parametrize(
    ("depth", "elements", "refused"),
    [(32, 100, False), (33, 100, True), (2, 5_000, False), (2, 5_001, True)],
)
def test_the_caps_are_exact(depth: int, elements: int, refused: bool) -> None:
    """Depth counts the root as 1; the element count includes the root."""
    from vnehr.submissions.xmlio import parse

    nested = b"<a>" * (depth - 1) + b"</a>" * (depth - 1)
    siblings = b"<b/>" * (elements - (depth - 1) - 1)
    data = b"<r>" + nested + siblings + b"</r>"
    if refused:
        with pytest.raises(errors.TooComplex):
            parse(data, LIMITS)
    else:
        assert parse(data, LIMITS).tag == "r"


def test_inner_documents_keep_vietnamese_text_and_cdata_exactly() -> None:
    inner = (
        '<?xml version="1.0" encoding="utf-8"?><TONG_HOP><MA_LK>LK1</MA_LK>'
        "<HO_TEN><![CDATA[Nguyễn Thị Ánh  <Tuyết> & Hoa]]></HO_TEN><GIOI_TINH>2</GIOI_TINH>"
        "<XYZ>lạ</XYZ></TONG_HOP>"
    ).encode()
    doc = read_table("XML1", inner, LIMITS)
    assert doc.rows == [
        {"MA_LK": "LK1", "HO_TEN": "Nguyễn Thị Ánh  <Tuyết> & Hoa", "GIOI_TINH": "2"}
    ]
    assert doc.unknown == [(0, "XYZ")]


def test_decomposed_vietnamese_is_read_composed() -> None:
    name = "Nguyễn Thị Ánh Tuyết"
    decomposed = unicodedata.normalize("NFD", name)
    assert decomposed != name
    inner = f"<TONG_HOP><MA_LK>LK1</MA_LK><HO_TEN>{decomposed}</HO_TEN></TONG_HOP>".encode()
    assert read_table("XML1", inner, LIMITS).rows == [{"MA_LK": "LK1", "HO_TEN": name}]


def test_repeating_tables_give_one_row_per_element_in_order() -> None:
    rows = "".join(
        f"<CHI_TIET_THUOC><MA_LK>LK1</MA_LK><STT>{n}</STT><TEN_THUOC>Thuốc {n}</TEN_THUOC></CHI_TIET_THUOC>"
        for n in (1, 2, 3)
    )
    inner = (
        "<CHITIEU_CHITIET_THUOC><DSACH_CHI_TIET_THUOC>"
        + rows
        + "</DSACH_CHI_TIET_THUOC></CHITIEU_CHITIET_THUOC>"
    ).encode()
    doc = read_table("XML2", inner, LIMITS)
    assert [r["STT"] for r in doc.rows] == ["1", "2", "3"]
    assert doc.rows[2]["TEN_THUOC"] == "Thuốc 3"


def test_an_inner_document_with_the_wrong_root_is_refused() -> None:
    with pytest.raises(errors.WrongRoot) as caught:
        read_table("XML2", b"<TONG_HOP><MA_LK>1</MA_LK></TONG_HOP>", LIMITS)
    assert caught.value.detail == {"expected": "CHITIEU_CHITIET_THUOC", "found": "TONG_HOP"}


def test_the_3176_referral_is_recognised_by_its_fields() -> None:
    inner = b"<CHI_TIEU_GIAYCHUYENTUYEN><MA_LK>1</MA_LK><MA_CSKCB_DI>01001</MA_CSKCB_DI><TINH_TRANG_CT>x</TINH_TRANG_CT></CHI_TIEU_GIAYCHUYENTUYEN>"
    doc = read_table("XML13", inner, LIMITS)
    assert doc.variant == "3176"
    assert doc.rows[0]["MA_CSKCB_DI"] == "01001"
    assert doc.unknown == []
    old = read_table("XML13", inner.replace(b"MA_CSKCB_DI", b"MA_NOI_DI"), LIMITS)
    assert old.variant == "4750"
    assert (0, "TINH_TRANG_CT") in old.unknown
    # MA_CSKCB_DI is optional and usually left out: the other 3176 fields still say 3176
    without = inner.replace(
        b"<MA_CSKCB_DI>01001</MA_CSKCB_DI>", b"<MA_CSKCB_DEN>79001</MA_CSKCB_DEN>"
    )
    doc = read_table("XML13", without, LIMITS)
    assert (doc.variant, doc.unknown) == ("3176", [])


def test_a_3176_referral_without_the_sending_facility_is_accepted() -> None:
    from vnehr import catalogs
    from vnehr.submissions import analyse, synth

    made = synth.make_visit(random.Random(8), care_type="03", insured=True, referral=True)
    data = synth.envelope([made], "01001", variant="3176")
    visit = analyse(data, codes=catalogs.offline(), limits=Limits()).visits[0]
    assert "TINH_TRANG_CT" in visit.tables["XML13"][0]
    assert [i.code for i in visit.findings.issues] == [], visit.findings.issues


def test_an_envelope_lists_each_visit_and_its_tables() -> None:
    data = envelope(
        [("XML1", base64.b64encode(b"<TONG_HOP/>").decode()), ("xml2", "QUJD")],
        [("XML1", "QUJD")],
    )
    read = read_envelope(data, LIMITS)
    assert read.facility_code == "01001"
    assert [[e.kind for e in r] for r in read.records] == [["XML1", "XML2"], ["XML1"]]
    assert read.declared_count == "2"


def test_a_table_written_back_reads_the_same() -> None:
    from vnehr.submissions.xmlio import write_table

    rows = [
        {"MA_LK": "LK1", "STT": "1", "TEN_THUOC": "Paracetamol <500mg> & co", "SO_LUONG": "10"},
        {"MA_LK": "LK1", "STT": "2", "TEN_THUOC": "Thuốc ho bổ phế", "SO_LUONG": "1.5"},
    ]
    data = write_table("XML2", rows)
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert b"<![CDATA[Paracetamol <500mg> & co]]>" in data
    assert read_table("XML2", data, LIMITS).rows == rows


@pytest.mark.parametrize("name", [f"XML{n}" for n in range(16) if n != 12] + ["XML13_3176"])
def test_every_table_reads_back_what_was_written(name: str) -> None:
    from vnehr.submissions.spec import tables
    from vnehr.submissions.xmlio import write_table

    spec = tables()[name]
    row = {
        f.name: ("12" if f.type == "number" else f"giá trị {f.name}")[: f.max or None]
        for f in spec.fields
    }
    rows = [row, dict(row)] if spec.repeating else [row]
    base, variant = ([*name.split("_"), "4750"])[:2]
    data = write_table(base, rows, variant)
    doc = read_table(base, data, LIMITS)
    assert doc.rows == rows
    assert doc.unknown == []
    assert doc.variant == variant


@pytest.mark.parametrize(
    "text",
    ["PFRPTkdfSE9QLz4=", "PFRPTkdf\nSE9QLz4=", "PFRPTkdf\r\n  SE9QLz4=\n", " PFRPTkdfSE9QLz4= "],
)
def test_base64_on_one_line_or_broken_into_lines_decodes_the_same(text: str) -> None:
    assert xmlio.b64decode(text, what="XML1") == b"<TONG_HOP/>"


@pytest.mark.parametrize(
    "text", ["PFRPTkdf$E9QLz4=", "PFRPTkdfSE9QLz4", "PFRPTkdfSE9QLz4=đ", "=PFRP"]
)
def test_damaged_base64_is_refused(text: str) -> None:
    with pytest.raises(errors.BadBase64):
        xmlio.b64decode(text, what="XML1")


# ------------------------------------------------------------------ found in review (D58)

SMALL = b'<?xml version="1.0" encoding="utf-8"?><TONG_HOP><MA_LK>LK1</MA_LK></TONG_HOP>'


@pytest.mark.parametrize(
    "data",
    [
        SMALL.replace(b"utf-8", b"UTF-16").decode().encode("utf-16"),  # with its BOM
        SMALL.replace(b"utf-8", b"UTF-16").decode().encode("utf-16-le"),  # without
        SMALL.replace(b'<?xml version="1.0" encoding="utf-8"?>', b"").decode().encode("utf-32-le"),
        # a DOCTYPE the byte check cannot see in UTF-16, naming a local file
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE TONG_HOP SYSTEM "file:///etc/hostname">'
        "<TONG_HOP><MA_LK>LK1</MA_LK></TONG_HOP>".encode("utf-16-le"),
        # a UTF-8 byte order mark before a declaration of another encoding
        b"\xef\xbb\xbf" + SMALL.replace(b"utf-8", b"ISO-8859-1"),
    ],
)
def test_only_utf_8_is_read_whatever_the_byte_order_mark(data: bytes) -> None:
    with pytest.raises(errors.WrongEncoding):
        read_table("XML1", data, LIMITS)


def test_doctype_quoted_as_text_in_cdata_or_a_comment_is_kept() -> None:
    data = (
        "<TONG_HOP><MA_LK>LK1</MA_LK><!-- <!DOCTYPE in a comment -->"
        "<GHI_CHU><![CDATA[dán từ web: <!DOCTYPE html> <!ENTITY x>]]></GHI_CHU></TONG_HOP>"
    ).encode()
    [row] = read_table("XML1", data, LIMITS).rows
    assert row["GHI_CHU"] == "dán từ web: <!DOCTYPE html> <!ENTITY x>"
    with pytest.raises(errors.DtdForbidden):  # one after a comment is still refused
        read_table("XML1", b"<!-- x --><!DOCTYPE TONG_HOP><TONG_HOP/>", LIMITS)


def test_comments_and_processing_instructions_count_toward_the_node_cap() -> None:
    padded = b"<TONG_HOP><MA_LK>LK1</MA_LK>" + b"<?p?><!--c-->" * 2_600 + b"</TONG_HOP>"
    with pytest.raises(errors.TooComplex):
        read_table("XML1", padded, LIMITS)


def test_a_text_node_over_ten_million_characters_is_read_under_the_size_cap() -> None:
    big = b"A" * 10_500_000  # libxml2's own limit is 10,000,000 unless told otherwise
    data = b"<TONG_HOP><MA_LK>LK1</MA_LK><GHI_CHU>" + big + b"</GHI_CHU></TONG_HOP>"
    [row] = read_table("XML1", data, Limits()).rows
    assert len(row["GHI_CHU"]) == len(big)


@pytest.mark.parametrize(
    ("field", "value", "read", "code"),
    [
        ("HO_TEN", "Trầ<!-- sửa -->n Minh Thảo", "Trần Minh Thảo", None),
        ("HO_TEN", "<![CDATA[Trầ]]><?x?><![CDATA[n Minh Thảo]]>", "Trần Minh Thảo", None),
        ("HO_TEN", "Trầ<b/>n Minh Thảo", "Trần Minh Thảo", "SUB-0108"),
    ],
)
def test_a_field_is_read_whole_or_flagged_never_cut_short(
    field: str, value: str, read: str, code: str | None
) -> None:
    data = f"<TONG_HOP><MA_LK>LK1</MA_LK><{field}>{value}</{field}></TONG_HOP>".encode()
    doc = read_table("XML1", data, LIMITS)
    assert doc.rows[0][field] == read
    assert [c for c, _, _ in doc.unreadable] == ([code] if code else [])


def test_a_field_sent_twice_is_flagged() -> None:
    data = "<TONG_HOP><MA_LK>1</MA_LK><HO_TEN>An</HO_TEN><HO_TEN>Kẻ Khác</HO_TEN></TONG_HOP>"
    assert read_table("XML1", data.encode(), LIMITS).unreadable == [("SUB-0106", 0, "HO_TEN")]


def test_rows_are_read_in_a_default_namespace_and_a_stray_row_is_flagged() -> None:
    rows = "".join(f"<CHI_TIET_CLS><MA_LK>1</MA_LK><STT>{n}</STT></CHI_TIET_CLS>" for n in (1, 2))
    data = (
        f'<CHITIEU_CHITIET_DICHVUCANLAMSANG xmlns="urn:x"><DSACH_CHI_TIET_CLS>{rows}'
        "<CHI_TIET_CLX><STT>3</STT></CHI_TIET_CLX></DSACH_CHI_TIET_CLS>"
        "</CHITIEU_CHITIET_DICHVUCANLAMSANG>"
    ).encode()
    doc = read_table("XML4", data, LIMITS)
    assert [r["STT"] for r in doc.rows] == ["1", "2"]
    assert doc.unreadable == [("SUB-0107", None, "CHI_TIET_CLX")]


@pytest.mark.parametrize("declared", ["5", "0", "2 ", "một", "1.0", "-1", "１", "9" * 5000])
def test_a_file_declaring_another_number_of_visits_than_it_holds_is_refused(
    declared: str,
) -> None:
    """SOLUONGHOSO is the number of HOSO the facility says it sent (the BHXH portal refuses a
    file whose count differs): a file that lost a visit on the way is not taken as complete."""
    data = envelope([("XML1", "")]).replace(
        b"<SOLUONGHOSO>1<", f"<SOLUONGHOSO>{declared}<".encode(), 1
    )
    with pytest.raises(errors.FileRefused) as caught:
        read_envelope(data, LIMITS)
    assert caught.value.code == "SUB-0022"
    assert f"SOLUONGHOSO = {declared.strip()[:20]} " in caught.value.messages()["en"]
    assert "có 1 hồ sơ" in caught.value.messages()["vi"]


@pytest.mark.parametrize(
    "declared",
    ["<SOLUONGHOSO> 2 </SOLUONGHOSO>", "<SOLUONGHOSO>02</SOLUONGHOSO>", "<SOLUONGHOSO/>", ""],
)
def test_a_declared_number_of_visits_is_read_as_a_number_and_may_be_left_out(
    declared: str,
) -> None:
    data = envelope([("XML1", "")], [("XML1", "")]).replace(
        b"<SOLUONGHOSO>2</SOLUONGHOSO>", declared.encode(), 1
    )
    assert len(read_envelope(data, LIMITS).records) == 2


def test_a_file_of_more_visits_than_the_cap_is_refused_before_any_is_read() -> None:
    hoso = [("XML1", "")]
    with pytest.raises(errors.TooManyVisits) as caught:
        read_envelope(envelope(*[hoso] * 4), Limits(max_visits=3))
    assert caught.value.status_code == 413
    assert len(read_envelope(envelope(*[hoso] * 3), Limits(max_visits=3)).records) == 3


# ------------------------------------------------------------------ found in the second review


def test_unclosed_comments_after_a_doctype_are_refused_at_once() -> None:
    # The search for a DOCTYPE outside comments was quadratic in unclosed "<!--" (31 s for
    # 160 KB, on the event loop). 160 KB of them now takes milliseconds.
    import time

    data = b"<!DOCTYPE" + b"<!--" * 40_000
    started = time.process_time()
    with pytest.raises(errors.DtdForbidden):
        read_table("XML1", data, Limits())
    assert time.process_time() - started < 1.0  # (was 31 s: a cap on a hang, not a benchmark)


def test_a_doctype_between_processing_instructions_is_refused() -> None:
    data = b'<?p <!-- ?><!DOCTYPE r [<!ENTITY x "y">]><?p --> ?><r>&x;</r>'
    with pytest.raises(errors.DtdForbidden):
        read_table("XML1", data, LIMITS)


def test_attributes_count_toward_the_node_cap() -> None:
    data = b"<TONG_HOP " + b" ".join(b'a%d=""' % n for n in range(6_000)) + b"/>"
    with pytest.raises(errors.TooComplex):
        read_table("XML1", data, Limits(max_bytes=64 * 1024, max_elements=1_000))


def test_rows_outside_the_table_s_list_are_flagged() -> None:
    rows = "<CHI_TIET_CLS><MA_LK>1</MA_LK><STT>{n}</STT></CHI_TIET_CLS>"
    data = (
        "<CHITIEU_CHITIET_DICHVUCANLAMSANG>"
        f"<DSACH_CHI_TIET_CLS>{rows.format(n=1)}</DSACH_CHI_TIET_CLS>"
        f"<DSACH_CHI_TIET_CLS>{rows.format(n=2)}</DSACH_CHI_TIET_CLS>"
        f"{rows.format(n=3)}</CHITIEU_CHITIET_DICHVUCANLAMSANG>"
    ).encode()
    doc = read_table("XML4", data, LIMITS)
    assert [r["STT"] for r in doc.rows] == ["1"]
    assert doc.unreadable == [
        ("SUB-0107", None, "DSACH_CHI_TIET_CLS"),
        ("SUB-0107", None, "CHI_TIET_CLS"),
    ]
