"""The push signature's key is rotated without losing a push: while the push service moves
from the old key to the new one, each push carries a signature made with each key (the
current first), and the service accepts it with either. A rotation of ``VNEHR_SECRET_KEY``
keeps the pushes going too when their key is derived from it."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest
from pydantic import SecretStr

from vnehr import exchange
from vnehr.app import create_app
from vnehr.exchange.notifications import PushMessage
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings

OLD, NEW = "o" * 40, "n" * 40
MESSAGE = PushMessage(1, "001085004217", "visit", {"vi": "a", "en": "a"}, {"vi": "b", "en": "b"})


def _signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


async def test_each_key_signs_the_push_the_current_one_first() -> None:
    seen: list[httpx.Request] = []

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(service)) as http:
        await exchange.WebhookPush(http, "https://push.example/", NEW, [OLD]).push(MESSAGE)
        await exchange.WebhookPush(http, "https://push.example/", NEW).push(MESSAGE)
    rotating, settled = seen
    assert rotating.headers["X-Vnehr-Signature"] == ", ".join(
        [_signature(NEW, rotating.content), _signature(OLD, rotating.content)]
    )
    assert settled.headers["X-Vnehr-Signature"] == _signature(NEW, settled.content)


@pytest.mark.parametrize("service_key", [OLD, NEW])
async def test_the_push_service_accepts_the_push_with_either_key_meanwhile(
    settings: Settings, db: Database, service_key: str
) -> None:
    """The VNeID simulator's push service, holding the old key or already the new one."""
    app = create_app(settings.model_copy(update={"push_secret": SecretStr(service_key)}), db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as http:
        target = "https://testserver/sim/vneid/push"
        await exchange.WebhookPush(http, target, NEW, [OLD]).push(MESSAGE)
        # a sender without the service's key is refused (tried again later, nothing lost)
        other = OLD if service_key == NEW else NEW
        with pytest.raises(RuntimeError, match="401"):
            await exchange.WebhookPush(http, target, other).push(MESSAGE)
        pushed = (await http.get("/sim/vneid/_sim/pushed")).json()
        assert [p["personal_id"] for p in pushed] == [MESSAGE.personal_id]
        await app.state.http.aclose()


def test_the_keys_a_push_is_signed_with_follow_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VNEHR_PUSH_SECRET", NEW)
    monkeypatch.setenv("VNEHR_PREVIOUS_PUSH_SECRETS", f"{OLD}, {NEW}")
    given = Settings()
    assert given.push_key == NEW
    assert given.previous_push_keys == (OLD,)  # the current one is not repeated

    # a key derived from the secret: a rotation of the secret keeps the old derived key
    monkeypatch.delenv("VNEHR_PUSH_SECRET")
    monkeypatch.delenv("VNEHR_PREVIOUS_PUSH_SECRETS")
    monkeypatch.setenv("VNEHR_SECRET_KEY", NEW)
    monkeypatch.setenv("VNEHR_PREVIOUS_SECRET_KEYS", OLD)
    rotated = Settings()
    monkeypatch.setenv("VNEHR_SECRET_KEY", OLD)
    monkeypatch.delenv("VNEHR_PREVIOUS_SECRET_KEYS")
    before = Settings()
    assert rotated.push_key != before.push_key
    assert rotated.previous_push_keys == (before.push_key,)
    assert before.previous_push_keys == ()
