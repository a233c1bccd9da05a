"""Alembic, driven from code: one migration history for SQLite and PostgreSQL.

The scripts live in the ``vnehr.migrations`` package; this module only names it, so kit still
imports no context.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from vnehr.kit.db import create_engine
from vnehr.kit.errors import SchemaOfLaterRelease

SCRIPT_LOCATION = "vnehr:migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


#: How vnehr's revisions are named: their number, in order (0001, 0002, ...).
NUMBERED = re.compile(r"\d{4}")


def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def known_revisions() -> frozenset[str]:
    """Every revision this release ships."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(revision.revision for revision in script.walk_revisions())


def ahead(current: Iterable[str]) -> bool:
    """The database is at a later release's migration: each revision it is at is one this
    release does not ship, numbered after this release's newest. (A revision it does not ship
    that is not numbered so is another program's, or a branch: not ahead.)"""
    revisions = frozenset(current)
    if not revisions or revisions & known_revisions():
        return False
    newest = max(int(head) for head in head_revisions())
    return all(NUMBERED.fullmatch(rev) and int(rev) > newest for rev in revisions)


def usable(current: Iterable[str]) -> bool:
    """This release may run on a database at ``current``: its newest migration, or a later
    release's (migrations are additive first, so this release keeps working during a rolling
    upgrade, D119). Not an older, a foreign or an empty one."""
    return frozenset(current) == head_revisions() or ahead(current)


def _current(connection: Connection) -> frozenset[str]:
    quiet = logging.getLogger("alembic.runtime.migration")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # (it tells at INFO which dialect it found, every time)
    try:
        return frozenset(MigrationContext.configure(connection).get_current_heads())
    finally:
        quiet.setLevel(level)


async def current_revisions(connection: AsyncConnection) -> frozenset[str]:
    """The revisions the database is at (empty when it was never migrated)."""
    return await connection.run_sync(_current)


def _not_later(connection: Connection, url: str) -> None:
    """Raise ``SchemaOfLaterRelease`` when the database is at a later release's migration:
    this release has not got its scripts, so Alembic could only fail ("Can't locate
    revision"), and moving it up or down is that release's to do (D119)."""
    current = _current(connection)
    # (the read began a transaction: Alembic would take it for the caller's and not commit)
    connection.rollback()
    if ahead(current):
        from vnehr.kit.startup import where  # (it imports this module)

        raise SchemaOfLaterRelease(
            where=where(url),
            current=", ".join(sorted(current)),
            newest=", ".join(sorted(head_revisions())),
        )


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``, in one transaction that Alembic holds
    (a migration's ``autocommit_block`` commits the steps before it, D103). A later
    release's schema is refused untouched (``SchemaOfLaterRelease``)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:

            def run(sync: Connection) -> None:
                _not_later(sync, url)
                command.upgrade(alembic_config(connection=sync), revision)

            await connection.run_sync(run)
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` down to ``revision``; a later release's schema is refused
    untouched, as by ``upgrade``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:

            def run(sync: Connection) -> None:
                _not_later(sync, url)
                command.downgrade(alembic_config(connection=sync), revision)

            await connection.run_sync(run)
    finally:
        await engine.dispose()


def at_head(current: Iterable[str]) -> bool:
    return frozenset(current) == head_revisions()


def upgrade_sync(url: str, revision: str = "head") -> None:
    asyncio.run(upgrade(url, revision))
