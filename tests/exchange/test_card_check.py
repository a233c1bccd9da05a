"""Card lookup at intake: the BHXH portal's answer (its simulator here) becomes an error or a
warning on the visit, with clear text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import facility_with_token, send, visit
from vnehr.app import create_app
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


@pytest.fixture
async def checking(
    db: Database, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    strict = settings.model_copy(update={"card_check": True})
    app = create_app(strict, database=db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http, strict


def holder(v: synth.SynthVisit, card: str, name: str, born: str) -> synth.SynthVisit:
    xml1 = v.tables["XML1"][0]
    xml1.update(MA_THE_BHYT=card, HO_TEN=name, NGAY_SINH=born, SO_CCCD="")
    return v


async def test_card_answers_become_errors_or_pass(
    checking: tuple[httpx.AsyncClient, Settings], session: AsyncSession
) -> None:
    client, settings = checking
    code, headers = await facility_with_token(client, session, settings)
    good = holder(visit(code, 1, insured=True), "DN4010123456789", "Nguyễn Văn An", "198503150000")
    revoked = holder(
        visit(code, 2, insured=True), "HS4011122334455", "Lê Minh Châu", "200807200000"
    )
    receipt = (await send(client, headers, synth.envelope([good, revoked], code))).json()
    by_key = {v["visit_key"]: v for v in receipt["visits"]}
    assert by_key[good.ma_lk]["status"] in ("accepted", "accepted_with_warnings")
    assert not [i for i in by_key[good.ma_lk]["issues"] if i["code"].startswith("SUB-016")]
    [issue] = [i for i in by_key[revoked.ma_lk]["issues"] if i["code"] == "SUB-0160"]
    assert by_key[revoked.ma_lk]["status"] == "rejected"
    assert issue["detail"]["result"] == "110"
    assert issue["detail"]["meaning"]["vi"] == "Thẻ đã thu hồi"
    assert "110" in issue["message"]["vi"]


async def test_an_unreachable_portal_only_warns(
    checking: tuple[httpx.AsyncClient, Settings], session: AsyncSession
) -> None:
    client, settings = checking
    code, headers = await facility_with_token(client, session, settings)
    await client.put("/sim/bhxh/_sim/faults", json={"unavailable": True})
    one = holder(visit(code, 3, insured=True), "DN4010123456789", "Nguyễn Văn An", "198503150000")
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    [entry] = receipt["visits"]
    assert entry["status"] == "accepted_with_warnings"
    assert [i["code"] for i in entry["issues"]] == ["SUB-0161"]


async def test_a_batch_retried_file_by_file_lists_each_card_answer_once(
    checking: tuple[httpx.AsyncClient, Settings],
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A file another file's failure sent back to be written alone keeps the answers the
    # portal gave the first time (before, they were asked for and listed again).
    import asyncio
    import base64

    from vnehr.submissions import service

    client, settings = checking
    code, headers = await facility_with_token(client, session, settings)
    await client.put("/sim/bhxh/_sim/faults", json={"unavailable": True})
    good = holder(visit(code, 4, insured=True), "DN4010123456789", "Nguyễn Văn An", "198503150000")
    bad = visit(code, 5)
    real = service._finish

    def finish(subject: object, data: bytes, *args: object) -> object:
        if bad.ma_lk.encode() in base64.b64decode(data.split(b"<NOIDUNGFILE>")[1].split(b"<")[0]):
            raise OSError("this file's row cannot be written")
        return real(subject, data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "_finish", finish)
    monkeypatch.setattr(settings, "intake_batch_wait_ms", 300.0)  # both files in one batch
    answers = await asyncio.gather(
        *(send(client, headers, synth.envelope([v], code)) for v in (good, bad))
    )
    assert [a.status_code for a in answers] == [201, 500]
    [entry] = answers[0].json()["visits"]
    assert [i["code"] for i in entry["issues"]] == ["SUB-0161"]


async def test_a_token_the_portal_forgot_is_taken_again_and_the_card_passes(
    db: Database, settings: Settings, session: AsyncSession
) -> None:
    # The portal restarts (or ends tokens early): our cached token is unknown to it. The
    # lookup takes a fresh token once, as file delivery does, instead of rejecting the visit
    # with the portal's "401" as if it described the card.
    strict = settings.model_copy(update={"card_check": True})
    app = create_app(strict, database=db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        code, headers = await facility_with_token(client, session, strict)
        one = holder(
            visit(code, 6, insured=True), "DN4010123456789", "Nguyễn Văn An", "198503150000"
        )
        assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
        app.state.bhxh_simulator.state.portal.tokens.clear()
        two = holder(
            visit(code, 7, insured=True), "DN4010123456789", "Nguyễn Văn An", "198503150000"
        )
        [entry] = (await send(client, headers, synth.envelope([two], code))).json()["visits"]
    assert entry["status"] in ("accepted", "accepted_with_warnings")
    assert not [i for i in entry["issues"] if i["code"].startswith("SUB-016")]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>gateway</html>"),  # not JSON
        httpx.Response(200, json=["000"]),  # not an object
        httpx.Response(200, json={"ghiChu": "?"}),  # no result code
        httpx.Response(200, json={"maKetQua": "100", "ghiChu": "Lỗi khi lấy dữ liệu sổ thẻ."}),
        httpx.Response(200, json={"maKetQua": "101"}),  # server error
        httpx.Response(200, json={"maKetQua": "205"}),  # our parameters
        httpx.Response(200, json={"maKetQua": "054"}),  # the hub's officer not registered
        httpx.Response(200, json={"maKetQua": "401"}),  # refused even with a fresh token
        httpx.Response(200, json={"maKetQua": "999"}),  # a code no catalogue knows
    ],
    ids=["html", "list", "no-code", "100", "101", "205", "054", "401", "unknown"],
)
async def test_a_portal_that_cannot_answer_about_the_card_only_warns(
    db: Database, settings: Settings, session: AsyncSession, answer: httpx.Response
) -> None:
    from vnehr.app import card_checker

    strict = settings.model_copy(update={"card_check": True})
    app = create_app(strict, database=db)
    lookups = []

    def portal(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/token/take"):
            return httpx.Response(
                200,
                json={"maKetQua": "200", "access_token": "a", "id_token": "b", "expires_in": 1800},
            )
        lookups.append(request)
        return answer

    app.state.card_check = card_checker(
        strict, httpx.AsyncClient(transport=httpx.MockTransport(portal))
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        code, headers = await facility_with_token(client, session, strict)
        one = holder(
            visit(code, 8, insured=True), "DN4010123456789", "Nguyễn Văn An", "198503150000"
        )
        sent = await send(client, headers, synth.envelope([one], code))
    assert sent.status_code == 201, sent.text
    [entry] = sent.json()["visits"]
    assert entry["status"] == "accepted_with_warnings"
    assert [i["code"] for i in entry["issues"]] == ["SUB-0161"]
    assert len(lookups) == (2 if answer.content == b'{"maKetQua":"401"}' else 1)
