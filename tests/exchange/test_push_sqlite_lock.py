"""On SQLite (the embedded default) a write transaction locks the whole file. The citizen's
inbox consumer pushed to the app's push service inside the transaction that records the
round's attempts, so a slow push service made every intake submission wait for it (or fail
with "database is locked" past the busy timeout). The push now goes with no transaction open,
like the BHXH portal's calls (D129), and the inbox row and the attempt are recorded after it."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from sqlalchemy import select

from tests.exchange.test_round_sqlite_lock import (  # noqa: F401  (the fixture)
    Hub,
    another_writer,
    hub,
    portal_received,
    wait_for_the_lock_at_most,
)
from vnehr import exchange
from vnehr.exchange.models import BhxhReceipt, DeliveryAttempt, Notification
from vnehr.exchange.worker import _claim
from vnehr.kit.outbox import OutboxEvent

LATENCY = 3.0  # seconds the push service takes to answer
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # (the hub's)


class PushService(httpx.AsyncBaseTransport):
    """The app's push service, answering each push after ``latency`` seconds (or with
    ``status``), telling when a push came in and when its answer went back."""

    def __init__(self, latency: float = LATENCY, status: int = 200) -> None:
        self.latency, self.status = latency, status
        self.received: list[dict[str, object]] = []
        self.sent = asyncio.Event()
        self.answered = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.received.append(orjson.loads(await request.aread()))
        self.sent.set()
        await asyncio.sleep(self.latency)
        self.answered.set()
        return httpx.Response(self.status, json={})


def inbox_only(push: exchange.PushAdapter) -> exchange.Consumers:
    return {"visit.accepted": {"inbox": exchange.visit_notifier(push)}}


def webhook(service: PushService) -> exchange.WebhookPush:
    return exchange.WebhookPush(httpx.AsyncClient(transport=service), "https://push.example/", "k")


async def test_a_submission_is_stored_while_the_push_service_takes_its_time(
    hub: Hub,  # noqa: F811
) -> None:
    await hub.submit(1)
    service = PushService()
    consumers = inbox_only(webhook(service))
    delivering = asyncio.create_task(exchange.deliver_once(hub.db, consumers, exchange.Policy()))
    await asyncio.wait_for(service.sent.wait(), timeout=LATENCY * 3)
    # the push service has the message and takes LATENCY seconds to answer; another worker
    # takes nothing the first claimed, and does not wait for it
    assert await exchange.deliver_once(hub.db, consumers, exchange.Policy()) == 0
    assert not service.answered.is_set(), "the second worker waited for the push"
    # a facility sends meanwhile
    started = time.monotonic()
    second = await hub.submit(2)
    stored_while_waiting = not service.answered.is_set()
    assert second.json()["status"] == "accepted"
    assert stored_while_waiting, f"the submission waited {time.monotonic() - started:.1f} s"
    assert await delivering == 1
    # the push answered: the inbox row and the attempt are recorded, the phone told once
    assert len(service.received) == 1
    assert await hub.count(Notification) == 1
    inbox = (DeliveryAttempt.target == "inbox", DeliveryAttempt.outcome == "delivered")
    assert await hub.count(DeliveryAttempt, *inbox) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1


async def test_a_failed_push_is_tried_again_and_the_inbox_keeps_its_row(
    hub: Hub,  # noqa: F811
) -> None:
    await hub.submit(1)
    service = PushService(latency=0, status=503)
    consumers = inbox_only(webhook(service))
    policy = exchange.Policy(backoff_seconds=0.01, max_backoff_seconds=0.01)
    assert await exchange.deliver_once(hub.db, consumers, policy) == 1
    # the push failed: the inbox shows the message all the same (D99), the event comes back
    assert await hub.count(Notification) == 1
    failed = (DeliveryAttempt.target == "inbox", DeliveryAttempt.outcome == "failed")
    assert await hub.count(DeliveryAttempt, *failed) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "pending") == 1
    service.status = 200
    await asyncio.sleep(0.05)
    assert await exchange.deliver_once(hub.db, consumers, policy) == 1
    assert len(service.received) == 2  # the failed push, then the one that went through
    assert await hub.count(Notification) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1
    # delivered: a later round tells nobody again
    assert await exchange.deliver_once(hub.db, consumers, policy) == 0
    assert len(service.received) == 2


async def test_a_refused_recipient_is_given_up_and_the_event_delivered(
    hub: Hub,  # noqa: F811
) -> None:
    await hub.submit(1)

    def no_phone(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "recipient_unknown"})

    push = exchange.WebhookPush(
        httpx.AsyncClient(transport=httpx.MockTransport(no_phone)), "https://push.example/", "k"
    )
    assert await exchange.deliver_once(hub.db, inbox_only(push), exchange.Policy()) == 1
    assert await hub.count(Notification) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1
    async with hub.db.read_session() as session:
        detail = await session.scalar(
            select(DeliveryAttempt.detail).where(DeliveryAttempt.target == "inbox")
        )
    assert detail["pushed"] == []
    assert len(detail["refused"]) == 1


async def test_the_claims_of_a_worker_that_died_come_back_and_are_pushed(
    hub: Hub,  # noqa: F811
) -> None:
    await hub.submit(1)
    service = PushService(latency=0)
    consumers = inbox_only(webhook(service))
    policy = exchange.Policy(claim_seconds=1.0)
    # a worker claims the event and dies before it pushes (nothing released)
    async with hub.db.session() as session:
        assert await _claim(session, policy, limit=50) is not None
    assert await exchange.deliver_once(hub.db, consumers, policy) == 0  # still claimed
    assert service.received == []
    await asyncio.sleep(1.2)
    assert await exchange.deliver_once(hub.db, consumers, policy) == 1
    assert len(service.received) == 1
    assert await hub.count(Notification) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1


async def test_a_claim_run_short_after_the_portal_keeps_its_answer_and_pushes_next_round(
    hub: Hub,  # noqa: F811
) -> None:
    await wait_for_the_lock_at_most(hub, 0.5)
    await hub.submit(1)
    hub.portal.faults.latency_seconds = 2.2
    service = PushService(latency=0)
    consumers: exchange.Consumers = {
        "visit.accepted": {
            "bhxh": exchange.bhxh_consumer(hub.bhxh),
            "inbox": exchange.visit_notifier(webhook(service)),
        }
    }
    # renewed after 1 s; one call at a time: the push waits for the portal's answer
    policy = exchange.Policy(claim_seconds=3.0, concurrency=1)
    delivering = asyncio.create_task(exchange.deliver_once(hub.db, consumers, policy))
    await asyncio.wait_for(hub.transport.sent.wait(), timeout=10)
    await asyncio.sleep(0.5)
    # another writer holds the file through the renewal: when the portal answers, less than
    # a renewal period of the claim is left, and the round pushes nothing more
    holder = await another_writer(hub.path, 2.0)
    await delivering
    await holder
    assert service.received == []
    # the portal's answer is recorded all the same: the file is not sent again
    assert await hub.count(BhxhReceipt) == 1
    hub.portal.faults.latency_seconds = 0
    assert await exchange.deliver_once(hub.db, consumers, policy) == 1
    assert await portal_received(hub) == 1
    assert len(service.received) == 1
    assert await hub.count(Notification) == 1
    assert await hub.count(OutboxEvent, OutboxEvent.status == "delivered") == 1
