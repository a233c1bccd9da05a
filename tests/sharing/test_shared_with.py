"""A share names a facility of the registry (or every facility); the sharing page names each
facility as the registry does, and tells a revoked share from one that ran its time."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import error, sign_in_as
from tests.sharing.test_access import world
from vnehr.facilities.models import Facility
from vnehr.kit.clock import utcnow
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.sharing.models import ConsentDirective


async def test_a_share_with_a_facility_code_not_in_the_registry_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    body = error(
        await client.post("/api/v1/me/consents", json={"facility": "99999", "scope": "full"}),
        422,
        "SHR-0015",
    )
    assert "99999" in body["message"]["vi"]
    page = await client.get("/portal/book/sharing")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    refused = await client.post(
        "/portal/book/sharing",
        data={"csrf": token[1], "action": "share", "facility": "99999"},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert "<code>SHR-0015</code>" in refused.text
    assert (await client.get("/api/v1/me/consents")).json() == []
    for facility in (consented, "*"):
        made = await client.post("/api/v1/me/consents", json={"facility": facility})
        assert made.status_code == 201, made.text


def _rows(page: str) -> list[str]:
    table = page.split('aria-label="directives"', 1)[1].split("</table>", 1)[0]
    return [re.sub(r"\s+", " ", row) for row in table.split("<tr")[2:]]


async def test_the_sharing_page_names_the_facility_and_says_revoked_or_ended(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await session.execute(
        update(Facility).where(Facility.code == consented).values(name="Bệnh viện Đa khoa Đống Đa")
    )
    await sign_in_as(client, session, settings, patient)
    ids = []
    for days in (10, 20, 30):  # three shares: the same one sent again is the first one
        made = await client.post("/api/v1/me/consents", json={"facility": consented, "days": days})
        ids.append(made.json()["id"])
    revoked, ended, running = ids
    await client.delete(f"/api/v1/me/consents/{revoked}")
    await session.execute(
        update(ConsentDirective)
        .where(ConsentDirective.id == ended)
        .values(valid_to=utcnow() - timedelta(days=1))
    )
    page = (await client.get("/portal/book/sharing")).text
    rows = dict(zip([running, ended, revoked], _rows(page), strict=True))  # newest first
    for row in rows.values():
        assert "Bệnh viện Đa khoa Đống Đa" in row
        assert consented in row
    assert text("web.sharing.active", "vi") in rows[running]
    assert text("web.sharing.inactive", "vi") in rows[ended]
    assert text("web.sharing.revoked", "vi") in rows[revoked]
    assert text("web.sharing.inactive", "vi") not in rows[revoked]
    english = (await client.get("/portal/book/sharing", params={"lang": "en"})).text
    assert text("web.sharing.revoked", "en") in _rows(english)[2]
