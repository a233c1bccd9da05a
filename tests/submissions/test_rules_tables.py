"""Rules that reach past XML1: line amounts with their share, decimal places, every date and
birth-date field, moments in order in every row, coded fields in every table; and what an
issue says in each language (no database: the packaged catalogues)."""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal

import pytest

from vnehr import catalogs
from vnehr.submissions import analyse, synth
from vnehr.submissions.rules import Findings, Issue, check_rows
from vnehr.submissions.xmlio import Limits

ENDED = datetime(2026, 9, 14, 16, 45)  # noqa: DTZ001


def _issues(visit: synth.SynthVisit) -> list[Issue]:
    analysis = analyse(synth.envelope([visit], "01001"), codes=catalogs.offline(), limits=Limits())
    [result] = analysis.visits
    return result.findings.issues


def _codes(visit: synth.SynthVisit, severity: str = "error") -> list[tuple[str, str, str]]:
    return sorted(
        (i.code, i.table or "", i.field or "") for i in _issues(visit) if i.severity == severity
    )


def _inpatient(seed: int = 3) -> synth.SynthVisit:
    return synth.make_visit(random.Random(seed), ended=ENDED, care_type="03")


def _retotal(visit: synth.SynthVisit) -> None:
    """T_TONGCHI_BV again from the lines, after a line amount was changed."""
    total = sum(
        Decimal(row["THANH_TIEN_BV"]) for name in ("XML2", "XML3") for row in visit.tables[name]
    )
    visit.tables["XML1"][0]["T_TONGCHI_BV"] = f"{total:.2f}"


def _only(rows_of: str, row: dict[str, str], *, variant: str = "4750") -> list[tuple[str, str]]:
    """Format issues of one row of a table, for the fields set in ``row`` only."""
    found = Findings()
    check_rows(found, rows_of, [row], variant)
    return sorted((i.code, i.field or "") for i in found.issues if i.field in row)


def test_a_bed_day_shared_between_two_departments_is_billed_by_its_share() -> None:
    # XML3 (4750 correction): THANH_TIEN_BV = SO_LUONG x DON_GIA_BV x TYLE_TT_DV (in %).
    visit = _inpatient()
    line = visit.tables["XML3"][0]
    line["SO_LUONG"], line["DON_GIA_BV"], line["TYLE_TT_DV"] = "1", "50600.000", "50"
    line["THANH_TIEN_BV"] = "25300.00"
    _retotal(visit)
    assert _codes(visit) == []
    line["THANH_TIEN_BV"] = "50600.00"  # the whole day, while only half is billed here
    _retotal(visit)
    [wrong] = [i for i in _issues(visit) if i.code == "SUB-0134"]
    assert (wrong.table, wrong.row, wrong.params["expected"]) == ("XML3", 1, "25300.00")
    assert "× 50%" in wrong.as_dict()["message"]["vi"]


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("THANH_TIEN_BV", "300.015", False),  # money: 2 places
        ("THANH_TIEN_BV", "25300.000", True),  # trailing zeros say nothing more
        ("SO_LUONG", "3.12345", False),  # quantities and prices: 3 places
        ("SO_LUONG", "0.125", True),
        ("DON_GIA", "100.0055", False),
        ("T_BNCCT", "1.001", False),
    ],
)
def test_amounts_carry_no_more_decimal_places_than_the_rules_round_to(
    field: str, value: str, ok: bool
) -> None:
    assert _only("XML2", {field: value}) == ([] if ok else [("SUB-0118", field)])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("200004010000", True),  # time of birth unknown
        ("200004000000", True),  # day unknown
        ("200000150000", False),  # a day without its month
        ("200000000000", True),  # only the year known
        ("200004012359", True),
        ("200004012599", False),  # hour 25
        ("200004011260", False),  # minute 60
        ("20000401", False),  # 8 characters where the table holds 12
    ],
)
def test_a_birth_moment_is_checked_in_every_table_that_carries_one(value: str, ok: bool) -> None:
    expected = [] if ok else [("SUB-0113", "NGAY_SINH")]
    for name in ("XML1", "XML13", "XML14"):
        assert _only(name, {"NGAY_SINH": value}) == expected, name


def test_eight_character_birth_dates_and_other_dates_of_the_paper_tables_are_checked() -> None:
    assert _only("XML12", {"NGAY_SINH": "19800000"}) == []  # year only, in an 8-character field
    assert _only("XML12", {"NGAY_SINH": "19801301"}) == [("SUB-0114", "NGAY_SINH")]
    assert _only("XML9", {"NGAYSINH_NND": "19851231"}) == []
    assert _only("XML7", {"NGOAITRU_TUNGAY": "20261340", "NGOAITRU_DENNGAY": "2026xx20"}) == [
        ("SUB-0114", "NGOAITRU_DENNGAY"),
        ("SUB-0114", "NGOAITRU_TUNGAY"),
    ]
    assert _only("XML7", {"THOIGIAN_DINHCHI": "notadate"}) == [("SUB-0113", "THOIGIAN_DINHCHI")]
    assert _only("XML6", {"NGAYBD_DTRI_LAO": "20260931"}) == [("SUB-0114", "NGAYBD_DTRI_LAO")]
    # "8 or 12 characters depending on the case" (§1.4)
    for value, expected in (
        ("20260101", []),
        ("202601010830", []),
        ("20261301", [("SUB-0114", "NGAY_MIEN_CCT")]),
        ("2026010108", [("SUB-0113", "NGAY_MIEN_CCT")]),
    ):
        assert _only("XML1", {"NGAY_MIEN_CCT": value}) == expected, value


