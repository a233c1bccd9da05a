"""Demo citizens the simulated VNeID can sign in, and the national rule for personal ids.

A personal identification number (số định danh cá nhân, the 12 digits on the chip-based
citizen card) is ``PPP G YY NNNNNN``: PPP is the province where the birth was registered (the
63 provinces before the 2025 reform, codes of QĐ 124/2004/QĐ-TTg padded to three digits), G
encodes century and sex (0 male / 1 female born 1900-1999, 2 / 3 born 2000-2099, then 4 / 5,
6 / 7, 8 / 9 for the next centuries), YY is the last two digits of the birth year and NNNNNN is
a random serial. Every demo citizen is checked against this rule when it is built, so a typo
in the demo data fails at import instead of in a browser test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

Gender = Literal["male", "female"]
AssuranceLevel = Literal[1, 2]

#: Province-of-birth-registration codes in force before 1 July 2025 (63 provinces).
PROVINCE_CODES: dict[str, str] = {
    "001": "Hà Nội",
    "002": "Hà Giang",
    "004": "Cao Bằng",
    "006": "Bắc Kạn",
    "008": "Tuyên Quang",
    "010": "Lào Cai",
    "011": "Điện Biên",
    "012": "Lai Châu",
    "014": "Sơn La",
    "015": "Yên Bái",
    "017": "Hòa Bình",
    "019": "Thái Nguyên",
    "020": "Lạng Sơn",
    "022": "Quảng Ninh",
    "024": "Bắc Giang",
    "025": "Phú Thọ",
    "026": "Vĩnh Phúc",
    "027": "Bắc Ninh",
    "030": "Hải Dương",
    "031": "Hải Phòng",
    "033": "Hưng Yên",
    "034": "Thái Bình",
    "035": "Hà Nam",
    "036": "Nam Định",
    "037": "Ninh Bình",
    "038": "Thanh Hóa",
    "040": "Nghệ An",
    "042": "Hà Tĩnh",
    "044": "Quảng Bình",
    "045": "Quảng Trị",
    "046": "Thừa Thiên Huế",
    "048": "Đà Nẵng",
    "049": "Quảng Nam",
    "051": "Quảng Ngãi",
    "052": "Bình Định",
    "054": "Phú Yên",
    "056": "Khánh Hòa",
    "058": "Ninh Thuận",
    "060": "Bình Thuận",
    "062": "Kon Tum",
    "064": "Gia Lai",
    "066": "Đắk Lắk",
    "067": "Đắk Nông",
    "068": "Lâm Đồng",
    "070": "Bình Phước",
    "072": "Tây Ninh",
    "074": "Bình Dương",
    "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu",
    "079": "Hồ Chí Minh",
    "080": "Long An",
    "082": "Tiền Giang",
    "083": "Bến Tre",
    "084": "Trà Vinh",
    "086": "Vĩnh Long",
    "087": "Đồng Tháp",
    "089": "An Giang",
    "091": "Kiên Giang",
    "092": "Cần Thơ",
    "093": "Hậu Giang",
    "094": "Sóc Trăng",
    "095": "Bạc Liêu",
    "096": "Cà Mau",
}

_PERSONAL_ID = re.compile(r"^\d{12}$")
_WARD_CODE = re.compile(r"^\d{5}$")
_PHONE = re.compile(r"^0\d{9}$")


def century_sex_digit(birthdate: date, gender: Gender) -> str:
    """The G digit of a personal id: even for men, odd for women, +2 per century from 1900."""
    century = birthdate.year // 100 - 19
    if not 0 <= century <= 4:
        raise ValueError(f"birth year {birthdate.year} is outside 1900-2399")
    return str(century * 2 + (1 if gender == "female" else 0))


def personal_id_problems(personal_id: str, birthdate: date, gender: Gender) -> list[str]:
    """Why ``personal_id`` breaks the national rule for this birth date and sex (empty if valid)."""
    if not _PERSONAL_ID.match(personal_id):
        return [f"{personal_id!r} is not 12 digits"]
    problems: list[str] = []
    if personal_id[:3] not in PROVINCE_CODES:
        problems.append(f"province code {personal_id[:3]} does not exist")
    if personal_id[3] != century_sex_digit(birthdate, gender):
        problems.append(
            f"digit 4 is {personal_id[3]}, a {gender} born {birthdate.year} needs "
            f"{century_sex_digit(birthdate, gender)}"
        )
    if personal_id[4:6] != f"{birthdate.year % 100:02d}":
        problems.append(f"digits 5-6 are {personal_id[4:6]}, birth year is {birthdate.year}")
    return problems


@dataclass(frozen=True, slots=True)
class DemoCitizen:
    """A person the simulator can sign in, with what VNeID would assert about them.

    ``assurance_level`` is the VNeID account level: 1 (self-registered on the app, identity not
    checked against the chip) or 2 (activated at the police with the chip-based card).
    ``guardian_id`` links a child to the parent whose account manages it (children under 14
    are attached to a parent's VNeID account).
    """

    personal_id: str
    full_name: str
    family_name: str
    given_name: str
    birthdate: date
    gender: Gender
    assurance_level: AssuranceLevel
    ward_code: str
    phone: str | None = None
    guardian_id: str | None = None

    def __post_init__(self) -> None:
        problems = personal_id_problems(self.personal_id, self.birthdate, self.gender)
        if not self.full_name.startswith(self.family_name + " ") or not self.full_name.endswith(
            " " + self.given_name
        ):
            # Vietnamese order: family name first, given name last.
            problems.append(f"{self.full_name!r} is not '{self.family_name} ... {self.given_name}'")
        if self.assurance_level not in (1, 2):
            problems.append(f"assurance level {self.assurance_level} is not 1 or 2")
        if not _WARD_CODE.match(self.ward_code):
            problems.append(f"ward code {self.ward_code!r} is not 5 digits")
        if self.phone is not None and not _PHONE.match(self.phone):
            problems.append(f"phone {self.phone!r} is not a 10-digit Vietnamese number")
        if problems:
            raise ValueError(f"demo citizen {self.full_name}: " + "; ".join(problems))

    @property
    def acr(self) -> str:
        """Authentication context class reference the ID token carries for this account."""
        return f"vneid:level{self.assurance_level}"


# Serials (last six digits) and phone numbers are invented. Ward codes are post-2025 Hà Nội
# wards: 00070 Hoàn Kiếm, 00004 Ba Đình, 00008 Ngọc Hà, 00025 Giảng Võ, 00166 Cầu Giấy,
# 00235 Đống Đa.
DEMO_CITIZENS: tuple[DemoCitizen, ...] = (
    DemoCitizen(
        personal_id="001085004217",
        full_name="Nguyễn Văn An",
        family_name="Nguyễn",
        given_name="An",
        birthdate=date(1985, 3, 14),
        gender="male",
        assurance_level=2,
        ward_code="00070",
        phone="0912345601",
    ),
    DemoCitizen(
        personal_id="079162003581",
        full_name="Trần Thị Bình",
        family_name="Trần",
        given_name="Bình",
        birthdate=date(1962, 8, 2),
        gender="female",
        assurance_level=2,
        ward_code="00004",
        phone="0903456702",
    ),
    DemoCitizen(
        personal_id="031054007793",
        full_name="Lê Văn Cường",
        family_name="Lê",
        given_name="Cường",
        birthdate=date(1954, 11, 20),
        gender="male",
        assurance_level=2,
        ward_code="00008",
    ),
    DemoCitizen(
        personal_id="048190002468",
        full_name="Phạm Thị Dung",
        family_name="Phạm",
        given_name="Dung",
        birthdate=date(1990, 5, 9),
        gender="female",
        assurance_level=2,
        ward_code="00166",
        phone="0987654304",
    ),
    DemoCitizen(
        personal_id="001217005432",
        full_name="Hoàng Minh Khang",
        family_name="Hoàng",
        given_name="Khang",
        birthdate=date(2017, 9, 1),
        gender="male",
        assurance_level=2,
        ward_code="00166",
        guardian_id="048190002468",
    ),
    DemoCitizen(
        personal_id="079303006174",
        full_name="Võ Thị Hoa",
        family_name="Võ",
        given_name="Hoa",
        birthdate=date(2003, 2, 25),
        gender="female",
        assurance_level=2,
        ward_code="00025",
        phone="0356789006",
    ),
    DemoCitizen(
        personal_id="001078009135",
        full_name="Đặng Văn Hùng",
        family_name="Đặng",
        given_name="Hùng",
        birthdate=date(1978, 12, 30),
        gender="male",
        assurance_level=1,
        ward_code="00235",
        phone="0778901207",
    ),
)
