"""Server-rendered portals (citizen, clinician, facility, department). For now: the home page."""

from vnehr.web.pages import install_error_pages, router

__all__ = ["install_error_pages", "router"]
