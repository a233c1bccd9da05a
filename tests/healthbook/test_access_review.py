"""Who looked, with what the review found: each entry of the access log made under an
emergency access says whether that access awaits its review or was found justified or
unjustified, and when; an ordinary read has no review. A representative of a person of 16 or
more reads the finding, never the facility (D109). A page of many emergency accesses costs one
look-up of their reviews."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.exchange.test_inbox import BINH, as_person
from tests.exchange.test_push_privacy import represent
from tests.healthbook.test_access import born_years_ago
from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DEPARTMENT, DOCTOR, OTHER_DOCTOR, world
from tests.sharing.test_emergency_review import _break_glass
from tests.sharing.test_emergency_review_told import _named, _review
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.settings import Settings
from vnehr.sharing.models import EmergencyAccess

LOG = "/api/v1/me/access-log"


def _emergency_id(entry: dict[str, Any]) -> str | None:
    return entry["what"].rpartition("/")[2] if entry["action"] == "emergency.opened" else None


async def test_an_emergency_read_shows_pending_then_what_the_review_found(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"
    at_consented = {"role": "clinician", "facility_code": consented}
    at_other = {"role": "clinician", "facility_code": other}
    await sign_in_as(client, session, settings, patient)
    made = await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    assert made.status_code == 201, made.text
    # an ordinary read, under the patient's consent
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    assert (await client.get(record)).json()["basis"] == "consent"
    # two emergency accesses, each opened and then read under
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    unjustified = await _break_glass(client, patient[0])
    assert (await client.get(record)).json()["basis"] == "emergency"
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    justified = await _break_glass(client, patient[0])
    assert (await client.get(record)).json()["basis"] == "emergency"

    await sign_in_as(client, session, settings, patient)
    log = (await client.get(LOG)).json()
    assert [(e["action"], e["review"]) for e in log] == [
        ("clinical.read", {"state": "pending", "reviewed_at": None}),
        ("emergency.opened", {"state": "pending", "reviewed_at": None}),
        ("clinical.read", {"state": "pending", "reviewed_at": None}),
        ("emergency.opened", {"state": "pending", "reviewed_at": None}),
        ("clinical.read", None),  # the consented read was never under review
    ]

    before = datetime.now().astimezone()
    await _review(client, session, settings, {unjustified: "unjustified", justified: "justified"})
    await sign_in_as(client, session, settings, patient)
    answer = await client.get(LOG)
    log = answer.json()
    states = [(e["who"]["name"], e["action"], (e["review"] or {}).get("state")) for e in log]
    assert states == [
        (DOCTOR[1], "clinical.read", "justified"),
        (DOCTOR[1], "emergency.opened", "justified"),
        (OTHER_DOCTOR[1], "clinical.read", "unjustified"),
        (OTHER_DOCTOR[1], "emergency.opened", "unjustified"),
        (DOCTOR[1], "clinical.read", None),
    ]
    assert {_emergency_id(e) for e in log} == {str(unjustified), str(justified), None}
    for entry in log[:4]:
        reviewed = datetime.fromisoformat(entry["review"]["reviewed_at"])
        assert before - timedelta(seconds=1) <= reviewed <= datetime.now().astimezone()
    # who reviewed is not the citizen's to read
    assert DEPARTMENT[1] not in answer.text
    assert DEPARTMENT[0] not in answer.text


async def test_a_seventeen_year_olds_parent_reads_the_finding_not_the_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    await born_years_ago(session, patient[0], 17)
    await represent(
        session, BINH, patient[0], "parent", today_in_vietnam() - timedelta(days=365 * 17)
    )
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    access = await _break_glass(client, patient[0])
    name = await _named(session, other)
    client.cookies.clear()
    as_person(client, settings, BINH[0])
    pending = (await client.get(LOG)).json()
    assert [(e["who"]["kind"], e["review"]["state"]) for e in pending] == [("facility", "pending")]

    await _review(client, session, settings, {access: "unjustified"})
    as_person(client, settings, BINH[0])
    answer = await client.get(LOG)
    [entry] = answer.json()
    assert (entry["who"]["kind"], entry["who"]["name"], entry["who"]["facility"]) == (
        "facility",
        None,
        None,
    )
    assert entry["what"] == "emergency_access"
    assert entry["review"]["state"] == "unjustified"
    assert entry["review"]["reviewed_at"] is not None
    assert name not in answer.text
    assert other not in answer.text
    # the young person's own log names the facility with the same finding
    as_person(client, settings, patient[0])
    [own] = (await client.get(LOG)).json()
    assert own["who"]["name"] == OTHER_DOCTOR[1]
    assert own["review"]["state"] == "unjustified"


async def test_an_access_reviewed_before_findings_were_kept_is_reviewed_not_pending(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    access = await _break_glass(client, patient[0])
    await _review(client, session, settings, {access: "justified"})
    # as a review before 0026 left it: reviewed, with no finding
    await session.execute(
        update(EmergencyAccess).where(EmergencyAccess.id == access).values(review_outcome=None)
    )
    await session.flush()
    await sign_in_as(client, session, settings, patient)
    [entry] = (await client.get(LOG)).json()
    assert entry["review"]["state"] == "reviewed"
    assert entry["review"]["reviewed_at"] is not None
    day = today_in_vietnam().strftime("%d/%m/%Y")
    page = (await client.get("/portal/book/access-log")).text
    assert f"Đã được xem xét ngày {day}<" in page
    assert "chính đáng" not in page
    assert "đang chờ" not in page


@pytest.fixture
def emergency_reads(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements that read emergency accesses (the app runs on the test's connection)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("SELECT") and "emergency_access" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_page_of_many_emergency_accesses_looks_their_reviews_up_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    emergency_reads: list[str],
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    opened = [await _break_glass(client, patient[0]) for _ in range(30)]
    await _review(
        client,
        session,
        settings,
        {a: ("justified" if i % 2 else "unjustified") for i, a in enumerate(opened[:20])},
    )
    await sign_in_as(client, session, settings, patient)
    seen: dict[str, str] = {}
    before: int | None = None
    pages = 0
    while True:
        emergency_reads.clear()
        params = {"limit": "12"} | ({"before": str(before)} if before else {})
        page = (await client.get(LOG, params=params)).json()
        if not page:
            break
        pages += 1
        assert len(emergency_reads) == 1, emergency_reads  # one look-up, whatever the page holds
        for entry in page:
            seen[_emergency_id(entry) or ""] = entry["review"]["state"]
        before = page[-1]["id"]
    assert pages == 3
    assert seen == {
        str(a): ("pending" if i >= 20 else "justified" if i % 2 else "unjustified")
        for i, a in enumerate(opened)
    }
