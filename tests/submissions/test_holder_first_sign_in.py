"""While the holder of a personal ID has not signed in with VNeID (pending, D23) there is
nothing confirmed to compare with: visits, papers and FHIR Patients naming that ID are filed to
them whatever name and birth date they give. At the holder's first sign-in what was filed is
compared with what VNeID confirmed, as the intake compares a new visit (D150): what names
someone else leaves the holder's book (timeline, summary, notices, papers, FHIR records), the
facility's receipt says so (SUB-0170), and the audit log records it about the person, naming
no stranger's details. Whatever matches stays."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import as_person, signed_in
from tests.fhir.test_api import FHIR
from tests.fhir.test_patient_holder import _an_reads, _patient, _visit_bundle
from tests.fhir.test_write import WRITER
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import SCOPES, driver_body
from tests.submissions.test_intake import facility_with_token, send
from tests.submissions.test_patient_match import HOLD, a_visit, holds
from tests.web.test_login import login
from vnehr import exchange, reporting
from vnehr.audit import AuditEvent
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry
from vnehr.reporting.metrics import Period
from vnehr.submissions import synth

AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")  # as the VNeID simulator has him
STRANGER = ("Trần Văn Giả", "198501010000")
HELD = "patient.held_at_first_sign_in"
FAST = exchange.Policy(backoff_seconds=0.001, max_backoff_seconds=0.001)


async def tell(db: Database) -> None:
    """Deliver the inbox's events (new visits, papers issued) until none is left."""
    push = exchange.LogPush()
    consumers: exchange.Consumers = {
        "visit.accepted": {"inbox": exchange.visit_notifier(push)},
        "paper.issued": {"inbox": exchange.event_notifier("paper", push)},
    }
    for _ in range(10):
        if not await exchange.deliver_once(db, consumers, FAST):
            return


async def entry_of(session: AsyncSession, code: str, visit: synth.SynthVisit) -> int:
    found = await session.scalar(
        select(TimelineEntry.id).where(
            TimelineEntry.facility_code == code, TimelineEntry.visit_key == visit.ma_lk
        )
    )
    assert found is not None
    return int(found)


async def book_of_an(client: httpx.AsyncClient) -> dict[str, Any]:
    """What An's own book shows him (the client is signed in as him)."""
    timeline = await client.get("/api/v1/me/timeline")
    summary = await client.get("/api/v1/me/summary")
    inbox = await client.get("/api/v1/me/notifications")
    papers = await client.get("/api/v1/me/papers")
    for response in (timeline, summary, inbox, papers):
        assert response.status_code == 200, response.text
    return {
        "timeline": sorted(i["id"] for i in timeline.json()["items"]),
        "summary": sorted(i["id"] for i in summary.json()["last_visits"]),
        "notices": sorted(
            (m["kind"], m["params"].get("visit_key") or m["params"].get("number"))
            for m in inbox.json()["items"]
        ),
        "papers": sorted(p["number"] for p in papers.json()["papers"]),
    }


async def held_rows(session: AsyncSession) -> list[AuditEvent]:
    return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == HELD)))


