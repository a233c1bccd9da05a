"""Alembic environment: runs on a connection handed over by ``vnehr.kit.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from vnehr.models import metadata as target_metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `vnehr db upgrade`, which provides the connection")
run_on(connection)
