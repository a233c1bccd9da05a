"""Pages of the web portals, rendered on the server with Jinja2 templates."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from vnehr import __version__
from vnehr.kit.i18n import text

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["t"] = text
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    """Landing page: what vnehr is and where to go next."""
    return templates.TemplateResponse(request, "home.html", {"version": __version__})
