"""Records: the longitudinal record (visit versions, stored canonically) and the timeline."""

from vnehr.records.service import (
    Stored,
    VisitData,
    current_version,
    store,
    version_by_id,
    versions,
)

__all__ = ["Stored", "VisitData", "current_version", "store", "version_by_id", "versions"]
