"""One typed settings object, read from ``VNEHR_*`` environment variables (and ``.env``).

Secrets have a usable default only in development; any other environment must set them, and a
secret that is short or equal to the development value is refused at start-up. Production also
refuses the development addresses: a localhost or plain-HTTP public URL, the simulated VNeID
and BHXH portal, and cookies sent without HTTPS. A refusal names the setting, never its value.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# Known to everyone, so only ever accepted in development.
DEVELOPMENT_SECRET = "vnehr-development-only-secret-do-not-use-elsewhere"  # noqa: S105
DEVELOPMENT_OIDC_SECRET = "vnehr-development-oidc-client-secret"  # noqa: S105
DEVELOPMENT_BHXH_PASSWORD = "vnehr-dev-password"  # noqa: S105  (the BHXH simulator's)
MIN_SECRET_LENGTH = 32

#: Where settings come from; a refused value is never repeated in the error (it may be a
#: secret, and the error is printed or logged).
SOURCES = SettingsConfigDict(
    env_prefix="VNEHR_",
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    hide_input_in_errors=True,
)


class EarlySettings(BaseSettings):
    """The settings a module reads when it is imported, in every process (the parsing
    processes of ``vnehr import`` too): read as all settings are, from the variables and
    ``.env``, but on their own, so that a process needing none of the others (``vnehr
    validate``, without a secret key) is not refused for theirs. ``Settings`` has them too, and
    so refuses a malformed one at start-up."""

    model_config = SOURCES

    intake_pure_python: bool = Field(
        default=False,
        description="Inner tables read and checked in Python only, without the compiled "
        "reader (D115): to compare the two, or rule the compiled one out.",
    )

    @field_validator("intake_pure_python", mode="before")
    @classmethod
    def _empty_is_no(cls, value: object) -> object:
        return False if isinstance(value, str) and not value.strip() else value


class Settings(EarlySettings):
    """Everything that can be configured. Field ``x`` is set by the variable ``VNEHR_X``."""

    model_config = SOURCES

    env: Environment = Field(default="development", description="development, test or production.")
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/vnehr.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    read_database_url: str | None = Field(
        default=None,
        description="Optional replica for reads that may be slightly stale (lists, reports).",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_fast_pool_size: int = Field(
        default=4,
        ge=1,
        le=200,
        description="Connections per process for the hottest reads on PostgreSQL (the health "
        "book's timeline). Few is faster when the database shares the machine's cores; raise it "
        "for a database on its own machine.",
    )
    db_connect_timeout_seconds: float = Field(
        default=10.0,
        ge=0,
        description="PostgreSQL: seconds to open a connection or wait for one from the pool "
        "before a request gets 503 KIT-0008 (a partitioned or hung database). 0: no limit.",
    )
    db_command_timeout_seconds: float = Field(
        default=60.0,
        ge=0,
        description="PostgreSQL: seconds one statement of the server or worker may take. "
        "Migrations, `vnehr import` and `vnehr report rebuild` have no limit. 0: no limit.",
    )
    db_busy_timeout_seconds: float = Field(
        default=30.0,
        ge=1,
        le=600,
        description="SQLite: seconds a writer waits for the file's write lock before its "
        'transaction fails ("database is locked").',
    )
    db_echo: bool = False
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description="Signs sessions and tokens. Required outside development.",
    )
    previous_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Earlier values of VNEHR_SECRET_KEY, comma-separated: what was signed with "
        "them (papers, their PDFs, audit checkpoints) still verifies; nothing is signed with "
        "them. Sessions and tokens they signed end.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    workers_healthcheck_seconds: int = Field(
        default=60,
        ge=5,
        le=3600,
        description="`vnehr serve --workers N`: seconds a worker process has to answer its "
        "supervisor (uvicorn's health check) before it is killed and replaced; it answers only "
        "once it has imported vnehr, which takes several seconds on a loaded host.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON log lines; defaults to on outside development."
    )
    default_language: Literal["vi", "en"] = "vi"
    public_url: str = Field(
        default="http://localhost:8000",
        description="Address users and facility systems reach vnehr at (no trailing slash). "
        "Browsers keep Secure cookies over plain HTTP only for localhost. In development it "
        "defaults to http://localhost:<VNEHR_PORT>.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="VNeID (or any OpenID Connect) issuer URL; default: the built-in simulator.",
    )
    oidc_client_id: str = "vnehr-portal"
    oidc_client_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_OIDC_SECRET),
        description="Client secret registered with the identity provider.",
    )
    vneid_simulator: bool | None = Field(
        default=None,
        description="Serve the VNeID simulator at /sim/vneid; default on in development only.",
    )
    cookie_secure: bool = Field(
        default=True, description="Session cookies only over HTTPS (browsers allow localhost)."
    )
    session_hours: int = Field(default=8, ge=1, le=72)
    max_body_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Largest visit file accepted (bytes)."
    )
    intake_batch_files: int = Field(
        default=32,
        ge=1,
        le=500,
        description="Most files of one API process written in one transaction (D49); 1 "
        "writes each file alone.",
    )
    intake_batch_wait_ms: float = Field(
        default=3.0,
        ge=0,
        le=1000,
        description="How long the first file of a batch waits for others (D49).",
    )
    intake_inline_max_bytes: int = Field(
        default=128 * 1024,
        ge=0,
        le=20 * 1024 * 1024,
        description="Files up to this size are checked on the API process's event loop "
        "(a few milliseconds); larger ones in a thread (D52). 0 sends every file to a thread.",
    )
    sharing_default: Literal["none", "summary"] = Field(
        default="none",
        description="Without a directive: nothing, or the summary for facilities that treated "
        "the patient (D35).",
    )
    emergency_access_hours: int = Field(default=24, ge=1, le=72)
    emergency_bar_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="A clinician whose emergency access to a patient was found unjustified opens "
        "none on that patient for this many days after the finding (0: no bar).",
    )
    push_url: str | None = Field(
        default=None,
        description="The app's push service (POST, signed JSON); default: the VNeID simulator's "
        "when it runs, else pushes are only logged.",
    )
    push_secret: SecretStr | None = Field(
        default=None, description="Key of the push signature; default: derived from the secret."
    )
    previous_push_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Earlier values of VNEHR_PUSH_SECRET, comma-separated: each push also "
        "carries their signatures while the push service moves to the new key.",
    )
    report_cost_per_record: int = Field(
        default=5000,
        ge=0,
        description="VND saved per visit recorded electronically instead of on paper (the "
        "national estimate: VND 1.15 trillion for 230 M visits = VND 5,000 a visit).",
    )
    worker_in_process: bool | None = Field(
        default=None,
        description="Deliver the outbox inside `vnehr serve`; default on in development only.",
    )
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    outbox_backoff_seconds: float = Field(default=2.0, gt=0, le=3600)
    outbox_retention_days: int = Field(
        default=30,
        ge=7,  # exchange.retention.MIN_KEEP_DAYS (D81)
        le=3650,
        description="Delivered outbox events and their delivery attempts are removed this many "
        "days after delivery (pending and dead ones never).",
    )
    outbox_prune_interval_seconds: float = Field(
        default=3600.0, ge=1, le=86400, description="How often each worker prunes the outbox."
    )
    outbox_claim_seconds: float = Field(
        default=60.0,
        ge=2,
        le=3600,
        description="SQLite: how long a delivery round's claim on its events lasts (renewed "
        "while it runs); a stopped worker's events are delivered again after it. More than "
        "VNEHR_DB_BUSY_TIMEOUT_SECONDS by a third.",
    )
    outbox_concurrency: int = Field(
        default=8,
        ge=1,
        le=32,
        description="Calls to the portal and pushes to the phones each worker has in flight at "
        "once, each for another visit or person (one visit's versions always go in order).",
    )
    bhxh_url: str | None = Field(
        default=None,
        description="BHXH appraisal portal base URL; default: the built-in simulator (never in "
        "production, where it is required).",
    )
    bhxh_username: str = "vnehr-dev"
    bhxh_password: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_BHXH_PASSWORD),
        description="Required with a real VNEHR_BHXH_URL outside development.",
    )
    bhxh_variant: Literal["4750", "3176"] = "3176"
    bhxh_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    bus: Literal["inprocess", "nats"] = Field(
        default="inprocess", description="How outbox events reach consumers."
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:4222", description="NATS servers, comma-separated (cluster)."
    )
    nats_replicas: int = Field(
        default=1, ge=1, le=5, description="Stream replicas (3 on a cluster)."
    )
    nats_max_bytes: int | None = Field(
        default=None,
        ge=1_048_576,
        description="Most bytes the stream holds (None: no cap); when full it refuses new "
        "messages, which wait in the outbox. Messages are kept VNEHR_OUTBOX_RETENTION_DAYS.",
    )
    card_check: bool = Field(
        default=False, description="Look insurance cards up on the BHXH portal at intake."
    )
    require_signature: bool = Field(
        default=False,
        description="Refuse unsigned visit files from facilities that registered a certificate.",
    )
    access_token_minutes: int = Field(default=10, ge=1, le=60)

    @field_validator("previous_secret_keys", "previous_push_secrets", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):  # the environment's form: a secret holds no comma
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _public_url_follows_the_port(self) -> Settings:
        # in development, VNEHR_PORT alone moves the address VNeID's simulator sends people
        # back to and tokens name; elsewhere the public address is set (a proxy's, D-README)
        if self.env == "development" and "public_url" not in self.model_fields_set:
            self.public_url = f"http://localhost:{self.port}"
        return self

    @model_validator(mode="after")
    def _claim_outlasts_a_wait(self) -> Settings:
        # a renewal that waits the whole busy timeout for the lock still ends before the claim
        # does (D138): claim > busy timeout + a renewal period (a third of the claim)
        if self.outbox_claim_seconds * 2 / 3 <= self.db_busy_timeout_seconds:
            raise ValueError(
                "VNEHR_OUTBOX_CLAIM_SECONDS must be more than 1.5 times "
                f"VNEHR_DB_BUSY_TIMEOUT_SECONDS ({self.db_busy_timeout_seconds:g} s)."
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env == "development":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEVELOPMENT_SECRET:
            raise ValueError(
                f"VNEHR_SECRET_KEY must be set when VNEHR_ENV={self.env}; "
                "the development secret is public."
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"VNEHR_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters.")
        # a previous secret still vouches for what was signed with it: the same checks
        previous = [s.get_secret_value() for s in self.previous_secret_keys]
        if DEVELOPMENT_SECRET in previous:
            raise ValueError(
                f"VNEHR_PREVIOUS_SECRET_KEYS must not hold the development secret when "
                f"VNEHR_ENV={self.env}; it is public."
            )
        if any(len(old) < MIN_SECRET_LENGTH for old in previous):
            raise ValueError(
                f"VNEHR_PREVIOUS_SECRET_KEYS: each must be at least {MIN_SECRET_LENGTH} characters."
            )
        if self.oidc_client_secret.get_secret_value() == DEVELOPMENT_OIDC_SECRET and (
            self.env == "production" or not self.simulator_enabled
        ):
            raise ValueError(
                "VNEHR_OIDC_CLIENT_SECRET must be set for a real identity provider; "
                "the development value is public."
            )
        if self.bhxh_url is not None and (
            self.bhxh_password.get_secret_value() == DEVELOPMENT_BHXH_PASSWORD
        ):
            raise ValueError(
                "VNEHR_BHXH_PASSWORD (and VNEHR_BHXH_USERNAME) must be set with VNEHR_BHXH_URL "
                f"when VNEHR_ENV={self.env}; the development value is public."
            )
        if self.env == "production":
            self._refuse_development_addresses()
        return self

    def _refuse_development_addresses(self) -> None:
        """Production is reached over HTTPS at a real address and signs people in with VNeID
        itself: the simulator is never served there, so its issuer would point nowhere."""
        if self.oidc_issuer is None:
            raise ValueError(
                "VNEHR_OIDC_ISSUER must be set in production (the VNeID simulator is never "
                "served there)."
            )
        address = urlsplit(self.public_url)
        if address.scheme != "https" or _is_local(address.hostname or ""):
            raise ValueError(
                "VNEHR_PUBLIC_URL must be the https:// address users reach in production, "
                f"not {self.public_url}."
            )
        if not self.cookie_secure:
            raise ValueError("VNEHR_COOKIE_SECURE must stay true in production.")
        if self.bhxh_url is None:  # its fallback, {public URL}/sim/bhxh, is not served there
            raise ValueError(
                "VNEHR_BHXH_URL must be set in production (the BHXH portal simulator is never "
                "served there)."
            )

    @property
    def previous_secrets(self) -> tuple[str, ...]:
        """The previous secrets' values, in the order given, without the current one or
        repeats: what verification accepts besides the current secret."""
        current = self.secret_key.get_secret_value()
        found = dict.fromkeys(s.get_secret_value() for s in self.previous_secret_keys)
        return tuple(old for old in found if old != current)

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.env != "development"

    @property
    def simulator_enabled(self) -> bool:
        if self.oidc_issuer is not None:  # a real provider is configured
            return False
        if self.vneid_simulator is not None:
            return self.vneid_simulator and self.env != "production"
        return self.env == "development"

    @property
    def push_target(self) -> str | None:
        if self.push_url:
            return self.push_url
        return f"{self.issuer}/push" if self.simulator_enabled else None

    @property
    def push_key(self) -> str:
        if self.push_secret is not None:
            return self.push_secret.get_secret_value()
        return _push_key_of(self.secret_key.get_secret_value())

    @property
    def previous_push_keys(self) -> tuple[str, ...]:
        """The keys a push is signed with besides ``push_key`` (a second signature each),
        while the push service moves to the new key: ``VNEHR_PREVIOUS_PUSH_SECRETS``, and,
        for a key derived from the secret, those derived from its previous values (so a
        rotation of ``VNEHR_SECRET_KEY`` does not cut the pushes off)."""
        given = [s.get_secret_value() for s in self.previous_push_secrets]
        if self.push_secret is None:
            given += [_push_key_of(old) for old in self.previous_secrets]
        current = self.push_key
        return tuple(key for key in dict.fromkeys(given) if key != current)

    @property
    def worker_inside_server(self) -> bool:
        if self.bus == "nats":
            return False  # NATS deployments run `vnehr worker` processes
        if self.worker_in_process is not None:
            return self.worker_in_process
        return self.env == "development"

    @property
    def bhxh_simulator_enabled(self) -> bool:
        return self.bhxh_url is None and self.env != "production"

    @property
    def bhxh_base(self) -> str:
        return (self.bhxh_url or f"{self.public_url}/sim/bhxh").rstrip("/")

    @property
    def issuer(self) -> str:
        """The OpenID Connect issuer in use (the simulator's when none is configured)."""
        return (self.oidc_issuer or f"{self.public_url}/sim/vneid").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of an SQLite URL, or None for other databases."""
        if not self.is_sqlite:
            return None
        _, _, path = self.database_url.partition(":///")
        return None if path in ("", ":memory:") else Path(path)


def _is_local(host: str) -> bool:
    """localhost, a loopback or unspecified address: nobody else reaches vnehr there."""
    host = host.lower().rstrip(".")
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def refusal(error: ValueError) -> str:
    """Why the settings were refused, for one line: each wrong setting by its variable and
    what is wrong with it, never its value."""
    if not isinstance(error, ValidationError):  # pydantic-settings' own (names the field)
        return str(error)
    reasons = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        reason = item["msg"].removeprefix("Value error, ")
        name = "_".join(str(part) for part in item["loc"]).upper()
        reasons.append(f"VNEHR_{name}: {reason}" if name else reason)
    return "; ".join(reasons)


def intake_pure_python() -> bool:
    """``VNEHR_INTAKE_PURE_PYTHON`` as the intake reads it when imported. A value that is not
    a yes or a no counts as yes (Python only, the rule the compiled reader follows): the
    commands that read the settings refuse it at start, ``vnehr validate`` reads none."""
    try:
        return EarlySettings().intake_pure_python
    except ValidationError:
        return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def _push_key_of(secret: str) -> str:
    """The push signature's key derived from the service's secret."""
    return hmac.new(secret.encode(), b"vnehr.push", hashlib.sha256).hexdigest()
