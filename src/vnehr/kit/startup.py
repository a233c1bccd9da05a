"""Whether a process may start on its database (D85, D112): it answers, exists and is at the
newest migration (or a later release's, D119), through a driver vnehr uses. ``vnehr serve``
and ``vnehr worker`` ask before starting; the app's lifespan asks when it is started some other
way (``uvicorn --factory vnehr.app:factory``). The answer is a coded error (KIT-0003/4/5/7)
for one line, never a traceback; a missing SQLite file is not created by asking."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from vnehr.kit.db import create_engine
from vnehr.kit.errors import (
    DatabaseDriverUnsupported,
    DatabaseNotSetUp,
    DatabaseUnreachable,
    SchemaNotCurrent,
    VnehrError,
)
from vnehr.kit.logging import get_logger
from vnehr.kit.settings import Settings

log = get_logger("vnehr.startup")

#: The drivers vnehr runs on (``VNEHR_DATABASE_URL``'s scheme, as SQLAlchemy names it).
DRIVERS = frozenset({"postgresql+asyncpg", "sqlite+aiosqlite"})


class StartupRefused(Exception):
    """The process does not start; ``line`` says why (its code and text), for the log."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def where(url: str) -> str:
    """The database a URL names, for messages: its file, or its host and name — never the
    password (nor the query options, which may hold one)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "VNEHR_DATABASE_URL"
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.host or 'localhost'}{port}/{parsed.database or ''}"


def sqlite_file_missing(url: str) -> bool:
    """A SQLite URL naming a file that is not there (connecting would create it empty)."""
    parsed = make_url(url)
    name = parsed.database or ""
    missing = not Path(name).is_file()
    return parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and missing


def urls(settings: Settings, *, replica: bool) -> dict[str, str]:
    """The setting name of each database to check, and its URL (the replica's with
    ``replica``, when it has one)."""
    named = {"VNEHR_DATABASE_URL": settings.database_url}
    if replica and settings.read_database_url:
        named["VNEHR_READ_DATABASE_URL"] = settings.read_database_url
    return named


def unsupported_driver(settings: Settings, *, replica: bool = False) -> VnehrError | None:
    """KIT-0007 when a database URL names a driver vnehr does not use: SQLAlchemy would import
    a module vnehr does not ship (``postgresql://`` means psycopg) and fail with a traceback."""
    for name, url in urls(settings, replica=replica).items():
        try:
            scheme = make_url(url).drivername
        except (ArgumentError, ValueError):
            continue  # not a URL at all: said where it is opened
        if scheme not in DRIVERS:
            return DatabaseDriverUnsupported(name=name, scheme=f"{scheme}://")
    return None


async def database_refusal(settings: Settings, *, replica: bool) -> VnehrError | None:
    """Why the process may not start on its database (and, with ``replica``, the read
    replica): KIT-0007 a driver vnehr does not use, KIT-0003 unreachable or refusing (with the
    driver's reason, never the password), KIT-0004 not there or never migrated, KIT-0005 an
    older or foreign schema; None when it may, at the newest migration or a later release's
    (D119), with one ``database_ready`` line per database. A URL SQLAlchemy cannot read at all
    raises ``StartupRefused`` (a configuration error)."""
    from vnehr.kit.migrate import ahead, current_revisions, usable  # (see kit.health)

    refused = unsupported_driver(settings, replica=replica)
    if refused is not None:
        return refused
    checked: set[str] = set()
    for name, url in urls(settings, replica=replica).items():
        if url in checked:
            continue
        checked.add(url)
        place = where(url)
        try:
            if sqlite_file_missing(url):
                return DatabaseNotSetUp(where=place)
            engine = create_engine(url, immediate=False, read_only=True, pool_size=1)
        except ArgumentError as exc:  # a URL SQLAlchemy cannot use (its text holds no URL)
            raise StartupRefused(f"configuration error: {name}: {exc}") from exc
        try:
            async with engine.connect() as connection:
                current = await current_revisions(connection)
        except DBAPIError as exc:  # refused the login, no such database, cannot open the file
            reason = str(exc.orig or exc).strip().splitlines()[0]
            return DatabaseUnreachable(where=place, reason=reason)
        except OSError as exc:  # refused, no route, a name that does not resolve, a timeout
            reason = exc.strerror or str(exc) or type(exc).__name__
            return DatabaseUnreachable(where=place, reason=reason)
        finally:
            await engine.dispose()
        if not current:
            return DatabaseNotSetUp(where=place)
        if not usable(current):
            return SchemaNotCurrent(where=place)
        # a later release's schema: this one runs on it until it is replaced (D119)
        later = {"later_release": True} if ahead(current) else {}
        log.info("database_ready", database=place, revision=sorted(current), **later)
    return None


async def refuse_unusable_database(settings: Settings, *, replica: bool) -> None:
    """``database_refusal`` as ``StartupRefused``, its line in ``VNEHR_DEFAULT_LANGUAGE``."""
    refused = await database_refusal(settings, replica=replica)
    if refused is not None:
        raise StartupRefused(f"{refused.code}: {refused.messages()[settings.default_language]}")
