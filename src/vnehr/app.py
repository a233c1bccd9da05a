"""The ASGI application: composition root that wires every context's routes and the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from vnehr import (
    __version__,
    audit,
    catalogs,
    exchange,
    facilities,
    fhir,
    healthbook,
    identity,
    papers,
    reporting,
    sharing,
    submissions,
    web,
    wiring,
)
from vnehr.kit import health, startup
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.db import Database
from vnehr.kit.http import FORM_TEXT, RequestContextMiddleware, install_error_handlers, request_cap
from vnehr.kit.logging import configure_logging
from vnehr.kit.settings import Settings, get_settings

DESCRIPTION = """
Trục dữ liệu y tế phía sau **Sổ sức khỏe điện tử** trên VNeID.
The health-data hub behind the electronic health book on VNeID.

Every error has the body `{"code", "message": {"vi", "en"}, "detail"}` with a stable `code`.
People sign in with VNeID (`/auth/login`); facility systems get bearer tokens at `/oauth/token`
with a signed client assertion.
"""


def create_app(
    settings: Settings | None = None,
    database: Database | None = None,
    *,
    check_database: bool = True,
) -> FastAPI:
    """Build the application. ``database`` is given by tests; otherwise the lifespan checks
    that the database (and the read replica) can be used — unless ``check_database`` is off
    because ``vnehr serve`` did before starting its workers — and does not start otherwise (one
    coded line, KIT-0003/4/5/7, no traceback, D112), then opens the engines from settings and
    closes them on shutdown (nothing connects at import)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = database is None
        if owned:
            if check_database:
                await startup.refuse_unusable_database(settings, replica=True)
            app.state.database = Database.from_urls(
                settings.database_url,
                settings.read_database_url,
                echo=settings.db_echo,
                pool_size=settings.db_pool_size,
                fast_pool_size=settings.db_fast_pool_size,
                connect_timeout=settings.db_connect_timeout_seconds or None,
                busy_timeout=settings.db_busy_timeout_seconds,
                command_timeout=settings.db_command_timeout_seconds or None,
            )
        papers.load_calendar(today_in_vietnam())
        stop = asyncio.Event()
        tasks = []
        if owned:
            # what a process's first requests would wait for, done now, in the background:
            # readiness does not wait for it (D201)
            tasks.append(asyncio.create_task(_warm_up(app)))
        if settings.worker_inside_server:
            # Embedded default: the outbox is delivered, and the audit log sealed, by this
            # process (no separate worker).
            tasks.append(
                asyncio.create_task(
                    exchange.run(
                        app.state.database,
                        exchange_handlers(settings, app.state.http),
                        policy(settings),
                        stop=stop,
                    )
                )
            )
            tasks.append(
                asyncio.create_task(
                    audit.run_sealer(app.state.database, audit_key(settings), stop=stop)
                )
            )
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                await task
            queue = getattr(app.state, "intake_queue", None)
            if queue is not None:
                await queue.close()
            await app.state.http.aclose()
            if owned:
                await app.state.database.dispose()

    app = FastAPI(
        title="vnehr",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # every form a route reads is checked for control characters as the route gets it
        dependencies=[FORM_TEXT],
    )
    app.state.settings = settings
    if database is not None:
        app.state.database = database
    app.state.grant_loader = identity.grants_for
    app.state.client_check = facilities.client_refusal  # revoked or suspended: tokens stop
    # the intake's field format rules for a paper row sent without its visit file (papers sits
    # below submissions and cannot import them)
    app.state.paper_row_check = submissions.check_paper_row
    # the hooks lower contexts call back into higher ones through (D183)
    wiring.wire(settings.public_url)
    install_error_handlers(app)
    web.install_error_pages(app)  # no such page: the error page, not the API's JSON
    # No route reads a longer body (413 KIT-0413); the intake routes stop a little earlier,
    # at ``request_cap``, with their own code (SUB-0001).
    app.add_middleware(
        RequestContextMiddleware, max_body=request_cap(settings.max_body_bytes) + 65536
    )
    app.include_router(health.router)
    # The hottest read first: routes are matched in order, and a citizen's timeline should not
    # pay for testing a hundred other patterns (none overlaps it).
    app.include_router(healthbook.router)
    # the busiest read, ahead of the FastAPI routes (its FastAPI twin documents it, D34)
    app.router.routes[0:0] = healthbook.fast_routes
    # the busiest write next (a file at the end of every visit; no other route overlaps it),
    # its POST also as a plain route ahead of the rest (D55)
    app.router.routes[1:1] = submissions.fast_routes
    app.include_router(submissions.router)
    app.include_router(healthbook.department_router)
    app.include_router(sharing.router)
    app.include_router(catalogs.router)
    app.include_router(identity.router)
    app.include_router(facilities.router)
    app.include_router(facilities.oauth_router)
    app.include_router(exchange.router)
    app.include_router(papers.router)
    app.include_router(reporting.router)
    app.include_router(fhir.router)
    app.include_router(fhir.download_router)  # the health book as a data file
    app.include_router(web.router)
    app.include_router(web.download_router)  # the book page's downloads
    app.include_router(web.facility_router)
    app.include_router(web.ward_router)  # the ward office's page

    if settings.simulator_enabled:
        _mount_vneid_simulator(app, settings)
    if settings.bhxh_simulator_enabled:
        _mount_bhxh_simulator(app, settings)
    if settings.simulator_enabled or settings.bhxh_simulator_enabled:
        # Calls to the simulators (at our own public URL) stay inside the process (same HTTP
        # semantics, no socket); calls anywhere else (a real or separate portal) go out.
        origin = urlsplit(settings.public_url)
        app.state.http = httpx.AsyncClient(
            timeout=10,
            mounts={f"{origin.scheme}://{origin.netloc}": httpx.ASGITransport(app=app)},
        )
    else:
        app.state.http = httpx.AsyncClient(timeout=10)
    app.state.card_check = card_checker(settings, app.state.http)
    # visits written together are added to the report in their batch (D113)
    app.state.report_counter = reporting.intake_counter()
    app.state.oidc = identity.OidcClient(
        app.state.http,
        issuer=settings.issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        redirect_uri=f"{settings.public_url}/auth/callback",
    )
    return app


