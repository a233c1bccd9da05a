"""The money rules worked out on integers in C (``_fast.money_clean``, D120) find exactly what
the Decimal code finds (``rules.check_money_decimal``): line amounts rounded half up, the sum
and T_BHTT rounded half to even, over random values with big and negative ones, many decimal
places, ties and values that are not numbers at all."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import pytest

from vnehr import catalogs
from vnehr.submissions import analyse, rules, synth, xmlio
from vnehr.submissions.xmlio import Limits

_fast = pytest.importorskip(
    "vnehr.submissions._fast", reason="no C compiler or Python headers: not built here"
)

CENT = Decimal("0.01")
CODES = catalogs.offline()


def _text(rng: random.Random, plain: bool = False) -> str:
    """A number as a facility might write it: usually plain, sometimes big, negative, with
    many places, a tie, or not a number at all (``plain``: whole, a few places, or a tie)."""
    kind = rng.random() * (0.6 if plain else 1)
    high = 10**6 if plain else 10**9
    if kind < 0.5:  # the usual: whole, or up to 3 places
        places = rng.choice([0, 0, 1, 2, 3])
        value = Decimal(rng.randint(0, high)).scaleb(-places)
    elif kind < 0.6:  # a tie at the cent, or half a tenth of a cent
        value = Decimal(rng.randint(0, high // 100)) + Decimal(
            rng.choice(["0.005", "0.0005", "0.015"])
        )
    elif kind < 0.7:  # big
        value = Decimal(rng.randint(10**12, 10**19)).scaleb(-rng.randint(0, 4))
    elif kind < 0.8:  # many places, trailing zeros too
        value = Decimal(rng.randint(0, 10**12)).scaleb(-rng.randint(4, 12))
    elif kind < 0.85:
        return rng.choice(["", " 12.5", "12.5 ", "2.", ".5", "-.5", "-", "1e3", "1,5", "١٢",
                           "0" * 21, "-0", "00012.500", "9" * 18, "9" * 19, "0.0005",
                           "-0.005", "x"])  # fmt: skip
    else:
        value = Decimal(rng.randint(0, 10**6)).scaleb(-rng.randint(0, 3))
    if rng.random() < 0.15:
        value = -value
    text = f"{value:f}"
    if rng.random() < 0.1:
        text += "0" * rng.randint(1, 4) if "." in text else ".000"
    return text


def _product(quantity: str, price: str, share: str | None) -> Decimal | None:
    q, u = rules.parse_number(quantity), rules.parse_number(price)
    s = rules.parse_number(share) if share is not None else None
    if q is None or u is None:
        return None
    exact = q * u if s is None else q * u * s / 100
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)


def _visit(rng: random.Random, consistent: bool) -> dict[str, list[dict[str, str]]]:
    """XML2 and XML3 lines and XML1's totals; ``consistent``: amounts and totals worked out
    from the lines (as a facility's software does, sometimes written unrounded or a cent
    off), so that the fast path has something to vouch for."""
    tables: dict[str, list[dict[str, str]]] = {}
    total = Decimal(0)
    plain = consistent and rng.random() < 0.7
    for name, price_field in (("XML2", "DON_GIA"), ("XML3", "DON_GIA_BV")):
        rows = []
        for _ in range(rng.randint(0, 6)):
            row = {"SO_LUONG": _text(rng, plain), price_field: _text(rng, plain)}
            if name == "XML3" and rng.random() < 0.5:
                row["TYLE_TT_DV"] = rng.choice(["100", "50", "30", "0", "33.3", _text(rng, plain)])
            if rng.random() < 0.05:
                del row["SO_LUONG"]
            amount: Decimal | None = None
            if consistent:
                try:
                    amount = _product(row.get("SO_LUONG", ""), row[price_field],
                                      row.get("TYLE_TT_DV"))  # fmt: skip
                except InvalidOperation:
                    amount = None
            if amount is not None:
                shift = rng.random()
                if shift < 0.1:
                    amount += CENT * rng.choice([-1, 1])
                text = f"{amount:f}"
                if shift > 0.9:  # unrounded, still within half a cent
                    text += rng.choice(["4", "49", "0", "5"])
            else:
                text = _text(rng)
            if rng.random() > 0.03:
                row["THANH_TIEN_BV"] = text
            total += rules.parse_number(row.get("THANH_TIEN_BV") or "0") or Decimal(0)
            rows.append(row)
        tables[name] = rows
    bh, cct = Decimal(rng.randint(0, 10**8)) / 100, Decimal(rng.randint(0, 10**7)) / 100
    summary = {
        "T_TONGCHI_BV": f"{total:f}" if consistent else _text(rng),
        "T_TONGCHI_BH": f"{bh:f}" if consistent else _text(rng),
        "T_BNCCT": f"{cct:f}" if consistent else _text(rng),
        "T_BHTT": f"{bh - cct:f}" if consistent else _text(rng),
    }
    if consistent and rng.random() < 0.3:  # the totals rounded half to even, or a cent off
        key = rng.choice(["T_TONGCHI_BV", "T_BHTT"])
        summary[key] += rng.choice(["5", "05", "1", ""]) if "." in summary[key] else ".005"
    for key in list(summary):
        if rng.random() < 0.05:
            summary[key] = rng.choice(["", " ", _text(rng, plain)])
    tables["XML1"] = [summary]
    return tables


def _decimal(tables: dict[str, list[dict[str, str]]]) -> list[Any]:
    """What the Decimal code finds."""
    found = rules.Findings()
    rules.check_money_decimal(found, tables, tables["XML1"][0])
    return [(i.code, i.table, i.row, i.field, i.params) for i in found.issues]


def _in_use(tables: dict[str, list[dict[str, str]]]) -> list[Any]:
    """What the intake finds (the compiled check, the Decimal code where it cannot tell)."""
    found = rules.Findings()
    rules._check_money(found, tables, tables["XML1"][0])
    return [(i.code, i.table, i.row, i.field, i.params) for i in found.issues]


@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_money_check_finds_what_the_decimal_code_finds(seed: int) -> None:
    rng = random.Random(seed)
    vouched = faults = 0
    for n in range(5000):
        tables = _visit(rng, consistent=n % 4 != 0)
        reference = _decimal(tables)
        if _fast.money_clean(tables, tables["XML1"][0]):
            vouched += 1
            assert reference == [], tables  # clean in C is clean in Decimal
        else:
            faults += reference != []
        assert _in_use(tables) == reference, tables
    # (the integer path was taken, and wrong sums met, often enough to mean something)
    assert vouched > 500
    assert faults > 1000


@pytest.mark.parametrize(
    ("quantity", "price", "share", "amount", "clean"),
    [
        ("1", "0.005", None, "0.01", True),  # a tie rounds away from zero
        ("1", "0.005", None, "0.00", False),
        ("-1", "0.005", None, "-0.01", True),
        ("3", "0.0015", None, "0.00", True),  # 0.0045: not a tie
        ("1", "100.125", "50", "50.06", True),  # 50.0625
        ("0.5", "0.01", None, "0.01", True),  # 0.005
        ("1", "0.0005", None, "0.00", True),
        ("1", "0.0005", None, "0.01", False),
        ("2", "12500.12500", None, "25000.25", True),
        ("999999999999999999", "999999999999999999", None, "0", False),  # beyond 64 bits
    ],
)
def test_line_amounts_round_half_up_either_way(
    quantity: str, price: str, share: str | None, amount: str, clean: bool
) -> None:
    row = {"SO_LUONG": quantity, "DON_GIA_BV": price, "THANH_TIEN_BV": amount}
    if share is not None:
        row["TYLE_TT_DV"] = share
    tables = {"XML1": [{}], "XML3": [row]}
    assert (_decimal(tables) == []) is clean
    assert _in_use(tables) == _decimal(tables)


@pytest.mark.parametrize(
    ("declared", "clean"),
    [("100.005", True), ("100.015", False), ("100.0051", False), ("100.00", True)],
)
def test_the_total_rounds_half_to_even_either_way(declared: str, clean: bool) -> None:
    # (the Decimal code quantizes the totals in the default context: half to even)
    tables = {
        "XML1": [{"T_TONGCHI_BV": declared}],
        "XML2": [{"SO_LUONG": "1", "DON_GIA": "100", "THANH_TIEN_BV": "100.00"}],
    }
    assert (_decimal(tables) == []) is clean
    assert _fast.money_clean(tables, tables["XML1"][0]) is clean
    assert _in_use(tables) == _decimal(tables)


def test_a_synthetic_visit_is_vouched_for_in_c() -> None:
    # the usual visit takes the integer path (else the comparisons above prove little)
    rng = random.Random(3)
    for n in range(50):
        visit = synth.make_visit(rng, sequence=n)
        assert _fast.money_clean(visit.tables, visit.tables["XML1"][0])


def test_numbers_far_too_long_reject_the_visit_instead_of_failing_the_file() -> None:
    # 19 digits each, beyond what the fields hold: the product has 38, more than Decimal's
    # default 28, which made the money check raise and the whole file fail
    visit = synth.make_visit(random.Random(9), sequence=1)
    line = visit.tables["XML2"][0]
    line["SO_LUONG"] = line["DON_GIA"] = "9" * 19
    [analysed] = analyse(synth.envelope([visit], "01001"), codes=CODES, limits=Limits()).visits
    codes = {(i.code, i.field) for i in analysed.findings.issues}
    assert {("SUB-0111", "SO_LUONG"), ("SUB-0111", "DON_GIA")} <= codes
    assert ("SUB-0134", "THANH_TIEN_BV") in codes  # (and the amount is not their product)
    with xmlio.pure_python():
        again = analyse(synth.envelope([visit], "01001"), codes=CODES, limits=Limits())
    assert again.visits[0].findings.issues == analysed.findings.issues
