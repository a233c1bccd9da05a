"""All SQL of the catalogues context."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.catalogs.loaders import EntryKey, ListData
from vnehr.catalogs.models import CatalogEntry, CatalogList, CatalogMapping
from vnehr.kit.text import fold

_BATCH = 2000

#: What identifies the content of all lists: (name, load time) of each, in name order.
Stamp = tuple[tuple[str, datetime], ...]


def _in_force(on: date) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (
        or_(CatalogEntry.valid_from.is_(None), CatalogEntry.valid_from <= on),
        or_(CatalogEntry.valid_to.is_(None), CatalogEntry.valid_to >= on),
    )


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lists(self) -> list[tuple[CatalogList, int]]:
        counts = (
            select(CatalogEntry.list_name, func.count().label("n"))
            .group_by(CatalogEntry.list_name)
            .subquery()
        )
        rows = await self.session.execute(
            select(CatalogList, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.list_name == CatalogList.name)
            .order_by(CatalogList.name)
        )
        return [(row[0], int(row[1])) for row in rows]

    async def get_list(self, name: str) -> CatalogList | None:
        return await self.session.get(CatalogList, name)

    async def list_by_field(self, national_field: str) -> CatalogList | None:
        result = await self.session.scalars(
            select(CatalogList).where(
                func.upper(CatalogList.national_field) == national_field.upper()
            )
        )
        return result.first()

    async def page(
        self,
        name: str,
        *,
        on: date | None,
        query: str | None,
        after: tuple[str, int] | None,
        limit: int,
        kind: str | None = None,
        parent: str | None = None,
    ) -> list[CatalogEntry]:
        stmt: Select[CatalogEntry] = select(CatalogEntry).where(CatalogEntry.list_name == name)
        if on is not None:
            stmt = stmt.where(*_in_force(on))
        if query:
            # Keys start with a space, so " hang bac" matches at word starts only.
            stmt = stmt.where(CatalogEntry.search_key.contains(" " + fold(query), autoescape=True))
        if kind:
            stmt = stmt.where(CatalogEntry.kind == kind)
        if parent:
            stmt = stmt.where(CatalogEntry.parent_code == parent)
        if after is not None:
            stmt = stmt.where(tuple_(CatalogEntry.code, CatalogEntry.id) > tuple_(*after))
        stmt = stmt.order_by(CatalogEntry.code, CatalogEntry.id).limit(limit)
        return list(await self.session.scalars(stmt))

    async def replace(self, data: ListData, loaded_at: datetime) -> int:
        """Swap a whole list for ``data`` in the caller's transaction; returns the entry count."""
        await self.session.execute(
            delete(CatalogMapping).where(CatalogMapping.list_name == data.name)
        )
        await self.session.execute(delete(CatalogEntry).where(CatalogEntry.list_name == data.name))
        await self.session.execute(delete(CatalogList).where(CatalogList.name == data.name))
        await self.session.execute(
            insert(CatalogList).values(
                name=data.name,
                national_field=data.national_field,
                title_vi=data.title_vi,
                title_en=data.title_en,
                source=data.source,
                edition=data.edition,
                loaded_at=loaded_at,
            )
        )
        rows = [
            {
                "list_name": data.name,
                "code": e.code,
                "valid_from": e.valid_from,
                "valid_to": e.valid_to,
                "title_vi": e.title_vi,
                "title_en": e.title_en,
                "kind": e.kind,
                "parent_code": e.parent_code,
                "parent_list": e.parent_list or (data.name if e.parent_code else None),
                "source": e.source,
                "attrs": e.attrs,
                "search_key": " " + fold(" ".join(filter(None, (e.code, e.title_vi, e.title_en)))),
            }
            for e in data.entries
        ]
        for start in range(0, len(rows), _BATCH):
            await self.session.execute(insert(CatalogEntry), rows[start : start + _BATCH])
        if data.mappings:
            ids = await self._ids(data.name)
            links = [
                {
                    "list_name": data.name,
                    "from_entry_id": ids[m.old],
                    "to_entry_id": ids[m.new],
                    "effective_on": m.effective_on,
                    "is_default": m.is_default,
                }
                for m in data.mappings
            ]
            for start in range(0, len(links), _BATCH):
                await self.session.execute(insert(CatalogMapping), links[start : start + _BATCH])
        await self.session.flush()
        return len(rows)

    async def _ids(self, name: str) -> dict[EntryKey, int]:
        rows = await self.session.execute(
            select(CatalogEntry.code, CatalogEntry.valid_from, CatalogEntry.id).where(
                CatalogEntry.list_name == name
            )
        )
        return {(code, valid_from): entry_id for code, valid_from, entry_id in rows}

    async def stamp(self) -> Stamp:
        rows = await self.session.execute(
            select(CatalogList.name, CatalogList.loaded_at).order_by(CatalogList.name)
        )
        return tuple((name, loaded_at) for name, loaded_at in rows)

    async def fields(self) -> list[tuple[str, str | None]]:
        rows = await self.session.execute(select(CatalogList.name, CatalogList.national_field))
        return [(name, national_field) for name, national_field in rows]

    async def all_entry_rows(self) -> list[tuple[Any, ...]]:
        """Every entry as a plain tuple, in the field order of ``snapshot.Version``."""
        e = CatalogEntry
        rows = await self.session.execute(
            select(
                e.id,
                e.list_name,
                e.code,
                e.valid_from,
                e.valid_to,
                e.title_vi,
                e.title_en,
                e.kind,
                e.parent_code,
                e.parent_list,
                e.source,
                e.attrs,
            )
        )
        return [tuple(row) for row in rows]

    async def all_mapping_rows(self) -> list[tuple[int, int, date, bool]]:
        m = CatalogMapping
        rows = await self.session.execute(
            select(m.from_entry_id, m.to_entry_id, m.effective_on, m.is_default)
        )
        return [(a, b, c, d) for a, b, c, d in rows]

    async def loaded_names(self) -> set[str]:
        return set(await self.session.scalars(select(CatalogList.name)))


__all__ = ["CatalogRepository"]
