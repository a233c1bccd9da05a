"""An in-memory, read-only copy of every catalogue, shared by the requests of one process.

Catalogues change only when someone loads a list (rarely), while lookups and visit validation
read them constantly. Each use first reads the lists' load stamps (one small query); when they
differ from the copy's, the copy is rebuilt from the database. So every process sees a load at
its next request, and a load inside a transaction is seen by that transaction only.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.catalogs.loaders import ListData, all_builtin_lists, normalise_icd10
from vnehr.catalogs.repository import CatalogRepository, Stamp
from vnehr.kit.db import Database
from vnehr.kit.logging import get_logger

log = get_logger("vnehr.catalogs")


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a code (a row of ``catalog_entry``)."""

    id: int
    list_name: str
    code: str
    valid_from: date | None
    valid_to: date | None
    title_vi: str | None
    title_en: str | None
    kind: str | None
    parent_code: str | None
    parent_list: str | None
    source: str | None
    attrs: dict[str, Any] | None

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or self.valid_to >= day
        )


@dataclass(frozen=True, slots=True)
class Link:
    version: Version
    effective_on: date
    is_default: bool


@dataclass(slots=True)
class Snapshot:
    stamp: Stamp
    by_field: dict[str, str] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    versions: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    children: dict[tuple[str, str], list[Version]] = field(default_factory=dict)
    successors: dict[int, list[Link]] = field(default_factory=dict)
    predecessors: dict[int, list[Link]] = field(default_factory=dict)

    def resolve(self, name: str) -> str | None:
        """The list called ``name`` or used by the national field ``name``."""
        return name if name in self.names else self.by_field.get(name.upper())

    def of(self, list_name: str, code: str) -> list[Version]:
        return self.versions.get((list_name, code), [])

    def in_force(self, list_name: str, code: str, day: date) -> Version | None:
        return next((v for v in self.of(list_name, code) if v.covers(day)), None)

    def has(self, list_name: str, code: str, day: date) -> bool:
        """A code usable in a record on ``day`` (for ICD-10: a category or subcategory, with
        or without the dot; chapters and blocks are headings, not diagnoses)."""
        if list_name == "icd10":
            found = self.in_force(list_name, normalise_icd10(code), day)
            return found is not None and found.kind in ("category", "subcategory")
        return self.in_force(list_name, code.strip(), day) is not None

    def ancestors(self, version: Version, day: date) -> list[Version]:
        chain: list[Version] = []
        node: Version | None = version
        while node is not None and node.parent_code is not None and len(chain) < 10:
            node = self.in_force(node.parent_list or node.list_name, node.parent_code, day)
            if node is not None:
                chain.insert(0, node)
        return chain

    def count_children(self, version: Version, day: date) -> int:
        below = self.children.get((version.list_name, version.code), [])
        return sum(1 for v in below if v.covers(day))


_cache: dict[Stamp, Snapshot] = {}
_lock = asyncio.Lock()
_KEEP = 4  # copies kept: one per database a process (or the test suite) talks to, roughly


_recent: dict[int, tuple[float, Snapshot]] = {}
_refreshing: set[int] = set()  # databases whose copy one request is refreshing now


async def recent(db: Database, max_age: float = 5.0) -> Snapshot:
    """The copy ``current`` gave this database less than ``max_age`` seconds ago, without
    touching the database (a read session is opened only to refresh it): for hot reads that
    only need titles (the health book), where a list loaded a few seconds ago may show its old
    titles for those seconds."""
    key = id(db)
    now = time.monotonic()
    found = _recent.get(key)
    if found is not None and (now - found[0] < max_age or key in _refreshing):
        # (while one request refreshes the copy, the others keep using it: under load every
        # request in flight at the moment it expired used to query the database at once)
        return found[1]
    _refreshing.add(key)
    try:
        async with db.read_session() as session:
            snapshot = await current(session)
    finally:
        _refreshing.discard(key)
    if len(_recent) > 16:
        _recent.clear()
    _recent[key] = (now, snapshot)
    return snapshot


