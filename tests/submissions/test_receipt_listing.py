"""A facility system that lost the answers to some files (an outage, a dropped connection:
D49) finds their receipts again with ``GET /api/v1/submissions``: from ``since``, oldest
first, page after page, however many receipts came after them; each says whether it is a
check-in's or a visit file's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.submissions.test_intake import ENDED, checkin_row, facility_with_token, send
from vnehr import catalogs, identity
from vnehr.kit.auth import SESSION_COOKIE, Subject, make_session_cookie
from vnehr.kit.settings import Settings
from vnehr.submissions import synth
from vnehr.submissions.service import IntakeOptions, accept_many, prepare
from vnehr.submissions.xmlio import Limits, write_table

BINH = "079162003581"  # a facility's administrator, signed in on the portal


async def every_page(
    client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> tuple[list[dict[str, Any]], int]:
    """Every receipt the listing gives, following ``next_cursor``; and how many pages."""
    found: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        params = f"{query}&cursor={cursor}" if cursor else query
        response = await client.get(f"/api/v1/submissions?{params}", headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        found += page["items"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return found, pages
        assert pages < 50, "the cursor goes round in circles"


async def test_a_lost_receipt_is_found_however_many_came_after_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    sent = []
    for seed in range(5):
        answer = await send(
            client, headers, synth.envelope([visit_of(code, 40 + seed, ENDED)], code)
        )
        assert answer.status_code == 201, answer.text
        sent.append(answer.json())
    checkin = await client.post(
        "/api/v1/checkins",
        content=write_table("XML0", [checkin_row(code, "LK-LIST")]),
        headers={**headers, "Content-Type": "application/xml"},
    )
    assert checkin.status_code == 201, checkin.text
    since = datetime.fromisoformat(sent[1]["received_at"]).isoformat()

    # two at a time, from the second file on: the oldest first, each once, up to the newest
    found, pages = await every_page(client, headers, f"since={since.replace('+', '%2B')}&limit=2")

    assert [r["id"] for r in found] == [r["id"] for r in sent[1:]] + [checkin.json()["id"]]
    assert pages == 3
    assert [r["kind"] for r in found] == ["visit_file"] * 4 + ["checkin"]
    assert found[0] == {"kind": "visit_file", **sent[1]}  # the receipt as it was given
    only_files, _ = await every_page(client, headers, "kind=visit_file&limit=4")
    assert [r["id"] for r in only_files] == [r["id"] for r in sent]


async def test_receipts_written_in_one_transaction_are_each_listed_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # Files written together by the group commit (D49) share their received-at moment: the
    # cursor must tell them apart.
    code, headers = await facility_with_token(client, session, settings)
    sender = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=code
    )
    codes = await catalogs.codebook(session)
    files = [
        (sender, data, prepare(data, codes=codes, limits=Limits()))
        for data in (synth.envelope([visit_of(code, 50 + n, ENDED)], code) for n in range(4))
    ]
    receipts = await accept_many(session, files, IntakeOptions(limits=Limits()))
    await session.flush()
    assert len({r["received_at"] for r in receipts}) == 1

    found, pages = await every_page(client, headers, "limit=1")

    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in receipts)
    assert pages == 4


async def test_a_forged_cursor_is_a_coded_error(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    # not base64 JSON; a list of the wrong types; not a moment
    for cursor in ("not-a-cursor!", "WyJ4IiwxXQ", "WyJub3QgYSBtb21lbnQiLCJ4Il0"):
        response = await client.get(f"/api/v1/submissions?cursor={cursor}", headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "KIT-0001"), cursor
    later = (datetime.now().astimezone() + timedelta(days=1)).isoformat().replace("+", "%2B")
    empty = await client.get(f"/api/v1/submissions?since={later}", headers=headers)
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_whoever_may_not_read_a_receipt_or_listing_is_told_what_it_is_about(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Each refusal names what it is about (a submission, a facility) and what to do: a person
    signed in (a facility's administrator) names the facility with ``?facility=``; no text calls
    a facility code a "submission"."""
    code, headers = await facility_with_token(client, session, settings)
    sent = (await send(client, headers, synth.envelope([visit_of(code, 70, ENDED)], code))).json()
    other, other_headers = await facility_with_token(client, session, settings)

    receipt = await client.get(f"/api/v1/submissions/{sent['id']}", headers=other_headers)
    assert (receipt.status_code, receipt.json()["code"]) == (403, "SUB-0016")
    assert receipt.json()["message"] == {
        "vi": f"Lượt gửi {sent['id']} là của một cơ sở khác: chỉ cơ sở đã gửi tệp và Sở Y tế "
        "của tỉnh được xem biên nhận.",
        "en": f"Submission {sent['id']} was sent by another facility: only the facility that "
        "sent it and its province's health department may read its receipt.",
    }
    listing = await client.get(f"/api/v1/submissions?facility={code}", headers=other_headers)
    assert (listing.status_code, listing.json()["code"]) == (403, "SUB-0023")
    assert listing.json()["message"] == {
        "vi": f"Bạn không được xem dữ liệu của cơ sở {code}: chỉ quản trị viên, hệ thống phần "
        "mềm của cơ sở này và Sở Y tế của tỉnh được xem.",
        "en": f"You may not read the data of facility {code}: only its administrators, its own "
        "systems and its province's health department may.",
    }
    awaiting = await client.get(
        "/api/v1/checkins/awaiting-visits", params={"facility": code}, headers=other_headers
    )
    assert (awaiting.status_code, awaiting.json()["message"]) == (403, listing.json()["message"])
    assert other != code

    # the facility's administrator, signed in on the portal: says which facility, then reads
    await identity.bootstrap_grant(session, BINH, "facility_admin", facility_code=code)
    await session.flush()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(
            settings, {"personal_id": BINH, "name": "Trần Thị Bình", "assurance_level": 2}
        ),
    )
    unnamed = await client.get("/api/v1/submissions")
    assert (unnamed.status_code, unnamed.json()["code"]) == (422, "SUB-0025")
    assert unnamed.json()["message"] == {
        "vi": "Hãy cho biết cơ sở cần xem: thêm ?facility=MÃ_CƠ_SỞ (mã cơ sở KCB 5 chữ số) vào "
        "địa chỉ. Chỉ hệ thống phần mềm của cơ sở được bỏ qua tham số này (khi xem dữ liệu của "
        "chính cơ sở).",
        "en": "Say which facility: add ?facility=CODE (the 5-digit facility code) to the "
        "address. Only a facility's own system may leave it out (for its own facility).",
    }
    unnamed_awaiting = await client.get("/api/v1/checkins/awaiting-visits")
    assert (unnamed_awaiting.status_code, unnamed_awaiting.json()["code"]) == (422, "SUB-0025")
    named = await client.get(f"/api/v1/submissions?facility={code}")
    assert named.status_code == 200, named.text
    assert [r["id"] for r in named.json()["items"]] == [sent["id"]]
