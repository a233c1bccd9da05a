"""The links of a child's book (a parent reading it, ``?p=``, D131) stay with the child: "who
viewed the record" from the child's book is the child's log, and that page's own links (back,
older reads, a dispute) keep to it."""

from __future__ import annotations

import html
import re
from datetime import date, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import REGISTRAR
from tests.sharing.test_access import DOCTOR
from tests.submissions.test_intake import facility_with_token, send
from vnehr import audit, identity
from vnehr.audit import AuditEvent
from vnehr.fhir import PERSONAL_ID
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def _links(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text[:300]
    return [html.unescape(h) for h in re.findall(r'(?:href|action)="([^"]*)"', page.text)]


def _to(page: httpx.Response, prefix: str) -> str:
    found = [h for h in _links(page) if h.startswith(prefix)]
    assert found, (prefix, _links(page))
    return found[0]


def _heading(page: httpx.Response) -> str:
    found = re.search(r"<h1>([^<]*)</h1>", page.text)
    assert found is not None
    return html.unescape(found[1]).strip()


def _disputes(page: httpx.Response) -> set[int]:
    """The reads a log page lists (each has its "I don't recognise this" form)."""
    return {int(i) for i in re.findall(r"/portal/book/access-log/(\d+)/dispute", page.text)}


async def test_who_looked_from_a_childs_book_is_the_childs_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    parents_visit = visit_of(code, 84, datetime(2026, 10, 2, 9, 0))  # noqa: DTZ001
    childs_visit = visit_of(code, 85, datetime(2026, 10, 3, 9, 0), age_group=0)  # noqa: DTZ001
    sent = await send(client, headers, synth.envelope([parents_visit, childs_visit], code))
    assert sent.status_code == 201, sent.text
    parent, child = who(parents_visit), who(childs_visit)
    await sign_in_as(client, session, settings, parent)
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=parent[0],
        subject_person=child[0],
        relation="parent",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )
    # the facility's system reads the parent's record once and the child's twice
    client.cookies.clear()
    for person in (parent, child, child):
        found = await client.get(
            "/fhir/R4/Patient",
            params={"identifier": f"{PERSONAL_ID}|{person[0]}"},
            headers=headers,
        )
        assert found.json()["total"] == 1, found.text
    parent_id = await identity.person_id_of(session, parent[0])
    child_id = await identity.person_id_of(session, child[0])
    reads: dict[int | None, set[int]] = {}
    for row in await session.scalars(select(AuditEvent).where(AuditEvent.action == "fhir.read")):
        reads.setdefault(row.person_id, set()).add(row.id)
    assert len(reads[parent_id]) == 1
    assert len(reads[child_id]) == 2

    await sign_in_as(client, session, settings, parent)
    book = await client.get(_to(await client.get("/portal"), "/portal/book?"))
    assert _heading(book).endswith(child[1])
    address = _to(book, "/portal/book/access-log")
    assert child[0] not in address
    log = await client.get(address)
    assert child[1] in _heading(log)
    assert _disputes(log) == reads[child_id]  # the child's reads, not the parent's
    # the page's links stay with the child: back to the child's book, switching language
    assert _heading(await client.get(_to(log, "/portal/book?"))).endswith(child[1])
    switch = next(h for h in _links(log) if "lang=en" in h)
    english = await client.get(switch)
    assert "Who viewed the record of" in _heading(english)
    vietnamese = await client.get(next(h for h in _links(english) if "lang=vi" in h))
    assert _disputes(vietnamese) == reads[child_id]
    assert _disputes(english) == reads[child_id]
    assert all(child[0] not in h for h in _links(log))
    # "I don't recognise this" on the child's log goes back to it
    [read_id] = sorted(reads[child_id])[:1]
    csrf = re.search(r'name="csrf" value="([^"]+)"', log.text)
    assert csrf is not None
    disputed = await client.post(
        _to(log, f"/portal/book/access-log/{read_id}/dispute"), data={"csrf": csrf[1]}
    )
    assert disputed.status_code == 303, disputed.text[:300]
    assert child[0] not in disputed.headers["location"]
    after = await client.get(disputed.headers["location"])
    assert child[1] in _heading(after)
    assert text("web.access.notice", "vi") in after.text
    assert _disputes(after) == reads[child_id] - {read_id}

    # the parent's own book leads to their own log (and those they act for, as before)
    own = await client.get("/portal/book")
    assert _heading(own).endswith(parent[1])
    own_log = await client.get(_to(own, "/portal/book/access-log"))
    assert reads[parent_id] <= _disputes(own_log)

    # of a child of 16 or 17, a parent is told that a facility looked, not which (D109)
    await born_years_ago(session, child[0], 17)
    older = await client.get(address)
    assert child[1] in _heading(older)
    assert text("web.access.a_facility", "vi") in older.text
    assert f"({code})" not in older.text
    assert "Bệnh viện thử" not in older.text

    # a hundred more reads of the child's record: "older reads" stays with the child too
    for _ in range(100):
        session.add(
            audit.audit_event(
                actor=f"person:{DOCTOR[0]}",
                action="clinical.read",
                object_type="record",
                object_id=child[0],
                person_id=child_id,
                detail={"facility": code},
            )
        )
    await session.flush()
    newest = await client.get(address)
    assert len(_disputes(newest)) == 100
    assert reads[child_id] & _disputes(newest) == set()
    link = re.search(r'id="older" href="([^"]+)"', newest.text)
    assert link is not None
    assert child[0] not in link[1]
    more = await client.get(html.unescape(link[1]))
    assert child[1] in _heading(more)
    assert reads[child_id] - {read_id} <= _disputes(more)
    assert reads[parent_id] & _disputes(more) == set()
