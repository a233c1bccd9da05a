"""The sensitive categories a visit touches (D35): HIV care, tuberculosis, mental health,
sexual and reproductive health. Sharing leaves them out unless the citizen names them; a
representative of a person who may be 16 or more never sees them (D109)."""

from __future__ import annotations

from datetime import date
from typing import Any

from vnehr import identity

SENSITIVE = ("hiv", "tb", "mental", "reproductive")
_REPRODUCTIVE = (
    "O",
    "Z30",
    "Z31",
    "Z32",
    "Z33",
    "Z34",
    "Z35",
    "Z36",
    "Z37",
    "Z38",
    "Z39",
    "N96",
    "N97",
    "N98",
    "A50",
    "A51",
    "A52",
    "A53",
    "A54",
    "A55",
    "A56",
    "A57",
    "A58",
    "A59",
    "A60",
    "A63",
    "A64",
)


#: Codes that tell a person's HIV status (ICD-10, without the dot): the disease (B20-B24), the
#: infection without symptoms (Z21), and what says as much: an inconclusive HIV test (R75),
#: contact with or exposure to HIV (Z20.6), HIV counselling (Z71.7), screening for HIV
#: (Z11.4), HIV disease complicating pregnancy (O98.7, reproductive too).
_HIV = ("B20", "B21", "B22", "B23", "B24", "Z21", "R75", "Z206", "Z717", "Z114", "O987")
#: Tuberculosis (A15-A19) and mental and behavioural disorders (F).
_TB = ("A15", "A16", "A17", "A18", "A19")
_MENTAL = ("F",)
#: Tables whose presence tells the category: XML6 (HIV care), XML15 (tuberculosis care).
_TABLES = (("XML6", "hiv"), ("XML15", "tb"))

#: The classification the lists above and ``categories`` make. A timeline row keeps it with
#: the categories ("2|mental", "2|" for none): a row kept by another one is judged again (its
#: visit opened, as a row that was never filled) until ``vnehr db backfill-cards`` fills it
#: anew. Bump it whenever a list or ``categories`` changes (D79 added codes before), and pin
#: the digest tests/records/test_sensitive.py then names in ``CLASSIFIED``; 1 was the kept
#: form without a number (0025 as first written).
CLASSIFICATION = 2
#: sha256 of the lists and of ``categories``' source, by classification: the test fails when
#: they change and ``CLASSIFICATION`` does not.
CLASSIFIED = {2: "a6b096720fa215fde126b4dd50a7f1139362497e6aa6140f3dfa162e117e5655"}


def categories(tables: Any) -> set[str]:
    """The sensitive categories a visit touches."""
    found = set()
    for table, category in _TABLES:
        if tables.get(table):
            found.add(category)
    xml1 = (tables.get("XML1") or [{}])[0]
    codes = [xml1.get("MA_BENH_CHINH") or "", *(xml1.get("MA_BENH_KT") or "").split(";")]
    for code in (c.strip().upper() for c in codes if c.strip()):
        if code.startswith(_MENTAL):
            found.add("mental")
        if code.startswith(_REPRODUCTIVE):
            found.add("reproductive")
        if code.replace(".", "").startswith(_HIV):
            found.add("hiv")
        if code.startswith(_TB):
            found.add("tb")
    return found


def kept_prefix() -> str:
    """How a kept form of today's classification begins ("2|")."""
    return f"{CLASSIFICATION}|"


def as_kept(tables: Any) -> str:
    """The categories as a timeline row keeps them: the classification, "|", then the
    categories sorted and ";"-separated ("2|hiv;mental"; "2|" for none)."""
    return kept_prefix() + ";".join(sorted(categories(tables)))


def row_categories(row: Any) -> frozenset[str] | None:
    """The sensitive categories a timeline row keeps for the version it points to; None when
    it does not know them (stored before migration 0025 and not yet filled, corrected by a
    process of the previous release, which moves ``version_id`` only, or kept by another
    classification than today's): the visit is to be opened to judge it."""
    kept = row.sensitive_categories
    if kept is None or row.sensitive_version != row.version_id:
        return None
    if not kept.startswith(kept_prefix()):
        return None
    return frozenset(c for c in kept.removeprefix(kept_prefix()).split(";") if c)


def confiding(holder: identity.Holder, on: date) -> bool:
    """Whether the caller reads ``holder``'s book as the representative of a minor who may be
    16 or more on ``on`` (``Holder.confides``, as D106 and D109 reckon it): a parent, or a
    guardian since minority. A guardian a court appointed for an adult (who may lack capacity)
    reads the whole book: the confidence is a young person's."""
    return holder.relation is not None and holder.confides(on) and not holder.of_age(on)


def withheld(holder: identity.Holder, tables: Any, on: date) -> bool:
    """Whether a visit stays out of ``holder``'s book as the caller reads it (D109): the caller
    represents a person who may be 16 or more on ``on`` (``Holder.confides``, as D109) and the
    visit touches a sensitive category, or cannot be judged (no tables: D98). The person
    themselves, and a representative of a younger child, see every visit."""
    return confiding(holder, on) and (not isinstance(tables, dict) or bool(categories(tables)))
