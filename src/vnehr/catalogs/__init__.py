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
from vnehr.catalogs.snapshot import Snapshot, offline
from vnehr.catalogs.snapshot import current as codebook
from vnehr.catalogs.snapshot import recent as recent_codebook
from vnehr.catalogs.snapshot import warm as warm_codebook

__all__ = [
    "Catalog",
    "CodeCheck",
    "CodeNotInForce",
    "Entry",
    "EntryDetail",
    "Snapshot",
    "UnknownCatalog",
    "UnknownCode",
    "browse",
    "check_codes",
    "codebook",
    "list_catalogs",
    "load_builtin",
    "lookup",
    "normalise_code",
    "offline",
    "parse_day",
    "recent_codebook",
    "router",
    "warm_codebook",
]