async def test_a_stranger_s_visit_filed_while_an_was_pending_leaves_his_book_at_sign_in(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    stranger = a_visit(code, 51, *STRANGER)  # someone else, under An's mistyped ID
    his = a_visit(code, 52, "NGUYEN VAN AN", "198503140000")
    sent = await send(client, headers, synth.envelope([stranger, his], code))
    assert sent.status_code == 201, sent.text
    assert holds(sent.json()) == []  # An has not signed in: nothing to compare with
    await tell(db)  # An's inbox has a notice of each

    # An signs in with VNeID for the first time, through the portal
    answer = await login(client, AN[0])
    assert answer.status_code == 303, answer.text

    mine = await entry_of(session, code, his)
    assert await book_of_an(client) == {
        "timeline": [mine],
        "summary": [mine],
        "notices": [("visit", his.ma_lk)],
        "papers": [],
    }
    client.cookies.clear()
    # the facility reads on its receipt that the visit is held, and which field differs
    receipt = await client.get(f"/api/v1/submissions/{sent.json()['id']}", headers=headers)
    assert receipt.status_code == 200, receipt.text
    by_key = {v["visit_key"]: v for v in receipt.json()["visits"]}
    assert [i["field"] for i in by_key[stranger.ma_lk]["issues"] if i["code"] == HOLD] == [
        "HO_TEN",
        "NGAY_SINH",
    ]
    assert by_key[stranger.ma_lk]["status"] == "accepted_with_warnings"
    assert [i for i in by_key[his.ma_lk]["issues"] if i["code"] == HOLD] == []
    for told in (AN[1], "Nguyen Van An", "1985-03-14", "19850314"):
        assert told not in receipt.text
    # kept for the facility, as a visit held at intake is
    kept = await client.get(f"/api/v1/visits/{code}/{stranger.ma_lk}/xml", headers=headers)
    assert kept.status_code == 200
    # the audit log says what was held, about An, with nothing of the stranger's
    [row] = await held_rows(session)
    assert row.object_type == "person"
    assert row.person_id is None
    assert row.detail is not None
    assert row.detail["visits"] == 1
    assert "Trần Văn Giả" not in str(row.detail)
    assert "198501010000" not in str(row.detail)


async def test_a_notice_of_a_held_visit_not_told_before_the_sign_in_is_not_told_after(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    stranger = a_visit(code, 53, *STRANGER)
    his = a_visit(code, 54, AN[1], "198503140000")
    assert (await send(client, headers, synth.envelope([stranger, his], code))).status_code == 201

    await sign_in_as(client, session, settings, AN)  # before the worker told anyone
    await tell(db)

    notices = (await book_of_an(client))["notices"]
    assert ("visit", his.ma_lk) in notices
    assert {about for _, about in notices} == {his.ma_lk}  # (and the papers of his visit)


async def test_papers_naming_someone_else_leave_an_s_book_at_his_first_sign_in(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    numbers = []
    for name, born in (("Trần Văn Giả", "1985-01-01"), ("nguyễn văn an", AN[2])):
        holder = {"personal_id": AN[0], "name": name, "birth_date": born, "sex": "male"}
        made = await client.post("/api/v1/papers", json=driver_body(holder=holder), headers=headers)
        assert made.status_code == 201, made.text  # An is pending: both are his
        numbers.append(made.json()["number"])
    await tell(db)

    await sign_in_as(client, session, settings, AN)

    book = await book_of_an(client)
    assert book["papers"] == [numbers[1]]
    assert [n for kind, n in book["notices"] if kind == "paper"] == [numbers[1]]
    [row] = await held_rows(session)
    assert row.detail is not None
    assert row.detail["papers"] == 1


async def test_a_fhir_visit_and_patient_kept_while_an_was_pending_stop_standing_for_him(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    # while An is pending, under his ID: a stranger's visit with an allergy recorded in it, and
    # the facility's own Patient record of the stranger (kept as sent): An's until now
    written = await client.post(FHIR, json=_visit_bundle(code, 55, *STRANGER), headers=headers)
    assert written.status_code == 200, written.text
    kept = await client.post(
        f"{FHIR}/Patient", json=_patient("Trần Văn Giả", "1985-01-01"), headers=headers
    )
    assert kept.status_code == 201, kept.text

    reads = await _an_reads(client, session, settings)  # (signs An in: the first time)

    # his visits, allergies and summary have nothing of the stranger's, and the Patients of
    # his record are only his own (the one VNeID's details make), not the facility's
    assert reads == {"visits": 0, "allergies": 0, "summary": [], "births": ["1985-03-14"]}
    # the facility still reads what it wrote
    mine = await client.get(f"{FHIR}/Patient/{kept.json()['id']}", headers=headers)
    assert mine.status_code == 200, mine.text


async def test_the_report_still_agrees_with_the_stored_visits(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    stranger = a_visit(code, 56, *STRANGER)
    assert (await send(client, headers, synth.envelope([stranger], code))).status_code == 201

    await sign_in_as(client, session, settings, AN)
    assert (await book_of_an(client))["timeline"] == []

    ngay_ra = stranger.tables["XML1"][0]["NGAY_RA"]  # the visit's month, in Vietnam
    period = Period.parse(f"{ngay_ra[:4]}H{1 if int(ngay_ra[4:6]) <= 6 else 2}")
    assert await reporting.check(session, period, None) == []


async def test_signing_in_again_or_with_new_details_files_nothing_again(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    his = a_visit(code, 57, AN[1], "198503140000")
    stranger = a_visit(code, 58, *STRANGER)
    assert (await send(client, headers, synth.envelope([his, stranger], code))).status_code == 201
    await signed_in(session, AN)
    assert len(await held_rows(session)) == 1

    # again, and once VNeID has another name for him (a legal change of name): his visits,
    # written under the name he had, stay his; nothing is held a second time
    await signed_in(session, AN)
    await signed_in(session, (AN[0], "Nguyễn Văn Bình An", AN[2], AN[3]))

    as_person(client, settings, AN[0])
    assert (await book_of_an(client))["timeline"] == [await entry_of(session, code, his)]
    assert len(await held_rows(session)) == 1
