"""Sharing between facilities: the citizen's directives, the clinician's view of a patient,
emergency access and its review (D35). Other contexts use this surface only."""

from vnehr.sharing.api import router
from vnehr.sharing.service import SENSITIVE, categories, directives_of, in_force

__all__ = ["SENSITIVE", "categories", "directives_of", "in_force", "router"]
