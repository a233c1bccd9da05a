"""Configuration of the simulated BHXH portal: accounts, demo cards, faults, clock."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from vnehr.kit.clock import utcnow

_FACILITY = re.compile(r"^[0-9A-Z]{5}$")
_CARD = re.compile(r"^[A-Z]{2}[1-5]\d{2}\d{10}$")
_DAY = re.compile(r"^\d{8}$")


def password_hash(password: str) -> str:
    """What the portal expects in ``password`` / ``passwordHash``: MD5, uppercase hex."""
    return hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class Account:
    """A portal account of a facility (or a group of facilities under one operator).

    ``password`` is the plain password; clients send its MD5 in uppercase hex.
    ``facilities`` are the 5-character ``MA_CSKCB`` codes the account may send files for;
    empty (the default) lets it send for any facility, which suits a development server.
    """

    password: str
    facilities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "facilities", tuple(self.facilities))
        if not self.password:
            raise ValueError("an account password must not be empty")
        for code in self.facilities:
            if not _FACILITY.match(code):
                raise ValueError(f"facility code {code!r} is not 5 characters [0-9A-Z]")


@dataclass(frozen=True, slots=True)
class DemoCard:
    """A BHYT card the lookup endpoint knows.

    ``result_code`` is what a lookup answers when name and birth date match: "000" valid,
    "110" revoked, "003"/"004" replaced by ``new_card``... A card whose ``valid_to`` is before
    today (Vietnam time, from the config clock) answers "010" instead of "000".
    Dates are ``yyyyMMdd``; ``birth_date`` is ``dd/MM/yyyy`` as the lookup body sends it.
    """

    card_number: str
    full_name: str
    birth_date: str  # dd/MM/yyyy
    gender: int  # 1 Nam, 2 Nữ, 3 Chưa xác định
    address: str
    registered_facility: str  # maDKBD
    valid_from: str  # yyyyMMdd
    valid_to: str  # yyyyMMdd
    result_code: str = "000"
    issuing_office: str = "BHXH thành phố Hà Nội"
    area: str = ""  # maKV: K1/K2/K3 or empty
    five_years_from: str = ""  # ngayDu5Nam, yyyyMMdd
    old_card: str = ""
    new_card: str = ""
    new_valid_from: str = ""
    new_valid_to: str = ""
    new_registered_facility: str = ""
    new_registered_facility_name: str = ""

    def __post_init__(self) -> None:
        if not _CARD.match(self.card_number):
            raise ValueError(f"card number {self.card_number!r} is not XX N PP DDDDDDDDDD")
        for day in (self.valid_from, self.valid_to):
            if not _DAY.match(day):
                raise ValueError(f"card date {day!r} is not yyyyMMdd")
        datetime.strptime(self.birth_date, "%d/%m/%Y")  # noqa: DTZ007 - a calendar day

    @property
    def social_insurance_number(self) -> str:
        """maSoBHXH: the last 10 digits of the card number."""
        return self.card_number[-10:]


DEMO_CARDS: dict[str, DemoCard] = {
    card.card_number: card
    for card in (
        DemoCard(
            card_number="DN4010123456789",
            full_name="Nguyễn Văn An",
            birth_date="15/03/1985",
            gender=1,
            address="Số 12 phố Huế, phường Hai Bà Trưng, Hà Nội",
            registered_facility="01001",
            valid_from="20250101",
            valid_to="20991231",
            area="",
            five_years_from="20230101",
        ),
        DemoCard(
            card_number="HT3010987654321",
            full_name="Trần Thị Bình",
            birth_date="02/11/1950",
            gender=2,
            address="Số 5 ngõ 36 phố Kim Mã, phường Ngọc Hà, Hà Nội",
            registered_facility="01002",
            valid_from="20230101",
            valid_to="20231231",
        ),
        DemoCard(
            card_number="HS4011122334455",
            full_name="Lê Minh Châu",
            birth_date="20/07/2008",
            gender=1,
            address="Số 3 phố Nguyễn Trãi, phường Thanh Xuân, Hà Nội",
            registered_facility="01001",
            valid_from="20250101",
            valid_to="20991231",
            result_code="110",
        ),
    )
}


@dataclass(slots=True)
class Faults:
    """Failures to inject, changed at runtime (``PUT /_sim/faults`` or this object).

    Rates are fractions 0..1, drawn from one ``random.Random`` (seeded with ``seed`` when
    set; changing ``seed`` re-seeds it). They apply to file submissions and check-ins:

    - ``error_rate``: answered ``{"maKetQua": "500", "thongDiep": "Lỗi hệ thống"}`` (HTTP 200)
      before any validation, and nothing is recorded.
    - ``timeout_rate``: the file is recorded, then the answer waits ``hang_seconds`` (the
      portal received it but the caller times out).
    - ``drop_rate``: the file is recorded, then the answer is HTTP 502 (a gateway lost it).
    - ``duplicate_answer_rate``: answered normally but recorded twice, the second record
      flagged as a duplicate.
    - ``latency_seconds``: every portal endpoint (not ``/_sim``) waits this long first.
    - ``unavailable``: every portal endpoint answers HTTP 503.
    """

    error_rate: float = 0.0
    latency_seconds: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    drop_rate: float = 0.0
    duplicate_answer_rate: float = 0.0
    unavailable: bool = False
    seed: int | None = None


@dataclass(slots=True)
class BhxhConfig:
    """Everything one simulated portal needs; received files and tokens live in the app.

    ``clock`` returns the current time (aware, UTC); tests pass their own to expire tokens.
    """

    accounts: dict[str, Account]
    token_ttl_seconds: int = 1800
    cards: dict[str, DemoCard] = field(default_factory=lambda: dict(DEMO_CARDS))
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], datetime] = utcnow
    max_file_bytes: int = 20 * 1024 * 1024
