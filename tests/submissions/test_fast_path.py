"""The compiled reader (``vnehr.submissions._fast``, D115) gives exactly what the Python reader
and checks give: the same rows, issues and digests for the synthetic corpus and for documents
written to be awkward; and it is the reader in use wherever it is built."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import types
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from vnehr import catalogs
from vnehr.submissions import analyse, rules, synth, xmlio
from vnehr.submissions.xmlio import Limits, read_table, write_envelope

ENDED = datetime(2026, 9, 14, 16, 45)  # noqa: DTZ001
CODES = catalogs.offline()


def _seen(data: bytes) -> list[Any]:
    """Everything a sender or the store sees of an analysis: per visit its key, tables, digest
    and every issue with its place and parameters, in order."""
    analysis = analyse(data, codes=CODES, limits=Limits())
    return [
        (
            v.index,
            v.visit_key,
            v.tables,
            v.content_sha256,
            [(i.code, i.severity, i.table, i.row, i.field, i.params) for i in v.findings.issues],
        )
        for v in analysis.visits
    ]


def _both(data: bytes) -> list[Any]:
    """The analysis of ``data`` as the compiled reader gives it, having checked that the
    Python reader gives the same."""
    compiled = _seen(data)
    with xmlio.pure_python():
        python = _seen(data)
    assert compiled == python
    return compiled


def _codes(seen: list[Any]) -> set[str]:
    return {issue[0] for visit in seen for issue in visit[4]}


@pytest.mark.parametrize("seed", [7, 11, 23])
def test_the_synthetic_corpus_reads_and_checks_the_same_either_way(seed: int) -> None:
    rng = random.Random(seed)
    visits = []
    for n in range(100):
        referral = rng.random() < 0.2  # (an insured inpatient's)
        visits.append(
            synth.make_visit(
                rng,
                # every third visit carries a defect, each kind in turn
                defect=synth.DEFECTS[n // 3 % len(synth.DEFECTS)] if n % 3 == 0 else None,
                care_type="03" if referral else None,
                insured=True if referral else None,
                referral=referral,
                sequence=n,
            )
        )
    found: set[str] = set()
    start, size = 0, 1
    while start < len(visits):  # files of 1 to 4 visits, some with the 3176 referral
        chunk = visits[start : start + size]
        for variant in ("4750", "3176") if size == 2 else ("4750",):
            found |= _codes(_both(synth.envelope(chunk, "01001", variant=variant)))
        start, size = start + size, size % 4 + 1
    # (the defects were met: rows with format issues were compared as well as clean ones)
    assert {"SUB-0110", "SUB-0111", "SUB-0113", "SUB-0131"} <= found


def _visit(seed: int = 5) -> synth.SynthVisit:
    return synth.make_visit(random.Random(seed), ended=ENDED, care_type="03", referral=True)


def _documents(visit: synth.SynthVisit) -> dict[str, bytes]:
    return {name: synth.table_document(name, rows) for name, rows in visit.tables.items() if rows}


def _file(documents: dict[str, bytes]) -> bytes:
    return write_envelope("01001", "20260914", [documents])


def _set(table: str, field: str, value: str, row: int = 0) -> Callable[[synth.SynthVisit], None]:
    def change(visit: synth.SynthVisit) -> None:
        visit.tables[table][row][field] = value

    return change


def _before_the_reform(visit: synth.SynthVisit) -> None:
    summary = visit.tables["XML1"][0]
    summary["NGAY_VAO"], summary["NGAY_RA"] = "202503011000", "202503031000"
    summary["MAHUYEN_CU_TRU"] = ""


NFD_NAME = unicodedata.normalize("NFD", "Nguyễn Thị Hồng Nhung")

#: (what is sent, the issue it must raise or None) — values the generator writes as usual
VALUES: dict[str, tuple[Callable[[synth.SynthVisit], None], str | None]] = {
    "30 February": (_set("XML1", "NGAY_RA", "202402301200"), "SUB-0113"),
    "month 13": (_set("XML1", "NGAY_VAO", "202313011200"), "SUB-0113"),
    "hour 24": (_set("XML2", "NGAY_YL", "202401012400"), "SUB-0113"),
    "letters in the time": (_set("XML2", "NGAY_YL", "2024010124xx"), "SUB-0113"),
    "29 February of a leap year": (_set("XML3", "NGAY_YL", "202402291200"), None),
    "29 February of 2100": (_set("XML3", "NGAY_KQ", "210002291200"), "SUB-0113"),
    "year 0": (_set("XML1", "GT_THE_DEN", "00000101"), "SUB-0114"),
    "a moment with a space": (_set("XML1", "NGAY_RA", " 20260914164"), "SUB-0113"),
    "three places for money": (_set("XML2", "THANH_TIEN_BV", "12500.125"), "SUB-0118"),
    "places within, trailing zeros": (_set("XML2", "DON_GIA", "12500.12500"), None),
    "four places for a price": (_set("XML2", "DON_GIA", "12500.1255"), "SUB-0118"),
    "a negative number": (_set("XML2", "SO_LUONG", "-2"), None),
    "a negative fraction": (_set("XML2", "SO_LUONG", "-.5"), None),
    "a number ending in a dot": (_set("XML2", "SO_LUONG", "2."), "SUB-0112"),
    "a number with spaces": (_set("XML2", "SO_LUONG", " 2.5\t"), None),
    "a number with a no-break space": (_set("XML2", "SO_LUONG", "\u00a02"), None),
    "an exponent": (_set("XML2", "SO_LUONG", "1e3"), "SUB-0112"),
    "Arabic-Indic digits": (_set("XML2", "SO_LUONG", "\u0663"), "SUB-0112"),
    "a bad part among several": (_set("XML1", "GT_THE_DEN", "20261231;20261331"), "SUB-0114"),
    "an empty part among several": (_set("XML1", "GT_THE_TU", "20260101;"), "SUB-0114"),
    "several good parts": (_set("XML1", "MA_KHOA", "K01;K02;K03"), None),
    "whitespace only in a required field": (_set("XML2", "MA_THUOC", " \n\t "), "SUB-0110"),
    "an ideographic space only": (_set("XML2", "MA_THUOC", "\u3000"), "SUB-0110"),
    "a required field empty": (_set("XML3", "MA_BAC_SI", ""), "SUB-0110"),
    "the district empty after the reform": (_set("XML1", "MAHUYEN_CU_TRU", ""), None),
    "the district empty before it": (_before_the_reform, "SUB-0110"),
    "over-long in letters, not in bytes": (_set("XML1", "HO_TEN", "Đặng " * 52), "SUB-0111"),
    "at the limit in letters, over it in bytes": (_set("XML1", "HO_TEN", "ễ" * 255), None),
    "decomposed Vietnamese": (_set("XML1", "HO_TEN", NFD_NAME), None),
    "decomposed and over-long": (_set("XML1", "DIA_CHI", NFD_NAME * 60), "SUB-0111"),
    "a birth date of an unknown day": (_set("XML1", "NGAY_SINH", "198503000000"), None),
    "a birth day without its month": (_set("XML1", "NGAY_SINH", "198500050000"), "SUB-0113"),
    "a birth before 1850": (_set("XML1", "NGAY_SINH", "184901010000"), "SUB-0113"),
    "a birth at 25 o'clock": (_set("XML1", "NGAY_SINH", "198501012500"), "SUB-0113"),
    "a birth on 31 April": (_set("XML1", "NGAY_SINH", "198504310000"), "SUB-0113"),
    "a date or moment as a date": (_set("XML1", "NGAY_MIEN_CCT", "20260101"), None),
    "a date or moment, bad": (_set("XML1", "NGAY_MIEN_CCT", "2026010112"), "SUB-0113"),
}


@pytest.mark.parametrize("case", VALUES)
def test_awkward_values_give_the_same_issues_either_way(case: str) -> None:
    visit = _visit()
    change, code = VALUES[case]
    change(visit)
    seen = _both(synth.envelope([visit], "01001"))
    if code is not None:
        assert code in _codes(seen)
    else:
        assert not _codes(seen) & {"SUB-0110", "SUB-0111", "SUB-0112", "SUB-0113", "SUB-0114"}


def _replace(table: str, old: bytes, new: bytes) -> Callable[[dict[str, bytes]], None]:
    def change(documents: dict[str, bytes]) -> None:
        assert old in documents[table], old
        documents[table] = documents[table].replace(old, new, 1)

    return change


def _then(
    *changes: Callable[[dict[str, bytes]], None],
) -> Callable[[dict[str, bytes]], None]:
    def change(documents: dict[str, bytes]) -> None:
        for one in changes:
            one(documents)

    return change


def _field(table: str, field: str, inner: bytes) -> Callable[[dict[str, bytes]], None]:
    """The first ``field`` of ``table`` holding ``inner`` (raw XML) instead of its value."""

    def change(documents: dict[str, bytes]) -> None:
        data = documents[table]
        start = data.index(b"<" + field.encode() + b">") + len(field) + 2
        end = data.index(b"</" + field.encode() + b">", start)
        documents[table] = data[:start] + inner + data[end:]

    return change


#: Documents written by hand: the compiled reader reads some, leaves the others to Python
STRUCTURES: dict[str, Callable[[dict[str, bytes]], None]] = {
    "CDATA": _field("XML2", "MA_THUOC", b"<![CDATA[40.17]]>"),
    "text then CDATA then text": _field("XML2", "MA_THUOC", b"40<![CDATA[.]]>17"),
    "two CDATA sections": _field("XML1", "HO_TEN", "<![CDATA[Lê ]]><![CDATA[Văn]]>".encode()),
    "CDATA of a bad moment": _field("XML2", "NGAY_YL", b"<![CDATA[2026]]>09141"),
    "an empty CDATA section": _field("XML2", "MA_THUOC", b"<![CDATA[]]>"),
    "escaped characters": _field("XML1", "DIA_CHI", b"S&#7889; 1 &amp; 2 &lt;A&gt;"),
    "a comment in a field": _field("XML2", "MA_THUOC", b"40.<!-- x -->17"),
    "a comment between fields": _replace("XML2", b"<MA_THUOC>", b"<!-- x --><MA_THUOC>"),
    "a comment between rows": _replace("XML2", b"<CHI_TIET_THUOC>", b"<!--x--><CHI_TIET_THUOC>"),
    "an instruction in a field": _field("XML3", "MA_DICH_VU", b"<?pi x?>"),
    "an element in a field": _field("XML2", "MA_THUOC", b"40.17<B>x</B>"),
    "an element in a field of XML1": _field("XML1", "HO_TEN", b"<B>x</B>"),
    "elements deeper than the cap": _field("XML2", "MA_THUOC", b"<a>" * 29 + b"</a>" * 29),
    "elements down to the cap": _field("XML2", "MA_THUOC", b"<a>" * 28 + b"</a>" * 28),
    "a deep element beside the list": _replace(
        "XML2", b"</CHITIEU_CHITIET_THUOC>", b"<X><Y><Z/></Y></X></CHITIEU_CHITIET_THUOC>"
    ),
    "the list twice": _replace(
        "XML2", b"</CHITIEU_CHITIET_THUOC>", b"<DSACH_CHI_TIET_THUOC/></CHITIEU_CHITIET_THUOC>"
    ),
    "a field sent twice": _replace("XML2", b"<MA_THUOC>", b"<MA_THUOC>X</MA_THUOC><MA_THUOC>"),
    "a bad value sent twice": _replace("XML1", b"<NGAY_RA>", b"<NGAY_RA>1</NGAY_RA><NGAY_RA>"),
    "an unknown field": _replace("XML2", b"<MA_THUOC>", b"<MA_THU_OC>1</MA_THU_OC><MA_THUOC>"),
    "an unknown field in Vietnamese": _replace("XML1", b"<HO_TEN>", "<HỌ>1</HỌ><HO_TEN>".encode()),
    "a signature in a row": _replace("XML2", b"<MA_THUOC>", b"<CHUKYDONVI/><MA_THUOC>"),
    "an empty element": _field("XML1", "MA_LK", b""),
    "a default namespace": _replace(
        "XML2", b"<CHITIEU_CHITIET_THUOC>", b'<CHITIEU_CHITIET_THUOC xmlns="urn:x">'
    ),
    "a prefixed field": _replace(
        "XML2", b"<MA_THUOC>", b'<p:MA_THUOC xmlns:p="urn:p">1</p:MA_THUOC><MA_THUOC>'
    ),
    "a stray row beside the list": _replace(
        "XML2", b"</CHITIEU_CHITIET_THUOC>", b"<X/></CHITIEU_CHITIET_THUOC>"
    ),
    "another element in the list": _replace(
        "XML2", b"</DSACH_CHI_TIET_THUOC>", b"<X/></DSACH_CHI_TIET_THUOC>"
    ),
    "text between fields": _replace("XML2", b"<MA_THUOC>", b"stray<![CDATA[x]]><MA_THUOC>"),
    "attributes": _replace("XML2", b"<MA_THUOC>", b'<MA_THUOC a="1">'),
    "a row of another name": _then(
        _replace("XML2", b"<CHI_TIET_THUOC>", b"<CHI_TIET_THUOCX>"),
        _replace("XML2", b"</CHI_TIET_THUOC>", b"</CHI_TIET_THUOCX>"),
    ),
    "an undefined entity": _field("XML1", "DIA_CHI", b"&x;"),
    "a decomposed unknown field": _replace(
        "XML1", b"<HO_TEN>", unicodedata.normalize("NFD", "<Ễ>1</Ễ><HO_TEN>").encode()
    ),
}


@pytest.mark.parametrize("case", STRUCTURES)
def test_awkward_documents_read_the_same_either_way(case: str) -> None:
    documents = _documents(_visit())
    STRUCTURES[case](documents)
    _both(_file(documents))


def test_an_empty_field_sent_or_left_out_is_the_same_visit() -> None:
    visit = _visit()
    without = _documents(visit)  # (the generator leaves empty optional fields out)
    assert b"<DU_PHONG" not in without["XML1"]
    with_empty = dict(
        without, XML1=without["XML1"].replace(b"</TONG_HOP>", b"<DU_PHONG/></TONG_HOP>")
    )
    digests = {_seen(_file(documents))[0][3] for documents in (with_empty, without)}
    assert len(digests) == 1
    visit.tables["XML1"][0]["DU_PHONG"] = "x"  # (and a field's value counts)
    assert _seen(_file(_documents(visit)))[0][3] not in digests


def test_the_depth_cap_holds_inside_a_field_either_way() -> None:
    for levels, refused in ((28, False), (29, True)):
        documents = _documents(_visit())
        _field("XML2", "MA_THUOC", b"<a>" * levels + b"</a>" * levels)(documents)
        codes = _codes(_both(_file(documents)))
        assert ("SUB-0102" in codes) is refused
        assert ("SUB-0108" in codes) is not refused


def test_the_compiled_reader_is_in_use_where_built() -> None:
    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if shutil.which("cc") and headers:  # an install here builds it (setup.py): it must be there
        import vnehr.submissions._fast  # noqa: F401
    else:
        pytest.importorskip(
            "vnehr.submissions._fast", reason="no C compiler or Python headers: not built here"
        )
    assert xmlio.compiled()
    documents = _documents(_visit())
    doc = read_table("XML2", documents["XML2"], Limits())
    # (only the compiled reader says which rows need no Python checks)
    assert doc.checked == [()] * len(doc.rows)
    with xmlio.pure_python():
        assert not xmlio.compiled()
        assert read_table("XML2", documents["XML2"], Limits()).checked is None
    # and the switch for operators turns it off for a whole process
    env = {**os.environ, "VNEHR_INTAKE_PURE_PYTHON": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from vnehr.submissions import xmlio; print(xmlio.compiled())"],
        env=env,
        capture_output=True,
        timeout=600,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


# ------------------------------------------------------------------ XML0 check-ins

#: The fields an XML0 row shares with the visit's summary (XML1)
_CHECKIN_FROM_XML1 = (
    "MA_LK", "MA_BN", "HO_TEN", "SO_CCCD", "NGAY_SINH", "GIOI_TINH", "MA_THE_BHYT", "MA_DKBD",
    "GT_THE_TU", "GT_THE_DEN", "MA_DOITUONG_KCB", "NGAY_VAO", "NGAY_VAO_NOI_TRU", "LY_DO_VNT",
    "MA_LY_DO_VNT", "MA_LOAI_KCB", "MA_CSKCB",
)  # fmt: skip


def _checkin_row(visit: synth.SynthVisit, number: int) -> dict[str, str]:
    """The check-in of a synthetic visit: its summary's fields, ordered at admission."""
    summary = visit.tables["XML1"][0]
    row = {field: summary[field] for field in _CHECKIN_FROM_XML1 if summary.get(field)}
    row.update(STT=str(number), NGAY_YL=summary.get("NGAY_VAO", ""))
    return row


