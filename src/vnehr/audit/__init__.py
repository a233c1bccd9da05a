"""Audit: the append-only log of who did what to whose record. Rows are written in the same
transaction as the act; a sealer chains them afterwards (hash chain + signed checkpoints), so
writers never queue on one lock, and ``verify`` finds any changed, removed or reordered row."""

from vnehr.audit.chain import AuditCheckpoint, AuditKey, Report, run_sealer, seal, seal_all, verify
from vnehr.audit.log import (
    BY_DEPARTMENT,
    READS,
    REFUSED,
    AccessDispute,
    AuditEvent,
    audit_event,
    count_since,
    dispute,
    dispute_of,
    disputed,
    disputes,
    disputes_of,
    event,
    events,
    events_about,
    events_of_objects,
    reads_about,
    registrar_acts,
)

__all__ = [
    "BY_DEPARTMENT",
    "READS",
    "REFUSED",
    "AccessDispute",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditKey",
    "Report",
    "audit_event",
    "count_since",
    "dispute",
    "dispute_of",
    "disputed",
    "disputes",
    "disputes_of",
    "event",
    "events",
    "events_about",
    "events_of_objects",
    "reads_about",
    "registrar_acts",
    "run_sealer",
    "seal",
    "seal_all",
    "verify",
]
