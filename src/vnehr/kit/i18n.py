"""Message catalogues: one TOML file per language under ``vnehr/locale``.

Keys are stable error codes (``CAT-0001``) or dotted message ids; values are ``str.format``
templates. Code never holds the text a person reads; it asks for it here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

Language = Literal["vi", "en"]
LANGUAGES: tuple[Language, ...] = ("vi", "en")
#: The cookie that remembers the language a reader chose on the portal (``?lang=``): the pages
#: and the files they link to (the book's PDF) are in it.
LANGUAGE_COOKIE = "vnehr_lang"


class _Keep(dict[str, Any]):
    """Leaves ``{unknown}`` placeholders in place instead of failing on them."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@lru_cache(maxsize=len(LANGUAGES))
def catalogue(language: Language) -> Mapping[str, str]:
    """All messages of one language, read once from the package."""
    raw = resources.files("vnehr").joinpath("locale", f"{language}.toml").read_bytes()
    data = tomllib.loads(raw.decode("utf-8"))
    return {str(k): str(v) for k, v in data.items()}


def text(key: str, language: Language, params: Mapping[str, Any] | None = None) -> str:
    """The message ``key`` in ``language`` with ``params`` filled in (the key itself if unknown)."""
    template = catalogue(language).get(key)
    if template is None:
        return key
    values = _Keep(params or {})
    for name, value in values.items():
        if isinstance(value, Mapping) and language in value:
            # a text already in every language (another error's message): this language's
            values[name] = value[language]
    return template.format_map(values)


def texts(key: str, params: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The message in every language, Vietnamese first: ``{"vi": ..., "en": ...}``."""
    return {language: text(key, language, params) for language in LANGUAGES}


def born(value: date | str | None, language: Language) -> str:
    """A birth as far as it is known (D106, D111): "14/05/1980" for a day, "tháng 05/1980" /
    "năm 1980" for a month or a year only (``value`` a date, or FHIR's "YYYY-MM-DD", "YYYY-MM",
    "YYYY"), never an invented day; "" when unknown."""
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if not value:
        return ""
    if len(value) >= 10:
        return f"{value[8:10]}/{value[5:7]}/{value[:4]}"
    if len(value) == 7:
        return text("web.birth.month", language, {"month": value[5:7], "year": value[:4]})
    return text("web.birth.year", language, {"year": value[:4]})
