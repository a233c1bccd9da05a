"""From 16 a young person may choose care in confidence (D35's sensitive categories): a
representative reading their book does not see a visit touching one, anywhere (timeline, visit,
PDF, summary, FHIR, the new-visit message); the young person sees it all, and a younger
child's parent sees it as before."""

from __future__ import annotations

from datetime import date, datetime

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.exchange.test_push_privacy import represent
from tests.exchange.test_push_recipients import FAST, deliver, push_service
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange, identity, records, sharing
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

FHIR = "/fhir/R4"


def _diagnosed(one: synth.SynthVisit, code: str) -> synth.SynthVisit:
    for name in ("XML6", "XML15"):
        one.tables.pop(name, None)
    for rows in one.tables.values():
        for row in rows:
            if "MA_BENH_CHINH" in row:
                row["MA_BENH_CHINH"] = code
            if "MA_BENH_KT" in row:
                row["MA_BENH_KT"] = ""
    return one


async def _young_person_with_two_visits(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[tuple[str, str, str, str], dict[str, str], int, int]:
    """A young person with an ordinary visit (asthma) and a mental-health one (F32.2), an
    allergy recorded in the latter, and AN as their parent: the person, the facility's
    headers, the ordinary visit's id and the sensitive one's."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    plain = _diagnosed(visit_of(code, 81, datetime(2026, 10, 1, 9, 0), age_group=1), "J45.0")  # noqa: DTZ001
    secret = _diagnosed(
        visit_of(code, 82, datetime(2026, 10, 9, 9, 0), plain, age_group=1, appointment=True),  # noqa: DTZ001
        "F32.2",
    )
    assert not sharing.categories(plain.tables)
    assert sharing.categories(secret.tables) == {"mental"}
    answer = await send(client, headers, synth.envelope([plain, secret], code))
    assert answer.status_code == 201, answer.text
    young = who(plain)
    await sign_in_as(client, session, settings, young)
    items = (await client.get("/api/v1/me/timeline")).json()["items"]
    assert len(items) == 2
    secret_id, plain_id = items[0]["id"], items[1]["id"]
    person_id = await identity.person_id_of(session, young[0])
    allergy = {
        "resourceType": "AllergyIntolerance",
        "code": {"text": "Sertraline"},
        "patient": {"reference": f"Patient/{person_id}"},
        "encounter": {"reference": f"Encounter/{secret_id}"},
    }
    client.cookies.clear()
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=headers)
    assert written.status_code == 201, written.text
    await represent(session, AN, young[0], "parent", date(2010, 1, 1))
    return young, headers, plain_id, secret_id


async def _book_as_read(
    client: httpx.AsyncClient, personal_id: str, person_id: int, secret_id: int, plain_id: int
) -> dict[str, str]:
    """What the signed-in reader gets of the book of ``personal_id``, path by path."""
    query = {"for": personal_id}
    timeline = await client.get("/api/v1/me/timeline", params=query)
    assert timeline.status_code == 200, timeline.text
    assert plain_id in [i["id"] for i in timeline.json()["items"]]
    one_by_one = []
    cursor = None
    while True:
        page = await client.get("/api/v1/me/timeline", params={**query, "limit": 1, **(
            {"cursor": cursor} if cursor else {})})  # fmt: skip
        one_by_one += [i["id"] for i in page.json()["items"]]
        cursor = page.json().get("next_cursor")
        if not cursor:
            break
    summary = await client.get("/api/v1/me/summary", params=query)
    assert summary.status_code == 200, summary.text
    assert plain_id in [v["id"] for v in summary.json()["last_visits"]]
    visit = await client.get(f"/api/v1/me/visits/{secret_id}")
    pdf = await client.get(f"/api/v1/me/visits/{secret_id}.pdf")
    everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything")
    assert everything.status_code == 200, everything.text
    encounters = await client.get(f"{FHIR}/Encounter", params={"patient": str(person_id)})
    conditions = await client.get(f"{FHIR}/Condition", params={"patient": str(person_id)})
    allergies = await client.get(f"{FHIR}/AllergyIntolerance", params={"patient": str(person_id)})
    encounter = await client.get(f"{FHIR}/Encounter/{secret_id}")
    documents = await client.get(f"{FHIR}/DocumentReference", params={"patient": str(person_id)})
    page = await client.get(f"/portal/book/visits/{secret_id}")
    book = await client.get("/portal/book", params=query)
    papers = await client.get("/api/v1/me/papers", params=query)
    assert papers.status_code == 200, papers.text
    paper_ids = sorted((p["visit_key"] or "", p["id"]) for p in papers.json()["papers"])
    paper_page = await client.get("/portal/book/papers", params=query)
    assert paper_page.status_code == 200, paper_page.text
    return {
        "timeline": timeline.text,
        "pages": orjson.dumps(one_by_one).decode(),
        "summary": summary.text,
        "visit": str(visit.status_code),
        "pdf": str(pdf.status_code),
        "everything": everything.text,
        "search": encounters.text + conditions.text + allergies.text,
        "encounter": str(encounter.status_code),
        "page": str(page.status_code),
        "book": book.text,
        "papers": orjson.dumps(paper_ids).decode(),
        "paper_page": paper_page.text,
        "documents": documents.text,
    }


def _encounter_ids(bundle: str) -> set[str]:
    return {
        e["resource"]["id"]
        for e in orjson.loads(bundle).get("entry") or []
        if e["resource"]["resourceType"] == "Encounter"
    }


async def test_a_parent_of_a_sixteen_year_old_does_not_see_a_sensitive_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, _, plain_id, secret_id = await _young_person_with_two_visits(client, session, settings)
    person_id = await identity.person_id_of(session, young[0])
    assert person_id is not None
    await born_years_ago(session, young[0], 17)

    as_person(client, settings, AN[0])
    parent = await _book_as_read(client, young[0], person_id, secret_id, plain_id)
    assert [i["id"] for i in orjson.loads(parent["timeline"])["items"]] == [plain_id]
    assert orjson.loads(parent["pages"]) == [plain_id]
    assert "F32" not in parent["summary"]
    assert "Sertraline" not in parent["summary"]
    assert [v["id"] for v in orjson.loads(parent["summary"])["last_visits"]] == [plain_id]
    # answered as a visit that does not exist: nothing tells it is there
    assert parent["visit"] == parent["pdf"] == parent["encounter"] == parent["page"] == "404"
    nowhere = (await client.get("/api/v1/me/visits/999999999")).json()
    hidden = (await client.get(f"/api/v1/me/visits/{secret_id}")).json()
    assert hidden["code"] == nowhere["code"]
    assert _encounter_ids(parent["everything"]) == {str(plain_id)}
    for text in (parent["everything"], parent["search"]):
        assert "F32" not in text
        assert "Sertraline" not in text
        assert f"Encounter/{secret_id}" not in text
    assert "F32" not in parent["book"]
    secret_key = (await records.entry(session, secret_id)).visit_key  # type: ignore[union-attr]

    # the young person sees both
    as_person(client, settings, young[0])
    own = await _book_as_read(client, young[0], person_id, secret_id, plain_id)
    assert [i["id"] for i in orjson.loads(own["timeline"])["items"]] == [secret_id, plain_id]
    assert orjson.loads(own["pages"]) == [secret_id, plain_id]
    assert "F32" in own["summary"]
    assert "Sertraline" in own["summary"]
    assert own["visit"] == own["pdf"] == own["encounter"] == own["page"] == "200"
    assert _encounter_ids(own["everything"]) == {str(plain_id), str(secret_id)}
    assert "Sertraline" in own["search"]
    # the re-exam appointment issued with the sensitive visit is not in the parent's papers
    assert orjson.loads(parent["papers"]) == [
        p for p in orjson.loads(own["papers"]) if p[0] != secret_key
    ]
    [paper_id] = [p[1] for p in orjson.loads(own["papers"]) if p[0] == secret_key]
    assert f"paper-{paper_id}" in own["documents"]
    assert f"paper-{paper_id}" not in parent["documents"]
    assert paper_id not in parent["paper_page"]
    as_person(client, settings, AN[0])
    assert (await client.get(f"/api/v1/papers/{paper_id}")).status_code == 404
    assert (await client.get(f"{FHIR}/DocumentReference/paper-{paper_id}")).status_code == 404


async def test_a_parent_of_a_fifteen_year_old_still_sees_every_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, _, plain_id, secret_id = await _young_person_with_two_visits(client, session, settings)
    person_id = await identity.person_id_of(session, young[0])
    assert person_id is not None
    await born_years_ago(session, young[0], 15)

    as_person(client, settings, AN[0])
    parent = await _book_as_read(client, young[0], person_id, secret_id, plain_id)
    assert [i["id"] for i in orjson.loads(parent["timeline"])["items"]] == [secret_id, plain_id]
    assert orjson.loads(parent["pages"]) == [secret_id, plain_id]
    assert "F32" in parent["summary"]
    assert "Sertraline" in parent["summary"]
    assert parent["visit"] == parent["pdf"] == parent["encounter"] == parent["page"] == "200"
    assert _encounter_ids(parent["everything"]) == {str(plain_id), str(secret_id)}
    assert len(orjson.loads(parent["papers"])) >= 1


async def test_a_parent_is_not_told_of_a_sixteen_year_olds_sensitive_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """Neither the phone nor the inbox: not even a neutral "news about your child" (the
    inbox would then hold nothing to match it). The young person is told as before."""
    young, _, _, _ = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 17)
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = await service.pushed()

    to_parent = [p for p in pushed if p["personal_id"] == AN[0]]
    assert len(to_parent) == 1  # the ordinary visit only
    assert to_parent[0]["kind"] == "visit"
    assert len([p for p in pushed if p["personal_id"] == young[0]]) == 2
    as_person(client, settings, AN[0])
    inbox = (await client.get("/api/v1/me/notifications")).json()
    assert [i["kind"] for i in inbox["items"]] == ["visit"]
    assert inbox["unread"] == 1
    portal = (await client.get("/portal")).text
    as_person(client, settings, young[0])
    own = (await client.get("/api/v1/me/notifications")).json()
    assert len(own["items"]) == 2
    assert own["unread"] == 2
    assert portal.count(young[1]) >= 1


async def test_a_parent_of_a_fifteen_year_old_is_told_of_the_sensitive_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    young, _, _, _ = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 15)
    async with push_service(settings, db) as service:
        consumers: exchange.Consumers = {
            "visit.accepted": {"inbox": exchange.visit_notifier(service.push)}
        }
        await deliver(db, consumers, FAST)
        pushed = await service.pushed()

    assert len([p for p in pushed if p["personal_id"] == AN[0]]) == 2
    as_person(client, settings, AN[0])
    assert len((await client.get("/api/v1/me/notifications")).json()["items"]) == 2
