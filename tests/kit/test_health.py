from __future__ import annotations

from pathlib import Path

import httpx

from vnehr import __version__
from vnehr.app import create_app
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings


async def test_healthz_answers_without_touching_anything(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


async def test_readyz_reports_the_database_at_the_newest_migration(
    client: httpx.AsyncClient, backend: str
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"] == backend
    assert body["revision"]


async def test_readyz_is_503_with_a_code_on_a_database_never_migrated(
    tmp_path: Path, settings: Settings
) -> None:
    db = Database.from_urls(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    app = create_app(settings, database=db)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/readyz")
    finally:
        await db.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "KIT-0503"
    assert "vnehr db upgrade" in body["message"]["en"]
    assert body["detail"]["current"] == []


async def test_readyz_is_503_when_the_database_cannot_be_reached(settings: Settings) -> None:
    db = Database.from_urls("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app = create_app(settings, database=db)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/readyz")
    finally:
        await db.dispose()
    assert response.status_code == 503
    assert response.json()["code"] == "KIT-0503"


async def test_home_page_is_vietnamese_first(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "Sổ sức khỏe điện tử" in response.text
    assert 'lang="vi"' in response.text
