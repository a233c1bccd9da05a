"""The citizen's phone is told through the push adapter: a signed HTTP message to the app's
push service (here the VNeID simulator's), naming the citizen by personal ID; a bad signature
is refused; a push service that fails makes the delivery fail and come back (nothing is lost,
nothing is told twice). The parents and guardians of a child are told on their own phones,
about the child by name, not by personal ID; one whose representation ended is not."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, BINH, signed_in
from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_intake import facility_with_token, send
from vnehr import demo, exchange, identity
from vnehr.app import create_app, exchange_handlers
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


async def test_a_new_visit_is_pushed_signed_to_the_app(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    assert settings.push_target == "https://testserver/sim/vneid/push"
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 5, datetime(2026, 10, 2, 9, 0), care_type="01")  # noqa: DTZ001
    await send(client, headers, synth.envelope([one], code))
    await signed_in(session, who(one))  # at level 2: the phone is told in full
    [event] = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "visit.accepted"))
    ).all()

    app = create_app(settings, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as http:
        # the app's own client: calls to our public URL stay in the process
        handlers = exchange_handlers(settings, app.state.http)
        notify = handlers["visit.accepted"]["inbox"]
        await notify(session, event)
        pushed = (await http.get("/sim/vneid/_sim/pushed")).json()
        assert len(pushed) == 1
        assert pushed[0]["personal_id"] == who(one)[0]
        assert pushed[0]["kind"] == "visit"
        assert pushed[0]["title"]["vi"] == "Lượt khám mới trong Sổ sức khỏe điện tử"
        await notify(session, event)  # the same event again: told once
        assert len((await http.get("/sim/vneid/_sim/pushed")).json()) == 1

        forged = await http.post(
            "/sim/vneid/push", json={"personal_id": "x"}, headers={"X-Vnehr-Signature": "sha256=00"}
        )
        assert forged.status_code == 401

    # a push service that is down: the attempt fails and comes back (the worker keeps the
    # inbox row meanwhile, test_push_recipients)
    broken = exchange.WebhookPush(
        httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(503))),
        "https://push.example/",
        "k",
    )
    failing = exchange.event_notifier("paper", broken)
    paper_event = OutboxEvent(
        event_id="e-1",
        topic="paper.issued",
        key="k",
        payload={
            "person_id": event.payload["person_id"],
            "params": {"facility": "x", "number": "1", "kind": {"vi": "a", "en": "b"}},
        },
    )
    with pytest.raises(exchange.DeliveryFailed, match="503"):
        async with session.begin_nested():
            await failing(session, paper_event)


CUONG = ("031054007793", "Lê Văn Cường", "1954-11-20", "male")


async def child_with_a_new_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, str]:
    """A child's visit arrives; An (parent) and Bình (guardian) represent the child today,
    Cường did until 2024. The child's personal ID and name."""
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 7, datetime(2026, 10, 3, 9, 0), care_type="01", age_group=0)  # noqa: DTZ001
    await send(client, headers, synth.envelope([one], code))
    child_id, child_name, _, _ = who(one)
    for person in (AN, BINH, CUONG):
        await signed_in(session, person)
    for agent, relation, since, until in (
        (AN, "parent", date(2020, 1, 1), None),
        (BINH, "guardian", date(2025, 6, 1), None),
        (CUONG, "parent", date(2020, 1, 1), date(2024, 1, 1)),  # ended
    ):
        await identity.add_representative(
            session, demo.OPERATOR, agent_personal_id=agent[0], subject_person=child_id,
            relation=relation, valid_from=since, valid_to=until,
        )  # fmt: skip
    await session.flush()
    return child_id, child_name


async def test_the_representatives_phones_are_told_of_a_childs_new_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, child_name = await child_with_a_new_visit(client, session, settings)
    [event] = (
        await session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "visit.accepted"))
    ).all()
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as http:
        notify = exchange_handlers(settings, app.state.http)["visit.accepted"]["inbox"]
        await notify(session, event)
        pushed = (await http.get("/sim/vneid/_sim/pushed")).json()

    by_phone = {p["personal_id"]: p for p in pushed}
    assert len(pushed) == 3  # the child, both representatives; not Cường, whose time ended
    assert set(by_phone) == {child_id, AN[0], BINH[0]}
    assert by_phone[child_id]["about"] is None  # the child's own
    parent, guardian = by_phone[AN[0]], by_phone[BINH[0]]
    assert parent["about"] == {"relation": "parent", "name": child_name}
    assert guardian["about"] == {"relation": "guardian", "name": child_name}
    assert parent["kind"] == "visit"
    assert parent["title"]["vi"] == f"Lượt khám mới trong Sổ sức khỏe điện tử của {child_name}"
    assert parent["title"]["en"] == f"New visit in {child_name}'s electronic health book"
    assert parent["body"] == guardian["body"] != by_phone[child_id]["body"]  # not "your" book
    assert child_id not in orjson.dumps(parent).decode()  # the child is named, not identified


async def test_a_push_that_fails_midway_tells_nobody_twice(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    child_id, _ = await child_with_a_new_visit(client, session, settings)
    app = create_app(settings, database=db)
    inner = httpx.ASGITransport(app=app)
    calls = 0

    class FlakyNetwork(httpx.AsyncBaseTransport):
        """The second push of all is lost on the way (503 from a proxy)."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls == 2:
                return httpx.Response(503)
            return await inner.handle_async_request(request)

    async with httpx.AsyncClient(transport=FlakyNetwork(), base_url="https://testserver") as net:
        push = exchange.WebhookPush(net, settings.push_target or "", settings.push_key)
        consumers: exchange.Consumers = {"visit.accepted": {"inbox": exchange.visit_notifier(push)}}
        policy = exchange.Policy(backoff_seconds=0.01)
        for _ in range(20):
            await exchange.deliver_once(db, consumers, policy)
            left = await session.scalar(
                select(OutboxEvent.status).where(OutboxEvent.topic == "visit.accepted")
            )
            if left == "delivered":
                break
            await asyncio.sleep(0.02)
    async with httpx.AsyncClient(transport=inner, base_url="https://testserver") as http:
        pushed = (await http.get("/sim/vneid/_sim/pushed")).json()

    assert left == "delivered"
    assert calls >= 4  # the failed round, then the rest
    told = sorted(p["personal_id"] for p in pushed)
    assert told == sorted([child_id, AN[0], BINH[0]])  # each once, none twice
