"""A paper read through FHIR as a DocumentReference has a history like any resource: whoever
may read ``DocumentReference/paper-{id}`` (the holder, a parent acting for a child, the
issuing facility's system) gets its ``_history`` and its version by ``vread``; anyone else
gets 404, and the reads of others than the holder are audited like the read."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import DRIVER, REGISTRAR, SCOPES, driver_body, local_now
from tests.submissions.test_intake import facility_with_token, send
from vnehr import identity
from vnehr.audit import AuditEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

FHIR = "/fhir/R4/DocumentReference"


async def test_the_holder_reads_the_history_of_a_paper_others_get_404(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(
        client, session, settings, scopes=(*SCOPES, "record.read")
    )
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    address = f"{FHIR}/paper-{paper['id']}"
    await sign_in_as(client, session, settings, DRIVER)
    current = await client.get(address)
    assert current.status_code == 200, current.text
    history = await client.get(f"{address}/_history")
    assert history.status_code == 200, history.text
    bundle = history.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "history", 1)
    assert [e["resource"] for e in bundle["entry"]] == [current.json()]
    version = current.json()["meta"]["versionId"]
    one = await client.get(f"{address}/_history/{version}")
    assert (one.status_code, one.json()) == (200, current.json())
    assert (await client.get(f"{address}/_history/9")).status_code == 404

    # the issuing facility's system reads it too; somebody else never learns it exists
    client.cookies.clear()
    assert (await client.get(f"{address}/_history", headers=headers)).status_code == 200
    await sign_in_as(
        client, session, settings, ("001199000001", "Người Khác", "1999-01-01", "female")
    )
    for path in (address, f"{address}/_history", f"{address}/_history/{version}"):
        answer = await client.get(path)
        assert answer.status_code == 404, path
        assert paper["number"] not in answer.text


async def test_a_parent_reads_the_history_of_a_child_paper_and_it_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    child = visit_of(
        code,
        72,
        local_now() - timedelta(days=2),
        care_type="01",
        insured=True,
        appointment=True,
        age_group=0,
    )
    await send(client, headers, synth.envelope([child], code))
    parent = ("001080012347", "Lê Văn Bố", "1980-02-02", "male")
    await sign_in_as(client, session, settings, child_who := who(child))
    await sign_in_as(client, session, settings, parent)
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=parent[0],
        subject_person=child_who[0],
        relation="parent",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )
    [paper] = (await client.get(f"/api/v1/me/papers?for={child_who[0]}")).json()["papers"]
    history = await client.get(f"{FHIR}/paper-{paper['id']}/_history")
    assert history.status_code == 200, history.text
    assert history.json()["entry"][0]["resource"]["id"] == f"paper-{paper['id']}"
    audited = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.actor == f"person:{parent[0]}", AuditEvent.action == "fhir.read"
            )
        )
    ).all()
    assert [(a.object_id, a.detail) for a in audited] == [
        (f"DocumentReference/paper-{paper['id']}/_history", {"as": "parent"})
    ]
