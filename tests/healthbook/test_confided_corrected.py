"""A visit the facility corrects into a sensitive category, and a classification that changes:
what a representative of a person of 16 or more is told and shown then (D132 as amended)."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.exchange.test_push_privacy import represent
from tests.exchange.test_push_recipients import FAST, deliver, push_service
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_confided import _diagnosed
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange, identity, records
from vnehr.exchange.models import Notification
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry
from vnehr.submissions import synth

_BEGIN = datetime(2026, 10, 1, 9, 0)  # noqa: DTZ001


async def _told(settings: Settings, db: Database) -> list[dict[str, Any]]:
    """Run the inbox's consumers of visits and papers once: what the phones were pushed."""
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)},
            "paper.issued": {"inbox": exchange.event_notifier("paper", service.push)},
        }
        await deliver(db, consumers, FAST)
        return await service.pushed()


async def _inbox(
    client: httpx.AsyncClient, settings: Settings, personal_id: str
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    as_person(client, settings, personal_id)
    inbox = (await client.get("/api/v1/me/notifications")).json()
    return [(i["kind"], i["params"]) for i in inbox["items"]], inbox["unread"]


async def _seventeen_with_an_as_parent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    young: tuple[str, str, str, str],
) -> None:
    """The person signed in with VNeID once, 17 years old, AN their parent."""
    await sign_in_as(client, session, settings, young)
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    await born_years_ago(session, young[0], 17)


async def _a_visit_of_a_17_year_old(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    seed: int,
    diagnosis: str,
    **kw: Any,
) -> tuple[str, dict[str, str], synth.SynthVisit, tuple[str, str, str, str]]:
    """A visit for ``diagnosis`` of a young person of 17, AN their parent: the facility's
    code and headers, the visit, the person."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    first = _diagnosed(visit_of(code, seed, _BEGIN, age_group=1, **kw), diagnosis)
    answer = await send(client, headers, synth.envelope([first], code))
    assert answer.status_code == 201, answer.text
    young = who(first)
    await _seventeen_with_an_as_parent(client, session, settings, young)
    return code, headers, first, young


async def _corrected(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, visit: synth.SynthVisit, to: str
) -> None:
    answer = await send(
        client, headers, synth.envelope([_diagnosed(copy.deepcopy(visit), to)], code)
    )
    assert answer.status_code == 201, answer.text


async def test_a_parent_is_not_told_of_a_visit_corrected_to_sensitive_before_the_notice(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """Sent as a headache, corrected to a depression before the notifier ran: the parent's
    phone hears nothing and the inbox keeps nothing; the young person is told."""
    code, headers, first, young = await _a_visit_of_a_17_year_old(
        client,
        session,
        settings,
        92,
        "R51",  # a headache
    )
    await _corrected(client, headers, code, first, "F32.2")
    pushed = await _told(settings, db)
    assert [p for p in pushed if p["personal_id"] == AN[0]] == []
    assert [p["kind"] for p in pushed if p["personal_id"] == young[0]].count("visit") == 1
    assert await _inbox(client, settings, AN[0]) == ([], 0)
    own, _ = await _inbox(client, settings, young[0])
    assert [kind for kind, _ in own].count("visit") == 1


async def test_a_notice_told_before_a_correction_to_sensitive_leaves_the_parents_inbox(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """Told of a headache, then the visit is corrected to a depression: the notice goes with
    the visit; corrected back to asthma, it is there again. The young person keeps it."""
    code, headers, first, young = await _a_visit_of_a_17_year_old(
        client, session, settings, 91, "R51", appointment=False
    )
    pushed = await _told(settings, db)
    assert [p["kind"] for p in pushed if p["personal_id"] == AN[0]] == ["visit"]
    shown, unread = await _inbox(client, settings, AN[0])
    assert ([kind for kind, _ in shown], unread) == (["visit"], 1)

    await _corrected(client, headers, code, first, "F32.2")
    assert [p for p in await _told(settings, db) if p["personal_id"] == AN[0]] == []
    assert await _inbox(client, settings, AN[0]) == ([], 0)
    as_person(client, settings, AN[0])
    assert (await client.get("/portal")).text.count(code) == 0
    own, unread = await _inbox(client, settings, young[0])
    assert ([kind for kind, _ in own], unread) == (["visit"], 1)

    await _corrected(client, headers, code, first, "J45.0")
    shown, unread = await _inbox(client, settings, AN[0])
    assert ([kind for kind, _ in shown], unread) == (["visit"], 1)


@pytest.mark.parametrize("row", ["not filled", "older version", "older classification"])
async def test_a_notice_whose_visit_cannot_be_judged_is_not_shown_to_the_parent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    row: str,
) -> None:
    """A notice stored before the notices were marked (D132), of a depression: the timeline
    row that does not know its version's categories (before the backfill reaches it) does not
    let the notice through."""
    code, headers = await facility_with_token(client, session, settings)
    secret = _diagnosed(visit_of(code, 93, _BEGIN, age_group=1), "F32.2")
    answer = await send(client, headers, synth.envelope([secret], code))
    assert answer.status_code == 201, answer.text
    young = who(secret)
    await sign_in_as(client, session, settings, young)
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    person_id = await identity.person_id_of(session, young[0])
    key = secret.tables["XML1"][0]["MA_LK"]
    entry = await records.entry_by_key(session, code, key)
    assert entry is not None
    session.add(
        Notification(
            event_id="before-d132",
            person_id=person_id,
            kind="visit",
            params={"facility": code, "visit_key": key},
            created_at=utcnow(),
        )
    )
    stale = {
        "not filled": {"sensitive_categories": None, "sensitive_version": None},
        "older version": {"sensitive_categories": "", "sensitive_version": entry.version_id - 1},
        "older classification": {"sensitive_categories": ""},
    }[row]
    await session.execute(update(TimelineEntry).where(TimelineEntry.id == entry.id).values(**stale))
    await session.flush()
    await born_years_ago(session, young[0], 15)
    shown, unread = await _inbox(client, settings, AN[0])
    assert (len(shown), unread) == (1, 1)  # a younger child's parent reads it
    await born_years_ago(session, young[0], 17)
    assert await _inbox(client, settings, AN[0]) == ([], 0)
    as_person(client, settings, AN[0])
    assert (await client.post("/api/v1/me/notifications/read-all")).json() == {"marked": 0}
    own, unread = await _inbox(client, settings, young[0])
    assert (len(own), unread) == (1, 1)


async def test_a_paper_notice_leaves_the_parents_inbox_when_its_visit_is_corrected(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A re-exam appointment issued with a headache visit, told to the parent; the visit
    corrected to a depression takes the paper's notice with it."""
    code, headers, first, young = await _a_visit_of_a_17_year_old(
        client, session, settings, 94, "R51", appointment=True
    )
    await _told(settings, db)
    shown, _ = await _inbox(client, settings, AN[0])
    assert "paper" in [kind for kind, _ in shown]
    await _corrected(client, headers, code, first, "F32.2")
    await _told(settings, db)
    assert await _inbox(client, settings, AN[0]) == ([], 0)
    own, _ = await _inbox(client, settings, young[0])
    assert "paper" in [kind for kind, _ in own]


