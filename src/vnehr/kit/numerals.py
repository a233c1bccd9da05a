"""Numbers as a reader of each language writes them: Vietnamese groups thousands with dots and
writes decimals with a comma (1.234.567,5), English the other way round (1,234,567.5).

Only for what a person reads (pages, PDFs); the JSON and FHIR a machine reads keep their
numbers. Codes, IDs and years are strings and never pass through here.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext
from decimal import Context as DecimalContext
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.runtime import Context

from vnehr.kit.i18n import Language, text

_MARKS: dict[str, tuple[str, str]] = {"vi": (".", ","), "en": (",", ".")}
#: A value as a facility wrote it that is a plain number, perhaps after a comparison sign
#: ("5.60", "-1.2", "< 0.5"); anything else ("Âm tính", "1/80", "5,6") is shown as written.
_PLAIN = re.compile(r"(?P<sign>[<>≤≥]=?\s*)?(?P<number>[+-]?\d+(?:\.\d+)?)")
_FIGURE = re.compile(r"\d+(?:\.\d+)?")
#: A value as sent that ``amount`` and ``percent`` take for a number (as ``number`` does,
#: without the comparison sign): "1e5" or "12,5" is shown as it came, by all of them.
_SENT = re.compile(r"[+-]?\d+(?:\.\d+)?")
#: The most digits either side of the point a number is written with; a value beyond (of no
#: page's making: 10**61 đồng) is shown as it came rather than as a page of zeros.
_DIGITS = 60
#: Enough precision for any value within ``_DIGITS`` at any decimals a page asks for.
_EXACT = DecimalContext(prec=4 * _DIGITS, rounding=ROUND_HALF_UP)
Number = int | float | Decimal | str


def _digits(written: str, language: Language) -> str:
    """A plain number written with a point ("-1234567.50") in ``language``'s marks."""
    thousands, point = _MARKS[language]
    # (a minus on nothing but zeros, "-0" or "-0.00", means nothing to a reader)
    sign = "-" if written.startswith("-") and written.strip("+-0.") else ""
    whole, _, decimals = written.lstrip("+-").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    grouped = thousands.join([whole, *groups])
    return f"{sign}{grouped}{point}{decimals}" if decimals else f"{sign}{grouped}"


def _decimal(value: object) -> Decimal | None:
    """``value`` exactly, if it is a finite number within ``_DIGITS`` (a text only when it is a
    plain number as sent, "-1234.50"); a float (numpy's too: a chart's ticks) by its shortest
    writing (0.1 is "0.1", not 0.1000000000000000055...); None for anything else (infinities,
    NaN, "1e5", "abc"), which the helpers show as it came."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            written = value.strip()
            found = Decimal(written) if _SENT.fullmatch(written) else None
        elif isinstance(value, Decimal | int):
            found = Decimal(value)
        else:
            as_float = float(value)  # type: ignore[arg-type]
            found = Decimal(repr(as_float)) if math.isfinite(as_float) else None
    except (ArithmeticError, TypeError, ValueError):
        return None
    if found is None or not found.is_finite():
        return None
    if found.is_zero():
        return Decimal(0)
    exponent = found.as_tuple().exponent
    if abs(found.adjusted()) > _DIGITS or not isinstance(exponent, int) or exponent < -_DIGITS:
        return None
    return found


def number(value: Number | None, language: Language, *, places: int | None = None) -> str:
    """``value`` in ``language``: 1234567 -> "1.234.567" / "1,234,567", 36.8 -> "36,8" /
    "36.8". A string is a value as its sender wrote it (a laboratory result): its decimals are
    kept ("5.60" -> "5,60") and anything but a plain number is returned as it is. A number has
    its trailing zeros dropped ("14.000" -> "14"), unless ``places`` fixes the decimals
    (rounded half up). "" for None; any other value that is no finite number as it came."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, str):
        found = _PLAIN.fullmatch(value.strip())
        if found is None:
            return value
        return (found["sign"] or "") + _digits(found["number"], language)
    exact = _decimal(value)
    if exact is None:
        return str(value)
    return _written(exact, language, places)


