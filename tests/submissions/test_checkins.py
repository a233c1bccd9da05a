"""XML0 check-ins (D62): the same admission as visit files (the facility may send; onboarding
is test mode, kept apart and not relayed; the signature), every row checked, the file
relayed to the BHXH portal once, as it came, when no row is rejected."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import ADMIN, checkin_row, count, facility_with_token
from tests.submissions.test_signature import certificate, sign
from vnehr import facilities
from vnehr.kit.clock import VIETNAM
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import rules
from vnehr.submissions.models import Submission
from vnehr.submissions.xmlio import write_table


async def _send(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> httpx.Response:
    return await client.post(
        "/api/v1/checkins", content=body, headers={**headers, "Content-Type": "application/xml"}
    )


async def _relayed(session: AsyncSession) -> list[dict[str, object]]:
    rows = await session.scalars(
        select(OutboxEvent.payload).where(OutboxEvent.topic == "checkin.received")
    )
    return [dict(r) for r in rows]


def _codes(response: httpx.Response) -> list[tuple[str, int | None, str | None]]:
    return [(i["code"], i["row"], i["field"]) for i in response.json()["issues"]]


async def test_a_retry_gets_the_first_receipt_and_is_relayed_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    body = write_table("XML0", [checkin_row(code, "LK-A"), checkin_row(code, "LK-B")])
    first = await _send(client, headers, body)
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["test_mode"]) == ("accepted", False)
    assert first.json()["visit_keys"] == ["LK-A", "LK-B"]
    again = await _send(client, headers, body)
    assert again.json() == first.json()
    relayed = await _relayed(session)
    assert [(e["submission_id"], e["visit_keys"]) for e in relayed] == [
        (first.json()["id"], ["LK-A", "LK-B"])
    ]
    receipt = await client.get(f"/api/v1/submissions/{first.json()['id']}", headers=headers)
    assert receipt.json() == first.json()


async def test_a_rejected_checkin_sent_again_is_checked_again(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rejection depends on more than the bytes (the clock, the catalogues in force): the
    same bytes after a rejection are checked again, not answered with the rejection; an
    accepted check-in sent again still gets its first receipt (a retry, relayed once)."""
    code, headers = await facility_with_token(client, session, settings)
    early = checkin_row(code, "LK-EARLY")
    early["NGAY_VAO"] = (datetime.now(VIETNAM) + timedelta(minutes=11)).strftime("%Y%m%d%H%M")
    early["NGAY_YL"] = early["NGAY_VAO"]
    body = write_table("XML0", [early])
    first = await _send(client, headers, body)
    assert first.json()["status"] == "rejected"
    assert ("SUB-0148", 1, "NGAY_VAO") in _codes(first)
    # two minutes later the same moment is no longer ahead of the clock
    monkeypatch.setattr(rules, "CLOCK_SKEW", rules.CLOCK_SKEW + timedelta(minutes=2))
    second = await _send(client, headers, body)
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "accepted"
    assert second.json()["id"] != first.json()["id"]
    third = await _send(client, headers, body)
    assert third.json() == second.json()
    relayed = await _relayed(session)
    assert [e["submission_id"] for e in relayed] == [second.json()["id"]]


