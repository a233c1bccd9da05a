"""HTTP routes of the catalogues context (``/api/v1/catalogs``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from vnehr.catalogs import service
from vnehr.catalogs.schemas import Catalog, Entry, EntryDetail
from vnehr.kit.http import ReadSession, error_responses
from vnehr.kit.paging import Page

router = APIRouter(prefix="/api/v1/catalogs", tags=["catalogs"])

OnDate = Annotated[
    str | None,
    Query(
        description="Entries in force on this date (YYYY-MM-DD); default today in Vietnam",
        examples=["2025-07-01"],
    ),
]
CatalogName = Annotated[
    str,
    Path(
        description="List name (`icd10`, `ward`, `care-type`...) or the national field using "
        "it (`MA_LOAI_KCB`)",
        max_length=40,
    ),
]


@router.get("", response_model=list[Catalog], responses=error_responses(422))
async def list_catalogs(session: ReadSession) -> list[Catalog]:
    """All code lists with their source decision, edition and size."""
    return await service.list_catalogs(session)


@router.get("/{name}", response_model=Page[Entry], responses=error_responses(400, 404, 422))
async def browse_catalog(
    session: ReadSession,
    name: CatalogName,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Text in code or titles; accents and case ignored"),
    ] = None,
    on: OnDate = None,
    all_versions: Annotated[
        bool, Query(description="Every version of every code, whatever its dates")
    ] = False,
    kind: Annotated[
        str | None, Query(max_length=40, description="e.g. `chapter`, `block`, `Phường`")
    ] = None,
    parent: Annotated[
        str | None, Query(max_length=40, description="Only entries directly under this code")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[Entry]:
    """One page of a list, in code order. Follow `next_cursor` for the rest."""
    return await service.browse(
        session,
        name,
        q=q,
        on=service.parse_day(on),
        all_versions=all_versions,
        kind=kind,
        parent=parent,
        cursor=cursor,
        limit=limit,
    )


@router.get("/{name}/{code}", response_model=EntryDetail, responses=error_responses(404, 422))
async def get_entry(
    session: ReadSession,
    name: CatalogName,
    code: Annotated[str, Path(max_length=40, description="The code, e.g. `J45` or `00070`")],
    on: OnDate = None,
) -> EntryDetail:
    """One code as in force on a date, with its hierarchy, its successors and predecessors
    across the 2025 administrative reform, and its other versions."""
    return await service.lookup(session, name, code, service.parse_day(on))
