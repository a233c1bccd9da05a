"""The timeline row keeps its visit's sensitive categories (D132, amended): a representative of
a person of 16 or 17 gets a page of the book without the database opening the hidden visits,
whatever their number, and the FHIR Patient lists no insurance card seen only on one. A row
that does not know the categories of the version it points to (stored before 0025, or
corrected by the previous release) is judged by opening the visit, as before."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.exchange.test_push_privacy import represent
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_confided import FHIR, _diagnosed
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import identity, records
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry
from vnehr.submissions import synth

_BEGIN = datetime(2026, 1, 5, 9, 0)  # noqa: DTZ001


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the database receives (the app runs on the test's connection)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def _reading(seen: list[str], table: str) -> list[str]:
    return [s for s in seen if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s]


async def _sent(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, *visits: Any
) -> None:
    answer = await send(client, headers, synth.envelope(list(visits), code))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] != "rejected", answer.text


async def _parent_page(client: httpx.AsyncClient, settings: Settings, young: str) -> list[int]:
    client.cookies.clear()
    as_person(client, settings, AN[0])
    page = await client.get("/api/v1/me/timeline", params={"for": young, "limit": 5})
    assert page.status_code == 200, page.text
    assert page.json()["next_cursor"] is None
    return [item["id"] for item in page.json()["items"]]


async def test_a_parents_page_opens_none_of_many_hidden_visits(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[str],
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    plain = _diagnosed(visit_of(code, 1000, _BEGIN, age_group=1), "J45.0")
    hidden = [
        _diagnosed(visit_of(code, 2000 + n, _BEGIN + timedelta(hours=12 * (n + 1)), plain,
                            age_group=1), "F32.2")
        for n in range(30)
    ]  # fmt: skip
    await _sent(client, headers, code, plain, *hidden)
    young = who(plain)
    await sign_in_as(client, session, settings, young)
    own = (await client.get("/api/v1/me/timeline", params={"limit": 100})).json()["items"]
    assert len(own) == 31
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    await born_years_ago(session, young[0], 17)

    statements.clear()
    assert await _parent_page(client, settings, young[0]) == [own[-1]["id"]]
    # one read of the timeline, none of a visit (it was 6 and 30 with the pages judged by
    # opening each row's visit: linear in the book's hidden visits)
    assert len(_reading(statements, "timeline_entry")) == 1
    assert _reading(statements, "visit_version") == []


async def test_a_correction_moves_the_rows_categories(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[str],
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    first = _diagnosed(visit_of(code, 1100, _BEGIN, age_group=1), "J45.0")
    other = _diagnosed(
        visit_of(code, 1101, _BEGIN + timedelta(days=2), first, age_group=1), "J45.0"
    )
    await _sent(client, headers, code, first, other)
    young = who(first)
    await sign_in_as(client, session, settings, young)
    own = [i["id"] for i in (await client.get("/api/v1/me/timeline")).json()["items"]]
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    await born_years_ago(session, young[0], 17)
    assert await _parent_page(client, settings, young[0]) == own

    corrected = _diagnosed(copy.deepcopy(other), "F32.2")
    await _sent(client, headers, code, corrected)
    statements.clear()
    assert await _parent_page(client, settings, young[0]) == own[1:]
    assert _reading(statements, "visit_version") == []

    await _sent(client, headers, code, _diagnosed(copy.deepcopy(other), "J45.1"))
    assert await _parent_page(client, settings, young[0]) == own


def _card(one: synth.SynthVisit) -> str:
    return str(one.tables["XML1"][0]["MA_THE_BHYT"])


async def _cards_of(client: httpx.AsyncClient, person_id: int) -> set[str]:
    patient = await client.get(f"{FHIR}/Patient/{person_id}")
    assert patient.status_code == 200, patient.text
    return {i["value"] for i in patient.json().get("identifier", [])}


@pytest.mark.parametrize(
    "row",
    [
        "kept",
        "not filled",
        "older version",
        "no categories",
        "older classification",
        "older number",
    ],
)
async def test_a_hidden_visit_shows_neither_on_the_page_nor_its_card(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, row: str
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    plain = _diagnosed(visit_of(code, 1, _BEGIN, age_group=1, insured=True), "J45.0")
    secret = _diagnosed(
        visit_of(code, 3, _BEGIN + timedelta(days=3), plain, age_group=1, insured=True), "F32.2"
    )
    assert _card(plain)
    assert _card(secret) not in ("", _card(plain))
    await _sent(client, headers, code, plain, secret)
    young = who(plain)
    await sign_in_as(client, session, settings, young)
    secret_id, plain_id = [
        i["id"] for i in (await client.get("/api/v1/me/timeline")).json()["items"]
    ]
    person_id = await identity.person_id_of(session, young[0])
    assert {_card(plain), _card(secret)} <= await _cards_of(client, person_id)
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    await born_years_ago(session, young[0], 17)
    entry = await records.entry(session, secret_id)
    assert entry is not None
    assert (entry.sensitive_categories, entry.sensitive_version) == ("2|mental", entry.version_id)
    # what a row may hold before the backfill reaches it, or after the previous release
    # corrected the visit: nothing known, or what an older version held
    stale = {
        "kept": {},
        "not filled": {"sensitive_categories": None, "sensitive_version": None},
        "older version": {"sensitive_categories": "2|", "sensitive_version": entry.version_id - 1},
        "no categories": {"sensitive_categories": None},
        # kept by the lists of 0025 as first written (no number), or by an older number
        "older classification": {"sensitive_categories": ""},
        "older number": {"sensitive_categories": "1|"},
    }[row]
    if stale:
        await session.execute(
            update(TimelineEntry).where(TimelineEntry.id == secret_id).values(**stale)
        )
        await session.flush()

    assert await _parent_page(client, settings, young[0]) == [plain_id]
    cards = await _cards_of(client, person_id)
    assert _card(plain) in cards
    assert _card(secret) not in cards