async def _warm_up(app: FastAPI) -> None:
    """FastAPI builds an included router's routing table at its first match (0.8 s for all of
    ours, paid by a process's first request), and the catalogue's copy is built at its first
    use (0.5 s: the first portal page, report or visit file): both are built here instead. A
    path no route has, matched against every route, builds every table."""
    nowhere = {"type": "http", "path": "/\x00", "method": "GET", "root_path": "", "headers": []}
    for route in app.router.routes:
        route.matches(dict(nowhere))
        await asyncio.sleep(0)  # one router at a time: requests arriving meanwhile go between
    await catalogs.warm_codebook(app.state.database)


def _mount_vneid_simulator(app: FastAPI, settings: Settings) -> None:
    from vnehr.sim.vneid import ClientReg, VneidConfig
    from vnehr.sim.vneid import create_app as create_vneid

    simulator = create_vneid(
        VneidConfig(
            issuer=settings.issuer,
            clients={
                settings.oidc_client_id: ClientReg(
                    settings.oidc_client_secret.get_secret_value(),
                    (f"{settings.public_url}/auth/callback",),
                    "Sổ sức khỏe điện tử (vnehr)",
                )
            },
            push_secret=settings.push_key,
        )
    )
    app.state.vneid_simulator = simulator
    app.mount("/sim/vneid", simulator)


def policy(settings: Settings) -> exchange.Policy:
    return exchange.Policy(
        max_attempts=settings.outbox_max_attempts,
        backoff_seconds=settings.outbox_backoff_seconds,
        keep_days=settings.outbox_retention_days,
        prune_every_seconds=settings.outbox_prune_interval_seconds,
        claim_seconds=settings.outbox_claim_seconds,
        concurrency=settings.outbox_concurrency,
    )


