"""What the catalogues context shows to callers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Catalog(BaseModel):
    """A code list, its source decision and current edition."""

    model_config = ConfigDict(from_attributes=True)

    name: str = Field(examples=["icd10"])
    national_field: str | None = Field(
        description="Field of the national XML tables that uses this list",
        examples=["MA_BENH_CHINH"],
    )
    title_vi: str
    title_en: str
    source: str = Field(description="Decision(s) the list comes from")
    edition: str
    loaded_at: datetime
    entries: int = Field(description="Number of entries, all versions")


class Entry(BaseModel):
    """One version of a code: the dates it is in force, its titles and place in a hierarchy."""

    model_config = ConfigDict(from_attributes=True)

    code: str = Field(examples=["J45"])
    title_vi: str | None
    title_en: str | None
    valid_from: date | None = Field(description="First day in force; null = no known start")
    valid_to: date | None = Field(description="Last day in force; null = still in force")
    kind: str | None = Field(examples=["category", "Phường"])
    parent_code: str | None
    parent_list: str | None = Field(
        default=None, description="List holding the parent (itself, or e.g. `district`)"
    )
    source: str | None = Field(description="Decision for this entry when it differs from the list")
    attrs: dict[str, Any] | None = None


class Link(BaseModel):
    """Another entry this one became (successor) or came from (predecessor)."""

    code: str
    title_vi: str | None
    valid_from: date | None
    valid_to: date | None
    effective_on: date
    is_default: bool = Field(description="For a divided unit: the part most addresses go to")


class EntryDetail(Entry):
    catalog: str
    ancestors: list[Entry] = Field(description="From the top of the hierarchy down to the parent")
    children: int = Field(description="Entries directly below this one (any list), same date")
    successors: list[Link]
    predecessors: list[Link]
    other_versions: list[Entry] = Field(description="Other date ranges in which the code was used")
