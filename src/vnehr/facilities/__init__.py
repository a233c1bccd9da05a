"""Facilities: the registry and its codes, onboarding, practitioners, API clients, certificates.

Other contexts use this surface only.
"""

from vnehr.facilities.api import oauth_router, router
from vnehr.facilities.errors import BadJwks, UnknownFacility
from vnehr.facilities.schemas import (
    ClientCreate,
    Facility,
    FacilityCreate,
    Kind,
    Level,
    Ownership,
    PractitionerCreate,
    State,
)
from vnehr.facilities.service import (
    MAY_CONNECT,
    SCOPES,
    add_certificate,
    add_client,
    add_practitioner,
    client_facilities,
    directory,
    get,
    intake_context,
    listing,
    move,
    names,
    names_now,
    practitioner_names,
    register,
    registry,
    revoke_client,
    status_counts,
    test_submission_passed,
)

__all__ = [
    "MAY_CONNECT",
    "SCOPES",
    "BadJwks",
    "ClientCreate",
    "Facility",
    "FacilityCreate",
    "Kind",
    "Level",
    "Ownership",
    "PractitionerCreate",
    "State",
    "UnknownFacility",
    "add_certificate",
    "add_client",
    "add_practitioner",
    "client_facilities",
    "directory",
    "get",
    "intake_context",
    "listing",
    "move",
    "names",
    "names_now",
    "oauth_router",
    "practitioner_names",
    "register",
    "registry",
    "revoke_client",
    "router",
    "status_counts",
    "test_submission_passed",
]