def test_moments_are_in_order_in_every_row_of_every_table() -> None:
    visit = _inpatient()
    assert _codes(visit) == []
    for name in ("XML7", "XML8"):
        visit.tables[name][0]["NGAY_RA"] = "202609010800"  # before its NGAY_VAO 202609050813
    visit.tables["XML3"][0]["NGAY_TH_YL"] = "202609050800"  # done before it was ordered
    visit.tables["XML1"][0]["NGAY_VAO_NOI_TRU"] = "202609050800"  # admitted before arriving
    assert _codes(visit) == [
        ("SUB-0130", "XML7", "NGAY_RA"),
        ("SUB-0130", "XML8", "NGAY_RA"),
        ("SUB-0145", "XML1", "NGAY_VAO_NOI_TRU"),
        ("SUB-0145", "XML3", "NGAY_TH_YL"),
    ]
    [late] = [i for i in _issues(visit) if i.table == "XML3"]
    assert late.row == 1
    assert "NGAY_YL = 202609050813" in late.as_dict()["message"]["en"]


def test_coded_fields_are_checked_in_every_table_that_repeats_them() -> None:
    visit = _inpatient()
    summary = visit.tables["XML8"][0]
    summary["MA_LOAI_KCB"], summary["KET_QUA_DTRI"] = "99", "9"
    assert _codes(visit) == [
        ("SUB-0120", "XML8", "KET_QUA_DTRI"),
        ("SUB-0120", "XML8", "MA_LOAI_KCB"),
    ]


def test_a_personal_id_registered_abroad_is_accepted_with_a_warning() -> None:
    # §2: PPP is the province of birth registration, "or a country code for births abroad".
    visit = synth.make_visit(random.Random(3), ended=ENDED, care_type="01")
    xml1 = visit.tables["XML1"][0]
    xml1["SO_CCCD"], xml1["GIOI_TINH"], xml1["NGAY_SINH"] = "840200751984", "1", "200005050000"
    assert _codes(visit) == []
    assert ("SUB-0146", "XML1", "SO_CCCD") in _codes(visit, "warning")
    xml1["GIOI_TINH"] = "2"  # the rest of the number is still checked: digit 2 is a man
    assert _codes(visit) == [("SUB-0136", "XML1", "SO_CCCD")]


def test_a_reason_quoted_from_another_rule_is_in_the_reader_s_language() -> None:
    visit = synth.make_visit(random.Random(3), ended=ENDED, care_type="01")
    xml1 = visit.tables["XML1"][0]
    xml1["SO_CCCD"], xml1["GIOI_TINH"], xml1["NGAY_SINH"] = "001300751984", "1", "200005050000"
    xml1["MA_THE_BHYT"] = "DN4990108594154"
    messages = {i.code: i.as_dict()["message"] for i in _issues(visit)}
    for code in ("SUB-0136", "SUB-0137"):
        assert "Personal identification" not in messages[code]["vi"]
        assert "Health-insurance card" not in messages[code]["vi"]
    assert "Số định danh cá nhân" in messages["SUB-0136"]["vi"]
    assert "Personal identification number" in messages["SUB-0136"]["en"]


def test_broken_visit_dates_bring_no_checks_against_a_made_up_day() -> None:
    visit = synth.make_visit(random.Random(3), ended=ENDED, care_type="01")
    xml1 = visit.tables["XML1"][0]
    xml1["NGAY_VAO"], xml1["NGAY_RA"] = "2026091415", "2026091416"
    found = {(i.code, i.field) for i in _issues(visit)}
    assert ("SUB-0113", "NGAY_VAO") in found
    assert ("SUB-0113", "NGAY_RA") in found
    assert not {code for code, _ in found} & {"SUB-0110", "SUB-0122", "SUB-0144"}


def test_a_malformed_card_is_one_error_not_also_a_validity_warning() -> None:
    visit = synth.make_visit(random.Random(3), ended=ENDED, care_type="01", insured=True)
    visit.tables["XML1"][0]["MA_THE_BHYT"] = "dn4010108594154"
    assert [i.code for i in _issues(visit) if i.field in ("MA_THE_BHYT", "GT_THE_TU")] == [
        "SUB-0137"
    ]


def test_the_ward_lies_in_the_province_given() -> None:
    visit = synth.make_visit(random.Random(3), ended=ENDED, care_type="01")
    xml1 = visit.tables["XML1"][0]
    xml1["MATINH_CU_TRU"], xml1["MAHUYEN_CU_TRU"], xml1["MAXA_CU_TRU"] = "01", "", "00070"
    assert _codes(visit) == []  # Phường Hoàn Kiếm, Hà Nội
    xml1["MATINH_CU_TRU"] = "79"  # Thành phố Hồ Chí Minh
    [wrong] = [i for i in _issues(visit) if i.code == "SUB-0124"]
    assert (wrong.field, wrong.params["found"]) == ("MAXA_CU_TRU", "01")


def test_what_the_papers_repeat_from_table_1_is_table_1() -> None:
    # Appendix A, XML13 and XML14: "if given, the same as in table 1".
    visit = synth.make_visit(
        random.Random(5), ended=ENDED, care_type="03", insured=True, referral=True
    )
    assert "XML13" in visit.tables
    assert _codes(visit) == []
    referral = visit.tables["XML13"][0]
    referral["DIA_CHI"] = "  " + " ".join(referral["DIA_CHI"].split()) + " "  # spacing aside
    referral["MA_BENH_KT"] = referral["MA_BENH_KT"].replace(";", " ; ")
    assert _codes(visit) == []
    referral["HO_TEN"] = "Người Khác"
    referral["PP_DIEUTRI"] = "Điều trị khác"
    assert _codes(visit) == [
        ("SUB-0147", "XML13", "HO_TEN"),
        ("SUB-0147", "XML13", "PP_DIEUTRI"),
    ]
