"""The ASGI application: composition root that wires every context's routes and the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vnehr import __version__, catalogs, web
from vnehr.kit import health
from vnehr.kit.db import Database
from vnehr.kit.http import RequestContextMiddleware, install_error_handlers
from vnehr.kit.logging import configure_logging
from vnehr.kit.settings import Settings, get_settings

DESCRIPTION = """
Trục dữ liệu y tế phía sau **Sổ sức khỏe điện tử** trên VNeID.
The health-data hub behind the electronic health book on VNeID.

Every error has the body `{"code", "message": {"vi", "en"}, "detail"}` with a stable `code`.
"""


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the application. ``database`` is given by tests; otherwise the lifespan opens the
    engines from settings and closes them on shutdown (nothing connects at import)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        app.state.database = database or Database.from_urls(
            settings.database_url,
            settings.read_database_url,
            echo=settings.db_echo,
            pool_size=settings.db_pool_size,
        )
        try:
            yield
        finally:
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="vnehr",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    if database is not None:
        app.state.database = database
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(catalogs.router)
    app.include_router(web.router)
    return app


def factory() -> FastAPI:
    """Entry point for ``uvicorn --factory vnehr.app:factory`` (each worker process)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.json_logs)
    return create_app(settings)