def _checkin_seen(data: bytes) -> list[Any]:
    """Everything the facility sees of a check-in: every issue with its place and parameters,
    in order, and the rows read."""
    doc = xmlio.read_checkin(data, Limits())
    found = rules.check_checkin(doc, facility="01001", codes=CODES)
    issues = [(i.code, i.severity, i.table, i.row, i.field, i.params) for i in found.issues]
    return [doc.rows, issues]


def _checkin_both(data: bytes) -> set[str]:
    """The codes of the issues a check-in gets, having checked that the compiled reader and
    the Python reader give the same findings."""
    compiled = _checkin_seen(data)
    with xmlio.pure_python():
        python = _checkin_seen(data)
    assert compiled == python
    return {issue[0] for issue in compiled[1]}


@pytest.mark.parametrize("seed", [3, 17])
def test_synthetic_checkins_are_checked_the_same_either_way(seed: int) -> None:
    rng = random.Random(seed)
    found: set[str] = set()
    for n in range(40):  # documents of 1 to 5 rows, a third of the visits with a defect
        rows = []
        for m in range(n % 5 + 1):
            defect = synth.DEFECTS[(n + m) % len(synth.DEFECTS)] if (n + m) % 3 == 0 else None
            made = synth.make_visit(rng, defect=defect, sequence=100 * n + m)
            rows.append(_checkin_row(made, m + 1))
        found |= _checkin_both(xmlio.write_table("XML0", rows))
    # (rows with format issues were compared as well as clean ones)
    assert {"SUB-0110", "SUB-0111", "SUB-0113"} <= found


