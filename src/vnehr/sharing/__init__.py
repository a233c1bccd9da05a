"""Sharing between facilities: the citizen's directives, the clinician's view of a patient,
emergency access and its review (D35). Other contexts use this surface only."""

from vnehr.sharing.api import router
from vnehr.sharing.errors import NoConsent
from vnehr.sharing.service import (
    REASONS,
    SENSITIVE,
    basis,
    break_glass,
    categories,
    create_directive,
    directives,
    directives_of,
    emergency_queue,
    in_force,
    notice_viewed,
    patient_record,
    reception_code,
    redeem,
    review,
    revoke,
    settle_read,
)

__all__ = [
    "REASONS",
    "SENSITIVE",
    "NoConsent",
    "basis",
    "break_glass",
    "categories",
    "create_directive",
    "directives",
    "directives_of",
    "emergency_queue",
    "in_force",
    "notice_viewed",
    "patient_record",
    "reception_code",
    "redeem",
    "review",
    "revoke",
    "router",
    "settle_read",
]