def bhxh_client(settings: Settings, http: httpx.AsyncClient) -> exchange.BhxhClient:
    return exchange.BhxhClient(
        http,
        base_url=settings.bhxh_base,
        username=settings.bhxh_username,
        password=settings.bhxh_password.get_secret_value(),
        variant=settings.bhxh_variant,
        timeout=settings.bhxh_timeout_seconds,
    )


def card_checker(settings: Settings, http: httpx.AsyncClient) -> submissions.CardCheck | None:
    """The BHXH card lookup for intake, when ``VNEHR_CARD_CHECK`` is on."""
    if not settings.card_check:
        return None
    client = bhxh_client(settings, http)

    async def check(card: str, name: str, birth: str) -> str | None:
        try:
            return await client.check_card(card, name, birth)
        except exchange.DeliveryFailed:
            return None

    return check


def exchange_handlers(settings: Settings, http: httpx.AsyncClient) -> exchange.Consumers:
    """Who consumes which outbox topic (the one place they are wired)."""
    client = bhxh_client(settings, http)
    report = reporting.consumers()
    target = settings.push_target
    push: exchange.PushAdapter = (
        exchange.WebhookPush(http, target, settings.push_key, settings.previous_push_keys)
        if target
        else exchange.LogPush()
    )
    return {
        "visit.accepted": {
            "bhxh": exchange.bhxh_consumer(client),
            "inbox": exchange.visit_notifier(push),
            "report": report["visit.accepted"],
        },
        "visit.rejected": {"report": report["visit.rejected"]},
        "checkin.received": {"bhxh": exchange.checkin_consumer(client)},
        "emergency.access": {"inbox": exchange.event_notifier("emergency", push)},
        "emergency.reviewed": {"inbox": exchange.review_notifier(push)},
        "paper.issued": {
            "inbox": exchange.event_notifier("paper", push),
            "report": report["paper.issued"],
        },
        "account.changed": {"report": report["account.changed"]},
        "record.viewed": {"inbox": exchange.event_notifier("viewed", push)},
        "representative.added": {"inbox": exchange.event_notifier("representative", push)},
        "representative.ended": {"inbox": exchange.event_notifier("representative_ended", push)},
        "representative.released": {
            "inbox": exchange.event_notifier("representative_released", push)
        },
        identity.DUE_TOPIC: {"inbox": exchange.scheduled_notifier(push)},
    }


def _mount_bhxh_simulator(app: FastAPI, settings: Settings) -> None:
    from vnehr.sim.bhxh import Account, BhxhConfig
    from vnehr.sim.bhxh import create_app as create_bhxh

    simulator = create_bhxh(
        BhxhConfig(
            accounts={settings.bhxh_username: Account(settings.bhxh_password.get_secret_value())}
        )
    )
    app.state.bhxh_simulator = simulator
    app.mount("/sim/bhxh", simulator)


def factory() -> FastAPI:
    """Entry point for ``uvicorn --factory vnehr.app:factory`` (each worker process): the
    database is checked as the app starts (D112)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.json_logs)
    return create_app(settings)


def checked_factory() -> FastAPI:
    """Entry point of ``vnehr serve``'s workers: the command checked the database once before
    starting them (exit 2 and one line otherwise), so they do not check it again. Their
    logging is configured already, before this module was imported: by the command, or by
    each worker process as it starts (``kit.serving``, D128)."""
    return create_app(get_settings(), check_database=False)


def audit_key(settings: Settings) -> audit.AuditKey:
    """The key the audit checkpoints are signed with (derived from the deployment secret)."""
    return audit.AuditKey.from_secret(settings.secret_key.get_secret_value())


def audit_keys(settings: Settings) -> list[audit.AuditKey]:
    """The keys a checkpoint may be signed with: the current one, then those of the previous
    secrets (``VNEHR_PREVIOUS_SECRET_KEYS``), which sign nothing any more (D36)."""
    return [audit_key(settings), *map(audit.AuditKey.from_secret, settings.previous_secrets)]
