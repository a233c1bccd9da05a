from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from vnehr import app
from vnehr.kit.db import Database
from vnehr.kit.settings import DEVELOPMENT_BHXH_PASSWORD, DEVELOPMENT_SECRET, Settings


def test_development_runs_with_the_default_secret() -> None:
    settings = Settings(env="development", secret_key=SecretStr(DEVELOPMENT_SECRET))
    assert settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET
    assert settings.json_logs is False


@pytest.mark.parametrize("env", ["production", "test"])
def test_default_secret_is_refused_outside_development(env: str) -> None:
    with pytest.raises(ValidationError, match="VNEHR_SECRET_KEY must be set"):
        Settings(env=env, secret_key=SecretStr(DEVELOPMENT_SECRET))


def test_short_secret_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(env="production", secret_key=SecretStr("too-short"))


def test_settings_come_from_vnehr_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VNEHR_ENV", "production")
    monkeypatch.setenv("VNEHR_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("VNEHR_OIDC_CLIENT_SECRET", "o" * 40)
    monkeypatch.setenv("VNEHR_OIDC_ISSUER", "https://sso.vneid.gov.vn")
    monkeypatch.setenv("VNEHR_PUBLIC_URL", "https://sskdt.hanoi.gov.vn")
    monkeypatch.setenv("VNEHR_DATABASE_URL", "postgresql+asyncpg://u@db/vnehr")
    monkeypatch.setenv("VNEHR_BHXH_URL", "https://egw.baohiemxahoi.gov.vn")
    monkeypatch.setenv("VNEHR_BHXH_PASSWORD", "p" * 20)
    monkeypatch.setenv("VNEHR_PORT", "9000")
    settings = Settings()
    assert settings.env == "production"
    assert settings.port == 9000
    assert settings.is_sqlite is False
    assert settings.json_logs is True


def test_in_development_the_public_url_follows_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's `VNEHR_PORT=18439 vnehr serve` sent sign-ins back to port 8000."""
    monkeypatch.delenv("VNEHR_PUBLIC_URL", raising=False)
    monkeypatch.setenv("VNEHR_PORT", "18439")
    assert Settings(env="development").public_url == "http://localhost:18439"
    assert Settings(env="development", public_url="http://x.test").public_url == "http://x.test"
    monkeypatch.delenv("VNEHR_PORT")
    assert Settings(env="development").public_url == "http://localhost:8000"


def test_sqlite_path_is_read_from_the_url() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///var/data/vnehr.db")
    assert str(settings.sqlite_path()) == "var/data/vnehr.db"


def test_the_public_oidc_secret_is_refused_with_a_real_identity_provider() -> None:
    with pytest.raises(ValidationError, match="VNEHR_OIDC_CLIENT_SECRET"):
        Settings(env="production", secret_key=SecretStr("s" * 40))
    with pytest.raises(ValidationError, match="VNEHR_OIDC_CLIENT_SECRET"):
        Settings(env="test", secret_key=SecretStr("s" * 40), vneid_simulator=False)


def test_the_simulator_is_never_served_in_production() -> None:
    settings = Settings(
        env="production",
        secret_key=SecretStr("s" * 40),
        oidc_client_secret=SecretStr("o" * 40),
        vneid_simulator=True,
        oidc_issuer="https://sso.vneid.gov.vn",
        public_url="https://sskdt.hanoi.gov.vn",
        bhxh_url="https://egw.baohiemxahoi.gov.vn",
        bhxh_password=SecretStr("p" * 20),
    )
    assert settings.simulator_enabled is False
    assert settings.issuer == "https://sso.vneid.gov.vn"
    assert Settings(public_url="http://127.0.0.1:9000").issuer == "http://127.0.0.1:9000/sim/vneid"


PRODUCTION = {
    "env": "production",
    "secret_key": SecretStr("s" * 40),
    "oidc_client_secret": SecretStr("o" * 40),
    "oidc_issuer": "https://sso.vneid.gov.vn",
    "public_url": "https://sskdt.hanoi.gov.vn",
    "bhxh_url": "https://egw.baohiemxahoi.gov.vn",
    "bhxh_username": "sskdt-hanoi",
    "bhxh_password": SecretStr("p" * 20),
}


def test_production_starts_with_real_addresses_and_secrets() -> None:
    settings = Settings(**PRODUCTION)
    assert (settings.issuer, settings.simulator_enabled) == ("https://sso.vneid.gov.vn", False)
    assert settings.bhxh_simulator_enabled is False
    assert settings.bhxh_base == "https://egw.baohiemxahoi.gov.vn"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"oidc_issuer": None}, "VNEHR_OIDC_ISSUER must be set"),
        ({"public_url": "http://localhost:8000"}, "VNEHR_PUBLIC_URL"),
        ({"public_url": "http://sskdt.hanoi.gov.vn"}, "VNEHR_PUBLIC_URL"),
        ({"public_url": "https://localhost"}, "VNEHR_PUBLIC_URL"),
        ({"public_url": "https://127.0.0.1:8443"}, "VNEHR_PUBLIC_URL"),
        ({"public_url": "https://[::1]"}, "VNEHR_PUBLIC_URL"),
        ({"cookie_secure": False}, "VNEHR_COOKIE_SECURE"),
        ({"bhxh_password": SecretStr(DEVELOPMENT_BHXH_PASSWORD)}, "VNEHR_BHXH_PASSWORD"),
        # the simulator's address (public URL + /sim/bhxh) is never served in production:
        # every visit would have been retried there and ended a dead letter
        ({"bhxh_url": None}, "VNEHR_BHXH_URL must be set in production"),
    ],
)
def test_production_refuses_the_development_defaults(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{**PRODUCTION, **change})


