"""Catalogues: versioned national code lists (ICD-10, administrative units, XML code lists).

Other contexts use this surface only.
"""

from vnehr.catalogs.api import router
from vnehr.catalogs.errors import CodeNotInForce, UnknownCatalog, UnknownCode
from vnehr.catalogs.schemas import Catalog, Entry, EntryDetail
from vnehr.catalogs.service import (
    CodeCheck,
    browse,
    check_codes,
    list_catalogs,
    load_builtin,
    lookup,
    normalise_code,
    parse_day,
)

__all__ = [
    "Catalog",
    "CodeCheck",
    "CodeNotInForce",
    "Entry",
    "EntryDetail",
    "UnknownCatalog",
    "UnknownCode",
    "browse",
    "check_codes",
    "list_catalogs",
    "load_builtin",
    "lookup",
    "normalise_code",
    "parse_day",
    "router",
]
