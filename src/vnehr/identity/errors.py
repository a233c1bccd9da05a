"""Errors of personal-identifier validation (codes ID-xxxx; texts in vnehr/locale).

Every concrete class has its own code so that a caller, a visit-file report or the command-line
validator can tell exactly which rule a number broke. The grouping classes carry no code: they
exist so that callers can catch "any problem with a personal ID" or "any problem with a card" in
one ``except`` clause.
"""

from vnehr.kit.errors import VnehrError


class IdentifierInvalid(VnehrError):
    """Any identifier that breaks a format rule (grouping class, no code of its own)."""

    status_code = 422


class PersonalIdInvalid(IdentifierInvalid):
    """The personal identification number (số định danh cá nhân / CCCD) is not valid."""


class PersonalIdLength(PersonalIdInvalid):
    """Not 12 characters. Params: value, length, expected_length."""

    code = "ID-0001"


class PersonalIdNotDigits(PersonalIdInvalid):
    """A character is not an ASCII digit. Params: value, position (1-based), character."""

    code = "ID-0002"


class PersonalIdProvince(PersonalIdInvalid):
    """The first 3 digits are not a pre-2025 province code. Params: value, province_code."""

    code = "ID-0003"


class PersonalIdSexMismatch(PersonalIdInvalid):
    """Digit 4 encodes the other sex. Params: value, digit, sex, expected_digits."""

    code = "ID-0004"


class PersonalIdCenturyMismatch(PersonalIdInvalid):
    """Digit 4 encodes another century than the birth year's.

    Params: value, digit, century_start, century_end, birth_year.
    """

    code = "ID-0005"


class PersonalIdBirthYearMismatch(PersonalIdInvalid):
    """Digits 5-6 are not the last two digits of the birth year.

    Params: value, year_digits, birth_year, expected_year_digits.
    """

    code = "ID-0006"


class InsuranceCardInvalid(IdentifierInvalid):
    """The health-insurance card number (mã thẻ BHYT) is not valid."""


class InsuranceCardLength(InsuranceCardInvalid):
    """Not 15 characters. Params: value, length, expected_length."""

    code = "ID-0007"


class InsuranceCardCategory(InsuranceCardInvalid):
    """Characters 1-2 are not 2 capital letters A-Z. Params: value, category."""

    code = "ID-0008"


class InsuranceCardBenefitLevel(InsuranceCardInvalid):
    """Character 3 is not a digit 1-5. Params: value, benefit_level."""

    code = "ID-0009"


class InsuranceCardProvince(InsuranceCardInvalid):
    """Characters 4-5 are not a province code. Params: value, province_code."""

    code = "ID-0010"


class InsuranceCardSocialInsuranceNumber(InsuranceCardInvalid):
    """Characters 6-15 are not all digits.

    Params: value, social_insurance_number, position (1-based in the card), character.
    """

    code = "ID-0011"


class SocialInsuranceNumberInvalid(IdentifierInvalid):
    """The social-insurance number (mã số BHXH) is not valid."""


class SocialInsuranceNumberLength(SocialInsuranceNumberInvalid):
    """Not 10 characters. Params: value, length, expected_length."""

    code = "ID-0012"


class SocialInsuranceNumberNotDigits(SocialInsuranceNumberInvalid):
    """A character is not an ASCII digit. Params: value, position (1-based), character."""

    code = "ID-0013"
