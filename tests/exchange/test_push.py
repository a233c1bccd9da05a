"""The citizen's phone is told through the push adapter: a signed HTTP message to the app's
push service (here the VNeID simulator's), naming the citizen by personal ID; a bad signature
is refused; a push service that fails makes the delivery fail and come back (nothing is lost,
nothing is told twice)."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange
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

    # a push service that refuses: the attempt fails (and its inbox row goes with it)
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
    with pytest.raises(RuntimeError, match="503"):
        async with session.begin_nested():
            await failing(session, paper_event)
