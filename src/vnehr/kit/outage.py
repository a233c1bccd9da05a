"""A database that goes away while the service runs (D101).

``database_lost`` tells a lost database (refused or reset connections, a server shutting down
or not yet accepting connections, a login or database refused, a SQLite file whose disk is
gone or full) from every other failure, with a short reason fit for a log line: the driver's
error class and the first line of its message, never the SQL, its parameters or a password.
``Outage`` is a background loop's memory of it: one line when the database goes away, quiet
rounds with a growing wait in between, one line when it answers again.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.exc import TimeoutError as PoolTimeout

#: The first wait after a failed round, doubled each time up to ``LONGEST_WAIT`` (±20 %, so
#: that many workers do not all come back in the same instant).
FIRST_WAIT = 1.0
LONGEST_WAIT = 30.0
#: What a request refused for a lost database is told to wait (``Retry-After``).
RETRY_AFTER_SECONDS = 5

#: PostgreSQL answers that mean "no usable connection": the server is shutting down, crashed or
#: still starting (57P01-57P03), has no connection left (53300), refuses the login (28000,
#: 28P01) or the database (3D000); all of class 08 (connection exception) too.
_PG_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "28000", "28P01", "3D000"})
#: SQLite primary result codes of a file that cannot be used now: busy past the busy timeout
#: (5), disk I/O error (10), disk full (13), cannot open the file (14). Not SQLITE_READONLY: a
#: read session that writes is a bug, not an outage.
_SQLITE_CODES = frozenset({5, 10, 13, 14})
#: An OSError counts only when raised inside one of these (a socket of the driver), never a
#: file read or another service's socket.
_DRIVERS = frozenset({"asyncpg", "sqlalchemy", "aiosqlite", "sqlite3"})
#: SQLAlchemy's code for "Can't reconnect until invalid transaction is rolled back" (a
#: ``PendingRollbackError`` after a lost connection, not after any failed flush).
_INVALIDATED = "8s2b"


@dataclass(frozen=True, slots=True)
class Lost:
    """Why the database cannot be used: the driver's error class and a short reason."""

    error: str
    reason: str


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (SQLAlchemy's ``orig``, the cause, the context), each link
    followed: a consumer's error wraps the driver's as its cause, and a failed rollback has the
    first failure as its context."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 16:
        found = todo.pop(0)
        if id(found) in seen:
            continue
        seen.add(id(found))
        yield found
        for linked in (getattr(found, "orig", None), found.__cause__, found.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)


def _raised_by_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DRIVERS:
            return True
        tb = tb.tb_next
    return False


def _says_lost(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, PendingRollbackError) and exc.code == _INVALIDATED:
        return True  # the next statement on a connection an earlier one found dead
    if isinstance(exc, PoolTimeout):
        return True  # every connection hangs on a server that stopped answering
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and (state.startswith("08") or state in _PG_STATES):
        return True
    if type(exc).__module__.startswith("asyncpg") and "connection is closed" in str(exc):
        return True  # asyncpg's InterfaceError on a connection the server dropped
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_CODES
    return isinstance(exc, OSError) and _raised_by_driver(exc.__traceback__)


def _describe(exc: BaseException) -> Lost:
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
    return Lost(type(exc).__name__, reason[:200])


def database_lost(exc: BaseException) -> Lost | None:
    """Why the database is lost, when ``exc`` says so; None for any other failure. Described by
    the driver's own error (SQLAlchemy's wrapper would repeat the statement and its values)."""
    chain = list(_chain(exc))
    if not any(_says_lost(found) for found in chain):
        return None
    for found in chain:
        if not type(found).__module__.startswith("sqlalchemy"):
            return _describe(found)
    return _describe(exc)


class Outage:
    """What a background loop knows of a lost database. After a failed round, ``failed`` says
    how long to wait (None when the failure is not a lost database: the loop handles it as
    before); the first failure of an outage logs one line (``database_unavailable``), later ones
    none. ``succeeded`` after a round that worked logs one line when an outage ends
    (``database_available_again``, with how long and how many rounds failed)."""

    def __init__(
        self,
        log: Any,
        loop: str,
        *,
        first: float = FIRST_WAIT,
        longest: float = LONGEST_WAIT,
        rng: random.Random | None = None,
        **names: Any,
    ) -> None:
        self._log = log
        self._names = {"loop": loop, **names}
        self._first = first
        self._longest = longest
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not security)
        self._since: float | None = None
        self._failed = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, *, interval: float = 0.0) -> float | None:
        """Seconds to wait before the next round after ``exc``, or None if the database is not
        lost. The wait doubles from ``first`` up to ``longest``, and is never shorter than the
        loop's own ``interval`` (up to ``longest``): a loop that runs every 10 s does not retry
        every second, one that runs hourly still sees the database come back."""
        lost = database_lost(exc)
        if lost is None:
            return None
        self._failed += 1
        backoff = self._first * 2.0 ** min(self._failed - 1, 16) * self._rng.uniform(0.8, 1.2)
        wait = max(min(backoff, self._longest), min(interval, self._longest))
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning(
                "database_unavailable",
                **self._names,
                error=lost.error,
                reason=lost.reason,
                retry_in_seconds=round(wait, 1),
            )
        return wait

    def succeeded(self) -> None:
        """A round worked: the end of an outage, if there was one."""
        if self._since is None:
            return
        self._log.info(
            "database_available_again",
            **self._names,
            down_seconds=round(time.monotonic() - self._since, 1),
            failed_rounds=self._failed,
        )
        self._since, self._failed = None, 0
