"""The BHXH client's reading of odd portal answers: every failure is a ``DeliveryFailed`` that
says rightly whether the portal may have the file, and the client keeps its own time limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from tests.submissions.test_intake import visit
from vnehr import exchange
from vnehr.sim.bhxh import Account, BhxhConfig, create_app
from vnehr.submissions import synth

USER, PASSWORD = "hub-hanoi", "mat-khau-thu-nghiem"
TOKEN = {"maKetQua": "200", "access_token": "a", "id_token": "b", "expires_in": 1800}


def client_of(
    answer: Callable[[httpx.Request], httpx.Response], token: bytes | None = None
) -> exchange.BhxhClient:
    """A client of a portal that gives ``token`` (or a good one) and then ``answer``."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/token/take"):
            if token is None:
                return httpx.Response(200, json=TOKEN)
            return httpx.Response(200, content=token, headers={"Content-Type": "application/json"})
        return answer(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return exchange.BhxhClient(http, base_url="http://portal", username=USER, password=PASSWORD)


def envelope() -> bytes:
    return synth.envelope([visit("01001", 9)], "01001")


@pytest.mark.parametrize(
    ("answer", "maybe"),
    [
        # the portal said it took the file, without the transaction id to prove it
        (httpx.Response(200, json={"maKetQua": "200", "thongDiep": "Tiếp nhận thành công"}), True),
        # an answer came with HTTP 200 but cannot be read: the file may be there
        (httpx.Response(200, text="<html>gateway</html>"), True),
        (httpx.Response(200, json=["200"]), True),
        # the portal read the request and refused it: surely not received
        (httpx.Response(200, json={"maKetQua": "205", "thongDiep": "Sai định dạng"}), False),
        (httpx.Response(400, text="Bad Request"), False),
    ],
    ids=["no-transaction-id", "html", "list", "refused", "http-400"],
)
async def test_odd_file_answers_say_whether_the_portal_may_have_the_file(
    answer: httpx.Response, maybe: bool
) -> None:
    client = client_of(lambda _: answer)
    with pytest.raises(exchange.DeliveryFailed) as failed:
        await client.send_file("01001", envelope())
    assert failed.value.maybe_received is maybe


@pytest.mark.parametrize(
    "token",
    [
        '{"maKetQua": "200", "access_token": "a", "expires_in": "30 phút"}'.encode(),
        b'{"maKetQua": "200", "access_token": "a", "expires_in": [1800]}',
        b'{"maKetQua": "200", "access_token": "a", "expires_in": NaN}',
        b'["200"]',
        b"<html>login</html>",
    ],
    ids=["text", "list", "nan", "not-an-object", "html"],
)
async def test_a_malformed_token_answer_is_a_delivery_failure(token: bytes) -> None:
    client = client_of(lambda _: httpx.Response(500), token=token)
    with pytest.raises(exchange.DeliveryFailed):
        await client.send_file("01001", envelope())
    with pytest.raises(exchange.DeliveryFailed):
        await client.check_card("DN4010123456789", "Nguyễn Văn An", "15/03/1985")


async def test_a_card_lookup_takes_a_fresh_token_once_when_the_portal_forgot_ours() -> None:
    tokens = []
    answers = iter(
        [{"maKetQua": "401"}, {"maKetQua": "000"}, {"maKetQua": "401"}, {"maKetQua": "401"}]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/token/take"):
            tokens.append(request)
            return httpx.Response(200, json=TOKEN)
        return httpx.Response(200, json=next(answers))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = exchange.BhxhClient(http, base_url="http://portal", username=USER, password=PASSWORD)
    assert await client.check_card("DN4010123456789", "Nguyễn Văn An", "15/03/1985") == "000"
    assert len(tokens) == 2
    with pytest.raises(exchange.DeliveryFailed):  # refused twice: the portal cannot answer
        await client.check_card("DN4010123456789", "Nguyễn Văn An", "15/03/1985")
    assert len(tokens) == 3


@pytest.fixture
async def portal() -> AsyncIterator[tuple[BhxhConfig, httpx.AsyncClient]]:
    config = BhxhConfig(accounts={USER: Account(PASSWORD, ())})
    outer = FastAPI()
    outer.mount("/sim/bhxh", create_app(config))
    # (in-process, as under ``make run``: this transport itself never times out)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://portal"
    ) as http:
        yield config, http


async def test_the_client_keeps_its_own_time_limit_and_the_file_may_have_arrived(
    portal: tuple[BhxhConfig, httpx.AsyncClient],
) -> None:
    config, http = portal
    client = exchange.BhxhClient(
        http, base_url="http://portal/sim/bhxh", username=USER, password=PASSWORD, timeout=0.3
    )
    config.faults.timeout_rate = 1.0
    config.faults.hang_seconds = 5.0
    started = time.monotonic()
    with pytest.raises(exchange.DeliveryFailed) as failed:
        await client.send_file("01001", envelope())
    assert time.monotonic() - started < 2.0
    assert (failed.value.reason, failed.value.maybe_received) == ("timeout", True)
    # the portal did record the file before it hung
    assert len((await http.get("http://portal/sim/bhxh/_sim/received")).json()) == 1


async def test_calls_at_once_log_in_once_and_once_again_when_the_portal_forgot_the_token() -> None:
    """Eight files sent at once by a worker with no token yet: one login, not eight. Then the
    portal forgets the token: the eight refused at once take one new token between them."""
    tokens: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/token/take"):
            tokens.append(f"t{len(tokens) + 1}")
            return httpx.Response(200, json={**TOKEN, "access_token": tokens[-1]})
        if request.headers["accessToken"] != tokens[-1]:  # forgotten, or never given
            return httpx.Response(200, json={"maKetQua": "401"})
        return httpx.Response(200, json={"maKetQua": "200", "maGiaoDich": tokens[-1]})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = exchange.BhxhClient(http, base_url="http://portal", username=USER, password=PASSWORD)
    sent = await asyncio.gather(*(client.send_file("01001", envelope()) for _ in range(8)))
    assert [a.ma_giao_dich for a in sent] == ["t1"] * 8
    tokens.append("t-forgotten")  # the portal now holds another: ours is refused
    sent = await asyncio.gather(*(client.send_file("01001", envelope()) for _ in range(8)))
    assert [a.ma_giao_dich for a in sent] == ["t3"] * 8
    assert tokens == ["t1", "t-forgotten", "t3"]
