"""A notice marked sensitive when it was sent (its visit touched a category then) and a visit
the facility corrects to something plain: a representative of a person of 16 or more reads
the notice again, as any other, for as long as the visit as it stands is plain (D132, D137)."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_confided import _diagnosed
from tests.healthbook.test_confided_corrected import (
    _a_visit_of_a_17_year_old,
    _corrected,
    _seventeen_with_an_as_parent,
    _told,
)
from tests.papers.test_api import SCOPES, local_now
from tests.papers.test_issuing import birth_row
from tests.submissions.test_intake import facility_with_token, send
from vnehr import facilities
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


async def _inbox(
    client: httpx.AsyncClient, settings: Settings, personal_id: str
) -> tuple[list[dict[str, Any]], int]:
    """The whole inbox of ``personal_id`` as the API gives it: items and the unread count."""
    as_person(client, settings, personal_id)
    answer = await client.get("/api/v1/me/notifications")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"], answer.json()["unread"]


def _seen(items: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, Any], bool]]:
    """Each notice as a representative should read it: without the mark set when told."""
    return [
        (i["id"], i["kind"], {k: v for k, v in i["params"].items() if k != "sensitive"}, i["read"])
        for i in items
    ]


async def test_a_notice_hidden_when_sent_returns_once_the_visit_is_corrected_to_plain(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """Sent with an HIV code by mistake (with a re-exam appointment), corrected to a common
    cold: the parent of the 17-year-old now reads both notices in the words of any visit's
    and paper's (the facility named, no neutral words, no mark), counted, marked read one by
    one and all at once, on the API and the portal; corrected back to HIV, they go again."""
    code, headers, first, young = await _a_visit_of_a_17_year_old(
        client, session, settings, 97, "B20", appointment=True
    )

    pushed = await _told(settings, db)
    assert [p for p in pushed if p["personal_id"] == AN[0]] == []
    assert await _inbox(client, settings, AN[0]) == ([], 0)
    own, _ = await _inbox(client, settings, young[0])
    assert sorted(i["kind"] for i in own) == ["paper", "visit"]

    await _corrected(client, headers, code, first, "J00")  # a common cold
    assert [p for p in await _told(settings, db) if p["personal_id"] == AN[0]] == []
    own, own_unread = await _inbox(client, settings, young[0])
    shown, unread = await _inbox(client, settings, AN[0])
    # the parent reads what the young person reads, nothing telling the notice was hidden
    assert (_seen(shown), unread) == (_seen(own), own_unread)
    assert {"visit", "paper"} <= {i["kind"] for i in shown}
    assert [i["params"].get("sensitive") for i in own] == [True, True]  # the young person's
    assert all("sensitive" not in i["params"] for i in shown)
    [visit] = [i for i in shown if i["kind"] == "visit"]
    name = (await facilities.directory(session, {code}))[code].name
    assert visit["title"]["vi"] == f"Lượt khám mới trong Sổ sức khỏe điện tử của {young[1]}"
    assert visit["body"]["vi"].startswith(f"{name} đã gửi dữ liệu một lượt khám mới")
    assert visit["person"]["relation"] == "parent"
    portal = (await client.get("/portal")).text
    assert html.escape(visit["body"]["vi"], quote=False) in portal

    marked = await client.post(f"/api/v1/me/notifications/{visit['id']}/read")
    assert marked.status_code == 204
    assert (await _inbox(client, settings, AN[0]))[1] == unread - 1
    every = await client.post("/api/v1/me/notifications/read-all")
    assert every.json() == {"marked": unread - 1}
    assert (await _inbox(client, settings, AN[0]))[1] == 0

    await _corrected(client, headers, code, first, "B20")
    assert await _inbox(client, settings, AN[0]) == ([], 0)
    as_person(client, settings, AN[0])
    assert (await client.post(f"/api/v1/me/notifications/{visit['id']}/read")).status_code == 404
    assert html.escape(visit["body"]["vi"], quote=False) not in (await client.get("/portal")).text
    own, _ = await _inbox(client, settings, young[0])
    assert {"visit", "paper"} <= {i["kind"] for i in own}


async def test_a_young_mothers_birth_certificate_stays_hidden_whatever_the_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A birth certificate issued with the 17-year-old's own visit, plain as it stands (a
    cold): her parent reads the visit's notice, never the certificate's (D132)."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=(*SCOPES, "record.read")
    )
    own = _diagnosed(
        visit_of(code, 98, local_now() - timedelta(days=2), age_group=1, appointment=False),
        "J00",
    )
    answer = await send(client, headers, synth.envelope([own], code))
    assert answer.status_code == 201, answer.text
    mother = who(own)
    body = {"kind": "birth", "visit_key": own.ma_lk, "fields": birth_row(own, code, mother)}
    made = await client.post("/api/v1/papers", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["content"]["holder"]["personal_id"] == mother[0]
    await _seventeen_with_an_as_parent(client, session, settings, mother)
    await _told(settings, db)

    mine, _ = await _inbox(client, settings, mother[0])
    assert sorted(i["kind"] for i in mine) == ["paper", "visit"]
    shown, unread = await _inbox(client, settings, AN[0])
    assert ([i["kind"] for i in shown], unread) == (["visit"], 1)
