"""What a representative of a person of 16 or more must not learn of a sensitive visit by the
side doors (D132): the audit trail in FHIR, the inbox's paging and marking, and the
Provenance of an earlier version."""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.exchange.test_push_privacy import represent
from tests.exchange.test_push_recipients import FAST, deliver, push_service
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_confided import FHIR, _diagnosed, _young_person_with_two_visits
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import audit, exchange, identity, records
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def _audit_events(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry") or []
        if e["resource"]["resourceType"] == "AuditEvent"
    ]


#: every AuditEvent on one page
ALL = {"_count": "500"}


def _objects(events: list[dict[str, Any]]) -> set[str]:
    """The ids of the objects the audit rows name (``type/id``)."""
    return {
        e["entity"][0]["what"]["display"].rpartition("/")[2]
        for e in events
        if "/" in e["entity"][0]["what"]["display"]
    }


def _actions(events: list[dict[str, Any]]) -> list[str]:
    return [e["subtype"][-1]["code"] for e in events]


async def test_a_parent_of_a_sixteen_year_old_reads_in_the_audit_trail_only_who_looked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Rows of a hidden visit's arrival, its paper, the allergy written with it would count
    the hidden visits and date them; a copy the department took would name it."""
    young, _, _, secret_id = await _young_person_with_two_visits(client, session, settings)
    person_id = await identity.person_id_of(session, young[0])
    await born_years_ago(session, young[0], 17)
    secret = await records.entry(session, secret_id)
    assert secret is not None
    # the department took a copy of the hidden visit, as ``export_visit`` records it
    session.add(
        audit.audit_event(
            actor="person:079090001234",
            action="visit.exported",
            object_type="visit_version",
            object_id=str(secret.version_id),
            person_id=person_id,
            detail={
                "facility_code": secret.facility_code,
                "visit_key": secret.visit_key,
                "department": "01",
            },
        )
    )
    await session.flush()
    hidden = {str(secret_id), str(secret.version_id)}
    as_person(client, settings, young[0])
    everything_url = f"{FHIR}/Patient/{person_id}/$everything"
    own = _audit_events((await client.get(everything_url, params=ALL)).json())
    assert "visit.received" in _actions(own)
    assert "fhir.written" in _actions(own)

    as_person(client, settings, AN[0])
    everything = (await client.get(everything_url, params=ALL)).json()
    searched = (await client.get(f"{FHIR}/AuditEvent", params=ALL)).json()
    for events in (_audit_events(everything), _audit_events(searched)):
        assert set(_actions(events)) <= set(audit.READS)
        assert "visit.exported" in _actions(events)  # that the department looked, and when
        assert not _objects(events) & hidden
    log = (await client.get("/api/v1/me/access-log")).json()
    assert "visit.exported" in [e["action"] for e in log]
    assert not {e["what"].rpartition("/")[2] for e in log} & hidden


async def test_a_parent_of_a_fifteen_year_old_still_reads_the_whole_audit_trail(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, _, _, secret_id = await _young_person_with_two_visits(client, session, settings)
    person_id = await identity.person_id_of(session, young[0])
    await born_years_ago(session, young[0], 15)
    secret = await records.entry(session, secret_id)
    assert secret is not None
    as_person(client, settings, AN[0])
    everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything", params=ALL)
    events = _audit_events(everything.json())
    assert "visit.received" in _actions(events)
    # the arrival of the sensitive visit, named by its version (as ``visit.received`` names it)
    assert str(secret.version_id) in _objects(events)


async def _told(client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
                ) -> tuple[tuple[str, str, str, str], int, int]:  # fmt: skip
    """The young person of 17 told of both visits: the person, the id of the notice of the
    ordinary visit and of the sensitive one."""
    young, _, _, _ = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 17)
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
    as_person(client, settings, young[0])
    own = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert len(own) == 2
    [secret] = [i["id"] for i in own if i["params"].get("sensitive")]
    [plain] = [i["id"] for i in own if not i["params"].get("sensitive")]
    return young, plain, secret


async def _unread_of(client: httpx.AsyncClient, settings: Settings, personal_id: str) -> set[int]:
    as_person(client, settings, personal_id)
    items = (await client.get("/api/v1/me/notifications")).json()["items"]
    return {i["id"] for i in items if not i["read"]}


async def test_a_parents_read_all_counts_and_marks_only_what_the_parent_sees(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    young, _, secret = await _told(client, session, settings, db)
    as_person(client, settings, AN[0])
    done = await client.post("/api/v1/me/notifications/read-all")
    assert done.json() == {"marked": 1}
    assert await _unread_of(client, settings, young[0]) == {secret}


async def test_a_parents_read_all_on_the_portal_leaves_the_hidden_notice_unread(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    young, _, secret = await _told(client, session, settings, db)
    as_person(client, settings, AN[0])
    csrf = re.search(r'name="csrf" value="([^"]+)"', (await client.get("/portal")).text)
    assert csrf is not None
    done = await client.post(
        "/portal/notifications/read-all", data={"csrf": csrf[1]}, follow_redirects=False
    )
    assert done.status_code == 303
    assert await _unread_of(client, settings, young[0]) == {secret}


async def test_a_parents_inbox_pages_are_full_and_end_where_the_visible_notices_end(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    _, plain, _ = await _told(client, session, settings, db)
    as_person(client, settings, AN[0])
    pages = []
    cursor = None
    while True:
        page = (
            await client.get(
                "/api/v1/me/notifications",
                params={"limit": 1, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        pages.append([i["id"] for i in page["items"]])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert pages == [[plain]]


async def test_a_parent_cannot_mark_a_hidden_notice_read(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    young, plain, secret = await _told(client, session, settings, db)
    as_person(client, settings, AN[0])
    hidden = await client.post(f"/api/v1/me/notifications/{secret}/read")
    nowhere = await client.post("/api/v1/me/notifications/999999999/read")
    assert hidden.status_code == nowhere.status_code == 404
    assert hidden.json()["code"] == nowhere.json()["code"]
    assert (await client.post(f"/api/v1/me/notifications/{plain}/read")).status_code == 204
    assert await _unread_of(client, settings, young[0]) == {secret}


async def test_a_parent_does_not_read_the_provenance_of_an_earlier_version_of_a_hidden_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A headache (R51) corrected to a depression (F32.2): the visit is hidden now, and so is
    where its first version came from."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    first = _diagnosed(visit_of(code, 91, datetime(2026, 10, 1, 9, 0), age_group=1), "R51")  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([first], code))).status_code == 201
    second = _diagnosed(copy.deepcopy(first), "F32.2")
    assert (await send(client, headers, synth.envelope([second], code))).status_code == 201
    young = who(first)
    await sign_in_as(client, session, settings, young)
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]
    entry = await records.entry(session, item["id"])
    assert entry is not None
    versions = await records.versions(session, entry.facility_code, entry.visit_key)
    assert [v.version for v in versions] == [1, 2]
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    await born_years_ago(session, young[0], 17)
    client.cookies.clear()
    as_person(client, settings, young[0])
    for v in versions:
        assert (await client.get(f"{FHIR}/Provenance/{v.id}")).status_code == 200
    as_person(client, settings, AN[0])
    for v in versions:
        assert (await client.get(f"{FHIR}/Provenance/{v.id}")).status_code == 404
