"""Text helpers for Vietnamese: search keys that ignore case and diacritics."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def fold(value: str) -> str:
    """Lower-case, strip diacritics (đ -> d) and squeeze spaces: "Hen Suyễn" -> "hen suyen"."""
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return _SPACES.sub(" ", stripped.lower()).strip()


_WORD = re.compile(r"[a-z0-9]+")


def fold_words(value: str) -> list[str]:
    """The words of ``value`` as searches read them: ``fold``-ed, letters and digits only
    ("Nguyễn-Văn An" -> nguyen, van, an)."""
    return _WORD.findall(fold(value))
