"""The department's page of one facility (D155): where it stands in onboarding, its history,
certificates and systems, and moving it on, with an override and its reason when the fact the
state stands for is missing, all from the browser's forms."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_login import AN, HUNG, _hidden, login
from vnehr import identity
from vnehr.audit import AuditEvent


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def _department_with_facility(client: httpx.AsyncClient, session: AsyncSession) -> str:
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/department/facilities")
    csrf = _hidden((await client.get("/department/facilities")).text)["csrf"]
    issued = await client.post(
        "/department/facilities",
        data={
            "csrf": csrf,
            "name": "Phòng khám Đa khoa Hàng Bông",
            "kind": "polyclinic",
            "level": "basic",
            "ownership": "private",
            "province_code": "01",
        },
    )
    assert issued.status_code == 303
    return parse_qs(urlparse(issued.headers["location"]).query)["issued"][0]


async def _move(client: httpx.AsyncClient, code: str, **form: str) -> httpx.Response:
    csrf = _hidden((await client.get(f"/department/facilities/{code}")).text)["csrf"]
    return await client.post(f"/department/facilities/{code}/move", data={"csrf": csrf, **form})


def _state(html: str) -> str:
    found = re.search(r'<dd id="state">([^<]*)</dd>', html)
    assert found is not None, _text(html)[-600:]
    return found.group(1)


def _choices(html: str) -> list[str]:
    form = html[html.index('name="to_state"') :]
    return re.findall(r'<option value="([a-z_]+)"', form[: form.index("</select>")])


async def test_the_department_moves_a_facility_on_from_its_page(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _department_with_facility(client, session)
    listing = await client.get("/department/facilities")
    assert f'href="/department/facilities/{code}"' in listing.text  # the code is a link

    page = await client.get(f"/department/facilities/{code}")
    assert page.status_code == 200
    assert "Phòng khám Đa khoa Hàng Bông" in page.text
    assert _state(page.text) == "Đã đăng ký"
    assert _choices(page.text) == ["trained", "suspended"]

    moved = await _move(client, code, to_state="trained", reason="tập huấn 20/11")
    assert (moved.status_code, moved.headers["location"]) == (
        303,
        f"/department/facilities/{code}?moved=trained",
    )
    page = await client.get(moved.headers["location"])
    assert _state(page.text) == "Đã tập huấn"
    assert 'id="moved"' in page.text
    assert _choices(page.text) == ["certificate_registered", "suspended"]
    history = _text(page.text[page.text.index('aria-label="onboarding history"') :])
    assert "tập huấn 20/11" in history
    assert "Nguyễn Văn An" in history  # by name, never the personal ID
    assert "001085004217" not in page.text

    # no certificate: refused on the page itself, the reason kept, the override offered
    refused = await _move(client, code, to_state="certificate_registered", reason="ở BHXH")
    assert refused.status_code == 409
    assert 'id="refused"' in refused.text
    assert "FAC-0008" in refused.text
    assert ">ở BHXH</textarea>" in refused.text
    assert _state(refused.text) == "Đã tập huấn"
    # an override needs its reason
    bare = await _move(client, code, to_state="certificate_registered", override="on")
    assert bare.status_code == 422
    assert "FAC-0027" in bare.text
    assert _state((await client.get(f"/department/facilities/{code}")).text) == "Đã tập huấn"

    forced = await _move(
        client, code, to_state="certificate_registered", reason="chứng thư ở BHXH", override="on"
    )
    assert forced.status_code == 303
    page = await client.get(f"/department/facilities/{code}")
    assert _state(page.text) == "Đã đăng ký chứng thư số"
    assert "Chuyển khi chưa có chứng thư số còn hiệu lực: chứng thư ở BHXH" in _text(page.text)
    audited = await session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "facility.onboarding_overridden", AuditEvent.object_id == code
        )
    )
    assert [(a.actor, a.detail["reason"]) for a in audited] == [
        ("person:001085004217", "chứng thư ở BHXH")
    ]

    # a step that is not the next one is refused on the page, nothing moved
    skipped = await _move(client, code, to_state="connected")
    assert skipped.status_code == 409
    assert "FAC-0005" in skipped.text
    assert _state(skipped.text) == "Đã đăng ký chứng thư số"


async def test_the_facility_page_is_the_department_s_own(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _department_with_facility(client, session)
    csrf = _hidden((await client.get(f"/department/facilities/{code}")).text)["csrf"]
    # a form without the session's token moves nothing
    forged = await client.post(
        f"/department/facilities/{code}/move", data={"csrf": "x", "to_state": "trained"}
    )
    assert forged.status_code == 403
    assert _state((await client.get(f"/department/facilities/{code}")).text) == "Đã đăng ký"
    unknown = await client.get("/department/facilities/01999")
    assert unknown.status_code == 404
    # another province's administrator, and a citizen, see none of it
    await identity.bootstrap_grant(session, HUNG, "department_admin", province_code="79")
    await login(client, HUNG, "/portal")
    other = await client.get(f"/department/facilities/{code}")
    assert other.status_code == 403
    assert "Hàng Bông" not in other.text
    moved = await client.post(
        f"/department/facilities/{code}/move", data={"csrf": csrf, "to_state": "trained"}
    )
    assert moved.status_code == 403
