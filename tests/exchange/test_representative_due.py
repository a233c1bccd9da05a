"""A representation recorded to begin on a later day, or an end set for a later day, is told
again on that day (D247): the person (and those who represent them then) that it begins or
that the end takes effect, the agent that they act, or no longer act, from today. The notices
wait in the outbox until 07:00 of that day, Vietnam time, on either bus; one whose link was
withdrawn or ended otherwise since tells nothing."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import as_person
from tests.exchange.test_push_recipients import FAST, push_service
from tests.identity.test_api import AN, DUNG, HUNG
from tests.identity.test_end_representative import (
    DEPARTMENT,
    _family,
    _link,
    _resident,
    inbox_of,
)
from tests.identity.test_service import (
    CUONG,
    HOAN_KIEM,
    KHANG,
    NEWBORN_DAY,
    NEWBORN_ID,
    enrol,
    newborn,
    person,
    resident,
    ward_officer,
)
from vnehr import exchange, identity
from vnehr.app import exchange_handlers
from vnehr.exchange.models import Notification
from vnehr.identity import service
from vnehr.identity.models import Representative
from vnehr.kit.clock import VIETNAM, today_in_vietnam, utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent, new_event
from vnehr.kit.settings import Settings

TODAY = today_in_vietnam()
DUE = identity.DUE_TOPIC
KINDS = {kind for pair in identity.DUE_KINDS.values() for kind in pair}


def _day(day: Any) -> str:
    return day.strftime("%d/%m/%Y")


async def _deliver(settings: Settings, db: Database) -> list[dict[str, Any]]:
    """Run every topic's outbox through the app's own wiring, as a worker does today; what
    the phones were told of the links' days."""
    async with push_service(settings, db) as pushes:
        wired = exchange_handlers(settings, pushes.http)
        while await exchange.deliver_once(db, wired, FAST):
            pass
        return [p for p in await pushes.pushed() if p["kind"] in KINDS]


async def _the_day_comes(db: Database, day: Any = None) -> None:
    """The morning of the day the notices wait for (their hour moved to now); ``day``: of
    that day, those of later days still wait."""
    until = _morning(day) if day is not None else datetime.max.replace(tzinfo=UTC)
    async with db.session() as session:
        await session.execute(
            update(OutboxEvent)
            .where(
                OutboxEvent.topic == DUE,
                OutboxEvent.status == "pending",
                OutboxEvent.next_attempt_at <= until,
            )
            .values(
                next_attempt_at=utcnow() - timedelta(seconds=1),
                created_at=utcnow() - timedelta(seconds=1),
            )
        )


async def _waiting(db: Database) -> list[OutboxEvent]:
    async with db.session() as session:
        found = select(OutboxEvent).where(OutboxEvent.topic == DUE).order_by(OutboxEvent.id)
        return [e for e in await session.scalars(found) if e.status == "pending"]


async def _inbox(client: httpx.AsyncClient, settings: Settings, personal_id: str) -> list[Any]:
    return await inbox_of(client, settings, personal_id, KINDS)


def _morning(day: Any) -> datetime:
    return datetime.combine(day, time(7), tzinfo=VIETNAM).astimezone(UTC)


