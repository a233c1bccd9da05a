from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, File, Form, UploadFile
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

import vnehr.catalogs  # noqa: F401  (registers the context's error classes)
from vnehr import identity
from vnehr.kit.auth import SESSION_COOKIE, make_session_cookie
from vnehr.kit.errors import REGISTRY, VnehrError
from vnehr.kit.http import FORM_TEXT, RequestContextMiddleware, install_error_handlers
from vnehr.kit.i18n import LANGUAGES, catalogue
from vnehr.kit.settings import Settings


def test_every_error_code_has_vietnamese_and_english_text() -> None:
    assert len(REGISTRY) >= 10
    for code in REGISTRY:
        for language in LANGUAGES:
            assert code in catalogue(language), f"{code} has no {language} text"


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    vi, en = catalogue("vi"), catalogue("en")
    assert vi.keys() == en.keys()
    for key in vi:
        assert set(re.findall(r"{(\w+)}", vi[key])) == set(re.findall(r"{(\w+)}", en[key])), key


def test_a_duplicate_error_code_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="already used"):

        class Twin(VnehrError):
            code = "KIT-0404"


class Thing(BaseModel):
    size: int
    note: str = ""


_FORM = {"content-type": "application/x-www-form-urlencoded"}
_JSON = {"content-type": "application/json"}


def _app() -> FastAPI:
    app = FastAPI(dependencies=[FORM_TEXT])  # as the application checks its forms
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError

    @app.post("/things")
    async def make(thing: Thing) -> Thing:
        return thing

    @app.post("/form")
    async def form(
        note: Annotated[str, Form()] = "", up: Annotated[UploadFile | None, File()] = None
    ) -> dict[str, object]:
        return {"note": note, "size": len(await up.read()) if up else 0}

    return app


