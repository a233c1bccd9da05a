"""Server-rendered portals (citizen, clinician, facility, department). For now: the home page."""

from vnehr.web.pages import router

__all__ = ["router"]
