"""Format checks for Vietnamese personal identifiers. No database, no I/O.

Four identifiers reach the hub: the 12-digit personal identification number (số định danh cá
nhân, printed on the CCCD card), the 15-character health-insurance card number (mã thẻ BHYT),
the 10-digit social-insurance number (mã số BHXH) and the free-form document number of the XML
field ``SO_CCCD``. Each ``check_*`` function either returns the parsed identifier or raises one
error of :mod:`vnehr.identity.errors`, whose code names the exact rule that was broken.

Only the format is checked here. Whether a number was really issued to somebody is a question
for the national population database or the BHXH portal, never for this module.

Sources: ``shared/domain/vn-health-data.md`` §2 (identifier layouts) and §4 (province codes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from vnehr.identity.errors import (
    InsuranceCardBenefitLevel,
    InsuranceCardCategory,
    InsuranceCardLength,
    InsuranceCardProvince,
    InsuranceCardSocialInsuranceNumber,
    PersonalIdBirthYearMismatch,
    PersonalIdCenturyMismatch,
    PersonalIdLength,
    PersonalIdNotDigits,
    PersonalIdProvince,
    PersonalIdSexMismatch,
    SocialInsuranceNumberLength,
    SocialInsuranceNumberNotDigits,
)

Sex = Literal["male", "female"]
DocumentKind = Literal["personal_id", "old_id_card", "passport", "other"]

# Python's ``\d`` and ``str.isdigit`` also accept Arabic-Indic, full-width and other Unicode
# digits; the national formats allow only ASCII 0-9, so every check spells the set out.
_DIGITS: Final = frozenset("0123456789")
_CAPITALS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")

#: The first 3 digits of a personal ID: "0" + the GSO code of one of the 63 provinces that
#: existed before the 1 July 2025 reform. Numbers already issued keep these codes after the
#: merger, so the 34 new provinces must NOT be used to validate them. A test cross-checks this
#: set against the legacy table of the ``vietnamadminunits`` package.
PERSONAL_ID_PROVINCE_CODES: Final[frozenset[str]] = frozenset(
    {
        "001",  # Hà Nội
        "002",  # Hà Giang
        "004",  # Cao Bằng
        "006",  # Bắc Kạn
        "008",  # Tuyên Quang
        "010",  # Lào Cai
        "011",  # Điện Biên
        "012",  # Lai Châu
        "014",  # Sơn La
        "015",  # Yên Bái
        "017",  # Hòa Bình
        "019",  # Thái Nguyên
        "020",  # Lạng Sơn
        "022",  # Quảng Ninh
        "024",  # Bắc Giang
        "025",  # Phú Thọ
        "026",  # Vĩnh Phúc
        "027",  # Bắc Ninh
        "030",  # Hải Dương
        "031",  # Hải Phòng
        "033",  # Hưng Yên
        "034",  # Thái Bình
        "035",  # Hà Nam
        "036",  # Nam Định
        "037",  # Ninh Bình
        "038",  # Thanh Hóa
        "040",  # Nghệ An
        "042",  # Hà Tĩnh
        "044",  # Quảng Bình
        "045",  # Quảng Trị
        "046",  # Thừa Thiên Huế
        "048",  # Đà Nẵng
        "049",  # Quảng Nam
        "051",  # Quảng Ngãi
        "052",  # Bình Định
        "054",  # Phú Yên
        "056",  # Khánh Hòa
        "058",  # Ninh Thuận
        "060",  # Bình Thuận
        "062",  # Kon Tum
        "064",  # Gia Lai
        "066",  # Đắk Lắk
        "067",  # Đắk Nông
        "068",  # Lâm Đồng
        "070",  # Bình Phước
        "072",  # Tây Ninh
        "074",  # Bình Dương
        "075",  # Đồng Nai
        "077",  # Bà Rịa - Vũng Tàu
        "079",  # TP Hồ Chí Minh
        "080",  # Long An
        "082",  # Tiền Giang
        "083",  # Bến Tre
        "084",  # Trà Vinh
        "086",  # Vĩnh Long
        "087",  # Đồng Tháp
        "089",  # An Giang
        "091",  # Kiên Giang
        "092",  # Cần Thơ
        "093",  # Hậu Giang
        "094",  # Sóc Trăng
        "095",  # Bạc Liêu
        "096",  # Cà Mau
    }
)

#: The same 63 provinces as 2-digit codes, as printed in characters 4-5 of cards issued before
#: the reform.
PRE_2025_PROVINCE_CODES: Final[frozenset[str]] = frozenset(
    code[1:] for code in PERSONAL_ID_PROVINCE_CODES
)

#: The 34 provinces from 1 July 2025 (Resolution 202/2025/QH15). Each kept the GSO code of one
#: predecessor, so this is a subset of the pre-2025 set; it is listed anyway so that card checks
#: do not silently depend on that fact.
POST_2025_PROVINCE_CODES: Final[frozenset[str]] = frozenset(
    {
        "01", "04", "08", "11", "12", "14", "15", "19", "20", "22", "24", "25",
        "31", "33", "37", "38", "40", "42", "44", "46", "48", "51", "52", "56",
        "66", "68", "75", "79", "80", "82", "86", "91", "92", "96",
    }
)  # fmt: skip

#: Province codes accepted in characters 4-5 of a card: cards issued before the reform keep the
#: old code until they are reissued, new ones carry the new code.
CARD_PROVINCE_CODES: Final[frozenset[str]] = PRE_2025_PROVINCE_CODES | POST_2025_PROVINCE_CODES

#: Category (đối tượng) codes of BHYT cards that we recognise. This list comes from public code
#: (hospital and clinic software on GitHub), NOT from an official, current list: BHXH's own
#: category decisions were not read, and BHXH adds codes when the law adds beneficiaries. That
#: is why an unknown category is not an error: it only sets ``InsuranceCard.category_known`` to
#: False. Codes seen in public code but not confirmed anywhere else are left out.
KNOWN_CARD_CATEGORIES: Final[frozenset[str]] = frozenset(
    {
        # paid by employee and employer
        "DN", "HX", "CH", "NN", "TK", "HC", "XK",
        # paid by the social-insurance fund
        "HT", "TB", "NO", "CT", "XB", "TN", "CS",
        # paid by the state budget
        "QN", "CA", "CY", "XN", "MS", "CC", "CK", "CB", "KC", "HD", "TE", "BT", "HN", "DT",
        "DK", "XD", "TS", "TC", "TQ", "TV", "TA", "TY", "HG", "LS", "PV",
        # partly subsidised by the state budget
        "CN", "HS", "SV", "GB",
        # households; XV (cooperative members) appears on older cards
        "GD", "XV",
    }
)  # fmt: skip

_PERSONAL_ID_LENGTH: Final = 12
_CARD_LENGTH: Final = 15
_SOCIAL_INSURANCE_LENGTH: Final = 10
_FIRST_CENTURY: Final = 1900  # digit 4 = 0/1
_LAST_CENTURY: Final = 2300  # digit 4 = 8/9

_OLD_ID_CARD = re.compile(r"[0-9]{9}")
_PASSPORT = re.compile(r"[A-Z][0-9]{7}")


@dataclass(frozen=True, slots=True)
class PersonalId:
    """A personal identification number that passed :func:`check_personal_id`.

    Build it with :func:`check_personal_id`; the constructor does not validate.
    """

    value: str
    #: 3 digits, the pre-2025 province where the birth was registered, e.g. "001" for Hà Nội.
    province_code: str
    sex: Sex
    #: First year of the century encoded in digit 4: 1900, 2000, ... 2300.
    century_start: int
    #: Digits 5-6 as a number: 85 for "85", 3 for "03".
    birth_year_two_digits: int

    @property
    def birth_year(self) -> int:
        """The full year of birth, e.g. 1985."""
        return self.century_start + self.birth_year_two_digits


@dataclass(frozen=True, slots=True)
class InsuranceCard:
    """A health-insurance card number that passed :func:`check_insurance_card`."""

    value: str
    #: Characters 1-2, the beneficiary category (đối tượng), e.g. "DN".
    category: str
    #: Character 3, the benefit level (mức hưởng), 1 to 5.
    benefit_level: int
    #: Characters 4-5, the issuing or residence province (pre- or post-2025 code).
    province_code: str
    #: Characters 6-15, the person's 10-digit social-insurance number (mã số BHXH).
    social_insurance_number: str
    #: Whether ``category`` is in :data:`KNOWN_CARD_CATEGORIES`.
    category_known: bool

    @property
    def is_newborn_temporary(self) -> bool:
        """Whether the card has the shape of a temporary newborn card: ``TE1`` + province + 10.

        A newborn without a card yet is sent with a temporary number ``TE1`` + the 2-digit
        residence province + 10 digits. Regular cards of children under 6 are also ``TE1...``,
        so the format alone cannot tell the two apart: this says "may be temporary", and only
        the BHXH card lookup can confirm it.
        """
        return self.category == "TE" and self.benefit_level == 1


def _first_non_digit(text: str) -> tuple[int, str] | None:
    """The 1-based position and character of the first non-ASCII-digit in ``text``, if any."""
    for index, character in enumerate(text):
        if character not in _DIGITS:
            return index + 1, character
    return None


def _century_start(digit: int) -> int:
    # Digit 4 = 2 x (century index from 1900) + (1 for women), so 0/1 = 1900s, 2/3 = 2000s...
    return _FIRST_CENTURY + (digit // 2) * 100


def check_personal_id(
    value: str,
    *,
    sex: Sex | None = None,
    birth_date: date | None = None,
    any_birthplace: bool = False,
) -> PersonalId:
    """Check a 12-digit personal identification number ``PPP G YY NNNNNN`` and parse it.

    PPP is "0" + a pre-2025 province code, G the century and sex digit (even = male, odd =
    female; 0/1 = 1900-1999, 2/3 = 2000-2099, ... 8/9 = 2300-2399), YY the last two digits of
    the year of birth, NNNNNN a random serial. There is no check digit.

    Surrounding whitespace is removed; nothing else is (an inner space or dash is an error).
    When ``sex`` or ``birth_date`` is given, the number must agree with it. With
    ``any_birthplace`` a PPP outside the provinces passes: a birth registered abroad carries a
    country code there (§2), and that list is not verified (the caller may warn, D57).

    Raises (first rule broken, in this order): ``PersonalIdLength`` (ID-0001),
    ``PersonalIdNotDigits`` (ID-0002), ``PersonalIdProvince`` (ID-0003),
    ``PersonalIdSexMismatch`` (ID-0004), ``PersonalIdCenturyMismatch`` (ID-0005),
    ``PersonalIdBirthYearMismatch`` (ID-0006).
    """
    value = value.strip()
    if len(value) != _PERSONAL_ID_LENGTH:
        raise PersonalIdLength(value=value, length=len(value), expected_length=_PERSONAL_ID_LENGTH)
    bad = _first_non_digit(value)
    if bad is not None:
        position, character = bad
        raise PersonalIdNotDigits(value=value, position=position, character=character)

    province_code = value[:3]
    if province_code not in PERSONAL_ID_PROVINCE_CODES and not any_birthplace:
        raise PersonalIdProvince(
            detail={"expected": sorted(PERSONAL_ID_PROVINCE_CODES)},
            value=value,
            province_code=province_code,
        )

    digit = int(value[3])
    century_start = _century_start(digit)
    encoded_sex: Sex = "female" if digit % 2 else "male"
    two_digits = int(value[4:6])

    if sex is not None and sex != encoded_sex:
        wanted_parity = 1 if sex == "female" else 0
        expected = [str(d) for d in range(10) if d % 2 == wanted_parity]
        raise PersonalIdSexMismatch(
            detail={"expected_digits": expected, "sex_in_number": encoded_sex},
            value=value,
            digit=str(digit),
            sex=sex,
            expected_digits=", ".join(expected),
        )

    if birth_date is not None:
        birth_year = birth_date.year
        birth_century = birth_year - birth_year % 100
        if birth_century != century_start:
            # The digit that would be right: same sex, the birth year's century. Years before
            # 1900 or after 2399 cannot be written in a personal ID at all.
            expected_digit: str | None = None
            if _FIRST_CENTURY <= birth_century <= _LAST_CENTURY:
                expected_digit = str((birth_century - _FIRST_CENTURY) // 100 * 2 + digit % 2)
            raise PersonalIdCenturyMismatch(
                detail={"expected_digit": expected_digit},
                value=value,
                digit=str(digit),
                century_start=century_start,
                century_end=century_start + 99,
                birth_year=birth_year,
            )
        if two_digits != birth_year % 100:
            raise PersonalIdBirthYearMismatch(
                value=value,
                year_digits=value[4:6],
                birth_year=birth_year,
                expected_year_digits=f"{birth_year % 100:02d}",
            )

    return PersonalId(
        value=value,
        province_code=province_code,
        sex=encoded_sex,
        century_start=century_start,
        birth_year_two_digits=two_digits,
    )


def check_insurance_card(value: str) -> InsuranceCard:
    """Check a 15-character health-insurance card number ``XX N PP DDDDDDDDDD`` and parse it.

    XX is the category (2 capital letters), N the benefit level (1-5), PP the province (a pre-
    or post-2025 2-digit code), D x 10 the social-insurance number. This is the rule
    ``^[A-Z]{2}[1-5][0-9]{2}[0-9]{10}$`` with the province part limited to real provinces. An
    unknown category is accepted and reported through ``category_known``. Surrounding
    whitespace is removed; letters are not upper-cased (the portal refuses lower case).

    Raises (first rule broken, in this order): ``InsuranceCardLength`` (ID-0007),
    ``InsuranceCardCategory`` (ID-0008), ``InsuranceCardBenefitLevel`` (ID-0009),
    ``InsuranceCardProvince`` (ID-0010), ``InsuranceCardSocialInsuranceNumber`` (ID-0011).
    """
    value = value.strip()
    if len(value) != _CARD_LENGTH:
        raise InsuranceCardLength(value=value, length=len(value), expected_length=_CARD_LENGTH)

    category = value[:2]
    if not all(character in _CAPITALS for character in category):
        raise InsuranceCardCategory(value=value, category=category)

    level = value[2]
    if level not in "12345":
        raise InsuranceCardBenefitLevel(
            detail={"expected": ["1", "2", "3", "4", "5"]}, value=value, benefit_level=level
        )

    province_code = value[3:5]
    if province_code not in CARD_PROVINCE_CODES:
        raise InsuranceCardProvince(
            detail={"expected": sorted(CARD_PROVINCE_CODES)},
            value=value,
            province_code=province_code,
        )

    number = value[5:]
    bad = _first_non_digit(number)
    if bad is not None:
        position, character = bad
        raise InsuranceCardSocialInsuranceNumber(
            value=value,
            social_insurance_number=number,
            position=position + 5,  # counted in the whole card, as a person reads it
            character=character,
        )

    return InsuranceCard(
        value=value,
        category=category,
        benefit_level=int(level),
        province_code=province_code,
        social_insurance_number=number,
        category_known=category in KNOWN_CARD_CATEGORIES,
    )


def check_social_insurance_number(value: str) -> str:
    """Check a social-insurance number (mã số BHXH): exactly 10 ASCII digits.

    Returns the number without surrounding whitespace. Raises
    ``SocialInsuranceNumberLength`` (ID-0012) or ``SocialInsuranceNumberNotDigits`` (ID-0013).
    """
    value = value.strip()
    if len(value) != _SOCIAL_INSURANCE_LENGTH:
        raise SocialInsuranceNumberLength(
            value=value, length=len(value), expected_length=_SOCIAL_INSURANCE_LENGTH
        )
    bad = _first_non_digit(value)
    if bad is not None:
        position, character = bad
        raise SocialInsuranceNumberNotDigits(value=value, position=position, character=character)
    return value


def classify_document_number(value: str) -> DocumentKind:
    """Tell which document the XML field ``SO_CCCD`` holds, by its shape only. Never raises.

    12 digits: a personal ID ("personal_id"); 9 digits: an old identity card, CMND
    ("old_id_card"); 1 capital letter + 7 digits: a passport ("passport"); anything else, such
    as a VNeID account code: "other". Surrounding whitespace is ignored. A "personal_id" is
    only the right shape: run :func:`check_personal_id` to validate it.
    """
    value = value.strip()
    if len(value) == _PERSONAL_ID_LENGTH and _first_non_digit(value) is None:
        return "personal_id"
    if _OLD_ID_CARD.fullmatch(value):
        return "old_id_card"
    if _PASSPORT.fullmatch(value):
        return "passport"
    return "other"