def _checkin_document(change: Callable[[dict[str, str]], None] | None = None) -> bytes:
    rows = [_checkin_row(_visit(seed), n) for n, seed in enumerate((5, 6, 7), start=1)]
    if change is not None:
        change(rows[1])
    return xmlio.write_table("XML0", rows)


def _in_row(field: str, value: str) -> Callable[[dict[str, str]], None]:
    def change(row: dict[str, str]) -> None:
        row[field] = value

    return change


#: (a change to the second row of a check-in, the issue it must raise or None)
CHECKIN_VALUES: dict[str, tuple[Callable[[dict[str, str]], None] | None, str | None]] = {
    "clean": (None, None),
    "30 February": (_in_row("NGAY_VAO", "202402301200"), "SUB-0113"),
    "a bad order's moment": (_in_row("NGAY_YL", "2026091416"), "SUB-0113"),
    "a required field blank": (_in_row("MA_BN", " \t"), "SUB-0110"),
    "a required field empty": (_in_row("HO_TEN", ""), "SUB-0110"),
    "an ideographic space only": (_in_row("MA_BN", "\u3000"), "SUB-0110"),
    "over-long in letters": (_in_row("HO_TEN", "Đặng " * 52), "SUB-0111"),
    "at the limit in letters, over it in bytes": (_in_row("HO_TEN", "ễ" * 255), None),
    "decomposed Vietnamese": (_in_row("HO_TEN", NFD_NAME), None),
    "a sex that is no number": (_in_row("GIOI_TINH", "x"), "SUB-0112"),
    "a row number with spaces": (_in_row("STT", " 2 "), None),
    "a card's end in month 13": (_in_row("GT_THE_DEN", "20261331"), "SUB-0114"),
    "two cards' ends, over-long": (_in_row("GT_THE_DEN", "20261231;20271231"), "SUB-0111"),
    "a birth of an unknown day": (_in_row("NGAY_SINH", "198503000000"), None),
    "a birth at 25 o'clock": (_in_row("NGAY_SINH", "198501012500"), "SUB-0113"),
}


