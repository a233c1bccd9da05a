"""Tables of the catalogues context: lists, their versioned entries, and old-to-new mappings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime


class CatalogList(Base):
    """One code list (ICD-10, wards, MA_LOAI_KCB...) and where its current content came from."""

    __tablename__ = "catalog_list"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    national_field: Mapped[str | None] = mapped_column(String(40), unique=True)
    title_vi: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(500))
    edition: Mapped[str] = mapped_column(String(100))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CatalogEntry(Base):
    """A code with the dates it is in force; a code reused for another unit is another row."""

    __tablename__ = "catalog_entry"
    __table_args__ = (
        Index("ix_catalog_entry_list_code", "list_name", "code", "id"),
        Index("ix_catalog_entry_parent", "parent_list", "parent_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    list_name: Mapped[str] = mapped_column(
        String(40), ForeignKey("catalog_list.name", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    title_vi: Mapped[str | None] = mapped_column(String(500))
    title_en: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str | None] = mapped_column(String(40))
    parent_code: Mapped[str | None] = mapped_column(String(40))
    #: The list the parent is in: this one, or another (a ward's district, a district's province).
    parent_list: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(200))
    attrs: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    search_key: Mapped[str] = mapped_column(Text)


class CatalogMapping(Base):
    """An old entry replaced by a new one (administrative reform): one row per pair."""

    __tablename__ = "catalog_mapping"
    __table_args__ = (
        Index("ix_catalog_mapping_from", "from_entry_id"),
        Index("ix_catalog_mapping_to", "to_entry_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    list_name: Mapped[str] = mapped_column(
        String(40), ForeignKey("catalog_list.name", ondelete="CASCADE")
    )
    from_entry_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("catalog_entry.id", ondelete="CASCADE")
    )
    to_entry_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("catalog_entry.id", ondelete="CASCADE")
    )
    effective_on: Mapped[date] = mapped_column(Date)
    is_default: Mapped[bool] = mapped_column(Boolean, default=True)
