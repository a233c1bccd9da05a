"""Audit: the append-only log of who did what to whose record. Rows are written in the same
transaction as the act; the hash chain that makes tampering visible is sealed by a job (to come
with the sharing issue), so writers never queue on one lock."""

from vnehr.audit.log import AuditEvent, audit_event, events_about

__all__ = ["AuditEvent", "audit_event", "events_about"]
