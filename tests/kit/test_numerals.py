"""Numbers as a reader writes them (D206): every helper gives a text for whatever a page hands
it, a value it cannot write as a number shown as it came, and ``number`` and ``amount`` agree
on what a text sent by a facility is."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from vnehr.kit.numerals import amount, money, number, percent

ODD = [
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("NaN"),
    Decimal("sNaN"),
    float("inf"),
    float("nan"),
    "abc",
    "1e5",
    "12,5",
    object(),
]


@pytest.mark.parametrize("helper", [number, amount, money, percent])
@pytest.mark.parametrize(
    "value", ODD, ids=lambda v: "object" if type(v) is object else repr(v)
)  # (ids the same in every process: pytest-xdist compares them)
def test_a_value_that_is_no_plain_number_is_shown_as_it_came(helper: Any, value: Any) -> None:
    for lang in ("vi", "en"):
        shown = helper(value, lang)
        assert isinstance(shown, str)
        assert str(value) in shown


def test_very_large_values_are_written_not_refused() -> None:
    ten_to_28 = "10" + ".000" * 9
    assert number(Decimal("1e28"), "vi") == amount(Decimal("1e28"), "vi") == ten_to_28
    assert money(10**30, "en") == "1" + ",000" * 10 + " VND"
    assert number(Decimal("-1e30"), "vi", places=2) == "-1" + ".000" * 10 + ",00"
    assert percent(Decimal("1e28"), "vi") == "1" + ".000" * 10 + ",0 %"
    huge = Decimal("1e100000")  # (written out, a hundred thousand zeros)
    assert number(huge, "vi") == amount(huge, "vi") == percent(huge, "vi") == str(huge)
    assert number(Decimal("1e-100000"), "en") == "1E-100000"


def test_number_and_amount_read_a_sent_text_alike() -> None:
    assert number("1e5", "vi") == amount("1e5", "vi") == "1e5"  # not a plain number: as sent
    assert money("1e5", "vi") == "1e5 đồng"
    assert number("253400", "vi") == amount("253400", "vi") == "253.400"
    assert amount(" 12345.5 ", "en") == "12,345.50"
    assert amount("abc", "vi") == "abc"
    assert percent("abc", "en") == "abc"
    assert percent("0.125", "vi") == "12,5 %"


@pytest.mark.parametrize("zero", [Decimal("-0"), -0.0, "-0", "-0.00"])
def test_minus_zero_is_written_as_zero(zero: Any) -> None:
    assert not number(zero, "vi").startswith("-")
    assert not amount(zero, "en").startswith("-")
    assert not percent(zero, "vi").startswith("-")
    assert number(Decimal("-0.001"), "vi", places=2) == "0,00"
    assert number("-0.00", "en") == "0.00"  # its decimals kept as sent


def test_ordinary_values_are_unchanged() -> None:
    assert number(1234567, "vi") == "1.234.567"
    assert number(36.8, "en") == "36.8"
    assert number("5.60", "vi") == "5,60"
    assert number("< 0.5", "vi") == "< 0,5"
    assert number(Decimal("14.000"), "vi") == "14"
    assert amount(Decimal("253400"), "vi") == "253.400"
    assert amount(Decimal("12345.5"), "vi") == "12.345,50"
    assert money(Decimal("-1500"), "en") == "-1,500 VND"
    assert percent(0.123, "vi") == "12,3 %"
    assert number(None, "vi") == amount(None, "vi") == money("", "vi") == percent(None, "vi") == ""
