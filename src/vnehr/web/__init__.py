"""Server-rendered portals (citizen, clinician, facility, department). For now: the home page."""

from vnehr.web.book_download import router as download_router
from vnehr.web.facility_pages import router as facility_router
from vnehr.web.pages import install_error_pages, router
from vnehr.web.ward_pages import router as ward_router

__all__ = ["download_router", "facility_router", "install_error_pages", "router", "ward_router"]
