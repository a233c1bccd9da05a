"""The paper rules, each with a passing and a failing case: working days around Tết, the chronic
referral year, sick-leave limits, appointment order, birth-certificate numbers, discharge leave,
and the driver's certificate."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from vnehr.papers import rules


class Sink:
    def __init__(self) -> None:
        self.codes: list[tuple[str, str | None]] = []

    def error(
        self,
        code: str,
        table: str | None = None,
        row: int | None = None,
        field_: str | None = None,
        **params: Any,
    ) -> None:
        self.codes.append((code, field_))

    warning = error


def check(tables: dict[str, list[dict[str, str]]], facility: str = "01001") -> list[str]:
    sink = Sink()
    rules.check_visit_papers(sink, tables, facility)
    return [code for code, _ in sink.codes]


XML1 = {
    "MA_LK": "LK1",
    "NGAY_VAO": "202611020800",
    "NGAY_RA": "202611021000",
    "NGAY_SINH": "199001010000",
    "MA_LOAI_KCB": "01",
    "MA_BENH_CHINH": "J06.9",
    "MA_BENH_KT": "",
    "MA_NOI_DEN": "01002",
}


def test_working_days_skip_weekends_and_tet() -> None:
    # Thursday 2026-02-12: Tết holidays are 16-20 February 2026
    assert rules.add_working_days(date(2026, 2, 12), 10) == date(2026, 3, 5)
    # an ordinary fortnight: ten working days after Monday 2026-11-02
    assert rules.add_working_days(date(2026, 11, 2), 10) == date(2026, 11, 16)
    # National Day (1-2 September 2026) and the moved day off (31 August)
    assert rules.add_working_days(date(2026, 8, 28), 1) == date(2026, 9, 3)
    assert not rules.is_working_day(date(2026, 2, 17))
    assert rules.is_working_day(date(2026, 2, 23))


def test_a_saturday_the_government_makes_a_working_day_counts() -> None:
    # Saturday 2025-04-26 is worked in exchange for Friday 2 May (30/4-2/5 off)
    assert rules.is_working_day(date(2025, 4, 26))
    assert not rules.is_working_day(date(2025, 5, 2))
    assert not rules.is_working_day(date(2025, 4, 19))  # an ordinary Saturday
    # a referral signed Friday 2025-04-18: its tenth working day is Tuesday 6 May
    assert rules.referral_valid_until(date(2025, 4, 18), ["J06"]) == date(2025, 5, 6)


def test_referral_is_valid_ten_working_days_or_a_year_for_chronic_diseases() -> None:
    assert rules.referral_valid_until(date(2026, 11, 2), ["J06.9"]) == date(2026, 11, 16)
    assert rules.referral_valid_until(date(2026, 3, 10), ["I10"]) == date(2027, 3, 9)
    assert rules.referral_valid_until(date(2026, 3, 10), ["J06.9", "E11.9"]) == date(2027, 3, 9)


def test_driver_certificate_is_valid_twelve_months() -> None:
    assert rules.driver_valid_until(date(2026, 11, 20)) == date(2027, 11, 19)
    assert rules.driver_valid_until(date(2026, 1, 31)) == date(2027, 1, 30)


def sick(days: int, start: str = "20261102", **extra: str) -> dict[str, str]:
    end = date.fromordinal(
        date(int(start[:4]), int(start[4:6]), int(start[6:])).toordinal() + days - 1
    )
    return {
        "MA_LK": "LK1",
        "SO_NGAY_NGHI": str(days),
        "TU_NGAY": start,
        "DEN_NGAY": end.strftime("%Y%m%d"),
        "NGAY_CT": "20261102",
        **extra,
    }


@pytest.mark.parametrize(
    ("diagnosis", "days", "expected"),
    [
        ("J06.9", 30, []),
        ("J06.9", 31, ["PAP-0104"]),
        ("A15.0", 180, []),
        ("A15.0", 181, ["PAP-0104"]),
        ("O03.9", 50, []),
        ("O03.9", 51, ["PAP-0104"]),
    ],
)
def test_sick_leave_limits(diagnosis: str, days: int, expected: list[str]) -> None:
    assert check({"XML1": [{**XML1, "MA_BENH_CHINH": diagnosis}], "XML11": [sick(days)]}) == (
        expected
    )


def test_sick_leave_is_for_outpatients_starting_on_the_exam_day() -> None:
    inpatient = {**XML1, "MA_LOAI_KCB": "03"}
    assert check({"XML1": [inpatient], "XML11": [sick(5)]}) == ["PAP-0101"]
    assert check({"XML1": [XML1], "XML11": [sick(5, "20261103")]}) == ["PAP-0105"]
    wrong = {**sick(5), "SO_NGAY_NGHI": "6"}
    assert check({"XML1": [XML1], "XML11": [wrong]}) == ["PAP-0103"]
    assert check({"XML1": [XML1], "XML11": [sick(5, MAU_SO="CT08")]}) == ["PAP-0107"]


def test_sick_leave_for_a_child_under_seven_names_a_parent() -> None:
    child = {**XML1, "NGAY_SINH": "202201010000"}
    assert check({"XML1": [child], "XML11": [sick(3)]}) == ["PAP-0106"]
    assert check({"XML1": [child], "XML11": [sick(3, HO_TEN_ME="Lê Thị Hoa")]}) == []


def test_re_exam_comes_after_the_visit_from_the_issuing_facility() -> None:
    good = {
        "MA_LK": "LK1",
        "SO_GIAYHEN_KL": "1/2026/GHKL",
        "MA_CSKCB": "01001",
        "NGAY_HEN_KL": "202611160730",
        "NGAY_CT": "20261102",
    }
    assert check({"XML1": [XML1], "XML14": [good]}) == []
    early = {**good, "NGAY_HEN_KL": "202611010730"}
    assert check({"XML1": [XML1], "XML14": [early]}) == ["PAP-0109"]
    assert check({"XML1": [XML1], "XML14": [{**good, "MA_CSKCB": "01009"}]}) == ["PAP-0108"]
    assert check({"XML1": [XML1], "XML14": [{**good, "NGAY_CT": "20261101"}]}) == ["PAP-0110"]
    window = rules.window("re_exam", good, XML1)
    # ten working days after 16 November, skipping Vietnam Culture Day (24 November)
    assert window is not None
    assert window.until == date(2026, 12, 1)


def test_referral_matches_the_visit_and_goes_elsewhere() -> None:
    good = {
        "MA_LK": "LK1",
        "GIAY_CHUYEN_TUYEN": "5/2026/GCT",
        "MA_CSKCB": "01001",
        "MA_NOI_DEN": "01002",
        "MA_BENH_CHINH": "J06.9",
    }
    assert check({"XML1": [XML1], "XML13": [good]}) == []
    assert check({"XML1": [XML1], "XML13": [{**good, "MA_BENH_CHINH": "J20.9"}]}) == ["PAP-0111"]
    home = {**XML1, "MA_NOI_DEN": "01001"}
    assert check({"XML1": [home], "XML13": [{**good, "MA_NOI_DEN": "01001"}]}) == ["PAP-0112"]


def test_birth_certificate_numbers_from_october_2025() -> None:
    row = {
        "MA_LK": "LK1",
        "SO": "00042.GCS.01001.26",
        "NGAY_CT": "20261102",
        "NGAY_SINH_CON": "202611010630",
    }
    assert check({"XML1": [XML1], "XML9": [row]}) == []
    assert check({"XML1": [XML1], "XML9": [{**row, "SO": "42/GCS/2026"}]}) == ["PAP-0113"]
    assert check({"XML1": [XML1], "XML9": [{**row, "SO": "00042.GCS.01009.25"}]}) == ["PAP-0114"]
    older = {**row, "SO": "42/GCS/2025", "NGAY_CT": "20250915", "NGAY_SINH_CON": "202509140630"}
    assert check({"XML1": [XML1], "XML9": [older]}) == []
    assert check({"XML1": [XML1], "XML9": [{**row, "NGAY_SINH_CON": "202611030630"}]}) == [
        "PAP-0115"
    ]


def test_discharge_leave_fields_come_together() -> None:
    row = {
        "MA_LK": "LK1",
        "SO_LUU_TRU": "BA-1",
        "SO_NGAY_NGHI": "5",
        "NGOAITRU_TUNGAY": "20261103",
        "NGOAITRU_DENNGAY": "20261107",
    }
    assert check({"XML1": [XML1], "XML7": [row]}) == []
    assert check({"XML1": [XML1], "XML7": [{**row, "NGOAITRU_DENNGAY": ""}]}) == ["PAP-0116"]
    ended = {
        **row,
        "MA_DINH_CHI_THAI": "1",
        "NGUYENNHAN_DINHCHI": "Thai lưu",
        "THOIGIAN_DINHCHI": "202611021000",
        "TUOI_THAI": "45",
    }
    assert check({"XML1": [XML1], "XML7": [ended]}) == ["PAP-0118"]
    assert check({"XML1": [XML1], "XML7": [{**ended, "TUOI_THAI": ""}]}) == ["PAP-0117"]


def test_driver_certificate_rules() -> None:
    def driver(**kw: Any) -> list[str]:
        sink = Sink()
        args = {
            "examined": date(2026, 11, 20),
            "today": date(2026, 11, 26),
            "classes": ["B"],
            "drug_test": "negative",
            "alcohol": "negative",
            "conclusion": "fit",
            **kw,
        }
        rules.check_driver(sink, **args)
        return [code for code, _ in sink.codes]

    assert driver() == []
    assert driver(classes=["B", "C1E"]) == []
    assert driver(classes=["B2"]) == ["PAP-0120"]  # the pre-2025 class is gone
    assert driver(examined=date(2026, 11, 27)) == ["PAP-0121"]
    # valid 12 months: an exam a year ago would give a certificate expired yesterday
    assert driver(examined=date(2025, 11, 27)) == []  # valid to 2026-11-26, today
    assert driver(examined=date(2025, 11, 26)) == ["PAP-0123"]
    assert driver(examined=date(1926, 1, 5)) == ["PAP-0123"]
    assert driver(drug_test="positive") == ["PAP-0122"]
    assert driver(alcohol="positive", conclusion="unfit") == []
