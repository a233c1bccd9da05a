"""A NUL in a page's form never becomes a 500 or a stored row, whether the form comes
multipart or URL-encoded with a raw NUL byte (D76)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_login import AN, _hidden, login
from vnehr import identity
from vnehr.facilities.models import Facility

FORM = {
    "kind": "polyclinic", "level": "basic", "ownership": "private",
    "province_code": "01", "ward_code": "00070",
}  # fmt: skip


async def _facilities(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Facility)) or 0)


async def test_a_nul_in_a_form_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/department/facilities")
    csrf = _hidden((await client.get("/department/facilities")).text)["csrf"]
    before = await _facilities(session)
    fields = {"csrf": csrf, "name": "Phòng khám\x00 A", **FORM}
    multipart = await client.post(
        "/department/facilities", files={k: (None, v) for k, v in fields.items()}
    )
    assert multipart.status_code == 400, multipart.text
    assert "KIT-0002" in multipart.text
    encoded = "&".join(f"{k}={quote(v)}" for k, v in {"csrf": csrf, **FORM}.items())
    raw = await client.post(
        "/department/facilities",
        content=encoded.encode() + b"&name=Ph\x00ong",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 400, raw.text
    assert await _facilities(session) == before
    fine = await client.post(
        "/department/facilities", data={**FORM, "csrf": csrf, "name": "Phòng khám Đa khoa An Bình"}
    )
    assert fine.status_code == 303, fine.text
    assert await _facilities(session) == before + 1


async def test_a_control_character_in_a_multipart_page_form_is_refused_with_the_error_page(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Not only NUL (which the database would refuse anyway): an escape character sent in a
    multipart form is refused before the page runs, on the HTML error page, not stored."""
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/department/facilities")
    csrf = _hidden((await client.get("/department/facilities")).text)["csrf"]
    before = await _facilities(session)
    fields = {"csrf": csrf, "name": "Phòng khám \x1b[2J A", **FORM}
    refused = await client.post(
        "/department/facilities", files={k: (None, v) for k, v in fields.items()}
    )
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert "<code>KIT-0002</code>" in refused.text
    assert await _facilities(session) == before
    fields["name"] = "Phòng khám\tĐa khoa An Bình"  # a tab is text
    fine = await client.post(
        "/department/facilities", files={k: (None, v) for k, v in fields.items()}
    )
    assert fine.status_code == 303, fine.text
    assert await _facilities(session) == before + 1