async def test_a_checkin_alone_does_not_pass_the_onboarding_test(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """D19: the first accepted test VISIT FILE moves a facility to ``test_passed``; an
    accepted test check-in (one XML0 row, none of the tables the health book is built from)
    does not, the visit file after it does."""
    from tests.submissions.test_intake import send, visit
    from vnehr.submissions import synth

    code, headers = await facility_with_token(client, session, settings, steps=2)
    assert (await facilities.get(session, ADMIN, code)).status == "certificate_registered"
    checked_in = await _send(client, headers, write_table("XML0", [checkin_row(code)]))
    assert (checked_in.json()["status"], checked_in.json()["test_mode"]) == ("accepted", True)
    assert (await facilities.get(session, ADMIN, code)).status == "certificate_registered"
    sent = await send(client, headers, synth.envelope([visit(code)], code))
    assert (sent.json()["status"], sent.json()["test_mode"]) == ("accepted", True)
    assert (await facilities.get(session, ADMIN, code)).status == "test_passed"


async def test_only_a_facility_that_may_send_checks_in_and_onboarding_is_test_mode(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # (a facility only registered gets no token at all: FAC-0018)
    onboarding, onboarding_headers = await facility_with_token(client, session, settings, steps=2)
    tested = await _send(client, onboarding_headers, write_table("XML0", [checkin_row(onboarding)]))
    assert tested.status_code == 201, tested.text
    assert (tested.json()["status"], tested.json()["test_mode"]) == ("accepted", True)
    kept = await session.scalar(select(Submission).where(Submission.id == tested.json()["id"]))
    assert kept is not None
    assert kept.test_mode is True

    # suspended while its system still holds a token (they live minutes): the token stops
    connected, connected_headers = await facility_with_token(client, session, settings)
    await facilities.move(session, ADMIN, connected, facilities.State.suspended, "audit")
    suspended = await _send(
        client, connected_headers, write_table("XML0", [checkin_row(connected)])
    )
    assert (suspended.status_code, suspended.json()["code"]) == (403, "AUTH-0007")
    assert await _relayed(session) == []  # neither the test nor the refused ones
    assert await count(session, Submission, Submission.kind == "checkin") == 1


async def test_a_checkin_carries_its_own_signature(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    key_pem, cert_pem = certificate(f"Bệnh viện {code}")
    await facilities.add_certificate(session, ADMIN, code, cert_pem)
    unsigned = write_table("XML0", [checkin_row(code)]).replace(
        b"</CHI_TIEU_TRANG_THAI_KCB>", b"<CHUKYDONVI/></CHI_TIEU_TRANG_THAI_KCB>"
    )
    signed = await _send(client, headers, sign(unsigned, key_pem, cert_pem))
    assert signed.status_code == 201, signed.text
    assert (signed.json()["status"], signed.json()["warnings"]) == ("accepted", [])
    other_key, other_cert = certificate("Kẻ giả mạo")
    forged = await _send(
        client, headers, sign(write_table("XML0", [checkin_row(code, "LK-F")])
                              .replace(b"</CHI_TIEU_TRANG_THAI_KCB>",
                                       b"<CHUKYDONVI/></CHI_TIEU_TRANG_THAI_KCB>"),
                              other_key, other_cert),
    )  # fmt: skip
    assert (forged.status_code, forged.json()["code"]) == (422, "SUB-0011")
    client._transport.app.state.settings = settings.model_copy(update={"require_signature": True})  # type: ignore[attr-defined]
    bare = await _send(client, headers, write_table("XML0", [checkin_row(code, "LK-U")]))
    assert (bare.status_code, bare.json()["code"]) == (422, "SUB-0012")


async def test_every_row_is_checked_like_a_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    good = checkin_row(code, "LK-1")
    bad = checkin_row(code, "LK-2")
    bad.update(
        MA_LOAI_KCB="99",
        NGAY_VAO_NOI_TRU="202610200700",  # before NGAY_VAO
        SO_CCCD="001090000001",  # a man born in 1990 has 0 as the century-and-sex digit
        MA_THE_BHYT="XX",
    )
    response = await _send(client, headers, write_table("XML0", [good, bad]))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"  # the file is relayed whole, or not at all
    found = _codes(response)
    assert ("SUB-0120", 2, "MA_LOAI_KCB") in found
    assert ("SUB-0145", 2, "NGAY_VAO_NOI_TRU") in found
    assert ("SUB-0137", 2, "MA_THE_BHYT") in found
    assert {f[1] for f in found} == {2}, "the good row has no issue"
    assert await _relayed(session) == []

    ahead = checkin_row(code, "LK-3")
    ahead["NGAY_VAO"] = (datetime.now(VIETNAM) + timedelta(days=2)).strftime("%Y%m%d%H%M")
    ahead["NGAY_YL"] = ahead["NGAY_VAO"]
    later = await _send(client, headers, write_table("XML0", [ahead, checkin_row(code, "LK-3")]))
    assert ("SUB-0148", 1, "NGAY_VAO") in _codes(later)
    assert ("SUB-0153", 2, "MA_LK") in _codes(later)  # the same visit checked in twice


async def test_what_the_document_holds_beyond_its_rows_is_not_ignored(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    document = etree.fromstring(write_table("XML0", [checkin_row(code)]))
    row = document.find("DSACH_TRANG_THAI_KCB/TRANG_THAI_KCB")
    assert row is not None
    duplicate = etree.SubElement(row, "MA_CSKCB")
    duplicate.text = "99999"
    etree.SubElement(row, "MA_LA").text = "x"  # not a field of the table
    second = etree.SubElement(document, "DSACH_TRANG_THAI_KCB")
    etree.SubElement(second, "TRANG_THAI_KCB").text = ""
    response = await _send(
        client, headers, etree.tostring(document, xml_declaration=True, encoding="utf-8")
    )
    assert response.json()["status"] == "rejected"
    found = _codes(response)
    assert ("SUB-0106", 1, "MA_CSKCB") in found
    assert ("SUB-0107", None, "DSACH_TRANG_THAI_KCB") in found
    assert ("SUB-0115", 1, "MA_LA") in found


async def test_visits_checked_in_whose_file_never_came_are_listed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from tests.submissions.test_intake import send, visit
    from vnehr.submissions import synth

    code, headers = await facility_with_token(client, session, settings)
    sent = visit(code, 3)
    body = write_table("XML0", [checkin_row(code, sent.ma_lk), checkin_row(code, "LK-NEVER")])
    assert (await _send(client, headers, body)).json()["status"] == "accepted"
    assert (await send(client, headers, synth.envelope([sent], code))).status_code == 201
    awaiting = await client.get(
        "/api/v1/checkins/awaiting-visits", params={"older_than_hours": 0}, headers=headers
    )
    assert awaiting.status_code == 200, awaiting.text
    assert [(v["visit_key"], v["first_cost_at"]) for v in awaiting.json()] == [
        ("LK-NEVER", "2026-10-20T01:15:00+00:00")  # NGAY_YL 08:15 in Vietnam
    ]
    recent = await client.get("/api/v1/checkins/awaiting-visits", headers=headers)
    assert recent.json() == []  # checked in less than 24 hours ago: not late yet
    _, other_headers = await facility_with_token(client, session, settings)
    refused = await client.get(
        "/api/v1/checkins/awaiting-visits", params={"facility": code}, headers=other_headers
    )
    assert refused.status_code == 403


async def test_awaiting_visits_look_back_a_bounded_window(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A check-in older than ``within_days`` (30 by default, at most 366) is not listed: the
    query no longer walks every check-in the facility ever made."""
    from sqlalchemy import update

    from vnehr.kit.clock import utcnow
    from vnehr.submissions.models import CheckinEntry

    code, headers = await facility_with_token(client, session, settings)
    rows = [checkin_row(code, key) for key in ("LK-OLD", "LK-RECENT")]
    assert (await _send(client, headers, write_table("XML0", rows))).json()["status"] == "accepted"
    for key, days in (("LK-OLD", 40), ("LK-RECENT", 2)):
        await session.execute(
            update(CheckinEntry)
            .where(CheckinEntry.visit_key == key)
            .values(received_at=utcnow() - timedelta(days=days))
        )
    url = "/api/v1/checkins/awaiting-visits"

    async def listed(**params: object) -> list[str]:
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [v["visit_key"] for v in response.json()]

    assert await listed() == ["LK-RECENT"]
    assert await listed(within_days=60) == ["LK-OLD", "LK-RECENT"]
    assert await listed(within_days=1, older_than_hours=0) == []
    for bad in ("0", "-3", "367", "a month", "1.5"):
        refused = await client.get(url, params={"within_days": bad}, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "KIT-0422"), bad
        problem = refused.json()["detail"]["problems"][0]
        assert problem["location"] == ["query", "within_days"], problem
    described = (await client.get("/openapi.json")).json()["paths"][url]["get"]
    window = next(p for p in described["parameters"] if p["name"] == "within_days")
    assert {"type": "integer", "minimum": 1, "maximum": 366} in window["schema"]["anyOf"]
    assert "within_days" in described["description"]


async def test_awaiting_visits_look_back_far_enough_for_the_age_asked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Asking for visits unsent for 35 days used to answer [] (the default window, 30 days,
    ended before them). Without ``within_days`` the window reaches 30 days past the age asked;
    a window given that ends before that age is refused, saying why (KIT-0422)."""
    from sqlalchemy import update

    from vnehr.kit.clock import utcnow
    from vnehr.submissions.models import CheckinEntry

    code, headers = await facility_with_token(client, session, settings)
    rows = [checkin_row(code, key) for key in ("LK-80", "LK-40", "LK-2")]
    assert (await _send(client, headers, write_table("XML0", rows))).json()["status"] == "accepted"
    for key, days in (("LK-80", 80), ("LK-40", 40), ("LK-2", 2)):
        await session.execute(
            update(CheckinEntry)
            .where(CheckinEntry.visit_key == key)
            .values(received_at=utcnow() - timedelta(days=days))
        )
    url = "/api/v1/checkins/awaiting-visits"

    async def listed(**params: object) -> list[str]:
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [v["visit_key"] for v in response.json()]

    assert await listed(older_than_hours=24 * 35) == ["LK-40"]  # window: the last 65 days
    assert await listed(older_than_hours=24 * 35, within_days=90) == ["LK-80", "LK-40"]
    assert await listed() == ["LK-2"]  # older than a day, within the last 31 days
    for params in (
        {"older_than_hours": 24 * 35, "within_days": 30},
        {"older_than_hours": 24 * 30, "within_days": 30},
        {"older_than_hours": 24 * 366},
    ):
        refused = await client.get(url, params=params, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "KIT-0422"), params
        problem = refused.json()["detail"]["problems"][0]
        assert problem["location"] == ["query", "older_than_hours"], problem
        assert "within_days" in problem["message"], problem
