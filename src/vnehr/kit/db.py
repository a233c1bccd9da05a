"""Database engines and sessions for SQLite (embedded default) and PostgreSQL (production).

The request or the task owns the transaction (``Database.session()`` commits when the block ends
without an error and rolls back otherwise); services and repositories only flush.
"""

from __future__ import annotations

import asyncio
import threading
from collections import namedtuple
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import make_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
import zstandard
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    bindparam,
    event,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ResourceClosedError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.sql.functions import FunctionElement

from vnehr.kit.errors import ControlCharacter, VnehrError
from vnehr.kit.text import fold_words

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Surrogate keys: BIGINT on PostgreSQL, INTEGER on SQLite (its rowid alias, so it increments).
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite (its jsonb() needs 3.45+).
#: A JSON document column; Python None is SQL NULL (not JSON null) on every path: the ORM, the
#: prebuilt inserts and COPY write the same row (D58).
JSONDoc = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

_zstd = threading.local()  # a zstd (de)compressor serves one thread at a time

#: Up to this size, level 3 with small match tables (D55): zstd's own choice for a 40 KB
#: input clears and fills tables of several hundred KB on every call, which costs three
#: times the compression itself once other work has pushed them out of the CPU's cache
#: (0.29 ms against 0.13 ms for a usual visit file), for the same ratio.
SMALL_INPUT = 256 * 1024
_SMALL_TABLES = zstandard.ZstdCompressionParameters.from_level(
    3, window_log=17, hash_log=13, chain_log=13
)


def compress(data: bytes) -> bytes:
    """zstd, level 3; the frame carries its size. Safe from any thread (one compressor per
    thread and size class: a compressor serves one call at a time)."""
    if len(data) <= SMALL_INPUT:
        compressor = getattr(_zstd, "small", None)
        if compressor is None:
            compressor = _zstd.small = zstandard.ZstdCompressor(compression_params=_SMALL_TABLES)
    else:
        compressor = getattr(_zstd, "compressor", None)
        if compressor is None:
            compressor = _zstd.compressor = zstandard.ZstdCompressor(level=3)
    packed: bytes = compressor.compress(data)
    return packed


def pack_json(value: Any) -> bytes:
    """A JSON document as zstd-compressed UTF-8."""
    return compress(orjson.dumps(value))


def unpack_json(data: bytes) -> Any:
    decompressor = getattr(_zstd, "decompressor", None)
    if decompressor is None:
        decompressor = _zstd.decompressor = zstandard.ZstdDecompressor()
    return orjson.loads(decompressor.decompress(data))


class Packed(bytes):
    """A document already packed by ``pack_json`` (made where there was CPU to spare, e.g. in
    a parse process): ``PackedJSON`` stores it as it is."""


class PackedJSON(TypeDecorator[Any]):
    """A JSON document stored zstd-compressed (``bytea`` / ``BLOB``), for large documents that
    are only ever read whole, never queried inside in SQL (D51): a visit's canonical tables
    take a fifth of the space of JSONB, and the database does not parse them on the way in."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if isinstance(value, Packed):
            return bytes(value)
        return None if value is None else pack_json(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        return None if value is None else unpack_json(bytes(value))


class UtcDateTime(TypeDecorator[datetime]):
    """A moment, always timezone-aware UTC in Python whatever the database keeps (SQLite has
    no time zones; it would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use vnehr.kit.clock.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table; one metadata, one Alembic history."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: Seconds to open a PostgreSQL connection or wait for one from the pool, and for one statement
#: of a service (``VNEHR_DB_CONNECT_TIMEOUT_SECONDS``, ``VNEHR_DB_COMMAND_TIMEOUT_SECONDS``).
CONNECT_TIMEOUT = 10.0
#: SQLite: seconds a writer waits for the write lock (VNEHR_DB_BUSY_TIMEOUT_SECONDS)
BUSY_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def insert_for(session: AsyncSession) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_nothing/do_update``) for this session:
    both PostgreSQL and SQLite speak ``INSERT ... ON CONFLICT``."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert


