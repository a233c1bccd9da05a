"""Records: the longitudinal record (visit versions, stored canonically) and the timeline."""

from vnehr.records.service import (
    TIMELINE_COLUMNS,
    Stored,
    VisitData,
    current_version,
    entries_by_facility,
    entries_of,
    entry,
    entry_by_key,
    first_versions,
    own_timeline,
    store,
    timeline_page,
    version_by_id,
    versions,
    versions_by_ids,
)

__all__ = [
    "TIMELINE_COLUMNS",
    "Stored",
    "VisitData",
    "current_version",
    "entries_by_facility",
    "entries_of",
    "entry",
    "entry_by_key",
    "first_versions",
    "own_timeline",
    "store",
    "timeline_page",
    "version_by_id",
    "versions",
    "versions_by_ids",
]
