"""VNeID sign-in through the built-in simulator, the citizen's page and the department page,
driven over HTTP exactly as a browser would (redirects followed by hand)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity

AN = "001085004217"  # Nguyễn Văn An, level 2
HUNG = "001078009135"  # Đặng Văn Hùng, level 1


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


async def start(client: httpx.AsyncClient, next_path: str = "/portal") -> httpx.Response:
    """Click "sign in": the redirect to the provider's login page, and that page."""
    response = await client.get("/auth/login", params={"next": next_path})
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://testserver/sim/vneid/authorize?")
    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    return page


async def login(
    client: httpx.AsyncClient, personal_id: str, next_path: str = "/portal"
) -> httpx.Response:
    """The whole flow; returns vnehr's answer to the provider's redirect back."""
    page = await start(client, next_path)
    form = _hidden(page.text)
    form["personal_id"] = personal_id
    form.pop("action", None)
    chosen = await client.post("/sim/vneid/authorize", data=form)
    assert chosen.status_code in (302, 303)
    back = urlparse(chosen.headers["location"])
    assert back.path == "/auth/callback"
    return await client.get(f"/auth/callback?{back.query}")


async def test_sign_in_creates_the_person_and_a_secure_session(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    answer = await login(client, AN)
    assert answer.status_code == 303, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))[
        -400:
    ]
    assert answer.headers["location"] == "/portal"
    cookie = answer.headers["set-cookie"]
    assert "vnehr_session=" in cookie
    for flag in ("HttpOnly", "Secure", "SameSite=lax"):
        assert flag.lower() in cookie.lower()
    me = (await client.get("/api/v1/me")).json()
    assert me["personal_id"] == AN
    assert me["full_name"] == "Nguyễn Văn An"
    assert me["assurance_level"] == 2
    portal = await client.get("/portal")
    assert "Xin chào, Nguyễn Văn An" in portal.text


async def test_a_citizen_opens_and_closes_the_health_book_in_the_portal(
    client: httpx.AsyncClient,
) -> None:
    await login(client, AN)
    page = await client.get("/portal")
    assert "Bạn chưa mở Sổ sức khỏe điện tử." in page.text
    csrf = _hidden(page.text)["csrf"]
    opened = await client.post("/portal/account/open", data={"csrf": csrf})
    assert opened.headers["location"] == "/portal?notice=opened"
    assert (await client.get("/api/v1/me")).json()["account"]["status"] == "open"
    closed = await client.post("/portal/account/close", data={"csrf": csrf})
    assert closed.status_code == 303
    assert (await client.get("/api/v1/me")).json()["account"]["status"] == "closed"


async def test_a_form_without_the_session_token_is_refused(client: httpx.AsyncClient) -> None:
    await login(client, AN)
    forged = await client.post("/portal/account/open", data={"csrf": "guess"})
    assert forged.status_code == 403
    assert "AUTH-0005" in forged.text  # the form's token, not the person's rights
    assert (await client.get("/api/v1/me")).json()["account"] is None


