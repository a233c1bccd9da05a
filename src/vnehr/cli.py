"""The ``vnehr`` command: run the service, migrate, load catalogues and demo data.

Every command reads its configuration from ``VNEHR_*`` environment variables (see README).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic_settings import BaseSettings

from vnehr import __version__
from vnehr.kit.errors import OptionOutOfRange, SchemaOfLaterRelease, VnehrError
from vnehr.kit.logging import configure_logging
from vnehr.kit.settings import SOURCES, Settings, get_settings, refusal

if TYPE_CHECKING:
    # (imported where used: each process of `serve --workers` imports this module before it
    # can answer its supervisor's health check, so it imports only what every command needs)
    from vnehr.kit.db import Database

T = TypeVar("T")

app = typer.Typer(
    help="vnehr — the health-data exchange behind the electronic health book on VNeID.\n\n"
    "First run: `vnehr db upgrade`, `vnehr catalog load`, `vnehr demo load`, `vnehr serve` "
    "(or just `make run`). Settings come from VNEHR_* environment variables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (one Alembic history for SQLite and PostgreSQL).")
catalog_app = typer.Typer(help="Versioned code lists: ICD-10, administrative units, XML codes.")
demo_app = typer.Typer(help="Demo data for a fresh install.")
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(demo_app, name="demo")


@app.callback()
def _log_to_stderr() -> None:
    # Every command logs on stderr, configured here once before the command runs or imports
    # what it needs: a module may log when imported, and structlog prints to stdout until
    # configured, into what a script reads. The settings' level and format; the defaults when
    # the settings are refused (the commands that need them say why; `validate` does not).
    try:
        settings = get_settings()
    except ValueError:
        configure_logging()
    else:
        configure_logging(settings.log_level, settings.json_logs)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:  # refused secrets and malformed values: named, never shown
        typer.echo(f"configuration error: {refusal(exc)}", err=True)
        raise typer.Exit(2) from exc


def _fail(message: str) -> typer.Exit:
    """Print ``message`` on stderr; the exit (code 2) for the caller to raise."""
    typer.echo(message, err=True)
    return typer.Exit(2)


def _where(url: str) -> str:
    """The database a URL names, for messages: its file, or its host and name — never the
    password (nor the query options, which may hold one)."""
    from vnehr.kit.startup import where

    return where(url)


@contextmanager
def _plain_failures(url: str) -> Iterator[None]:
    """What the operator fixes outside the code — a database that cannot be reached or refuses
    the login, an unknown migration, a file that cannot be read — said in one line with exit
    code 2 instead of a traceback."""
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError

    try:
        yield
    except CommandError as exc:
        raise _fail(f"migration error: {exc}") from exc
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise _fail(f"database error at {_where(url)}: {reason}") from exc
    except OSError as exc:
        if exc.filename is not None:  # a file a command reads
            raise _fail(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise _fail(f"cannot connect to the database at {_where(url)}: {reason}") from exc
    except ArgumentError as exc:  # a URL SQLAlchemy cannot use (its text holds no URL)
        raise _fail(f"configuration error: VNEHR_DATABASE_URL: {exc}") from exc


def _require_driver(settings: Settings, *, replica: bool = False) -> None:
    """One coded line (KIT-0007), exit 2, when the database URL (with ``replica``, the read
    replica's too) names a driver vnehr does not use: SQLAlchemy would import a module vnehr
    does not ship (``postgresql://`` means psycopg) and fail with a traceback."""
    from vnehr.kit.startup import unsupported_driver

    error = unsupported_driver(settings, replica=replica)
    if error is not None:
        raise _coded_exit(settings, error)


def _run(
    work: Callable[[Database], Awaitable[T]], *, schema: bool = True, later_release: bool = True
) -> T:
    """Run ``work`` on the configured database. It must exist (connecting to a missing SQLite
    file would create an empty one) and, with ``schema``, be migrated to the newest revision,
    or to a later release's (``later_release``: a command that reads, or only adds what any
    release understands, runs on it as serve and worker do, D119; one that replaces or
    recounts what the later release owns does not): otherwise one line saying which command
    to run, exit 2, before anything fails on a missing table. A coded error exits 1; an
    unreachable database, or a URL naming a driver vnehr does not use, exits 2."""
    from vnehr import wiring
    from vnehr.kit.db import Database

    settings = _settings()
    _require_driver(settings)
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        raise _fail(missing)
    wiring.wire(settings.public_url)  # as the app: a command's writes have the same effects

    async def main() -> T:
        db = Database.from_urls(
            settings.database_url,
            echo=settings.db_echo,
            connect_timeout=settings.db_connect_timeout_seconds or None,
            busy_timeout=settings.db_busy_timeout_seconds,
            command_timeout=None,  # an import's COPY or a rebuild may take long (D101)
        )
        try:
            if schema:
                problem = await _schema_ready(db, later_release=later_release)
                if problem is not None:
                    raise _fail(problem)
            return await work(db)
        finally:
            await db.dispose()

    with _plain_failures(settings.database_url):
        try:
            return asyncio.run(main())
        except VnehrError as exc:
            typer.echo(f"{exc.code}: {exc.messages()['vi']} / {exc.messages()['en']}", err=True)
            raise typer.Exit(1) from exc


def _coded_exit(settings: Settings, error: VnehrError) -> typer.Exit:
    """``error`` as one line, its code and its text in ``VNEHR_DEFAULT_LANGUAGE``; exit 2."""
    return _fail(f"{error.code}: {error.messages()[settings.default_language]}")


def _database_usable(settings: Settings, *, replica: bool) -> None:
    """What ``serve`` and ``worker`` check before starting: the database (and, with
    ``replica``, the read replica) answers and has the newest schema. Otherwise one coded line
    and exit 2 (KIT-0003 unreachable or refusing, KIT-0004 not there or never migrated,
    KIT-0005 an older or foreign schema, KIT-0007 a driver vnehr does not use), not a service
    that starts and then logs a traceback on every request and every delivery round. A missing
    SQLite file is not created. (The app's lifespan asks the same when started some other way,
    D112.)"""
    from vnehr.kit.startup import StartupRefused, database_refusal

    try:
        error = asyncio.run(database_refusal(settings, replica=replica))
    except StartupRefused as exc:  # a URL SQLAlchemy cannot use
        raise _fail(exc.line) from exc
    if error is not None:
        raise _coded_exit(settings, error)


def _in_range(settings: Settings, option: str, value: int | None, name: str) -> int:
    """An option's value, or the setting's when not given; one outside the bounds the setting
    has (``VNEHR_PORT``: 1 to 65535) is refused in one coded line (KIT-0006), exit 2."""
    if value is None:
        return int(getattr(settings, name))
    bounds = {type(m).__name__: m for m in Settings.model_fields[name].metadata}
    low, high = bounds["Ge"].ge, bounds["Le"].le
    if not low <= value <= high:
        error = OptionOutOfRange(option=option, low=low, high=high, value=value)
        raise _coded_exit(settings, error)
    return value


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
) -> None:
    """Serve the API and portals (OpenAPI docs at /docs). Starts only on a database at the
    newest migration, and with a port and a worker count the settings would accept (else one
    coded line, exit 2): not port 0, whatever port the kernel picks, since the public URL
    (VNeID's redirect, the token audience) names the port."""
    settings = _settings()
    port = _in_range(settings, "--port", port, "port")
    workers = _in_range(settings, "--workers", workers, "workers")
    if port != settings.port:  # the workers read the port from the environment, as its URL
        os.environ["VNEHR_PORT"] = str(port)
        get_settings.cache_clear()
        settings = _settings()
    _database_usable(settings, replica=True)
    typer.echo(
        f"vnehr {__version__}: open {settings.public_url}/ (API docs: {settings.public_url}/docs)"
    )
    from vnehr.kit import serving  # only here: other commands start faster without uvicorn

    serving.serve(
        "vnehr.app:checked_factory",  # (checked above: the workers do not check again)
        factory=True,
        host=host or settings.host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        # a worker answers its supervisor only once it has imported vnehr; within uvicorn's
        # default 5 s, a loaded host had its workers killed and restarted in a loop
        timeout_worker_healthcheck=settings.workers_healthcheck_seconds,
    )


@app.command()
def worker() -> None:
    """Deliver the outbox (BHXH portal relay) until stopped; run several for availability.
    In development `vnehr serve` already does this in-process. Starts only on a database at
    the newest migration, or a later release's (else one coded line, exit 2)."""
    settings = _settings()
    _database_usable(settings, replica=False)
    import signal

    import httpx

    from vnehr import audit, exchange, wiring
    from vnehr.app import audit_key, exchange_handlers, policy
    from vnehr.exchange import nats_bus
    from vnehr.kit.db import Database

    wiring.wire(settings.public_url)  # as the app

    async def main() -> None:
        db = Database.from_urls(
            settings.database_url,
            # the calls in flight at once to the portal and to the phones each hold a
            # connection (D254), beside the local consumers, the relay, the pruner and the
            # sealer: room for all of them (twice the pool size, with the overflow)
            pool_size=max(settings.db_pool_size, settings.outbox_concurrency + 8),
            connect_timeout=settings.db_connect_timeout_seconds or None,
            busy_timeout=settings.db_busy_timeout_seconds,
            command_timeout=settings.db_command_timeout_seconds or None,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        # said once a stop is heard: a SIGTERM sent on seeing this line stops it cleanly (said
        # before, it could arrive first and kill the process: exit 130, nothing closed)
        typer.echo(f"vnehr worker: delivering the outbox to {settings.bhxh_base}")
        async with httpx.AsyncClient() as http:
            # the audit log is sealed by every worker, whichever bus delivers the outbox
            sealer = asyncio.create_task(audit.run_sealer(db, audit_key(settings), stop=stop))
            try:
                handlers = exchange_handlers(settings, http)
                if settings.bus == "nats":
                    await nats_bus.run(
                        db,
                        settings.nats_url,
                        handlers,
                        policy(settings),
                        stop=stop,
                        replicas=settings.nats_replicas,
                        max_bytes=settings.nats_max_bytes,
                    )
                else:
                    await exchange.run(db, handlers, policy(settings), stop=stop)
            finally:
                stop.set()
                await sealer
                await db.dispose()

    asyncio.run(main())


audit_app = typer.Typer(help="The audit log: seal the hash chain, verify it, show the key.")
app.add_typer(audit_app, name="audit")


@audit_app.command("seal")
def audit_seal() -> None:
    """Chain the rows not yet sealed and sign a checkpoint (the worker does it every 10 s)."""
    from vnehr import audit
    from vnehr.app import audit_key

    settings = _settings()

    async def work(db: Database) -> None:
        typer.echo(f"sealed {await audit.seal_all(db, audit_key(settings))}")

    _run(work)


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the chain and the signed checkpoints; exit 1 and say where, if anything was
    changed, removed, reordered or cut off. A checkpoint signed with the key of the current
    secret or of one in VNEHR_PREVIOUS_SECRET_KEYS (newest first) is trusted, no other, and a
    previous one's only until a newer key has signed one."""
    from vnehr import audit
    from vnehr.app import audit_keys

    settings = _settings()

    async def work(db: Database) -> audit.Report:
        async with db.read_session() as session:
            return await audit.verify(session, audit_keys(settings))

    report = _run(work)
    typer.echo(
        f"{report.rows} sealed rows, {report.unsealed} not yet sealed, "
        f"{report.checkpoints} signed checkpoints"
    )
    for problem in report.problems:
        typer.echo(f"BROKEN: {problem}")
    if not report.intact:
        raise typer.Exit(1)
    typer.echo("intact")


@audit_app.command("key")
def audit_public_key() -> None:
    """The public key (Ed25519, base64) that checks the checkpoints' signatures; then, marked
    "previous", those of VNEHR_PREVIOUS_SECRET_KEYS, which checked earlier checkpoints."""
    from vnehr.app import audit_keys

    current, *previous = audit_keys(_settings())
    typer.echo(f"{current.key_id} {current.public_b64()}")
    for key in previous:
        typer.echo(f"{key.key_id} {key.public_b64()} previous")


outbox_app = typer.Typer(help="The outbox: what waits to leave the system, and dead letters.")
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(
    dead: Annotated[
        bool, typer.Option("--dead", help="Also list the dead letters, oldest first")
    ] = False,
    limit: Annotated[int, typer.Option(help="Dead letters to list at most", min=1)] = 100,
) -> None:
    """Counts by status; with --dead, the dead letters with their last error (and how many
    more there are than --limit shows)."""
    from vnehr import exchange

    async def work(db: Database) -> None:
        async with db.read_session() as session:
            counts = await exchange.depth(session)
            typer.echo(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty")
            if not dead:
                return
            shown = await exchange.dead_letters(session, limit=limit)
            for event in shown:
                typer.echo(
                    f"{event.event_id}  {event.topic:<16} {event.key:<40} {event.last_error}"
                )
            more = counts.get("dead", 0) - len(shown)
            if more > 0:
                typer.echo(f"… and {more} more (--limit {limit} shown)")

    _run(work)


@outbox_app.command("replay")
def outbox_replay(
    event_ids: Annotated[list[str] | None, typer.Argument(help="Only these events")] = None,
) -> None:
    """Put dead letters back in line for delivery."""
    from vnehr import exchange

    async def work(db: Database) -> int:
        async with db.session() as session:
            return await exchange.replay(session, event_ids or None)

    typer.echo(f"{_run(work)} event(s) queued again")


@outbox_app.command("prune")
def outbox_prune(
    older_than_days: Annotated[
        int | None,
        typer.Option(
            help="Remove events delivered more than this many days ago "
            "(default VNEHR_OUTBOX_RETENTION_DAYS; at least 7)",
            min=7,
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option(help="Events removed per transaction", min=1, max=10_000)
    ] = 1000,
) -> None:
    """Remove delivered events and their delivery attempts older than the horizon, in short
    batches (the workers do it every hour); pending and dead events stay."""
    from vnehr import exchange

    days = older_than_days or _settings().outbox_retention_days

    async def work(db: Database) -> exchange.Pruned:
        return await exchange.prune(db, keep_days=days, batch=batch)

    pruned = _run(work)
    typer.echo(
        f"{pruned.events} delivered event(s) and {pruned.attempts} delivery attempt(s) removed "
        f"(delivered more than {days} days ago; {pruned.batches} batch(es))"
    )


@outbox_app.command("consumers")
def outbox_consumers(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list")] = False,
) -> None:
    """The JetStream consumers of the stream (VNEHR_BUS=nats): whether this configuration runs
    each, what it has not taken yet (pending), what it took without answering
    (unacknowledged), pulls waiting now (a worker reading it). A consumer not configured holds
    its topic's messages until the server removes it, once nobody pulled from it for an hour
    (D112)."""
    import dataclasses
    from urllib.parse import urlsplit

    settings = _settings()
    if settings.bus != "nats":
        raise _fail("VNEHR_BUS is not nats: no JetStream consumers (see `vnehr outbox list`)")

    import httpx
    from nats.js.errors import NotFoundError

    from vnehr.app import exchange_handlers
    from vnehr.exchange import nats_bus

    async def main() -> list[nats_bus.ConsumerState]:
        async with httpx.AsyncClient() as http:  # (the handlers are only named, not called)
            ours = nats_bus.durables(exchange_handlers(settings, http))
        return await nats_bus.consumer_states(settings.nats_url, ours)

    servers = ",".join(
        f"{urlsplit(u).hostname}:{urlsplit(u).port or 4222}" for u in settings.nats_url.split(",")
    )  # (never a user or password of the URL)
    try:
        states = asyncio.run(main())
    except NotFoundError as exc:
        raise _fail(f"no stream {nats_bus.STREAM} at {servers}: no worker has started") from exc
    except ConnectionError as exc:  # refused, timed out, no servers: one line
        raise _fail(f"cannot connect to NATS at {servers}: {exc}") from exc
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(s) for s in states], ensure_ascii=False))
        return
    for state in states:
        runs = "configured" if state.configured else "not configured"
        if state.removed_when_idle_seconds:
            runs += f" (removed after {state.removed_when_idle_seconds:.0f} s idle)"
        typer.echo(
            f"{state.consumer}  {state.subject}  {runs}  pending {state.pending}  "
            f"unacknowledged {state.unacknowledged}  reading {state.pulls_waiting}  "
            f"last delivered {state.last_delivered or '-'}"
        )
    if not states:
        typer.echo("no consumers")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database up to REVISION (default: the newest). A later release's schema
    is left as it is (one coded line, exit 2): that release's `vnehr db` migrates it."""
    from vnehr.kit.migrate import upgrade  # Alembic: only for the db commands

    settings = _settings()
    _require_driver(settings)
    with _plain_failures(settings.database_url):  # (a missing SQLite file is created)
        try:
            asyncio.run(upgrade(settings.database_url, revision))
        except SchemaOfLaterRelease as exc:
            raise _coded_exit(settings, exc) from exc
    typer.echo(f"database at {revision}: {_where(settings.database_url)}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Migrate the database down to REVISION (`base` removes everything); not a later
    release's schema (one coded line, exit 2)."""
    from vnehr.kit.migrate import downgrade

    settings = _settings()
    _require_driver(settings)
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        raise _fail(missing)
    with _plain_failures(settings.database_url):
        try:
            asyncio.run(downgrade(settings.database_url, revision))
        except SchemaOfLaterRelease as exc:
            raise _coded_exit(settings, exc) from exc
    typer.echo(f"database at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at and the newest one."""
    from vnehr.kit.migrate import current_revisions, head_revisions

    async def work(db: Database) -> frozenset[str]:
        async with db.read_session() as session:
            return await current_revisions(await session.connection())

    current = _run(work, schema=False)
    typer.echo(f"current: {', '.join(sorted(current)) or '(empty)'}")
    typer.echo(f"newest:  {', '.join(sorted(head_revisions()))}")


@db_app.command("backfill-cards")
def db_backfill_cards(
    batch: Annotated[
        int, typer.Option(help="Timeline rows filled per transaction", min=1, max=10_000)
    ] = 1000,
) -> None:
    """Fill the insurance cards, sensitive categories and the book PDF's summary facts kept on
    the timeline for rows stored before migrations 0024, 0025 and 0030 (or corrected by the
    previous release), a batch per transaction, while the service runs; the FHIR Patient, a
    representative's timeline and the book's PDF are right without it, and faster with it
    (D114, D132, D209). Rows whose stored visit cannot be read are logged and skipped; run it
    again to take up what is left."""
    from vnehr import records

    async def work(db: Database) -> records.CardsFilled:
        return await records.fill_insurance_cards(db, batch=batch)

    done = _run(work, later_release=False)  # (the later release's own rows and rules)
    typer.echo(
        f"{done.filled} timeline row(s) filled, {done.skipped} skipped (stored visit "
        f"unreadable, logged; {done.batches} batch(es))"
    )


@db_app.command("backfill-papers")
def db_backfill_papers(
    batch: Annotated[
        int, typer.Option(help="Paper versions taken out per transaction", min=1, max=10_000)
    ] = 500,
) -> None:
    """Take out of the first holder's book the papers that corrections stored by releases
    before D170 left there: earlier versions of a paper whose latest version names another
    holder (or none), and papers of a visit now another patient's (a valid one is revoked,
    reason visit_moved); her notices of them go, as a correction does now. A batch per
    transaction, while the service runs; running it again does nothing more."""
    from vnehr import papers

    async def work(db: Database) -> papers.PapersLeft:
        return await papers.leave_moved(db, batch=batch)

    done = _run(work, later_release=False)  # (the later release's own papers and rules)
    typer.echo(
        f"{done.left} paper version(s) taken out of their holder's book, {done.revoked} of "
        f"them revoked (their visit is another patient's; {done.batches} batch(es))"
    )


@db_app.command("backfill-fhir")
def db_backfill_fhir(
    batch: Annotated[
        int, typer.Option(help="Persons looked at per transaction", min=1, max=10_000)
    ] = 500,
) -> None:
    """Take out of each person's FHIR compartment what earlier releases kept and D181/D186
    refuse now: a Patient naming their personal ID without a name or birth date, and what a
    facility wrote about them without having them as its own patient (no visit of theirs in
    their record, no Patient with their ID, name and birth date). Kept as sent for the writer,
    audited about the person. A batch per transaction, while the service runs; running it
    again does nothing more."""
    from vnehr import fhir

    async def work(db: Database) -> fhir.Released:
        return await fhir.release_strangers(db, batch=batch)

    done = _run(work, later_release=False)  # (the later release's own rules)
    typer.echo(
        f"{done.resources} FHIR resource version(s) taken out of {done.affected} of "
        f"{done.persons} person(s)' records ({done.batches} batch(es))"
    )


@catalog_app.command("load")
def catalog_load(
    names: Annotated[list[str] | None, typer.Argument(help="Only these lists")] = None,
    titles_vi: Annotated[
        Path | None,
        typer.Option(
            help="CSV `code,title_vi` with Vietnamese ICD-10 titles (QĐ 4469)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    missing_only: Annotated[bool, typer.Option(help="Skip lists already loaded")] = False,
) -> None:
    """Load (or replace) the packaged lists in one transaction. Loading the places' lists
    (province, district, ward) makes the facilities' search keys again in it, with the names
    the lists have now (D208)."""
    from vnehr import catalogs, facilities

    keys: list[int] = []

    async def work(db: Database) -> dict[str, int]:
        async with db.session() as session:
            loaded = await catalogs.load_builtin(
                session, only=names or None, missing_only=missing_only, icd10_titles_vi=titles_vi
            )
            if _PLACES & loaded.keys():
                keys.append(await facilities.rebuild_search_keys(session))
            return loaded

    loaded = _run(work, later_release=False)  # (would replace the later release's lists)
    for name, count in loaded.items():
        typer.echo(f"{name:<22} {count:>6} entries")
    if not loaded:
        typer.echo("nothing to load")
    for count in keys:
        typer.echo(f"facility search keys made again: {count}")


#: The lists a facility's search key takes names from.
_PLACES = {"province", "district", "ward"}


@catalog_app.command("list")
def catalog_list() -> None:
    """List the loaded code lists."""
    from vnehr import catalogs

    async def work(db: Database) -> list[catalogs.Catalog]:
        async with db.read_session() as session:
            return await catalogs.list_catalogs(session)

    for item in _run(work):
        typer.echo(
            f"{item.name:<22} {item.entries:>6}  {item.national_field or '':<16} {item.title_vi}"
        )


@catalog_app.command("show")
def catalog_show(
    name: Annotated[str, typer.Argument(help="List name or national field (MA_LOAI_KCB)")],
    code: Annotated[str | None, typer.Argument(help="One code; omit to list entries")] = None,
    on: Annotated[str | None, typer.Option(help="In force on YYYY-MM-DD (default today)")] = None,
    q: Annotated[str | None, typer.Option(help="Search code and titles")] = None,
    limit: Annotated[int, typer.Option(help="Entries to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show one code (with hierarchy and successors) or the entries of a list."""
    from vnehr import catalogs

    async def one(db: Database) -> catalogs.EntryDetail:
        async with db.read_session() as session:
            return await catalogs.lookup(session, name, code or "", catalogs.parse_day(on))

    async def many(db: Database) -> list[catalogs.Entry]:
        async with db.read_session() as session:
            page = await catalogs.browse(session, name, q=q, on=catalogs.parse_day(on), limit=limit)
            return page.items

    if code is not None:
        detail = _run(one)
        if as_json:
            typer.echo(json.dumps(detail.model_dump(mode="json"), ensure_ascii=False, indent=2))
            return
        for ancestor in detail.ancestors:
            typer.echo(f"  {ancestor.code:<10} {ancestor.title_vi or ancestor.title_en}")
        typer.echo(f"{detail.code:<12} {detail.title_vi or ''}")
        if detail.title_en:
            typer.echo(f"{'':<12} {detail.title_en}")
        typer.echo(f"{'':<12} in force {detail.valid_from or '…'} → {detail.valid_to or '…'}")
        for link in detail.successors:
            typer.echo(f"  → {link.code} {link.title_vi} (from {link.effective_on})")
        for link in detail.predecessors:
            typer.echo(f"  ← {link.code} {link.title_vi}")
        return
    entries = _run(many)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], ensure_ascii=False))
        return
    for entry in entries:
        typer.echo(f"{entry.code:<12} {entry.title_vi or entry.title_en or ''}")


@app.command()
def grant(
    personal_id: Annotated[str, typer.Argument(help="12-digit personal ID")],
    role: Annotated[
        str, typer.Argument(help="department_admin, ward_officer, facility_admin or clinician")
    ],
    province: Annotated[str | None, typer.Option(help="Province code (department_admin)")] = None,
    facility: Annotated[str | None, typer.Option(help="Facility code (facility roles)")] = None,
    ward: Annotated[str | None, typer.Option(help="Ward code (ward_officer)")] = None,
) -> None:
    """Give a person a role from the operator's console (e.g. the first department admin;
    without --province, the national one). The role's scope must exist: a province or ward
    in force, a registered facility."""
    from vnehr import facilities, identity

    async def work(db: Database) -> int:
        async with db.session() as session:
            if facility is not None and not await facilities.directory(session, [facility]):
                raise facilities.UnknownFacility(code=facility)
            row = await identity.bootstrap_grant(
                session,
                personal_id,
                role,
                province_code=province,
                facility_code=facility,
                ward_code=ward,
            )
            return row.id

    typer.echo(f"grant {_run(work)}: {personal_id} is {role}")


class Lang(StrEnum):
    vi = "vi"
    en = "en"


class _BodyCap(BaseSettings):
    """``VNEHR_MAX_BODY_BYTES`` alone, from the same sources as every setting (the variables,
    then ``.env``): an offline check needs no secret key or database."""

    model_config = SOURCES

    max_body_bytes: int = Settings.model_fields["max_body_bytes"].default


def _max_bytes() -> int:
    """The body cap the API applies (``VNEHR_MAX_BODY_BYTES``), read without the server's
    other settings."""
    try:
        value = _BodyCap().max_body_bytes
    except ValueError:
        value = 0
    if value <= 0:  # (its value is not repeated, as no refused setting's is)
        typer.echo("configuration error: VNEHR_MAX_BODY_BYTES is not a size in bytes", err=True)
        raise typer.Exit(2)
    return value


def _shown(path: Path) -> str:
    # a file name as text, whatever bytes it holds (JSON output must stay valid UTF-8)
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="GIAMDINHHS files to check (a folder: its *.xml files)")
    ],
    lang: Annotated[Lang, typer.Option(help="Language of the messages")] = Lang.vi,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON")] = False,
) -> None:
    """Check visit files on their own, without a database (format, catalogues, sums, identity
    form, envelope). Exit 0: every visit would be accepted (warnings allowed); 1: a visit would
    be rejected; 2: a file is refused whole (or cannot be read)."""
    from vnehr import catalogs, submissions

    limits = submissions.Limits(max_bytes=_max_bytes())
    codes = catalogs.offline()
    worst = 0
    reports = []
    paths = [p for given in files for p in (submissions.visit_files(given) if given.is_dir()
             else [given])]  # fmt: skip
    for path in paths:
        try:
            data = submissions.read_file(path, limits)
            report = submissions.validation_report(
                submissions.analyse(data, codes=codes, limits=limits)
            )
        except VnehrError as exc:
            worst = 2
            reports.append({"file": _shown(path), "refused": exc.body()})
            if not as_json:
                typer.echo(f"{_shown(path)}: {exc.code} {exc.messages()[lang.value]}")
            continue
        reports.append({"file": _shown(path), **report})
        if report["status"] != "accepted" and report["status"] != "accepted_with_warnings":
            worst = max(worst, 1)
        if not as_json:
            typer.echo(f"{_shown(path)}: {report['status']}")
            for visit in report["visits"]:
                typer.echo(f"  HOSO {visit['index']} ({visit['visit_key']}): {visit['status']}")
                for issue in visit["issues"]:
                    where = "/".join(
                        str(x) for x in (issue["table"], issue["row"], issue["field"]) if x
                    )
                    text = issue["message"][lang.value]
                    typer.echo(f"    {issue['severity']:<7} {issue['code']} [{where}] {text}")
    if as_json:
        typer.echo(json.dumps(reports, ensure_ascii=False, indent=1))
    raise typer.Exit(worst)


class Variant(StrEnum):
    qd4750 = "4750"
    qd3176 = "3176"


def _facility_code(value: str) -> str:
    if not re.fullmatch(r"\d{5}", value):
        raise typer.BadParameter("a facility code is 5 digits, e.g. 01001")
    return value


@app.command()
def synth(
    directory: Annotated[Path, typer.Argument(help="Folder to write the files into")],
    count: Annotated[int, typer.Option(help="Number of files", min=1)] = 100,
    seed: Annotated[int, typer.Option(help="Same seed, same files")] = 1,
    facility: Annotated[
        str, typer.Option(help="Facility code (MACSKCB)", callback=_facility_code)
    ] = "01001",
    defect_rate: Annotated[
        float, typer.Option(help="Share of visits with one labelled defect", min=0.0, max=1.0)
    ] = 0.0,
    visits_per_file: Annotated[int, typer.Option(help="HOSO per file", min=1, max=1000)] = 1,
    variant: Annotated[
        Variant, typer.Option(help="Table variant: 4750, or 3176 (its XML13 referral)")
    ] = Variant.qd4750,
) -> None:
    """Write realistic synthetic GIAMDINHHS files (and manifest.json naming each defect)."""
    from vnehr.submissions import synth as generator

    manifest = generator.write_files(
        directory,
        count,
        seed=seed,
        facility_code=facility,
        defect_rate=defect_rate,
        visits_per_file=visits_per_file,
        variant=variant.value,
    )
    typer.echo(f"wrote {count} files; manifest {manifest}")


async def _schema_ready(db: Database, *, later_release: bool) -> str | None:
    """Why a command cannot run on the database, or None: not set up, an older or foreign
    schema, or (unless ``later_release``) a later release's (D119)."""
    from vnehr.kit.migrate import ahead, current_revisions, head_revisions

    async with db.read_session() as session:
        current = await current_revisions(await session.connection())
    if not current:
        return "the database is not set up: run `vnehr db upgrade`, then `vnehr catalog load`"
    if current == head_revisions():
        return None
    if ahead(current):
        if later_release:
            return None
        return (
            f"the database schema is a later release's ({', '.join(sorted(current))}): run this "
            "command with that release's `vnehr`"
        )
    return "the database schema is not at the newest migration: run `vnehr db upgrade`"


def _missing_sqlite_file(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or ""
    missing = not Path(name).is_file()
    if parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and missing:
        return f"there is no database at {name}: run `vnehr db upgrade` first"
    return None


@app.command("import")
def import_files(
    directory: Annotated[
        Path, typer.Argument(help="Folder of GIAMDINHHS files (*.xml, subfolders too)")
    ],
    batch_size: Annotated[int, typer.Option(help="Files per transaction", min=1)] = 200,
    processes: Annotated[
        int | None,
        typer.Option(help="Processes reading the files (default: one per core)", min=1),
    ] = None,
    lang: Annotated[
        Lang | None,
        typer.Option(help="Language of the messages (default: VNEHR_DEFAULT_LANGUAGE)"),
    ] = None,
) -> None:
    """Bulk-load a folder of visit files, each as its facility would send it, with the same
    validation. Resumable: files already received (same bytes) are skipped, unless a visit of
    theirs was rejected (checked again). On PostgreSQL new visits are written with COPY. Lists
    each file refused and each visit rejected; exits 0 when every visit was accepted, 1 when a
    visit was rejected, 2 when a file was refused."""
    from vnehr import papers, reporting, submissions

    if not directory.is_dir():
        typer.echo(f"{_shown(directory)} is not a folder", err=True)
        raise typer.Exit(2)
    settings = _settings()
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:  # before listing what may be a large folder
        raise _fail(missing)
    paths = submissions.visit_files(directory)
    options = submissions.IntakeOptions(
        limits=submissions.Limits(max_bytes=settings.max_body_bytes),
        # the API's rule: unsigned files refused when signatures are required. (The BHXH
        # card lookup is left out: a bulk load must not send a request per visit to the
        # portal; the cards are checked when the visits are delivered there, D59.)
        require_signature=settings.require_signature,
        papers=papers.keys_for(settings),
        count=reporting.intake_counter(),  # each batch's counts in one statement (D113)
    )

    async def work(db: Database) -> submissions.ImportTotals:
        # (on stderr: stdout holds the totals a script reads)
        with typer.progressbar(length=len(paths), label="importing", file=sys.stderr) as bar:
            return await submissions.import_folder(
                db, paths, options, batch_size=batch_size, processes=processes,
                progress=bar.update,
                language=lang.value if lang is not None else settings.default_language,
            )  # fmt: skip

    totals = _run(work)
    for problem in totals.problems:
        typer.echo(problem, err=True)
    typer.echo(totals.line())
    raise typer.Exit(totals.exit_code)


@demo_app.command("load")
def demo_load(
    if_empty: Annotated[bool, typer.Option(help="Only when the database has no data")] = False,
) -> None:
    """Load the demo data (catalogues with demo Vietnamese ICD-10 titles)."""

    from vnehr import demo, papers  # only here: demo brings the synthetic data generator

    async def work(db: Database) -> dict[str, int] | None:
        async with db.session() as session:
            if if_empty and not await demo.is_empty(session):
                return None
            return await demo.load(session, papers.keys_for(get_settings()))

    loaded = _run(work, later_release=False)  # (it loads this release's lists)
    if loaded is None:
        typer.echo("database already has data; demo not loaded")
        return
    typer.echo("demo loaded: " + ", ".join(f"{k} {v}" for k, v in loaded.items()))


def main() -> None:
    app()


report_app = typer.Typer(
    help="The six-monthly report to the Ministry of Health: "
    "`vnehr report --period 2026H1 --province 01 --format xlsx,pdf,csv`.",
    invoke_without_command=True,
)
app.add_typer(report_app, name="report")
FORMATS = ("xlsx", "pdf", "csv", "json")


@report_app.callback()
def report(
    context: typer.Context,
    period: Annotated[str | None, typer.Option(help="2026H1 = January to June")] = None,
    province: Annotated[str | None, typer.Option(help="e.g. 01 for Hanoi; none: the country")] = (
        None
    ),
    format: Annotated[str, typer.Option(help="any of xlsx,pdf,csv,json")] = "xlsx,pdf,csv",
    out: Annotated[Path, typer.Option(help="directory for the files")] = Path(),
) -> None:
    """Write the report files (from the rollups) for a period and a province."""
    from vnehr import reporting

    if context.invoked_subcommand is not None:
        return
    if period is None:
        raise typer.BadParameter("give --period (such as 2026H1)")
    wanted = [f.strip() for f in format.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown:
        raise typer.BadParameter(f"unknown format {', '.join(unknown)}; use {', '.join(FORMATS)}")
    settings = _settings()

    async def work(db: Database) -> dict[str, Any]:
        async with db.read_session() as session:
            return await reporting.figures(
                session,
                reporting.period_of(period),
                province=province,
                cost_per_record=settings.report_cost_per_record,
            )

    figures = _run(work)
    writers = {
        "xlsx": reporting.to_xlsx,
        "pdf": reporting.to_pdf,
        "csv": reporting.to_csv,
        "json": reporting.to_json,
    }
    out.mkdir(parents=True, exist_ok=True)
    for fmt in wanted:
        target = out / f"sskdt-{figures['period']}-{province or 'VN'}.{fmt}"
        target.write_bytes(writers[fmt](figures))
        typer.echo(f"wrote {target}")
    typer.echo(
        f"{figures['totals']['sent']} visits sent, {figures['facilities']['sending']} of "
        f"{figures['facilities']['with_code']} facilities sending, "
        f"{figures['people']['accounts']} health accounts"
    )


@report_app.command("check")
def report_check(
    period: Annotated[str, typer.Option(help="2026H1 = January to June")],
    province: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Compare the rollups, with what the events not delivered yet will add, with a recount of
    the stored rows; exit 1 and list the differences."""
    from vnehr import reporting

    async def work(db: Database) -> reporting.Checked:
        async with db.read_session() as session:
            return await reporting.checked(session, reporting.period_of(period), province)

    checked = _run(work)
    if checked.waiting:
        typer.echo(
            f"{checked.waiting} events not yet counted by the worker: "
            "what they will add is included"
        )
    differences = checked.differences
    for d in differences:
        coming = f" (+{d['waiting']} waiting)" if d["waiting"] else ""
        typer.echo(
            f"DIFFERS {d['month']} {d['province']} {d['ward']} {d['facility']} {d['metric']} "
            f"{d['dim1']} {d['dim2']}: rollup {d['rollup']}{coming}, recount {d['recount']}"
        )
    if differences:
        raise typer.Exit(1)
    typer.echo("rollups agree with the stored rows")


@report_app.command("rebuild")
def report_rebuild() -> None:
    """Recount every rollup from the stored rows (after a restore, or to backfill)."""
    from vnehr import reporting

    async def work(db: Database) -> int:
        async with db.session() as session:
            return await reporting.rebuild(session)

    # (a recount by this release's rules would replace the later release's counts)
    typer.echo(f"{_run(work, later_release=False)} counters")


@report_app.command("population")
def report_population(
    file: Annotated[
        Path,
        typer.Argument(help="CSV: ward_code,population[,as_of]", exists=True, dir_okay=False),
    ],
) -> None:
    """Load the population of each ward (the statistics office's figures)."""
    from vnehr import reporting

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise _fail(f"cannot read {_shown(file)}: {reason}") from exc

    async def work(db: Database) -> int:
        async with db.session() as session:
            return await reporting.load_population(session, text)

    typer.echo(f"loaded {_run(work)} wards")