@pytest.mark.parametrize("case", CHECKIN_VALUES)
def test_awkward_checkin_values_give_the_same_issues_either_way(case: str) -> None:
    change, code = CHECKIN_VALUES[case]
    codes = _checkin_both(_checkin_document(change))
    if code is not None:
        assert code in codes
    else:
        assert not codes & {"SUB-0110", "SUB-0111", "SUB-0112", "SUB-0113", "SUB-0114"}


#: Check-in documents written by hand: the compiled reader reads some, Python the others
CHECKIN_STRUCTURES: dict[str, tuple[bytes, bytes]] = {
    "CDATA": (b"<MA_BN>", b"<MA_BN><![CDATA[BN]]>"),
    "a comment in a field": (b"<MA_BN>", b"<MA_BN><!-- x -->"),
    "a field sent twice": (b"<MA_BN>", b"<MA_BN>1</MA_BN><MA_BN>"),
    "a bad value sent twice": (b"<NGAY_VAO>", b"<NGAY_VAO>1</NGAY_VAO><NGAY_VAO>"),
    "an unknown field": (b"<MA_BN>", b"<MA_B>1</MA_B><MA_BN>"),
    "an element in a field": (b"<MA_BN>", b"<MA_BN><B>x</B>"),
    "an empty signature beside the list": (
        b"</CHI_TIEU_TRANG_THAI_KCB>",
        b"<CHUKYDONVI/></CHI_TIEU_TRANG_THAI_KCB>",
    ),
    "a second list": (
        b"</CHI_TIEU_TRANG_THAI_KCB>",
        b"<DSACH_TRANG_THAI_KCB/></CHI_TIEU_TRANG_THAI_KCB>",
    ),
    "a deep signature before the list": (
        b"<DSACH_TRANG_THAI_KCB>",
        b"<CHUKYDONVI><X><Y><Z/></Y></X></CHUKYDONVI><DSACH_TRANG_THAI_KCB>",
    ),
    "a signature in a row": (b"<MA_BN>", b"<CHUKYDONVI><X><Y/></X></CHUKYDONVI><MA_BN>"),
    "a deep element in a field": (b"<MA_BN>", b"<MA_BN><a><b><c/></b></a>"),
    "a deep element beside the list": (
        b"</CHI_TIEU_TRANG_THAI_KCB>",
        b"<X><Y><Z/></Y></X></CHI_TIEU_TRANG_THAI_KCB>",
    ),
}


