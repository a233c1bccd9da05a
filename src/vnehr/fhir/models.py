"""Resources written through FHIR that are not part of a visit (a visit becomes national tables
and is read through the mapping): kept as sent, versioned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.kit.db import Base, BigId, JSONDoc, UtcDateTime


class StoredResource(Base):
    __tablename__ = "fhir_resource"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", "version"),
        Index("ix_fhir_resource_current", "resource_type", "resource_id", "current"),
        Index("ix_fhir_resource_person", "person_id", "resource_type"),
        Index("ix_fhir_resource_writer", "facility_code", "resource_type"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(default=True)
    facility_code: Mapped[str] = mapped_column(String(5))  # the writer
    client_id: Mapped[str] = mapped_column(String(100))
    person_id: Mapped[int | None] = mapped_column(BigId)  # whose compartment it is in
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime())
    body: Mapped[dict[str, Any]] = mapped_column(JSONDoc)


class StoredIdentifier(Base):
    """Identifiers of stored resources, for conditional create (``identifier=system|value``)."""

    __tablename__ = "fhir_identifier"
    __table_args__ = (
        Index("ix_fhir_identifier_value", "resource_type", "value", "system"),
        Index("ix_fhir_identifier_resource", "resource_type", "resource_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    system: Mapped[str] = mapped_column(String(300))
    value: Mapped[str] = mapped_column(String(200))
    resource_id: Mapped[str] = mapped_column(String(64))
    facility_code: Mapped[str] = mapped_column(String(5))