async def _call(method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.request(method, path, **kwargs)  # type: ignore[arg-type]


def _is_error_body(body: dict[str, object], code: str) -> None:
    assert body["code"] == code
    message = body["message"]
    assert isinstance(message, dict)
    assert message["vi"]
    assert message["en"]
    assert message["vi"] != message["en"]
    assert isinstance(body["detail"], dict)


async def test_unknown_route_gets_a_coded_404() -> None:
    response = await _call("GET", "/nowhere")
    assert response.status_code == 404
    _is_error_body(response.json(), "KIT-0404")
    assert "/nowhere" in response.json()["message"]["en"]


async def test_wrong_method_gets_a_coded_405() -> None:
    response = await _call("DELETE", "/things")
    assert response.status_code == 405
    _is_error_body(response.json(), "KIT-0405")


async def test_invalid_body_gets_a_coded_422_listing_each_problem() -> None:
    response = await _call("POST", "/things", json={"size": "big"})
    assert response.status_code == 422
    body = response.json()
    _is_error_body(body, "KIT-0422")
    assert body["detail"]["problems"][0]["location"] == ["body", "size"]


async def test_unexpected_failure_is_a_json_500_with_the_request_id() -> None:
    response = await _call("GET", "/boom", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 500
    _is_error_body(response.json(), "KIT-0500")
    assert "abc-123" in response.json()["message"]["vi"]
    assert response.headers["x-request-id"] == "abc-123"


async def test_every_response_carries_a_request_id_even_when_the_caller_sends_junk() -> None:
    response = await _call("GET", "/nowhere", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


# ------------------------------------------------------------------ control characters


async def test_a_control_character_in_the_path_or_query_is_refused_before_any_route() -> None:
    for path in ("/things%00", "/nowhere/%01", "/things?size=%00", "/things?q=a%1fb", "/t?x=%7F"):
        response = await _call("GET", path)
        assert response.status_code == 400, path
        _is_error_body(response.json(), "KIT-0002")
    # tab, line feed and carriage return stay ordinary characters (a 405 from the route)
    assert (await _call("GET", "/things?q=a%09b%0A%0Dc")).status_code == 405
    assert (await _call("GET", "/things?q=%2500")).status_code == 405  # the text "%00"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"size": 1, "note": "a\\u0000b"}', 400),
        (b'{"size": 1, "note": "a\\\\\\u0000b"}', 400),  # an escaped backslash, then NUL
        (b'{"size": 1, "note": "a\\\\u0000b"}', 200),  # the text \u0000, no NUL in it
        (b'{"size": 1, "note": "a\\u0001b"}', 200),  # storable: the route decides
    ],
)
async def test_nul_in_a_json_body_is_refused(body: bytes, status: int) -> None:
    for content_type in ("application/json", "application/fhir+json; charset=utf-8"):
        response = await _call(
            "POST", "/things", content=body, headers={"content-type": content_type}
        )
        assert response.status_code == status, (content_type, response.text)
        if status == 400:
            _is_error_body(response.json(), "KIT-0002")
    if status == 400:  # a body without a media type is searched too (FHIR reads any as JSON)
        _is_error_body((await _call("POST", "/things", content=body)).json(), "KIT-0002")


async def test_nul_split_across_body_chunks_is_found() -> None:
    async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    split = [
        (b'{"size": 1, "note": "a\\u00', b'00"}'),
        (b'{"size": 1, "note": "a\\\\', b'\\u0000"}'),
    ]
    for parts in split:
        response = await _call("POST", "/things", content=chunks(*parts), headers=_JSON)
        _is_error_body(response.json(), "KIT-0002")
    escaped = (b'{"size": 1, "note": "a\\', b'\\u0000"}')  # the text \u0000 again
    response = await _call("POST", "/things", content=chunks(*escaped), headers=_JSON)
    assert response.status_code == 200, response.text


def _multipart(text: bytes, file: bytes) -> bytes:
    return (
        b'--XyZ\r\nContent-Disposition: form-data; name="up"; filename="a.bin"\r\n\r\n'
        + file
        + b'\r\n--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        + text
        + b"\r\n--XyZ--\r\n"
    )


async def test_control_characters_in_multipart_text_fields_are_found_however_chunked() -> None:
    """A text field is searched wherever the chunks of the body break it (its headers, its
    data); a file part holding every byte value is not."""

    async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    for size in (1, 7, 4096):
        for text in (b"a\x1bb", b"\x00", b"x\x7f"):
            body = _multipart(text, bytes(range(256)))
            response = await _call("POST", "/form", content=chunks(body, size), headers=headers)
            assert response.status_code == 400, (size, text, response.text)
            _is_error_body(response.json(), "KIT-0002")
        body = _multipart(b"a\tb\r\nc", bytes(range(256)) * 3)
        response = await _call("POST", "/form", content=chunks(body, size), headers=headers)
        assert response.status_code == 200, (size, response.text)
        assert response.json() == {"note": "a\tb\r\nc", "size": 768}


async def test_nul_in_a_form_body_is_refused() -> None:
    response = await _call("POST", "/things", content=b"size=1&note=a%00b", headers=_FORM)
    _is_error_body(response.json(), "KIT-0002")
    response = await _call("POST", "/things", content=b"size=1&note=a%2500b", headers=_FORM)
    assert response.status_code != 400  # the text "%00" (the route wants JSON: a 422)


async def test_nul_never_reaches_the_database_through_a_real_route(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # A department registers a facility: its name would go to a text column (PostgreSQL
    # refuses NUL there, which was a 500).
    await identity.bootstrap_grant(session, "001085004217", "department_admin", province_code="01")
    await session.flush()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(
            settings, {"personal_id": "001085004217", "name": "Người thử", "assurance_level": 2}
        ),
    )
    facility = {
        "name": "Bệnh viện\u0000Xanh Pôn",
        "kind": "hospital",
        "level": "specialised",
        "ownership": "public",
        "province_code": "01",
        "ward_code": "00004",
        "address": "12 Chu Văn An",
    }
    response = await client.post("/api/v1/facilities", json=facility)
    assert response.status_code == 400, response.text
    _is_error_body(response.json(), "KIT-0002")
    response = await client.get("/api/v1/facilities", params={"q": "Xanh\x00"})
    assert response.status_code == 400, response.text
    _is_error_body(response.json(), "KIT-0002")


def _form_part(name: str, text: bytes, charset: str = "utf-8") -> bytes:
    named = b'form-data; name="' + name.encode(charset) + b'"'
    return b"--XyZ\r\nContent-Disposition: " + named + b"\r\n\r\n" + text


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("utf-7", b"a+AAE-b+AAA-"),  # decodes to "a\x01b\x00": no control byte is sent
        ("cp037", b"\x81\x37\x82"),  # EBCDIC: 0x37 is EOT (\x04)
    ],
)
async def test_form_text_is_checked_as_the_route_receives_it_whatever_the_charset(
    charset: str, text: bytes
) -> None:
    """Starlette decodes a multipart text field with the form's ``charset``: the check reads
    the text the route would get, not the bytes that came."""
    body = _form_part("note", text, charset) + b"\r\n--XyZ--\r\n"
    content_type = f"multipart/form-data; boundary=XyZ; charset={charset}"
    response = await _call("POST", "/form", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    _is_error_body(response.json(), "KIT-0002")
    # the same charset with text free of control characters reaches the route
    fine = _form_part("note", "Café".encode(charset), charset) + b"\r\n--XyZ--\r\n"
    response = await _call("POST", "/form", content=fine, headers={"content-type": content_type})
    assert response.json() == {"note": "Café", "size": 0}


async def test_a_url_encoded_form_field_with_a_control_character_is_refused() -> None:
    for body in (b"note=a%01b", b"note=%1B%5B2J", b"note=x%7F", b"no%04te=a"):
        response = await _call("POST", "/form", content=body, headers=_FORM)
        assert response.status_code == 400, (body, response.text)
        _is_error_body(response.json(), "KIT-0002")
    response = await _call("POST", "/form", content=b"note=a%09b%0D%0Ac", headers=_FORM)
    assert response.json() == {"note": "a\tb\r\nc", "size": 0}


async def test_a_form_of_too_many_parts_is_refused_without_reading_it_all() -> None:
    """Starlette's limits (1,000 fields, 1,000 files) stop the form's reader: the rest of the
    body is never read, let alone parsed."""
    sent: list[int] = []

    async def chunks(part: bytes) -> AsyncIterator[bytes]:
        for n in range(2_000):  # 200,000 parts, 100 a chunk
            sent.append(n)
            yield part * 100
        yield b"--XyZ--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    for part in (_form_part("note", b"") + b"\r\n", b"--XyZ\r\n\r\n\r\n"):
        sent.clear()
        response = await _call("POST", "/form", content=chunks(part), headers=headers)
        assert response.status_code == 400, response.text
        _is_error_body(response.json(), "KIT-0400")
        assert len(sent) < 20, len(sent)


async def test_a_raw_body_route_typed_multipart_is_not_read_as_a_form(
    client: httpx.AsyncClient,
) -> None:
    """The public PDF check reads its body as bytes: a body typed multipart/form-data is not
    parsed as a form on its way there (that cost seconds of the event loop for a body of many
    empty parts), so what looks like a text field in it is the route's to judge."""
    body = b"--X\r\n\r\n\r\n" * 50_000 + _form_part("note", b"a\x01b").replace(b"XyZ", b"X")
    body += b"\r\n--X--\r\n"
    headers = {"content-type": "multipart/form-data; boundary=X"}
    checked = await client.post("/api/v1/papers/verify-pdf", content=body, headers=headers)
    assert checked.status_code == 200, checked.text
    assert checked.json()["authentic"] is False
    # a JSON route typed multipart: FastAPI does not read it as JSON, and says so (KIT-0422)
    json_route = await client.post("/api/v1/papers/verify", content=body, headers=headers)
    assert (json_route.status_code, json_route.json()["code"]) == (422, "KIT-0422")


async def test_a_real_form_route_checks_the_decoded_text(client: httpx.AsyncClient) -> None:
    """The token endpoint reads a form: a control character that only decoding reveals is
    refused there like one sent as is (KIT-0002), before the route runs."""
    for content_type, body in (
        ("multipart/form-data; boundary=XyZ; charset=utf-7", b"client_credentials+AAE-"),
        ("multipart/form-data; boundary=XyZ", b"client_credentials\x01"),
    ):
        form = _form_part("grant_type", body) + b"\r\n--XyZ--\r\n"
        response = await client.post(
            "/oauth/token", content=form, headers={"content-type": content_type}
        )
        assert (response.status_code, response.json()["code"]) == (400, "KIT-0002"), response.text
