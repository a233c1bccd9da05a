"""Rules of the catalogues context: finding lists and codes in force on a date, and loading."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.catalogs import snapshot
from vnehr.catalogs.errors import BadDate, CodeNotInForce, UnknownCatalog, UnknownCode
from vnehr.catalogs.loaders import ListData, all_builtin_lists, normalise_icd10
from vnehr.catalogs.models import CatalogList
from vnehr.catalogs.repository import CatalogRepository
from vnehr.catalogs.schemas import Catalog, Entry, EntryDetail, Link
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.paging import Page, decode_cursor, encode_cursor


def parse_day(value: str | None) -> date | None:
    """``YYYY-MM-DD`` -> date; ``BadDate`` (CAT-0004) otherwise."""
    if value is None or value == "":
        return None
    try:
        if len(value) != 10:  # fromisoformat also takes 20250701, which callers never mean
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadDate(value=value) from exc


def normalise_code(catalog: str, code: str) -> str:
    return normalise_icd10(code) if catalog == "icd10" else code.strip()


async def resolve(session: AsyncSession, name: str) -> CatalogList:
    """A list by its name (``care-type``) or by the national field using it (``MA_LOAI_KCB``)."""
    repo = CatalogRepository(session)
    found = await repo.get_list(name) or await repo.list_by_field(name)
    if found is None:
        raise UnknownCatalog(name=name)
    return found


async def list_catalogs(session: AsyncSession) -> list[Catalog]:
    """Every loaded list with its entry count."""
    return [
        Catalog.model_validate({**_list_fields(lst), "entries": n})
        for lst, n in await CatalogRepository(session).lists()
    ]


def _list_fields(lst: CatalogList) -> dict[str, object]:
    return {
        "name": lst.name,
        "national_field": lst.national_field,
        "title_vi": lst.title_vi,
        "title_en": lst.title_en,
        "source": lst.source,
        "edition": lst.edition,
        "loaded_at": lst.loaded_at,
    }


async def browse(
    session: AsyncSession,
    name: str,
    *,
    q: str | None = None,
    on: date | None = None,
    all_versions: bool = False,
    kind: str | None = None,
    parent: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[Entry]:
    """One page of a list in code order: entries in force on ``on`` (today in Vietnam when not
    given) unless ``all_versions``; ``q`` matches code and titles ignoring case and accents."""
    catalog = await resolve(session, name)
    after = decode_cursor(cursor, (str, int)) if cursor else None
    rows = await CatalogRepository(session).page(
        catalog.name,
        on=None if all_versions else (on or today_in_vietnam()),
        query=q,
        after=(str(after[0]), int(after[1])) if after else None,
        limit=limit + 1,
        kind=kind,
        parent=normalise_code(catalog.name, parent) if parent else None,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Entry](
        items=[Entry.model_validate(row) for row in rows],
        next_cursor=encode_cursor((rows[-1].code, rows[-1].id)) if more and rows else None,
    )


async def lookup(
    session: AsyncSession, name: str, code: str, on: date | None = None
) -> EntryDetail:
    """The version of ``code`` in force on ``on`` (today when not given), with its ancestors,
    successors/predecessors across reforms and its other versions. ``UnknownCode`` if the list
    never had the code; ``CodeNotInForce`` if it had it only on other dates."""
    snap = await snapshot.current(session)
    list_name = snap.resolve(name)
    if list_name is None:
        raise UnknownCatalog(name=name)
    wanted = normalise_code(list_name, code)
    versions = snap.of(list_name, wanted)
    if not versions:
        raise UnknownCode(name=list_name, code=code)
    day = on or today_in_vietnam()
    current = next((v for v in versions if v.covers(day)), None)
    if current is None:
        raise CodeNotInForce(
            {"versions": [_entry(v).model_dump(mode="json") for v in versions]},
            name=list_name,
            code=wanted,
            on=day.isoformat(),
        )
    return EntryDetail(
        **_entry(current).model_dump(),
        catalog=list_name,
        ancestors=[_entry(v) for v in snap.ancestors(current, day)],
        children=snap.count_children(current, day),
        successors=[_link(link) for link in snap.successors.get(current.id, [])],
        predecessors=[_link(link) for link in snap.predecessors.get(current.id, [])],
        other_versions=[_entry(v) for v in versions if v.id != current.id],
    )


def _entry(version: snapshot.Version) -> Entry:
    return Entry.model_validate(version, from_attributes=True)


def _link(link: snapshot.Link) -> Link:
    return Link(
        code=link.version.code,
        title_vi=link.version.title_vi,
        valid_from=link.version.valid_from,
        valid_to=link.version.valid_to,
        effective_on=link.effective_on,
        is_default=link.is_default,
    )


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """Which of some codes a list has in force on a date (for validating a visit)."""

    in_force: frozenset[str]
    unknown: frozenset[str]


async def check_codes(
    session: AsyncSession, name: str, codes: Sequence[str], on: date
) -> CodeCheck:
    """Split ``codes`` into those in force on ``on`` and the rest (in memory)."""
    snap = await snapshot.current(session)
    list_name = snap.resolve(name)
    if list_name is None:
        raise UnknownCatalog(name=name)
    wanted = {normalise_code(list_name, c) for c in codes}
    ok = frozenset(c for c in wanted if snap.in_force(list_name, c, on) is not None)
    return CodeCheck(ok, frozenset(wanted - ok))


async def load_lists(session: AsyncSession, lists: Sequence[ListData]) -> dict[str, int]:
    """Replace each list with the given content, in the caller's transaction."""
    repo = CatalogRepository(session)
    now = utcnow()
    return {data.name: await repo.replace(data, now) for data in lists}


async def load_builtin(
    session: AsyncSession,
    *,
    only: Sequence[str] | None = None,
    missing_only: bool = False,
    icd10_titles_vi: Path | None = None,
) -> dict[str, int]:
    """Load the packaged lists (ICD-10, administrative units, national code lists).

    ``only`` restricts to some list names; ``missing_only`` skips lists already loaded."""
    skip = await CatalogRepository(session).loaded_names() if missing_only else set()
    wanted = [
        data
        for data in all_builtin_lists(icd10_titles_vi)
        if (not only or data.name in only) and data.name not in skip
    ]
    return await load_lists(session, wanted)