@pytest.mark.parametrize("case", CHECKIN_STRUCTURES)
def test_awkward_checkin_documents_read_the_same_either_way(case: str) -> None:
    old, new = CHECKIN_STRUCTURES[case]
    data = _checkin_document()
    assert old in data
    _checkin_both(data.replace(old, new, 1))


def _signed(data: bytes) -> bytes:
    """The check-in signed as a facility signs it (D62): its signature in CHUKYDONVI, beside
    the list of rows."""
    from tests.submissions.test_signature import certificate, sign

    key_pem, cert_pem = certificate("Bệnh viện 01001")
    end = b"</CHI_TIEU_TRANG_THAI_KCB>"
    return sign(data.replace(end, b"<CHUKYDONVI/>" + end), key_pem, cert_pem)


def test_a_signed_checkin_reads_the_same_either_way() -> None:
    for change in (None, _in_row("NGAY_VAO", "202402301200"), _in_row("MA_BN", "")):
        data = _signed(_checkin_document(change))
        assert xmlio.read_checkin(data, Limits()).signed
        _checkin_both(data)


@pytest.mark.parametrize("signed", [False, True])
def test_a_checkins_rows_vouched_for_in_c_are_not_checked_again(
    monkeypatch: pytest.MonkeyPatch, signed: bool
) -> None:
    """As in a visit file, the Python format checks run only for the rows the compiled reader
    could not vouch for (D115): here the second of three; a signed check-in too (its
    signature, beside the rows, is no reason to read it in Python)."""
    pytest.importorskip("vnehr.submissions._fast")
    checked_rows: list[int] = []
    real = rules._check_fields

    def counting(found: Any, name: str, index: int, *args: Any) -> None:
        checked_rows.append(index)
        real(found, name, index, *args)

    monkeypatch.setattr(rules, "_check_fields", counting)
    data = _checkin_document(_in_row("NGAY_VAO", "202402301200"))
    if signed:
        data = _signed(data)
    assert "SUB-0113" in _checkin_both(data)
    checked_rows.clear()
    _checkin_seen(data)
    assert checked_rows == [2]
    with xmlio.pure_python():
        checked_rows.clear()
        _checkin_seen(data)
    assert checked_rows == [1, 2, 3]


def test_a_module_built_from_another_source_is_not_used(tmp_path: Path) -> None:
    """After a pull that changes ``_fast.pyx``, a module left from the earlier checkout would
    call what its callers no longer match, or vouch for rows under older rules (D123)."""
    source = Path(rules.__file__).with_name("_fast.pyx")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert rules.built_from(types.SimpleNamespace(SOURCE_SHA256=digest), source)
    assert not rules.built_from(types.SimpleNamespace(SOURCE_SHA256="0" * 64), source)
    assert not rules.built_from(types.SimpleNamespace(), source)  # built before fingerprints
    assert not rules.built_from(None, source)
    # an installed wheel ships the module without its source: trusted as built
    assert rules.built_from(types.SimpleNamespace(), tmp_path / "_fast.pyx")
    if xmlio._fast is not None:  # the module built here is this source's, and so in use
        assert digest == xmlio._fast.SOURCE_SHA256
        assert rules.COMPILED[0] or os.environ.get("VNEHR_INTAKE_PURE_PYTHON")
