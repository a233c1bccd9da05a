"""Alembic, driven from code: one migration history for SQLite and PostgreSQL.

The scripts live in the ``vnehr.migrations`` package; this module only names it, so kit still
imports no context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from vnehr.kit.db import create_engine

SCRIPT_LOCATION = "vnehr:migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


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


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``, in one transaction that Alembic holds
    (a migration's ``autocommit_block`` commits the steps before it, D103)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(
                lambda sync: command.upgrade(alembic_config(connection=sync), revision)
            )
    finally:
        await engine.dispose()


async def downgrade(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(
                lambda sync: command.downgrade(alembic_config(connection=sync), revision)
            )
    finally:
        await engine.dispose()


def at_head(current: Iterable[str]) -> bool:
    return frozenset(current) == head_revisions()


def upgrade_sync(url: str, revision: str = "head") -> None:
    asyncio.run(upgrade(url, revision))