async def test_a_row_kept_by_an_older_classification_is_judged_again(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HIV counselling (Z71.7) stored while the lists did not name it (as before D79): the row
    says "none" for the visit's version, but by a classification that is no longer ours. The
    parent's page opens the visit and leaves it out; the backfill classifies it again."""
    from vnehr.records import sensitive

    code, headers = await facility_with_token(client, session, settings)
    plain = _diagnosed(visit_of(code, 95, _BEGIN, age_group=1), "J45.0")
    hiv = _diagnosed(visit_of(code, 96, _BEGIN.replace(day=5), plain, age_group=1), "Z71.7")
    monkeypatch.setattr(sensitive, "_HIV", tuple(c for c in sensitive._HIV if c != "Z717"))
    monkeypatch.setattr(sensitive, "CLASSIFICATION", 1, raising=False)
    answer = await send(client, headers, synth.envelope([plain, hiv], code))
    assert answer.status_code == 201, answer.text
    monkeypatch.undo()
    assert "hiv" in records.sensitive_categories(hiv.tables)
    young = who(plain)
    await sign_in_as(client, session, settings, young)
    own = [i["id"] for i in (await client.get("/api/v1/me/timeline")).json()["items"]]
    assert len(own) == 2
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    await born_years_ago(session, young[0], 17)
    as_person(client, settings, AN[0])

    async def parent_page() -> list[int]:
        page = await client.get("/api/v1/me/timeline", params={"for": young[0]})
        assert page.status_code == 200, page.text
        return [i["id"] for i in page.json()["items"]]

    assert await parent_page() == own[1:]
    assert (await client.get(f"/api/v1/me/visits/{own[0]}")).status_code == 404
    await session.flush()
    filled = await records.fill_insurance_cards(db)
    assert filled.filled >= 1
    session.expire_all()
    entry = await records.entry(session, own[0])
    assert entry is not None
    assert records.row_categories(entry) == {"hiv"}
    assert await parent_page() == own[1:]