def _written(exact: Decimal, language: Language, places: int | None) -> str:
    """A finite number of ``_decimal``'s in ``language`` (``number``'s rules)."""
    with localcontext(_EXACT):
        if places is not None:
            exact = exact.quantize(Decimal(1).scaleb(-min(places, _DIGITS)))
        elif exact == exact.to_integral_value():
            exact = exact.quantize(Decimal(1))
        else:
            exact = exact.normalize()
        return _digits(f"{exact:f}", language)


def numbers_in(value: str | None, language: Language) -> str:
    """A short text as its sender wrote it (a reference range "3.9 - 6.4") with each number in
    it written in ``language``'s marks, its decimals kept; "" for None."""
    if not value:
        return ""
    return _FIGURE.sub(lambda found: _digits(found[0], language), value)


def amount(value: Number | None, language: Language) -> str:
    """Money without its currency: whole đồng without decimals ("253.400"), else two
    ("12.345,50"); a text only when it is a plain number ("1e5" is shown as it came, as
    ``number`` shows it); "" for None."""
    if value is None or value == "":
        return ""
    exact = _decimal(value)
    if exact is None:
        return str(value)
    return _written(exact, language, 0 if exact == exact.to_integral_value() else 2)


def money(value: Number | None, language: Language) -> str:
    """Money with its currency in words: "253.400 đồng" / "253,400 VND"; "" for None."""
    if value is None or value == "":
        return ""
    return text("number.money", language, {"amount": amount(value, language)})


def percent(value: Number | None, language: Language, *, places: int = 1) -> str:
    """A share (0.123) as a percentage: "12,3 %" / "12.3%"; "" for None; a value that is no
    number as it came."""
    if value is None or value == "":
        return ""
    exact = _decimal(value)
    if exact is None:
        return str(value)
    with localcontext(_EXACT):
        hundredfold = exact * 100
    return text("number.percent", language, {"value": _written(hundredfold, language, places)})


_KB = 1024


def size(value: int, language: Language) -> str:
    """A size in bytes as a person reads it: "20 MB", "1,5 MB" / "1.5 MB", "70 KB" (1 KB is
    1,024 bytes; one decimal at most, rounded half up); under 1 KB in bytes ("512 byte" /
    "512 bytes")."""
    if value < _KB:
        return text("number.bytes", language, {"count": number(value, language)})
    unit, scale = ("MB", _KB * _KB) if value >= _KB * _KB else ("KB", _KB)
    shown = (Decimal(value) / scale).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{number(shown, language)} {unit}"


def install(environment: Environment, language: Language | None = None) -> None:
    """The filters ``number``, ``numbers_in``, ``amount``, ``money`` and ``percent`` in
    ``environment``: in ``language``, or (None) in the page's own, its ``lang`` variable
    (Vietnamese without). A macro does not see the page's variables: it passes its own,
    ``x | money(lang=lang)``."""

    def chosen(context: Context, lang: str | None) -> Language:
        if language is not None:
            return language
        found = lang or context.get("lang")
        return "en" if found == "en" else "vi"

    @pass_context
    def number_filter(
        context: Context, value: Any, places: int | None = None, lang: str | None = None
    ) -> str:
        return number(value, chosen(context, lang), places=places)

    @pass_context
    def numbers_in_filter(context: Context, value: Any, lang: str | None = None) -> str:
        return numbers_in(value, chosen(context, lang))

    @pass_context
    def amount_filter(context: Context, value: Any, lang: str | None = None) -> str:
        return amount(value, chosen(context, lang))

    @pass_context
    def money_filter(context: Context, value: Any, lang: str | None = None) -> str:
        return money(value, chosen(context, lang))

    @pass_context
    def percent_filter(
        context: Context, value: Any, places: int = 1, lang: str | None = None
    ) -> str:
        return percent(value, chosen(context, lang), places=places)

    environment.filters.update(
        number=number_filter,
        numbers_in=numbers_in_filter,
        amount=amount_filter,
        money=money_filter,
        percent=percent_filter,
    )