#: Spaces of the transaction locks ``take_turns`` takes (the first argument of PostgreSQL's
#: two-key advisory lock, so that keys of different uses never meet).
TURNS_GRANTS, TURNS_CASES, TURNS_NOTES, TURNS_CHECKINS, TURNS_FHIR = 171, 172, 173, 174, 175
TURNS_PAPERS, TURNS_VIEWED, TURNS_CALLS = 176, 177, 178

_TAKE_TURNS = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, :space))")


async def take_turns(session: AsyncSession, space: int, key: str) -> None:
    """Until the transaction ends, those who write under ``key`` do it one at a time
    (PostgreSQL: an advisory transaction lock; SQLite's writers take turns anyway): a form or
    call sent twice at once is found by the second, which then answers as for one sent
    again, instead of writing a duplicate or meeting a unique key (a 500)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_TAKE_TURNS, {"key": key, "space": space})


_TRY_TURN = text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, :space))")


async def try_turn(session: AsyncSession, space: int, key: str) -> bool:
    """Like ``take_turns``, but never waits: False when another transaction holds ``key``
    now (the caller comes back later). SQLite: always True (one writer at a time anyway)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(await session.scalar(_TRY_TURN, {"key": key, "space": space}))


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str,
    *,
    immediate: bool = True,
    echo: bool = False,
    pool_size: int = 10,
    read_only: bool = False,
    connect_timeout: float | None = CONNECT_TIMEOUT,
    command_timeout: float | None = None,
    busy_timeout: float = BUSY_TIMEOUT,
) -> AsyncEngine:
    """An async engine. On SQLite, transactions start with BEGIN IMMEDIATE when ``immediate``
    (writers queue on the lock instead of failing to upgrade a read lock mid-transaction) and
    the file is in WAL mode so readers never wait for writers. A ``read_only`` engine refuses
    writes in the database itself (PostgreSQL ``READ ONLY`` transactions, SQLite
    ``query_only``), so a read session can never change data by mistake.

    On PostgreSQL a server that stops answering (a network partition, a hung host) fails
    within ``connect_timeout`` for a new connection and for a wait on the pool, and within
    ``command_timeout`` for a statement (None: no limit, for migrations, imports and the
    report rebuild), instead of holding the caller forever (D101)."""
    json = {"json_serializer": _dump_json, "json_deserializer": orjson.loads}
    if not is_sqlite(url):
        limits: dict[str, Any] = {
            "connect_args": {"timeout": connect_timeout, "command_timeout": command_timeout}
        }
        if connect_timeout is not None:
            limits["pool_timeout"] = connect_timeout
        if read_only:
            # Reads are the hot path: BEGIN READ ONLY in one round trip (asyncpg's readonly
            # transactions), and no ping before each checkout (a dead connection fails one read,
            # which the client retries; connections are recycled every 30 minutes).
            return create_async_engine(
                url,
                echo=echo,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_recycle=1800,
                execution_options={"postgresql_readonly": True},
                **limits,
                **json,
            )
        return create_async_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            **limits,
            **json,
        )
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": busy_timeout}, **json)
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (savepoints work then).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            f"PRAGMA busy_timeout={round(busy_timeout * 1000)}",
            *(["PRAGMA query_only=ON"] if read_only else []),
        ):
            cursor.execute(pragma)
        cursor.close()
        # what ``folded`` compiles to here
        dbapi_connection.create_function("vnehr_fold", 1, _fold_words, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _no_nul(
        _conn: Any, _cursor: Any, _sql: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        # SQLite stores NUL where PostgreSQL refuses it (D76): refuse it here too, so that the
        # embedded default answers as production does (KIT-0002), not with a row it keeps.
        for row in parameters if many else (parameters,):
            if isinstance(row, dict):
                values: Any = row.values()
            elif isinstance(row, list | tuple):
                values = row
            else:  # (a batch of one statement's rows may come flat)
                values = (row,)
            for value in values:
                if isinstance(value, str) and ("\x00" in value or "\\u0000" in value):
                    raise ControlCharacter(where="data")

    return engine


class _Prepared(NamedTuple):
    statement: Any  # kept so that its id stays its own
    sql: str
    names: list[str]
    processors: list[Any]
    literals: dict[str, Any]  # values written in the statement itself (not bindparam names)


_PREPARED: dict[int, _Prepared] = {}


def _prepared(statement: Any, dialect: Dialect) -> _Prepared:
    found = _PREPARED.get(id(statement))
    if found is None:
        compiled = statement.compile(dialect=dialect)
        names = list(compiled.positiontup or [])
        processors = compiled._bind_processors
        literals = {
            n: compiled.binds[n].effective_value for n in names if not compiled.binds[n].required
        }
        found = _Prepared(
            statement, str(compiled), names, [processors.get(n) for n in names], literals
        )
        _PREPARED[id(statement)] = found
    return found


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement: let it, so that
        # what follows is inside the session's transaction and not in autocommit.
        await connection.exec_driver_sql("SELECT 1")
    return driver


async def hot_fetch(session: AsyncSession, statement: Any, params: dict[str, Any]) -> list[Any]:
    """Run a Core statement in the session's transaction; rows read by position.

    For the few statements of the intake's hot path. On PostgreSQL they go straight to the
    asyncpg connection under the session (SQLAlchemy's execution machinery costs more than the
    statement itself: about 0.3 ms of the 0.4 ms), with the bind processors of the columns'
    types applied exactly as SQLAlchemy applies them; elsewhere through the session. Rules:
    ``statement`` is a module-level constant (compiled once per process, found by identity)
    whose ``bindparam`` names are all given in ``params`` (values written in the statement stay
    as written); column defaults are not applied
    (give every value); results are the driver's values (read ids, text, numbers, flags); a
    database error surfaces as the driver's exception and leaves the transaction failed, as
    with the session."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        result = await session.execute(statement, params)
        try:
            return list(result.all())
        except ResourceClosedError:  # a statement without rows (UPDATE, INSERT)
            return []
    driver = await _driver(session)
    prepared = _prepared(statement, bind.dialect)
    values = prepared.literals | params if prepared.literals else params
    args = [
        (process(values[name]) if process is not None else values[name])
        for name, process in zip(prepared.names, prepared.processors, strict=True)
    ]
    return list(await driver.fetch(prepared.sql, *args))


_INSERTS: dict[type, tuple[Any, list[tuple[str, str, Any]]]] = {}


def _insert_of(model: type) -> tuple[Any, list[tuple[str, str, Any]]]:
    """One prebuilt INSERT per mapped class: every column but an autoincrement key, with
    (attribute, parameter, scalar default) for each."""
    found = _INSERTS.get(model)
    if found is None:
        from sqlalchemy import inspect as inspect_model

        mapper: Any = inspect_model(model)
        columns = []
        values = {}
        for prop in mapper.column_attrs:
            column = prop.columns[0]
            if column.primary_key and column.autoincrement is True:
                continue
            default = (
                column.default.arg
                if column.default is not None and column.default.is_scalar
                else None
            )
            columns.append((prop.key, f"c_{column.name}", default))
            values[column.name] = bindparam(f"c_{column.name}", type_=column.type)
        found = _INSERTS[model] = (insert(mapper.local_table).values(values), columns)
    return found


_ROW_TYPES: dict[type, type] = {}
_T = TypeVar("_T")


def new_row(model: type[_T], **values: Any) -> _T:
    """A row of ``model`` to write with ``hot_add`` or ``copy_objects``, and nothing else: a
    plain object with the model's column attributes (unset ones None), not a mapped instance.
    Making a mapped instance (SQLAlchemy's instrumentation, its state, an event per attribute)
    cost a third of the bulk writer's time (D53). It cannot be added to a session; read back
    what it carries, never a relationship."""
    kind = _ROW_TYPES.get(model)
    if kind is None:
        from sqlalchemy import inspect as inspect_model

        names = [prop.key for prop in inspect_model(model).column_attrs]
        kind = _ROW_TYPES[model] = make_dataclass(
            f"{model.__name__}Row",
            [(name, Any, None) for name in names],
            namespace={"__row_of__": model},
            kw_only=True,
            slots=True,
        )
    return kind(**values)  # type: ignore[no-any-return]


def make_row(model: type[_T], plain: bool, /, **values: Any) -> _T:
    """A plain row (``new_row``) when ``plain``, else a mapped instance of ``model``."""
    return new_row(model, **values) if plain else model(**values)


# ------------------------------------------------------------------ rows kept on refusal

#: The mark of a row kept on refusal (on its instance state), and the list of such rows a
#: session took (in its ``info``).
_KEPT = "vnehr.kept_on_refusal"


def keep_on_refusal(row: _T) -> _T:
    """Mark ``row`` (a mapped instance, before it is added to a session) as one a refusal does
    not undo: a read of a person, or a refused attempt, that the person's access log must show
    although the request is refused (D228). When the ``Database.session()`` it was added in
    is rolled back by a ``VnehrError`` answered 4xx, the row is written again, as it was, in a
    short transaction of its own after the rollback; when a savepoint rolled back dropped it
    (a refusal a page shows, whose request then commits), it is added again before the commit.
    A transaction that commits with the row holds it once; a crash or an outage (no
    ``VnehrError``, or a 5xx one) keeps nothing."""
    instance_state(row).info[_KEPT] = True
    return row


@event.listens_for(Session, "after_attach")
def _note_kept(session: Session, instance: object) -> None:
    if instance_state(instance).info.get(_KEPT):
        session.info.setdefault(_KEPT, []).append(instance)


def _copy(row: Any) -> Any:
    """A new instance with the values of ``row`` but its primary key."""
    state = instance_state(row)
    values = {
        attribute.key: state.dict[attribute.key]
        for attribute in state.mapper.column_attrs
        if attribute.key in state.dict and not any(c.primary_key for c in attribute.columns)
    }
    return type(row)(**values)


def _dropped(session: AsyncSession) -> list[Any]:
    """Copies of the rows kept on refusal that this session took and no longer holds (a
    rollback undid them), each once."""
    kept: list[Any] = session.info.get(_KEPT, [])
    unique = {id(row): row for row in kept}.values()
    return [_copy(row) for row in unique if row not in session]


class folded(FunctionElement[str]):  # noqa: N801 (a SQL function, named as one)
    """A text column as the searches read it (``kit.text.fold_words``): its words without
    case or accents (đ is d), letters and digits only, a space apart ("Nguyễn-Văn" ->
    "nguyen van"). PostgreSQL does it in SQL, as ``fold`` does (đ -> d, NFD, the marks
    dropped, lower case): 5–9 µs a name; SQLite calls ``fold_words`` itself. Costly on
    a whole table: a query folds only the rows an index has already narrowed down."""

    type = String()
    inherit_cache = True
    name = "vnehr_fold"


@compiles(folded)
def _folded_sqlite(element: folded, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return f"vnehr_fold({compiler.process(column, **kw)})"  # (registered in ``create_engine``)


@compiles(folded, "postgresql")
def _folded_postgresql(element: folded, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    value = compiler.process(column, **kw)
    decomposed = f"normalize(translate({value}, 'Đđ', 'Dd'), NFD)"
    bare = f"lower(regexp_replace({decomposed}, '[\\u0300-\\u036f]+', '', 'g'))"
    return f"regexp_replace({bare}, '[^a-z0-9]+', ' ', 'g')"


def _fold_words(value: str | None) -> str | None:
    return None if value is None else " ".join(fold_words(value))


def _model_of(obj: Any) -> type:
    """The mapped class of a mapped instance, or of a ``new_row`` row."""
    return getattr(type(obj), "__row_of__", None) or type(obj)


async def hot_add(session: AsyncSession, *objects: Any) -> None:
    """Insert new ORM objects at once with ``hot_fetch`` instead of ``session.add``: for the
    intake's own rows (submission, outbox event, audit row), built complete by their
    constructors. The objects stay outside the session (no identity map, no later flush); an
    unset attribute takes its column's scalar default, else NULL."""
    for obj in objects:
        statement, columns = _insert_of(_model_of(obj))
        params = {}
        for attribute, name, default in columns:
            value = getattr(obj, attribute)
            params[name] = default if value is None else value
        await hot_fetch(session, statement, params)


async def copy_objects(session: AsyncSession, objects: Sequence[Any]) -> None:
    """``hot_add`` for many rows: on PostgreSQL one COPY per table in the session's
    transaction (values converted by the columns' types as ``hot_fetch`` does; an
    autoincrement key is written when the objects carry it, as rows whose ids were drawn
    from the sequence beforehand); elsewhere ``hot_add`` row by row."""
    if session.get_bind().dialect.name != "postgresql":
        await hot_add(session, *objects)
        return
    groups: dict[type, list[Any]] = {}
    for obj in objects:
        groups.setdefault(_model_of(obj), []).append(obj)
    driver = await _driver(session)
    dialect = session.get_bind().dialect
    for model, rows in groups.items():
        statement, columns = _insert_of(model)
        prepared = _prepared(statement, dialect)
        process = dict(zip(prepared.names, prepared.processors, strict=True))
        table: Any = model.__table__  # type: ignore[attr-defined]
        key = table.primary_key.columns[0]
        with_key = key.autoincrement is True and getattr(rows[0], key.key) is not None
        names = ([key.name] if with_key else []) + [name[2:] for _, name, _ in columns]
        records = []
        for obj in rows:
            record = [getattr(obj, key.key)] if with_key else []
            for attribute, name, default in columns:
                value = getattr(obj, attribute)
                value = default if value is None else value
                convert = process.get(name)
                record.append(
                    convert(value) if convert is not None and value is not None else value
                )
            records.append(tuple(record))
        await driver.copy_records_to_table(table.name, records=records, columns=names)


async def _reset_if_needed(connection: Any) -> None:
    """What the pool does to a connection it takes back. asyncpg's default reset costs a round
    trip per use (advisory locks, cursors, LISTEN, settings); the fast reads set none of those
    and run single statements outside transactions, so only a connection left inside one (a
    cancelled fetch) is rolled back."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class FastReads:
    """A plain asyncpg pool on the read database for the few hottest reads: one compiled
    statement, one round trip, no session (SQLAlchemy's session and pool cost about 0.8 ms a
    use here, a bare asyncpg fetch 0.17 ms). PostgreSQL only; everything else uses sessions."""

    def __init__(self, url: str, pool_size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pool_size = pool_size
        #: (connect, command) timeouts in seconds, None for no limit (``create_engine``)
        self.timeouts: tuple[float | None, float | None] = (CONNECT_TIMEOUT, COMMAND_TIMEOUT)
        self._pool: Any = None
        self._lock = asyncio.Lock()
        # id(statement) -> (the statement itself, kept so its id stays its own; SQL; names)
        self._compiled: dict[int, tuple[Any, str, list[str]]] = {}
        self._row_types: dict[tuple[str, ...], Any] = {}

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._pool_size,
                        timeout=self.timeouts[0],
                        command_timeout=self.timeouts[1],
                        # these connections only ever read: the database refuses a write
                        server_settings={"default_transaction_read_only": "on"},
                        reset=_reset_if_needed,
                    )
        return self._pool

    def _sql(self, statement: Any) -> tuple[str, list[str]]:
        """A Core statement as asyncpg SQL with its parameter names, compiled once."""
        found = self._compiled.get(id(statement))
        if found is None:
            from sqlalchemy.dialects.postgresql import asyncpg as dialect

            compiled = statement.compile(dialect=dialect.dialect())  # type: ignore[no-untyped-call]
            found = (statement, str(compiled), list(compiled.positiontup or []))
            self._compiled[id(statement)] = found
        return found[1], found[2]

    async def fetch_tuples(self, statement: Any, **params: Any) -> list[Any]:
        """Rows of a Core statement as asyncpg records: read by position (in the order of the
        statement's columns, as SQLAlchemy rows are) or by ``row["name"]``."""
        sql, names = self._sql(statement)
        pool = await self._get_pool()
        return list(await pool.fetch(sql, *[params[n] for n in names]))

    async def fetch(self, statement: Any, **params: Any) -> list[Any]:
        """Rows of a Core statement built with ``bindparam`` names given in ``params``, with
        attribute access by column name like SQLAlchemy rows."""
        records = await self.fetch_tuples(statement, **params)
        if not records:
            return []
        columns = tuple(records[0].keys())
        row = self._row_types.get(columns)
        if row is None:
            row = self._row_types[columns] = namedtuple("Row", columns)
        return [row(*record) for record in records]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class Database:
    """The engines of one process: a write engine and a read engine (a replica, or the same)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        read_sessionmaker: async_sessionmaker[AsyncSession],
        engines: tuple[AsyncEngine, ...] = (),
        fast_reads: FastReads | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._read_sessionmaker = read_sessionmaker
        self._engines = engines
        self._bound = not engines
        #: The asyncpg pool for hot reads (PostgreSQL outside tests), else None.
        self.fast_reads = fast_reads

    @classmethod
    def from_urls(
        cls,
        url: str,
        read_url: str | None = None,
        *,
        echo: bool = False,
        pool_size: int = 10,
        fast_pool_size: int = 4,
        connect_timeout: float | None = CONNECT_TIMEOUT,
        command_timeout: float | None = COMMAND_TIMEOUT,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> Database:
        """The engines of a service (``command_timeout`` bounds each statement; None for a
        command whose statements may legitimately run long: an import, a rebuild)."""
        write = create_engine(
            url,
            immediate=True,
            echo=echo,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            busy_timeout=busy_timeout,
        )
        read = create_engine(
            read_url or url,
            immediate=False,
            echo=echo,
            pool_size=pool_size,
            read_only=True,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            busy_timeout=busy_timeout,
        )
        fast = None if is_sqlite(read_url or url) else FastReads(read_url or url, fast_pool_size)
        if fast is not None:
            fast.timeouts = (connect_timeout, command_timeout)
        return cls(
            async_sessionmaker(write, expire_on_commit=False),
            async_sessionmaker(read, expire_on_commit=False),
            (write, read),
            fast,
        )

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions inside an outer transaction that the caller rolls back (tests)."""
        writes = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        # Reads take no savepoint of their own: a request's read and write sessions may end in
        # either order, and savepoints must be released innermost first.
        reads = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="rollback_only"
        )
        return cls(writes, reads)

    @property
    def engine(self) -> AsyncEngine | None:
        return self._engines[0] if self._engines else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on any error. Rows
        marked ``keep_on_refusal`` that the rollback of a refusal (a ``VnehrError`` answered
        4xx) undid are written in a transaction of their own afterwards; if that fails, its
        error is raised instead of the refusal (what the refusal would tell is not told
        unaudited)."""
        async with self._sessionmaker() as session:
            try:
                async with session.begin():
                    yield session
                    session.add_all(_dropped(session))  # undone by a savepoint's rollback
            except VnehrError as refusal:
                if refusal.status_code < 500 and (kept := _dropped(session)):
                    async with self._sessionmaker() as again, again.begin():
                        again.add_all(kept)
                raise

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work on the read engine, whose transactions are read-only (so ending it
        with a commit is harmless and cheaper than a rollback)."""
        async with self._read_sessionmaker() as session:
            if self._bound:  # tests: join the caller's transaction, never end it
                yield session
                return
            async with session.begin():
                yield session

    async def dispose(self) -> None:
        if self.fast_reads is not None:
            await self.fast_reads.close()
        for engine in self._engines:
            await engine.dispose()
