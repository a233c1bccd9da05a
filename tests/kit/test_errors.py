from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

import vnehr.catalogs  # noqa: F401  (registers the context's error classes)
from vnehr.kit.errors import REGISTRY, VnehrError
from vnehr.kit.http import RequestContextMiddleware, install_error_handlers
from vnehr.kit.i18n import LANGUAGES, catalogue


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


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError

    @app.post("/things")
    async def make(thing: Thing) -> Thing:
        return thing

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
