"""Format checks of personal ID, BHYT card, BHXH number and the SO_CCCD document number."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import FrozenInstanceError
from datetime import date
from importlib import resources
from typing import Any

import pytest

from vnehr.identity import errors
from vnehr.identity.numbers import (
    CARD_PROVINCE_CODES,
    KNOWN_CARD_CATEGORIES,
    PERSONAL_ID_PROVINCE_CODES,
    POST_2025_PROVINCE_CODES,
    PRE_2025_PROVINCE_CODES,
    InsuranceCard,
    PersonalId,
    Sex,
    check_insurance_card,
    check_personal_id,
    check_social_insurance_number,
    classify_document_number,
)
from vnehr.kit.errors import REGISTRY, VnehrError
from vnehr.kit.i18n import LANGUAGES, catalogue

ALL_ERRORS: list[type[VnehrError]] = [
    errors.PersonalIdLength,
    errors.PersonalIdNotDigits,
    errors.PersonalIdProvince,
    errors.PersonalIdSexMismatch,
    errors.PersonalIdCenturyMismatch,
    errors.PersonalIdBirthYearMismatch,
    errors.InsuranceCardLength,
    errors.InsuranceCardCategory,
    errors.InsuranceCardBenefitLevel,
    errors.InsuranceCardProvince,
    errors.InsuranceCardSocialInsuranceNumber,
    errors.SocialInsuranceNumberLength,
    errors.SocialInsuranceNumberNotDigits,
]


# --- personal identification number ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "province", "sex", "century", "year"),
    [
        ("001085012345", "001", "male", 1900, 1985),  # Hà Nội, man born 1985
        ("001185000001", "001", "female", 1900, 1985),
        ("079303987654", "079", "female", 2000, 2003),  # TP Hồ Chí Minh, woman born 2003
        ("096200000000", "096", "male", 2000, 2000),  # Cà Mau, the last pre-2025 code
        ("002199999999", "002", "female", 1900, 1999),
        ("001401123456", "001", "male", 2100, 2101),  # the 2100s digit
        ("038512000000", "038", "female", 2100, 2112),
        ("048999000000", "048", "female", 2300, 2399),  # the last century the digit covers
        ("048800000000", "048", "male", 2300, 2300),
    ],
)
def test_a_valid_personal_id_is_parsed(
    value: str, province: str, sex: Sex, century: int, year: int
) -> None:
    parsed = check_personal_id(value)
    assert parsed == PersonalId(
        value=value,
        province_code=province,
        sex=sex,
        century_start=century,
        birth_year_two_digits=year % 100,
    )
    assert parsed.birth_year == year


def test_a_personal_id_that_agrees_with_the_stated_sex_and_birth_date_passes() -> None:
    parsed = check_personal_id("001085012345", sex="male", birth_date=date(1985, 3, 1))
    assert parsed.birth_year == 1985
    assert check_personal_id("079303987654", sex="female", birth_date=date(2003, 12, 31)).sex == (
        "female"
    )


@pytest.mark.parametrize(
    "raw", [" 001085012345", "001085012345 ", "  001085012345\t", "\n001085012345\n"]
)
def test_surrounding_whitespace_is_stripped_from_a_personal_id(raw: str) -> None:
    assert check_personal_id(raw).value == "001085012345"


def test_a_personal_id_is_immutable() -> None:
    parsed = check_personal_id("001085012345")
    with pytest.raises(FrozenInstanceError):
        parsed.sex = "female"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "length"),
    [("00108501234", 11), ("0010850123456", 13), ("", 0), ("001 085 012 345", 15)],
)
def test_a_personal_id_of_the_wrong_length_is_refused(value: str, length: int) -> None:
    with pytest.raises(errors.PersonalIdLength) as caught:
        check_personal_id(value)
    assert caught.value.code == "ID-0001"
    assert caught.value.status_code == 422
    assert caught.value.detail == {"value": value, "length": length, "expected_length": 12}
    assert f"{length} characters" in caught.value.messages()["en"]
    assert f"{length} ký tự" in caught.value.messages()["vi"]


@pytest.mark.parametrize(
    ("value", "position", "character"),
    [
        ("A01085012345", 1, "A"),
        ("00108501234x", 12, "x"),
        ("001-85012345", 4, "-"),
        ("001085 12345", 7, " "),
        ("00108501234٥", 12, "٥"),  # an Arabic-Indic five: str.isdigit() is True for it
        ("００1085012345", 1, "０"),  # full-width zero
    ],
)
def test_a_personal_id_with_a_non_digit_is_refused_at_that_position(
    value: str, position: int, character: str
) -> None:
    with pytest.raises(errors.PersonalIdNotDigits) as caught:
        check_personal_id(value)
    assert caught.value.code == "ID-0002"
    assert caught.value.detail["position"] == position
    assert caught.value.detail["character"] == character
    assert f'character {position} is "{character}"' in caught.value.messages()["en"]


@pytest.mark.parametrize("province", ["097", "000", "100", "003", "099", "901"])
def test_a_personal_id_outside_the_63_pre_2025_provinces_is_refused(province: str) -> None:
    value = province + "085012345"
    with pytest.raises(errors.PersonalIdProvince) as caught:
        check_personal_id(value)
    assert caught.value.code == "ID-0003"
    assert caught.value.detail["province_code"] == province
    assert caught.value.detail["expected"] == sorted(PERSONAL_ID_PROVINCE_CODES)
    assert province in caught.value.messages()["vi"]


@pytest.mark.parametrize("province", ["002", "035", "093", "044"])
def test_provinces_abolished_in_2025_still_identify_a_person(province: str) -> None:
    # Hà Giang, Hà Nam, Hậu Giang, Quảng Bình were merged away; the numbers stay valid.
    assert check_personal_id(province + "085012345").province_code == province


@pytest.mark.parametrize(
    ("value", "stated", "digit", "expected_digits"),
    [
        ("001085012345", "female", "0", ["1", "3", "5", "7", "9"]),
        ("001185012345", "male", "1", ["0", "2", "4", "6", "8"]),
        ("079303987654", "male", "3", ["0", "2", "4", "6", "8"]),
    ],
)
def test_a_personal_id_of_the_other_sex_is_refused(
    value: str, stated: Sex, digit: str, expected_digits: list[str]
) -> None:
    with pytest.raises(errors.PersonalIdSexMismatch) as caught:
        check_personal_id(value, sex=stated)
    assert caught.value.code == "ID-0004"
    assert caught.value.detail["digit"] == digit
    assert caught.value.detail["sex"] == stated
    assert caught.value.detail["expected_digits"] == expected_digits
    assert ", ".join(expected_digits) in caught.value.messages()["en"]


@pytest.mark.parametrize(
    ("value", "birth", "century_start", "expected_digit"),
    [
        ("001285012345", date(1985, 1, 1), 2000, "0"),  # 2000s digit, born in 1985
        ("001085012345", date(2085, 1, 1), 1900, "2"),
        ("001303012345", date(1903, 1, 1), 2000, "1"),  # a woman: the right digit is odd
        ("001485012345", date(2085, 1, 1), 2100, "2"),
        ("001099012345", date(1899, 12, 31), 1900, None),  # no digit for the 1800s
    ],
)
def test_a_personal_id_of_another_century_than_the_birth_date_is_refused(
    value: str, birth: date, century_start: int, expected_digit: str | None
) -> None:
    with pytest.raises(errors.PersonalIdCenturyMismatch) as caught:
        check_personal_id(value, birth_date=birth)
    assert caught.value.code == "ID-0005"
    assert caught.value.detail["century_start"] == century_start
    assert caught.value.detail["century_end"] == century_start + 99
    assert caught.value.detail["birth_year"] == birth.year
    assert caught.value.detail["expected_digit"] == expected_digit
    assert f"năm {century_start} đến năm {century_start + 99}" in caught.value.messages()["vi"]


@pytest.mark.parametrize(
    ("value", "birth", "year_digits", "expected"),
    [
        ("001085012345", date(1986, 5, 1), "85", "86"),
        ("079303987654", date(2000, 1, 1), "03", "00"),
        ("001400012345", date(2109, 1, 1), "00", "09"),
    ],
)
def test_a_personal_id_of_another_birth_year_is_refused(
    value: str, birth: date, year_digits: str, expected: str
) -> None:
    with pytest.raises(errors.PersonalIdBirthYearMismatch) as caught:
        check_personal_id(value, birth_date=birth)
    assert caught.value.code == "ID-0006"
    assert caught.value.detail == {
        "value": value,
        "year_digits": year_digits,
        "birth_year": birth.year,
        "expected_year_digits": expected,
    }
    assert f"must be {expected}" in caught.value.messages()["en"]


def test_the_first_broken_rule_is_the_one_reported() -> None:
    # Wrong province, sex and year at once: the province comes first.
    with pytest.raises(errors.PersonalIdProvince):
        check_personal_id("097185012345", sex="male", birth_date=date(1990, 1, 1))
    # Wrong sex and century: the sex comes first.
    with pytest.raises(errors.PersonalIdSexMismatch):
        check_personal_id("001385012345", sex="male", birth_date=date(1985, 1, 1))


def test_every_personal_id_error_is_a_personal_id_problem() -> None:
    for value in ("1", "00108501234x", "097085012345"):
        with pytest.raises(errors.PersonalIdInvalid):
            check_personal_id(value)


# --- health-insurance card number -------------------------------------------------------------


def test_a_valid_card_is_parsed() -> None:
    card = check_insurance_card("DN4010123456789")
    assert card == InsuranceCard(
        value="DN4010123456789",
        category="DN",
        benefit_level=4,
        province_code="01",
        social_insurance_number="0123456789",
        category_known=True,
    )
    assert not card.is_newborn_temporary


@pytest.mark.parametrize(
    ("value", "category", "level", "province"),
    [
        ("HT3790000000001", "HT", 3, "79"),
        ("CC1960000000001", "CC", 1, "96"),
        ("QN5011234567890", "QN", 5, "01"),
        ("HS4351234567890", "HS", 4, "35"),  # Hà Nam: a card issued before the merger
        ("GD4929999999999", "GD", 4, "92"),
    ],
)
def test_cards_with_pre_and_post_2025_provinces_are_valid(
    value: str, category: str, level: int, province: str
) -> None:
    card = check_insurance_card(value)
    assert (card.category, card.benefit_level, card.province_code) == (category, level, province)
    assert card.category_known


def test_an_unknown_category_is_accepted_but_marked() -> None:
    card = check_insurance_card("ZZ4010123456789")
    assert card.category == "ZZ"
    assert card.category_known is False


def test_surrounding_whitespace_is_stripped_from_a_card() -> None:
    assert check_insurance_card("  DN4010123456789 ").value == "DN4010123456789"


@pytest.mark.parametrize("value", ["TE1010123456789", "TE1790000000042"])
def test_a_newborn_temporary_card_is_valid(value: str) -> None:
    card = check_insurance_card(value)
    assert card.is_newborn_temporary
    assert card.category == "TE"
    assert card.benefit_level == 1
    assert card.category_known


@pytest.mark.parametrize("value", ["TE2010123456789", "DN1010123456789"])
def test_other_cards_are_not_temporary_newborn_cards(value: str) -> None:
    assert not check_insurance_card(value).is_newborn_temporary


@pytest.mark.parametrize(
    ("value", "length"),
    [("DN401012345678", 14), ("DN40101234567890", 16), ("", 0), ("DN 4 01 0123456789", 18)],
)
def test_a_card_of_the_wrong_length_is_refused(value: str, length: int) -> None:
    with pytest.raises(errors.InsuranceCardLength) as caught:
        check_insurance_card(value)
    assert caught.value.code == "ID-0007"
    assert caught.value.detail == {"value": value, "length": length, "expected_length": 15}


@pytest.mark.parametrize(
    ("value", "category"),
    [
        ("dn4010123456789", "dn"),
        ("D14010123456789", "D1"),
        ("1D4010123456789", "1D"),
        ("ĐN4010123456789", "ĐN"),  # a Vietnamese capital, not A-Z
    ],
)
def test_a_card_whose_category_is_not_two_capital_letters_is_refused(
    value: str, category: str
) -> None:
    with pytest.raises(errors.InsuranceCardCategory) as caught:
        check_insurance_card(value)
    assert caught.value.code == "ID-0008"
    assert caught.value.detail["category"] == category
    assert f'"{category}"' in caught.value.messages()["vi"]


@pytest.mark.parametrize("level", ["0", "6", "9", "A", " "])
def test_a_card_whose_benefit_level_is_not_1_to_5_is_refused(level: str) -> None:
    with pytest.raises(errors.InsuranceCardBenefitLevel) as caught:
        check_insurance_card(f"DN{level}010123456789")
    assert caught.value.code == "ID-0009"
    assert caught.value.detail["benefit_level"] == level
    assert caught.value.detail["expected"] == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("province", ["00", "97", "03", "99", "1A", "AB"])
def test_a_card_whose_province_is_no_province_is_refused(province: str) -> None:
    with pytest.raises(errors.InsuranceCardProvince) as caught:
        check_insurance_card(f"DN4{province}0123456789")
    assert caught.value.code == "ID-0010"
    assert caught.value.detail["province_code"] == province
    assert caught.value.detail["expected"] == sorted(CARD_PROVINCE_CODES)


@pytest.mark.parametrize(
    ("value", "number", "position", "character"),
    [
        ("DN401012345678X", "012345678X", 15, "X"),
        ("DN401A123456789", "A123456789", 6, "A"),
        ("DN4010123 56789", "0123 56789", 10, " "),
    ],
)
def test_a_card_whose_social_insurance_number_is_not_10_digits_is_refused(
    value: str, number: str, position: int, character: str
) -> None:
    with pytest.raises(errors.InsuranceCardSocialInsuranceNumber) as caught:
        check_insurance_card(value)
    assert caught.value.code == "ID-0011"
    assert caught.value.detail == {
        "value": value,
        "social_insurance_number": number,
        "position": position,
        "character": character,
    }


def test_the_card_checks_agree_with_the_published_regex() -> None:
    published = re.compile(r"^[A-Z]{2}[1-5]\d{2}\d{10}$")
    samples = ["DN4010123456789", "AA1000000000000", "ZZ5990000000000", "TE1010000000000"]
    for value in samples:
        assert published.match(value)
    assert check_insurance_card("ZZ5960000000000").category_known is False
    # The published regex accepts any 2 digits as province; we accept real provinces only.
    for value in ("AA1000000000000", "ZZ5990000000000"):
        with pytest.raises(errors.InsuranceCardProvince):
            check_insurance_card(value)


# --- social-insurance number ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "number"), [("0123456789", "0123456789"), (" 7912345678 ", "7912345678")]
)
def test_a_valid_social_insurance_number_is_returned(raw: str, number: str) -> None:
    assert check_social_insurance_number(raw) == number


@pytest.mark.parametrize(("value", "length"), [("012345678", 9), ("01234567890", 11), ("", 0)])
def test_a_social_insurance_number_of_the_wrong_length_is_refused(value: str, length: int) -> None:
    with pytest.raises(errors.SocialInsuranceNumberLength) as caught:
        check_social_insurance_number(value)
    assert caught.value.code == "ID-0012"
    assert caught.value.detail == {"value": value, "length": length, "expected_length": 10}


@pytest.mark.parametrize(
    ("value", "position", "character"),
    [("012345678O", 10, "O"), ("X123456789", 1, "X"), ("01234٥6789", 6, "٥")],
)
def test_a_social_insurance_number_with_a_non_digit_is_refused(
    value: str, position: int, character: str
) -> None:
    with pytest.raises(errors.SocialInsuranceNumberNotDigits) as caught:
        check_social_insurance_number(value)
    assert caught.value.code == "ID-0013"
    assert caught.value.detail == {"value": value, "position": position, "character": character}


# --- SO_CCCD document number ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("001085012345", "personal_id"),
        (" 001085012345 ", "personal_id"),
        ("999999999999", "personal_id"),  # the shape only; check_personal_id validates it
        ("012345678", "old_id_card"),
        ("B1234567", "passport"),
        ("C7654321", "passport"),
        ("b1234567", "other"),
        ("AB123456", "other"),
        ("12345678", "other"),
        ("0010850123456", "other"),
        ("00108501234٥", "other"),
        ("", "other"),
        ("VNEID-ACCOUNT-1", "other"),
    ],
)
def test_the_document_number_is_classified_by_its_shape(value: str, kind: str) -> None:
    assert classify_document_number(value) == kind


# --- constants, against the installed data ----------------------------------------------------


def _distinct_province_codes(table: str) -> set[str]:
    db = resources.files("vietnamadminunits").joinpath("data", "dataset.db")
    with (
        resources.as_file(db) as path,
        closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con,
    ):
        rows = con.execute(f"SELECT DISTINCT provinceCode FROM {table}").fetchall()  # noqa: S608
    return {str(row[0]) for row in rows}


def test_the_personal_id_province_codes_are_the_63_pre_2025_provinces_of_the_package_data() -> None:
    assert len(PERSONAL_ID_PROVINCE_CODES) == 63
    assert all(code.startswith("0") and len(code) == 3 for code in PERSONAL_ID_PROVINCE_CODES)
    assert _distinct_province_codes("admin_units_legacy") == {
        code[1:] for code in PERSONAL_ID_PROVINCE_CODES
    }
    assert {code[1:] for code in PERSONAL_ID_PROVINCE_CODES} == PRE_2025_PROVINCE_CODES


def test_the_post_2025_province_codes_are_the_34_provinces_of_the_package_data() -> None:
    assert len(POST_2025_PROVINCE_CODES) == 34
    assert _distinct_province_codes("admin_units") == POST_2025_PROVINCE_CODES
    assert POST_2025_PROVINCE_CODES <= PRE_2025_PROVINCE_CODES
    assert CARD_PROVINCE_CODES == PRE_2025_PROVINCE_CODES | POST_2025_PROVINCE_CODES


def test_the_known_card_categories_are_two_capital_letters() -> None:
    assert all(re.fullmatch(r"[A-Z]{2}", category) for category in KNOWN_CARD_CATEGORIES)
    assert {"DN", "HC", "HT", "TE", "HS", "HN", "CN", "QN", "CA", "CY", "GD"} <= (
        KNOWN_CARD_CATEGORIES
    )


# --- the errors themselves --------------------------------------------------------------------


def test_every_identity_error_has_a_unique_registered_code_and_status_422() -> None:
    codes = [cls.code for cls in ALL_ERRORS]
    assert codes == [f"ID-{n:04d}" for n in range(1, len(ALL_ERRORS) + 1)]
    for cls in ALL_ERRORS:
        assert REGISTRY[cls.code] is cls
        assert cls.status_code == 422
        assert issubclass(cls, errors.IdentifierInvalid)
    defined = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, VnehrError)
        and obj.__module__ == errors.__name__
        and "code" in obj.__dict__
    }
    assert defined == set(ALL_ERRORS), "a new error class must be added to ALL_ERRORS"


def test_every_identity_error_has_vietnamese_and_english_text_with_the_same_placeholders() -> None:
    for cls in ALL_ERRORS:
        texts = {language: catalogue(language).get(cls.code) for language in LANGUAGES}
        assert all(texts.values()), f"{cls.code} lacks a text: {texts}"
        vi, en = texts["vi"], texts["en"]
        assert vi is not None
        assert en is not None
        assert vi != en
        assert set(re.findall(r"{(\w+)}", vi)) == set(re.findall(r"{(\w+)}", en)), cls.code


def _raise(call: Any) -> VnehrError:
    with pytest.raises(VnehrError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    "call",
    [
        lambda: check_personal_id("1"),
        lambda: check_personal_id("00108501234x"),
        lambda: check_personal_id("097085012345"),
        lambda: check_personal_id("001085012345", sex="female"),
        lambda: check_personal_id("001285012345", birth_date=date(1985, 1, 1)),
        lambda: check_personal_id("001085012345", birth_date=date(1986, 1, 1)),
        lambda: check_insurance_card("DN"),
        lambda: check_insurance_card("d14010123456789"),
        lambda: check_insurance_card("DN6010123456789"),
        lambda: check_insurance_card("DN4000123456789"),
        lambda: check_insurance_card("DN40101234567x9"),
        lambda: check_social_insurance_number("1"),
        lambda: check_social_insurance_number("012345678x"),
    ],
)
def test_every_raised_error_fills_all_placeholders_in_both_languages(call: Any) -> None:
    error = _raise(call)
    body = error.body()
    assert body["code"].startswith("ID-")
    for language in LANGUAGES:
        message = body["message"][language]
        assert not re.search(r"{\w+}", message), f"{error.code} {language}: {message}"
        assert message != error.code  # the text exists, not the bare key
    assert body["detail"]["value"] is not None
