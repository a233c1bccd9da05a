"""Rotating the deployment secret (``VNEHR_SECRET_KEY``) keeps what was issued under the old
one: with the old secret in ``VNEHR_PREVIOUS_SECRET_KEYS``, a paper's QR and its signed PDF
still verify, the published key set lists the old key beside the new one, and the audit
chain's checkpoints signed with the old key are intact. Without it they are not (as a key
nobody knows is not). Signing always uses the current secret."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.identity.test_api import error
from tests.papers.test_api import SCOPES, driver_body, verify
from tests.submissions.test_intake import facility_with_token, system_token
from vnehr import audit
from vnehr.app import create_app
from vnehr.cli import app as cli
from vnehr.kit.db import Database, create_engine
from vnehr.kit.i18n import text
from vnehr.kit.settings import DEVELOPMENT_SECRET, Settings, get_settings, refusal

OLD = "old-secret-" + "a" * 40
NEW = "new-secret-" + "b" * 40
UNKNOWN = "nobody-knows-" + "c" * 40

Server = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def server(db: Database) -> Server:
    """The app started with the given settings, on the test's database (as a deployment
    restarted with another secret is)."""

    @asynccontextmanager
    async def started(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings, database=db)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            yield http
        queue = getattr(app.state, "intake_queue", None)
        if queue is not None:
            await queue.close()
        await app.state.http.aclose()

    return started


def kid_of(qr: str) -> str:
    digits = qr.removeprefix("shc:/")
    jws = "".join(chr(int(digits[i : i + 2]) + 45) for i in range(0, len(digits), 2))
    header = jws.split(".")[0]
    return str(orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


async def test_papers_issued_under_the_old_secret_verify_after_it_is_rotated(
    server: Server, session: AsyncSession
) -> None:
    old = Settings(secret_key=OLD)
    async with server(old) as before:
        code, headers = await facility_with_token(before, session, old, scopes=SCOPES)
        made = await before.post("/api/v1/papers", json=driver_body(), headers=headers)
        assert made.status_code == 201, made.text
        paper = made.json()
        signed_pdf = (
            await before.get(f"/api/v1/papers/{paper['id']}.pdf", headers=headers)
        ).content
        old_kid = (await before.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]

    # the new secret alone: nothing issued before is recognised (as today)
    async with server(Settings(secret_key=NEW)) as forgotten:
        checked = await verify(forgotten, paper["qr"])
        assert (checked["authentic"], checked["reason"]) == (False, "unknown_key")
        page = await forgotten.post("/verify", data={"qr": paper["qr"]})
        assert text("web.verify.not_authentic", "vi") in page.text
        found = (await forgotten.post("/api/v1/papers/verify-pdf", content=signed_pdf)).json()
        assert found["authentic"] is False
        assert [s["trusted"] for s in found["signatures"]] == [False, False]

    rotated = Settings(secret_key=NEW, previous_secret_keys=[OLD])
    async with server(rotated) as after:
        checked = await verify(after, paper["qr"])
        assert (checked["authentic"], checked["valid"], checked["status"]) == (True, True, "valid")
        assert checked["paper"]["holder"]["name"] == driver_body()["holder"]["name"]
        page = await after.post("/verify", data={"qr": paper["qr"]})
        assert text("web.verify.valid", "vi") in page.text
        found = (await after.post("/api/v1/papers/verify-pdf", content=signed_pdf)).json()
        assert found["authentic"] is True
        assert all(s["intact"] and s["trusted"] for s in found["signatures"])

        # the key set publishes the new key first and the old one beside it, by their kids
        keys = (await after.get("/.well-known/jwks.json")).json()["keys"]
        assert len(keys) == 2
        new_kid = keys[0]["kid"]
        assert keys[1]["kid"] == old_kid != new_kid
        assert all((k["kty"], k["alg"], k["use"]) == ("EC", "ES256", "sig") for k in keys)
        # each kid has its revocation list, named by that kid
        assert (await after.get(f"/.well-known/crl/{old_kid}.json")).json()["kid"] == old_kid

        # signing uses the new secret only: a facility's old token ended, a new one issues
        # papers whose QR names the new key
        error(
            await after.post("/api/v1/papers", json=driver_body(), headers=headers),
            401,
            "AUTH-0003",
        )
        fresh = await system_token(after, session, rotated, code, SCOPES)
        body = driver_body()
        body["holder"]["personal_id"] = "001090012346"
        again = await after.post("/api/v1/papers", json=body, headers=fresh)
        assert again.status_code == 201, again.text
        assert kid_of(again.json()["qr"]) == new_kid
        assert kid_of(paper["qr"]) == old_kid


# ------------------------------------------------------------------ the audit chain

runner = CliRunner()


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'rotation.db'}"
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def write_reads(url: str, count: int) -> None:
    """``count`` audited reads, committed as a running server writes them."""

    async def write() -> None:
        engine = create_engine(url)
        try:
            async with AsyncSession(engine) as session, session.begin():
                session.add_all(
                    audit.audit_event(
                        actor=f"person:00108500{n:04d}", action="visit.read",
                        object_type="visit_version", object_id=str(n), person_id=None,
                    )
                    for n in range(count)
                )  # fmt: skip
        finally:
            await engine.dispose()

    asyncio.run(write())


def run(monkeypatch: pytest.MonkeyPatch, secret: str, previous: str | None, *args: str) -> Any:
    """``vnehr ARGS`` in a process started with ``secret`` (and ``previous``)."""
    monkeypatch.setenv("VNEHR_SECRET_KEY", secret)
    if previous is None:
        monkeypatch.delenv("VNEHR_PREVIOUS_SECRET_KEYS", raising=False)
    else:
        monkeypatch.setenv("VNEHR_PREVIOUS_SECRET_KEYS", previous)
    get_settings.cache_clear()
    return runner.invoke(cli, list(args))


def test_audit_checkpoints_signed_with_a_previous_secret_stay_intact(
    sqlite_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(monkeypatch, OLD, None, "db", "upgrade").exit_code == 0
    write_reads(sqlite_env, 5)
    sealed = run(monkeypatch, OLD, None, "audit", "seal")
    assert sealed.exit_code == 0, sealed.output
    assert int(sealed.output.split()[-1]) > 0
    old_key = run(monkeypatch, OLD, None, "audit", "key").output.split()

    # started with the new secret only, the old checkpoints are signed by a key nobody knows
    forgotten = run(monkeypatch, NEW, None, "audit", "verify")
    assert forgotten.exit_code == 1
    assert "signed by unknown key" in forgotten.output

    # with the old secret among the previous ones they are intact, and new ones are signed
    # with the new key
    rotated = run(monkeypatch, NEW, f" {UNKNOWN} , {OLD} ", "audit", "verify")
    assert rotated.exit_code == 0, rotated.output
    assert rotated.output.strip().endswith("intact")
    write_reads(sqlite_env, 3)
    assert run(monkeypatch, NEW, OLD, "audit", "seal").exit_code == 0
    assert run(monkeypatch, NEW, OLD, "audit", "verify").exit_code == 0
    # the old key alone does not vouch for what the new one signed
    assert run(monkeypatch, OLD, None, "audit", "verify").exit_code == 1

    # `vnehr audit key` prints the current key first, then the previous ones marked
    keys = run(monkeypatch, NEW, OLD, "audit", "key").output.splitlines()
    assert keys[0].split()[0] != old_key[0]
    assert len(keys[0].split()) == 2
    assert keys[1].split() == [*old_key, "previous"]

    # a secret nobody issued with is no help
    assert run(monkeypatch, NEW, UNKNOWN, "audit", "verify").exit_code == 1


# ------------------------------------------------------------------ the setting


def test_previous_secrets_are_read_comma_separated_and_checked_like_the_current_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VNEHR_PREVIOUS_SECRET_KEYS", f"{OLD}, {UNKNOWN},")
    read = Settings(secret_key=NEW)
    assert [s.get_secret_value() for s in read.previous_secret_keys] == [OLD, UNKNOWN]
    assert OLD not in repr(read)
    assert OLD not in str(read.model_dump())
    monkeypatch.setenv("VNEHR_PREVIOUS_SECRET_KEYS", "")
    assert Settings(secret_key=NEW).previous_secret_keys == []

    short = "too-short-a-secret"
    for previous in (f"{OLD},{short}", DEVELOPMENT_SECRET):
        monkeypatch.setenv("VNEHR_PREVIOUS_SECRET_KEYS", previous)
        with pytest.raises(ValidationError) as refused:
            Settings(env="test", secret_key=NEW)
        said = refusal(refused.value)
        assert "VNEHR_PREVIOUS_SECRET_KEYS" in said
        assert all(secret not in said for secret in (short, OLD, DEVELOPMENT_SECRET))
    # development takes anything, as for the current secret
    assert Settings(env="development").previous_secret_keys[0].get_secret_value() == (
        DEVELOPMENT_SECRET
    )