async def test_a_guardian_recorded_from_a_later_day_is_told_on_that_day(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    await _family(session)
    await _resident(session, HUNG)
    begins = TODAY + timedelta(days=12)
    await _link(session, HUNG, KHANG, "guardian", begins)
    waiting = await _waiting(db)
    assert [e.payload["kind"] for e in waiting] == ["representative_began", "representative_acting"]
    assert {e.next_attempt_at for e in waiting} == {_morning(begins)}  # 07:00 that day, Hà Nội

    # today: told that it was recorded (D238's notice), not that it began
    assert await _deliver(settings, db) == []
    assert len(await _waiting(db)) == 2
    assert await _inbox(client, settings, KHANG[0]) == []

    await _the_day_comes(db)
    pushed = await _deliver(settings, db)
    assert await _waiting(db) == []
    assert sorted((p["personal_id"], p["kind"]) for p in pushed) == sorted(
        [
            (KHANG[0], "representative_began"),
            (AN[0], "representative_began"),  # Khang's parents, about him
            (DUNG[0], "representative_began"),
            (HUNG[0], "representative_acting"),  # the guardian, in his own words
        ]
    )
    [told] = await _inbox(client, settings, KHANG[0])
    assert told["title"]["vi"] == f"Từ hôm nay {HUNG[1]} là người đại diện của bạn"
    assert told["title"]["en"] == f"From today {HUNG[1]} acts for you"
    for language in ("vi", "en"):
        assert _day(begins) in told["body"][language]
        assert "Hà Nội" in told["body"][language]  # the department that recorded it
    assert "người giám hộ" in told["body"]["vi"]
    as_person(client, settings, KHANG[0])  # on his portal it leads to who acts for him
    portal = (await client.get("/portal")).text
    client.cookies.clear()
    assert f'<a href="/portal#representatives">{told["title"]["vi"]}</a>' in portal
    mine = [
        m for m in await _inbox(client, settings, HUNG[0]) if m["person"]["personal_id"] == HUNG[0]
    ]
    [acting] = mine
    assert acting["title"]["vi"] == f"Từ hôm nay bạn là người đại diện của {KHANG[1]}"
    assert "Sổ sức khỏe điện tử của " + KHANG[1] in acting["body"]["vi"]
    [about] = [
        m for m in await _inbox(client, settings, AN[0]) if m["person"]["personal_id"] == KHANG[0]
    ]
    assert about["title"]["vi"] == f"Từ hôm nay {HUNG[1]} là người đại diện của {KHANG[1]}"
    words = str([(p["title"], p["body"]) for p in pushed])
    assert KHANG[0] not in words  # a phone is told names, not IDs
    assert HUNG[0] not in words

    # delivered twice (a worker that died after pushing): nobody is told twice
    async with db.session() as session_:
        await session_.execute(
            update(OutboxEvent).where(OutboxEvent.topic == DUE).values(status="pending")
        )
    assert await _deliver(settings, db) == []


async def test_a_link_withdrawn_before_its_day_tells_nothing_that_day(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    await _family(session)
    await _resident(session, HUNG)
    link = await _link(session, HUNG, KHANG, "guardian", TODAY + timedelta(days=3))
    await service.end_representative(
        session, DEPARTMENT, link, ends_on=None, reason="Ghi nhầm người giám hộ"
    )  # withdrawn: it never takes effect
    await _the_day_comes(db)
    assert await _deliver(settings, db) == []
    assert await _waiting(db) == []  # delivered: nobody to tell
    assert await _inbox(client, settings, HUNG[0]) == []
    assert await _inbox(client, settings, KHANG[0]) == []


async def test_an_end_set_for_a_later_day_is_told_when_it_takes_effect(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    an_link, dung_link = await _family(session)
    ends = TODAY + timedelta(days=30)
    await service.end_representative(
        session, DEPARTMENT, an_link, ends_on=ends, reason="Tòa án hạn chế quyền của cha"
    )
    # the same for Dung, then an earlier end (today) replaces it: her day tells nothing
    await service.end_representative(
        session, DEPARTMENT, dung_link, ends_on=ends, reason="Tòa án hạn chế quyền của mẹ"
    )
    await service.end_representative(
        session, DEPARTMENT, dung_link, ends_on=None, reason="Tòa án hạn chế quyền của mẹ"
    )
    waiting = await _waiting(db)
    assert len(waiting) == 4
    assert {e.next_attempt_at for e in waiting} == {_morning(ends)}
    await _deliver(settings, db)  # today's notices of the ends
    assert len(await _waiting(db)) == 4

    await _the_day_comes(db)
    pushed = await _deliver(settings, db)
    assert sorted((p["personal_id"], p["kind"]) for p in pushed) == sorted(
        [
            (KHANG[0], "representative_end_effective"),
            (AN[0], "representative_release_effective"),
        ]
    )
    [told] = await _inbox(client, settings, KHANG[0])
    assert told["title"]["vi"] == f"Từ hôm nay {AN[1]} không còn là người đại diện của bạn"
    assert _day(ends) in told["body"]["vi"]
    [released] = [
        m for m in await _inbox(client, settings, AN[0]) if m["person"]["personal_id"] == AN[0]
    ]
    assert released["title"]["en"] == f"From today you no longer act for {KHANG[1]}"
    assert await _inbox(client, settings, DUNG[0]) == []


async def test_the_metrics_count_a_held_notice_apart_and_not_as_late(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """An operator's alert on the outbox's lag must not fire for a notice held a month on
    purpose, nor ``vnehr outbox list`` call it a backlog; once its morning has come, it is late
    from that morning. An event a round has claimed (its next try pushed a minute ahead) is
    still pending, and late from when it was written."""
    an_link, _ = await _family(session)
    await service.end_representative(
        session, DEPARTMENT, an_link, ends_on=TODAY + timedelta(days=30), reason="Tòa án"
    )
    await _deliver(settings, db)  # today's notices
    metrics = (await client.get("/metrics")).text
    assert 'vnehr_outbox_events{status="held"} 2.0' in metrics
    assert 'vnehr_outbox_events{status="pending"}' not in metrics
    assert "vnehr_outbox_oldest_pending_seconds 0.0" in metrics
    async with db.read_session() as session_:
        assert (await exchange.depth(session_)).get("held") == 2
        assert "pending" not in await exchange.depth(session_)

    # a round's claim on an event written ten minutes ago: pending, ten minutes late
    claimed = new_event("visit.accepted", "01001/K1", {})
    claimed.created_at = utcnow() - timedelta(minutes=10)
    claimed.next_attempt_at = utcnow() + timedelta(seconds=60)
    async with db.session() as session_:
        session_.add(claimed)
    metrics = (await client.get("/metrics")).text
    assert 'vnehr_outbox_events{status="pending"} 1.0' in metrics
    assert 'vnehr_outbox_events{status="held"} 2.0' in metrics
    assert 590 < _lag(metrics) < 700
    async with db.session() as session_:
        await session_.delete(await session_.merge(claimed))

    async with db.session() as session_:  # the notices' morning came an hour ago
        hour_ago = utcnow() - timedelta(hours=1)
        await session_.execute(
            update(OutboxEvent)
            .where(OutboxEvent.topic == DUE)
            .values(next_attempt_at=hour_ago, created_at=hour_ago)
        )
    metrics = (await client.get("/metrics")).text
    assert 'vnehr_outbox_events{status="pending"} 2.0' in metrics
    assert 'status="held"' not in metrics
    assert 3500 < _lag(metrics) < 3700  # an hour, not a month


def _lag(metrics: str) -> float:
    [line] = [x for x in metrics.splitlines() if x.startswith("vnehr_outbox_oldest_")]
    return float(line.split()[-1])


async def test_an_earlier_end_set_after_a_later_one_is_told_on_its_own_day(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """The later day's notices stay held for a month; the earlier day's do not wait for them."""
    an_link, _ = await _family(session)
    later, sooner = TODAY + timedelta(days=30), TODAY + timedelta(days=10)
    for day in (later, sooner):
        await service.end_representative(
            session, DEPARTMENT, an_link, ends_on=day, reason="Tòa án hạn chế quyền của cha"
        )
    await _deliver(settings, db)
    assert len(await _waiting(db)) == 4

    await _the_day_comes(db, sooner)
    pushed = await _deliver(settings, db)
    assert sorted((p["personal_id"], p["kind"]) for p in pushed) == sorted(
        [
            (KHANG[0], "representative_end_effective"),
            (DUNG[0], "representative_end_effective"),  # the other parent, about Khang
            (AN[0], "representative_release_effective"),
        ]
    )
    [told] = await _inbox(client, settings, KHANG[0])
    assert _day(sooner) in told["body"]["vi"]
    assert _day(later) not in told["body"]["vi"]
    assert len(await _waiting(db)) == 2  # the later day's, which will tell nothing

    await _the_day_comes(db)
    assert await _deliver(settings, db) == []
    assert await _waiting(db) == []


async def test_a_newborn_merged_before_the_day_is_told_as_the_real_child(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """The father recorded for the provisional newborn from a later day; meanwhile the child
    got a personal ID and was merged into the record the ward office had made. On the day,
    the notice is the real child's, and the father reads the child's name as it is now."""
    await resident(session, DUNG)
    await _resident(session, HUNG)
    child = await newborn(session)
    begins = TODAY + timedelta(days=5)
    await service.add_representative(
        session, DEPARTMENT, agent_personal_id=HUNG[0], subject_person=child.id,
        relation="parent", valid_from=begins, valid_to=None,
    )  # fmt: skip
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    real, _ = await enrol(
        session, officer, (NEWBORN_ID, "Phạm Minh Quân", NEWBORN_DAY.isoformat(), "male")
    )
    await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)
    await _deliver(settings, db)

    await _the_day_comes(db)
    await _deliver(settings, db)
    async with db.read_session() as session_:
        told = {
            (n.person_id, n.kind)
            for n in await session_.scalars(
                select(Notification).where(Notification.kind.in_(KINDS))
            )
        }
    hung = await identity.person_id_of(session, HUNG[0])
    assert told == {(real.id, "representative_began"), (hung, "representative_acting")}
    [acting] = await _inbox(client, settings, HUNG[0])
    assert acting["title"]["vi"] == "Từ hôm nay bạn là người đại diện của Phạm Minh Quân"


async def test_a_notice_days_late_is_not_told(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A worker stopped for days: "from today" would be untrue, and the day was told when the
    end was recorded. A day late is still told."""
    an_link, dung_link = await _family(session)
    for link_id in (an_link, dung_link):
        await service.end_representative(
            session, DEPARTMENT, link_id, ends_on=TODAY + timedelta(days=3), reason="Tòa án"
        )
    await _deliver(settings, db)
    # as if An's end took effect three days ago, Dung's yesterday, and nobody had delivered
    # their notices since
    days = {an_link: TODAY - timedelta(days=3), dung_link: TODAY - timedelta(days=1)}
    async with db.session() as session_:
        for link_id, day in days.items():
            link = await session_.get(Representative, link_id)
            assert link is not None
            link.valid_to = day - timedelta(days=1)
        for event in await session_.scalars(select(OutboxEvent).where(OutboxEvent.topic == DUE)):
            day = days[event.payload["representative_id"]]
            event.payload = {**event.payload, "day": day.isoformat()}
    await _the_day_comes(db)
    pushed = await _deliver(settings, db)
    assert await _waiting(db) == []
    assert sorted((p["personal_id"], p["kind"]) for p in pushed) == sorted(
        [(KHANG[0], "representative_end_effective"), (DUNG[0], "representative_release_effective")]
    )
    [told] = await _inbox(client, settings, KHANG[0])
    assert DUNG[1] in told["title"]["vi"]