async def warm(db: Database) -> None:
    """Build the copy now: at a process's start, in the background, so that its first page or
    file does not wait for it (about 0.5 s with the national lists). A failure is logged and
    left to the first use, which builds the copy as it always did."""
    try:
        await recent(db)
    except Exception:  # only an early start: the first use builds the copy
        log.warning("catalogue copy not built at start-up", exc_info=True)


async def current(session: AsyncSession) -> Snapshot:
    """The copy matching what ``session`` sees now, rebuilt when a list was (re)loaded."""
    repo = CatalogRepository(session)
    stamp = await repo.stamp()
    found = _cache.get(stamp)
    if found is not None:
        return found
    async with _lock:
        found = _cache.get(stamp)
        if found is None:
            found = await _build(repo, stamp)
            while len(_cache) >= _KEEP:
                _cache.pop(next(iter(_cache)))
            _cache[stamp] = found
            # Tens of thousands of long-lived objects: move them out of the cyclic collector's
            # way, or every full collection walks them all (pauses of ~0.5 s under load).
            gc.freeze()
    return found


async def _build(repo: CatalogRepository, stamp: Stamp) -> Snapshot:
    snap = Snapshot(stamp=stamp)
    for name, national_field in await repo.fields():
        snap.names.add(name)
        if national_field:
            snap.by_field[national_field.upper()] = name
    by_id: dict[int, Version] = {}
    versions: defaultdict[tuple[str, str], list[Version]] = defaultdict(list)
    children: defaultdict[tuple[str, str], list[Version]] = defaultdict(list)
    for row in await repo.all_entry_rows():
        version = Version(*row)
        by_id[version.id] = version
        versions[(version.list_name, version.code)].append(version)
        if version.parent_code is not None and version.parent_list is not None:
            children[(version.parent_list, version.parent_code)].append(version)
    for key, items in versions.items():
        items.sort(key=lambda v: (v.valid_from is not None, v.valid_from or date.min))
        snap.versions[key] = items
    snap.children = dict(children)
    successors: defaultdict[int, list[Link]] = defaultdict(list)
    predecessors: defaultdict[int, list[Link]] = defaultdict(list)
    for old_id, new_id, effective_on, is_default in await repo.all_mapping_rows():
        successors[old_id].append(Link(by_id[new_id], effective_on, is_default))
        predecessors[new_id].append(Link(by_id[old_id], effective_on, is_default))
    for links in successors.values():
        links.sort(key=lambda link: (not link.is_default, link.version.code))
    for links in predecessors.values():
        links.sort(key=lambda link: link.version.code)
    snap.successors = dict(successors)
    snap.predecessors = dict(predecessors)
    return snap


_offline: Snapshot | None = None


def offline() -> Snapshot:
    """The packaged lists as a snapshot, without a database (for ``vnehr validate``)."""
    global _offline
    if _offline is None:
        _offline = from_lists(all_builtin_lists())
    return _offline


def from_lists(lists: list[ListData]) -> Snapshot:
    snap = Snapshot(stamp=())
    versions: defaultdict[tuple[str, str], list[Version]] = defaultdict(list)
    children: defaultdict[tuple[str, str], list[Version]] = defaultdict(list)
    next_id = 0
    for data in lists:
        snap.names.add(data.name)
        if data.national_field:
            snap.by_field[data.national_field.upper()] = data.name
        for e in data.entries:
            next_id += 1
            parent_list = e.parent_list or (data.name if e.parent_code else None)
            version = Version(
                next_id, data.name, e.code, e.valid_from, e.valid_to, e.title_vi, e.title_en,
                e.kind, e.parent_code, parent_list, e.source, e.attrs,
            )  # fmt: skip
            versions[(data.name, e.code)].append(version)
            if e.parent_code and parent_list:
                children[(parent_list, e.parent_code)].append(version)
    for key, items in versions.items():
        items.sort(key=lambda v: (v.valid_from is not None, v.valid_from or date.min))
        snap.versions[key] = items
    snap.children = dict(children)
    return snap
