"""Who is told on the phone, and what happens when some cannot be: the inbox keeps its message
whatever the push service answers; a phone the service refuses for good (no app registered,
404) is given up for that person alone; a push service that is down is tried again for those
not yet told, also after a dead letter is replayed; a newborn without a personal ID has no
phone, and the mother is told all the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import LogCapture

from tests.exchange.test_inbox import AN, BINH, as_person, signed_in
from tests.exchange.test_push import child_with_a_new_visit
from vnehr import demo, exchange
from vnehr.app import create_app
from vnehr.exchange import notifications
from vnehr.exchange.models import DeliveryAttempt, Notification
from vnehr.identity.service import add_newborn
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent, new_event
from vnehr.kit.settings import Settings


@dataclass
class PushService:
    """The app's push service (the VNeID simulator), its fault controls, and the worker's
    consumer that pushes to it, all on one in-process app."""

    http: httpx.AsyncClient
    push: exchange.PushAdapter

    async def faults(self, **faults: Any) -> None:
        answer = await self.http.put("/sim/vneid/_sim/faults", json=faults)
        assert answer.status_code == 200, answer.text

    async def pushed(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.http.get("/sim/vneid/_sim/pushed")).json()
        return found


Network = Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]


@asynccontextmanager
async def push_service(
    settings: Settings, db: Database, network: Network | None = None
) -> AsyncIterator[PushService]:
    """``network``: what lies between vnehr and the push service (a failing proxy)."""
    app = create_app(settings, database=db)
    inner = httpx.ASGITransport(app=app)
    way = network(inner) if network else inner
    async with (
        httpx.AsyncClient(transport=inner, base_url="https://testserver") as http,
        httpx.AsyncClient(transport=way, base_url="https://testserver") as net,
    ):
        push = exchange.WebhookPush(net, settings.push_target or "", settings.push_key)
        yield PushService(http, push)


FAST = exchange.Policy(backoff_seconds=0.001, max_backoff_seconds=0.001)


async def deliver(db: Database, consumers: exchange.Consumers, policy: exchange.Policy) -> None:
    await exchange.deliver_once(db, consumers, policy)
    await asyncio.sleep(0.005)  # past the backoff


async def status_of(session: AsyncSession, topic: str) -> str | None:
    return await session.scalar(select(OutboxEvent.status).where(OutboxEvent.topic == topic))


async def inbox_rows(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


async def test_a_phone_the_service_refuses_is_given_up_alone_and_the_inbox_keeps_the_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, child_name = await child_with_a_new_visit(client, session, settings)
    binh = await signed_in(session, BINH)
    async with push_service(settings, db) as service:
        await service.faults(push_no_phone=[BINH[0]])  # the guardian has no app on a phone
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = await service.pushed()

    # one round: told everyone reachable; the refused phone is not tried again and again
    assert await status_of(session, "visit.accepted") == "delivered"
    assert sorted(p["personal_id"] for p in pushed) == sorted([child_id, AN[0]])
    assert await inbox_rows(session) == 1
    [detail] = await session.scalars(
        select(DeliveryAttempt.detail).where(DeliveryAttempt.target == "inbox")
    )
    assert detail is not None
    assert detail["refused"] == [binh]  # recorded: whom the push service would not take
    # the parent and the guardian both read it in the inbox
    for agent in (AN, BINH):
        as_person(client, settings, agent[0])
        [item] = (await client.get("/api/v1/me/notifications")).json()["items"]
        assert (item["kind"], item["person"]["name"]) == ("visit", child_name)


async def test_a_push_service_that_is_down_keeps_the_inbox_and_tells_everyone_once_later(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, child_name = await child_with_a_new_visit(client, session, settings)
    async with push_service(settings, db) as service:
        await service.faults(push_status=503)
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        policy = exchange.Policy(backoff_seconds=0.001, max_backoff_seconds=0.001, max_attempts=2)
        for _ in range(3):
            await deliver(db, consumers, policy)
        # the pushes are dead letters, but the message is in the inbox already
        assert await status_of(session, "visit.accepted") == "dead"
        assert await inbox_rows(session) == 1
        as_person(client, settings, AN[0])
        [item] = (await client.get("/api/v1/me/notifications")).json()["items"]
        assert item["person"]["name"] == child_name

        await service.faults()  # the push service is back; the operator replays
        async with db.session() as operator:
            assert await exchange.replay(operator) == 1
        await deliver(db, consumers, policy)
        pushed = await service.pushed()

    assert await status_of(session, "visit.accepted") == "delivered"
    assert sorted(p["personal_id"] for p in pushed) == sorted([child_id, AN[0], BINH[0]])
    assert await inbox_rows(session) == 1


async def test_a_replayed_dead_letter_tells_nobody_twice(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, _ = await child_with_a_new_visit(client, session, settings)
    down_for_binh = True

    class ProxyDownForOnePhone(httpx.AsyncBaseTransport):
        """The way to the push service fails (502) for the guardian's pushes only."""

        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await request.aread()
            if down_for_binh and orjson.loads(request.content)["personal_id"] == BINH[0]:
                return httpx.Response(502)
            return await self.inner.handle_async_request(request)

    async with push_service(settings, db, ProxyDownForOnePhone) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        policy = exchange.Policy(backoff_seconds=0.001, max_backoff_seconds=0.001, max_attempts=2)
        for _ in range(3):
            await deliver(db, consumers, policy)
        assert await status_of(session, "visit.accepted") == "dead"
        assert sorted(p["personal_id"] for p in await service.pushed()) == sorted([child_id, AN[0]])
        down_for_binh = False
        async with db.session() as operator:
            assert await exchange.replay(operator) == 1
        await deliver(db, consumers, policy)
        pushed = await service.pushed()

    assert await status_of(session, "visit.accepted") == "delivered"
    assert sorted(p["personal_id"] for p in pushed) == sorted([child_id, AN[0], BINH[0]])


