"""Facilities: the registry and its codes, onboarding, practitioners, API clients, certificates.

Other contexts use this surface only.
"""

from vnehr.facilities.api import oauth_router, router
from vnehr.facilities.errors import UnknownFacility
from vnehr.facilities.schemas import Facility, FacilityCreate, Kind, Level, Ownership, State
from vnehr.facilities.service import (
    MAY_CONNECT,
    SCOPES,
    get,
    listing,
    move,
    register,
    status_counts,
)

__all__ = [
    "MAY_CONNECT",
    "SCOPES",
    "Facility",
    "FacilityCreate",
    "Kind",
    "Level",
    "Ownership",
    "State",
    "UnknownFacility",
    "get",
    "listing",
    "move",
    "oauth_router",
    "register",
    "router",
    "status_counts",
]
