"""The classification of sensitive visits (D35) is numbered: a timeline row keeps the number
with its categories, so a change of the lists must come with a new number (D136 as amended)."""

from __future__ import annotations

import hashlib
import inspect

from vnehr.records import sensitive


def _digest() -> str:
    """What decides a visit's categories: the lists and the code that reads them."""
    lists = (
        sensitive.SENSITIVE,
        sensitive._TABLES,
        sensitive._MENTAL,
        sensitive._TB,
        sensitive._HIV,
        sensitive._REPRODUCTIVE,
    )
    what = repr(lists) + inspect.getsource(sensitive.categories)
    return hashlib.sha256(what.encode()).hexdigest()


def test_the_classification_is_bumped_when_what_classifies_changes() -> None:
    """Changed a list or ``categories``? Bump ``CLASSIFICATION`` and pin this digest for the
    new number in ``CLASSIFIED``: rows kept by the old lists are then judged again and
    refilled by ``vnehr db backfill-cards``, instead of being trusted."""
    assert max(sensitive.CLASSIFIED) == sensitive.CLASSIFICATION
    assert sensitive.CLASSIFIED[sensitive.CLASSIFICATION] == _digest(), (
        "the sensitive lists changed: bump CLASSIFICATION and pin the new digest"
    )
    assert len(set(sensitive.CLASSIFIED.values())) == len(sensitive.CLASSIFIED)


def test_a_row_kept_by_another_classification_is_not_known() -> None:
    class Row:
        version_id = 7
        sensitive_version = 7
        sensitive_categories = ""

    row = Row()
    assert sensitive.row_categories(row) is None  # kept without a number (classification 1)
    row.sensitive_categories = f"{sensitive.CLASSIFICATION - 1}|"
    assert sensitive.row_categories(row) is None
    row.sensitive_categories = f"{sensitive.CLASSIFICATION}|"
    assert sensitive.row_categories(row) == frozenset()
    row.sensitive_categories = sensitive.as_kept({"XML1": [{"MA_BENH_CHINH": "Z71.7"}]})
    assert sensitive.row_categories(row) == {"hiv"}
    row.sensitive_version = 6
    assert sensitive.row_categories(row) is None