async def test_a_newborn_without_an_id_is_not_pushed_and_the_mother_is(
    session: AsyncSession, settings: Settings, db: Database
) -> None:
    await signed_in(session, AN)  # stands for the mother here
    baby = await add_newborn(
        session, demo.OPERATOR, mother_personal_id=AN[0], birth_date=date(2026, 11, 20),
        sex="female", full_name=None,
    )  # fmt: skip
    session.add(
        new_event(
            "emergency.access",
            f"person:{baby.id}",
            {"person_id": baby.id, "params": {"facility": "01001", "reason": "unconscious"}},
        )
    )
    await session.flush()
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "emergency.access": {"inbox": exchange.event_notifier("emergency", service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = await service.pushed()

    assert await status_of(session, "emergency.access") == "delivered"
    [told] = pushed
    assert told["personal_id"] == AN[0]
    assert told["about"] == {"relation": "parent", "name": baby.full_name}


async def test_a_mistyped_push_address_is_retried_until_a_dead_letter_not_delivered(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    # the push URL is wrong: the server answers 404 to everyone, without VNeID's
    # "recipient_unknown"; nobody's phone is told, so the event must not count as delivered
    child_id, _ = await child_with_a_new_visit(client, session, settings)
    async with push_service(settings, db) as service:
        wrong = exchange.WebhookPush(
            service.http, "https://testserver/sim/vneid/pushh", settings.push_key
        )
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(wrong)}
        }
        policy = exchange.Policy(backoff_seconds=0.001, max_backoff_seconds=0.001, max_attempts=2)
        for _ in range(3):
            await deliver(db, consumers, policy)
        assert await status_of(session, "visit.accepted") == "dead"
        details = (
            await session.scalars(
                select(DeliveryAttempt.detail).where(DeliveryAttempt.target == "inbox")
            )
        ).all()
        assert all(not (d or {}).get("refused") for d in details)  # nobody given up
        assert await inbox_rows(session) == 1

        # the operator corrects the address and replays: every phone is told
        fixed: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        async with db.session() as operator:
            assert await exchange.replay(operator) == 1
        await deliver(db, fixed, policy)
        pushed = await service.pushed()

    assert await status_of(session, "visit.accepted") == "delivered"
    assert sorted(p["personal_id"] for p in pushed) == sorted([child_id, AN[0], BINH[0]])


async def test_a_4xx_about_our_message_is_tried_again_not_a_refusal(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    # 400, 413, 422: the push service did not like the message we sent, not the recipient
    await child_with_a_new_visit(client, session, settings)
    async with push_service(settings, db) as service:
        await service.faults(push_status=422)
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)

    assert await status_of(session, "visit.accepted") == "pending"
    [detail] = await session.scalars(
        select(DeliveryAttempt.detail).where(DeliveryAttempt.target == "inbox")
    )
    assert detail is not None
    assert detail["refused"] == []
    assert detail["pushed"] == []


async def test_when_every_recipient_is_refused_a_warning_says_so(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    child_id, _ = await child_with_a_new_visit(client, session, settings)
    captured = LogCapture()
    monkeypatch.setattr(notifications, "log", structlog.wrap_logger(None, processors=[captured]))
    async with push_service(settings, db) as service:
        await service.faults(push_no_phone=[child_id, AN[0], BINH[0]])
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)

    assert await status_of(session, "visit.accepted") == "delivered"  # each said: no phone
    [line] = [e for e in captured.entries if e["event"] == "push_nobody_reachable"]
    assert line["log_level"] == "warning"
    assert line["refused"] == 3