async def test_level_one_is_told_why_the_book_cannot_open(client: httpx.AsyncClient) -> None:
    await login(client, HUNG)
    page = await client.get("/portal")
    assert "cần mức 2 để mở Sổ sức khỏe điện tử" in page.text
    assert 'action="/portal/account/open"' not in page.text
    api = await client.post("/api/v1/me/account")
    assert api.status_code == 403
    assert api.json()["code"] == "ID-0101"


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    await login(client, AN)
    copy = client.cookies.get("vnehr_session")
    page = await client.get("/portal")
    assert 'action="/auth/logout"' in page.text  # the header's sign-out form
    out = await client.post("/auth/logout", data={"csrf": _hidden(page.text)["csrf"]})
    assert out.status_code == 303
    assert out.headers["location"].startswith("https://testserver/sim/vneid/logout")
    assert (
        'vnehr_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    )
    client.cookies.clear()
    assert (await client.get("/api/v1/me")).status_code == 401
    # a copy of the cookie kept from before (another tab, a shared computer) is dead too
    client.cookies.set("vnehr_session", copy)
    for path in ("/api/v1/me", "/api/v1/me/timeline"):
        assert (await client.get(path)).json()["code"] == "AUTH-0001", path
    assert (await client.get("/portal")).headers["location"].startswith("/auth/login")


async def test_another_site_cannot_sign_a_user_out(client: httpx.AsyncClient) -> None:
    await login(client, AN)
    assert (await client.get("/auth/logout")).status_code == 405  # a link or an image: no
    forged = await client.post("/auth/logout", data={"csrf": "guess"})
    assert forged.status_code == 403
    assert "AUTH-0005" in forged.text
    assert (await client.get("/api/v1/me")).json()["personal_id"] == AN


async def test_the_department_page_lists_facilities_and_issues_codes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, AN, "/department/facilities")
    page = await client.get("/department/facilities")
    assert page.status_code == 200
    csrf = _hidden(page.text)["csrf"]
    issued = await client.post(
        "/department/facilities",
        data={
            "csrf": csrf,
            "name": "Phòng khám Đa khoa Phố Huế",
            "kind": "polyclinic",
            "level": "basic",
            "ownership": "private",
            "province_code": "01",
            "ward_code": "00070",
        },
    )
    assert issued.status_code == 303
    code = parse_qs(urlparse(issued.headers["location"]).query)["issued"][0]
    assert re.fullmatch(r"01\d{3}", code)
    listing = await client.get("/department/facilities")
    assert "Phòng khám Đa khoa Phố Huế" in listing.text
    assert f"<code>{code}</code>" in listing.text
    # a state the registry does not have (an edited address) filters nothing; a NUL byte is
    # refused before any page runs (KIT-0002)
    odd = await client.get("/department/facilities", params={"status": "closed"})
    assert odd.status_code == 200
    assert f"<code>{code}</code>" in odd.text
    nul = await client.get("/department/facilities", params={"status": "a\x00b"})
    assert (nul.status_code, nul.json()["code"]) == (400, "KIT-0002")
    connected = await client.get("/department/facilities", params={"status": "connected"})
    assert f"<code>{code}</code>" not in connected.text


async def test_a_citizen_without_the_role_cannot_open_the_department_page(
    client: httpx.AsyncClient,
) -> None:
    await login(client, AN)
    page = await client.get("/department/facilities")
    assert page.status_code == 403
    assert "AUTH-0002" in page.text


async def test_pages_send_anonymous_visitors_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/portal")
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=%2Fportal"


@pytest.mark.parametrize("next_path", ["//evil.example/", "https://evil.example/", "/\\evil"])
async def test_sign_in_never_redirects_off_site(client: httpx.AsyncClient, next_path: str) -> None:
    answer = await login(client, AN, next_path)
    assert answer.headers["location"] == "/portal"


async def test_a_callback_with_another_state_is_refused(client: httpx.AsyncClient) -> None:
    await start(client)
    response = await client.get("/auth/callback", params={"code": "x", "state": "forged"})
    assert response.status_code == 401
    assert "ID-0108" in response.text
    assert "vnehr_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ({"bad_signature": True}, "ID-0108", 401),
        ({"wrong_audience": True}, "ID-0108", 401),
        ({"wrong_nonce": True}, "ID-0108", 401),
        ({"expired_id_token": True}, "ID-0108", 401),
        ({"token_error": "invalid_grant"}, "ID-0108", 401),
    ],
)
async def test_a_bad_answer_from_the_provider_never_signs_anyone_in(
    client: httpx.AsyncClient, fault: dict[str, object], code: str, status: int
) -> None:
    set_fault = await client.put("/sim/vneid/_sim/faults", json=fault)
    assert set_fault.status_code == 200
    answer = await login(client, AN)
    assert answer.status_code == status
    assert code in answer.text
    assert "vnehr_session" not in answer.headers.get("set-cookie", "")
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_an_unavailable_provider_is_a_clear_503(client: httpx.AsyncClient) -> None:
    await client.put("/sim/vneid/_sim/faults", json={"unavailable": True})
    response = await client.get("/auth/login")
    assert response.status_code == 503
    assert "ID-0109" in response.text
    assert "Không kết nối được với hệ thống định danh VNeID" in response.text


async def test_non_ascii_tokens_are_refused_not_crashed_on(client: httpx.AsyncClient) -> None:
    await login(client, AN)
    form = await client.post("/portal/account/open", data={"csrf": "é"})
    assert form.status_code == 403
    await start(client)
    callback = await client.get("/auth/callback", params={"code": "x", "state": "é"})
    assert callback.status_code == 401
    assert "ID-0108" in callback.text
