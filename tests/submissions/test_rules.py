"""Every validation rule, a passing and a failing visit: the generator's labelled defects must
each be caught with exactly their own code, and clean visits must pass (no database: the
packaged catalogues)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from vnehr import catalogs
from vnehr.submissions import analyse, synth
from vnehr.submissions.rules import Findings, check_visit
from vnehr.submissions.xmlio import Limits

EXPECTED = {
    "missing_required": "SUB-0110",
    "bad_date": "SUB-0113",
    "ngay_ra_before_ngay_vao": "SUB-0130",
    "bad_icd": "SUB-0121",
    "wrong_total": "SUB-0132",
    "wrong_bhtt": "SUB-0133",
    "wrong_line_amount": "SUB-0134",
    "bad_cccd_sex": "SUB-0136",
    "bad_card": "SUB-0137",
    "mismatched_ma_lk": "SUB-0131",
    "wrong_so_ngay_dtri": "SUB-0135",
    "bad_care_type": "SUB-0120",
    "facility_mismatch": "SUB-0139",
    "too_long": "SUB-0111",
}
ENDED = datetime(2026, 9, 14, 16, 45)  # noqa: DTZ001


def test_every_defect_the_generator_knows_has_a_rule() -> None:
    assert set(EXPECTED) == set(synth.DEFECTS)


def _errors(visit: synth.SynthVisit, facility: str = "01001") -> list[str]:
    analysis = analyse(synth.envelope([visit], facility), codes=catalogs.offline(), limits=Limits())
    [result] = analysis.visits
    return sorted({i.code for i in result.findings.issues if i.severity == "error"})


@pytest.mark.parametrize("defect", sorted(EXPECTED))
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_each_defect_is_caught_with_exactly_its_code(defect: str, seed: int) -> None:
    visit = synth.make_visit(random.Random(seed), ended=ENDED, defect=defect)
    assert _errors(visit) == [EXPECTED[defect]]


@pytest.mark.parametrize("defect", sorted(EXPECTED))
def test_a_defect_in_a_visit_with_a_referral_is_caught_once(defect: str) -> None:
    """The referral (XML13) repeats XML1: the facility's defect is in the copy too, and must be
    reported by its own rule only (not also as a copy that differs, PAP-0111)."""
    visit = synth.make_visit(
        random.Random(5), ended=ENDED, care_type="03", insured=True, referral=True, defect=defect
    )
    assert visit.tables.get("XML13")
    assert _errors(visit) == [EXPECTED[defect]]


@pytest.mark.parametrize("care_type", ["01", "02", "03", "04"])
@pytest.mark.parametrize("insured", [True, False])
def test_clean_visits_of_every_kind_pass(care_type: str, insured: bool) -> None:
    for seed in range(5):
        visit = synth.make_visit(
            random.Random(seed), ended=ENDED, care_type=care_type, insured=insured
        )
        assert _errors(visit) == [], (seed, visit.ma_lk)


def test_addresses_are_checked_against_the_units_in_force_when_the_visit_began() -> None:
    before = synth.make_visit(random.Random(7), ended=datetime(2025, 3, 3, 9, 0), care_type="01")  # noqa: DTZ001
    xml1 = before.tables["XML1"][0]
    xml1["MATINH_CU_TRU"], xml1["MAHUYEN_CU_TRU"], xml1["MAXA_CU_TRU"] = "01", "002", "00061"
    assert _errors(before) == []  # Phường Hàng Bạc, Quận Hoàn Kiếm: in force then
    after = synth.make_visit(random.Random(7), ended=ENDED, care_type="01")
    xml1 = after.tables["XML1"][0]
    xml1["MAXA_CU_TRU"] = "00061"  # merged into Phường Hoàn Kiếm on 2025-07-01
    assert _errors(after) == ["SUB-0122"]
    xml1["MAXA_CU_TRU"], xml1["MAHUYEN_CU_TRU"] = "00070", "002"
    analysis = analyse(synth.envelope([after], "01001"), codes=catalogs.offline(), limits=Limits())
    assert [i.code for i in analysis.visits[0].findings.issues] == ["SUB-0123"]  # a warning


def test_secondary_codes_are_each_checked_and_counted() -> None:
    visit = synth.make_visit(random.Random(3), ended=ENDED, care_type="01")
    xml1 = visit.tables["XML1"][0]
    xml1["MA_BENH_KT"] = "I10;E11.9;X"
    assert _errors(visit) == ["SUB-0121"]  # a chapter is a heading, not a diagnosis
    xml1["MA_BENH_KT"] = ";".join(["I10"] * 13)
    assert _errors(visit) == ["SUB-0116"]


def test_a_visit_without_its_summary_table_is_rejected() -> None:
    found: Findings = check_visit({"XML2": []}, envelope_facility="01001", codes=catalogs.offline())
    assert [i.code for i in found.issues] == ["SUB-0104"]


def test_a_flood_of_issues_is_listed_up_to_the_cap_and_still_rejects() -> None:
    """Thousands of empty drug rows (a 250 KB file) give one line per listed issue up to
    MAX_ISSUES, then one SUB-0117; the visit stays rejected and the receipt stays small."""
    from vnehr.submissions.rules import MAX_ISSUES
    from vnehr.submissions.spec import table
    from vnehr.submissions.xmlio import write_envelope, write_table

    visit = synth.make_visit(random.Random(3), facility_code="01001", ended=ENDED)
    records = {name: write_table(name, rows) for name, rows in visit.tables.items()}
    drugs = table("XML2", "4750")
    records["XML2"] = (
        f"<{drugs.root}><{drugs.list}>"
        + f"<{drugs.row}/>" * 9_500
        + f"</{drugs.list}></{drugs.root}>"
    ).encode()
    data = write_envelope("01001", "20260914", [records])
    assert len(data) < 300_000
    [result] = analyse(data, codes=catalogs.offline(), limits=Limits()).visits
    issues = result.findings.issues
    assert len(issues) == MAX_ISSUES + 1
    assert issues[-1].code == "SUB-0117"
    assert issues[-1].severity == "error"
    assert result.findings.rejected
    message = issues[-1].as_dict()["message"]
    assert message["en"].startswith(f"There are more issues than the {MAX_ISSUES} listed")
    assert str(MAX_ISSUES) in message["vi"]


def test_unlisted_warnings_alone_do_not_reject_but_an_unlisted_error_does() -> None:
    from vnehr.submissions.rules import MAX_ISSUES

    found = Findings()
    for n in range(MAX_ISSUES + 5):
        found.warning("SUB-0115", "XML2", n + 1, "X")
    assert (found.issues[-1].code, found.issues[-1].severity) == ("SUB-0117", "warning")
    assert not found.rejected
    found.error("SUB-0110", "XML2", 1, "MA_THUOC")
    assert (found.issues[-1].code, found.issues[-1].severity) == ("SUB-0117", "error")
    assert found.rejected
    assert len(found.issues) == MAX_ISSUES + 1
