"""The one Alembic migration history of vnehr (SQLite and PostgreSQL)."""