def test_the_simulators_password_goes_only_to_the_simulator_outside_development() -> None:
    with pytest.raises(ValidationError, match="VNEHR_BHXH_PASSWORD"):
        Settings(
            env="test", secret_key=SecretStr("s" * 40), bhxh_url="https://egw.baohiemxahoi.gov.vn"
        )
    assert Settings(env="test", secret_key=SecretStr("s" * 40)).bhxh_simulator_enabled
    development = Settings(env="development", bhxh_url="http://127.0.0.1:9000/sim/bhxh")
    assert development.bhxh_base == "http://127.0.0.1:9000/sim/bhxh"


def test_an_app_started_by_uvicorn_is_refused_without_showing_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`uvicorn --factory vnehr.app:factory` prints the refusal with its traceback: it named
    the setting and then the whole environment read, the secret key's tail included."""
    monkeypatch.setenv("VNEHR_ENV", "production")
    monkeypatch.setenv("VNEHR_SECRET_KEY", "A" * 40 + "-TOPSECRET-TAIL-1234567890")
    app.get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError) as refused:
            app.factory()
    finally:
        app.get_settings.cache_clear()
    assert "VNEHR_OIDC_CLIENT_SECRET must be set" in str(refused.value)
    assert "1234567890" not in str(refused.value)


def test_a_delivery_claim_must_outlast_a_wait_for_the_sqlite_lock() -> None:
    # a renewal that waits the whole busy timeout must still end before the claim does (D138)
    with pytest.raises(ValidationError, match="VNEHR_OUTBOX_CLAIM_SECONDS must be more than"):
        Settings(db_busy_timeout_seconds=30, outbox_claim_seconds=45)
    settings = Settings(db_busy_timeout_seconds=4, outbox_claim_seconds=7)
    assert app.policy(settings).claim_seconds == 7
    assert (app.policy(Settings()).claim_seconds, Settings().db_busy_timeout_seconds) == (60, 30)


async def test_a_sqlite_writer_waits_for_the_lock_as_long_as_configured(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")  # as the hub keeps its file
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the file
    db = Database.from_urls(f"sqlite+aiosqlite:///{path}", busy_timeout=1.5)
    try:
        async with db.read_session() as session:  # readers never wait (WAL)
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
        waited = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            async with db.session() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
        assert 1.4 < time.monotonic() - waited < 20  # not the default 30 s
        holder.execute("COMMIT")
        async with db.session() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await db.dispose()
        holder.close()
