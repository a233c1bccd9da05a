"""A parent shares a child's record and makes the child's reception code, through the API
(``?for=``) and on the sharing page of the child's book (``?p=``): the directive and the code
are the child's, each act is in the audit log as the parent's about the child. Nobody acts for a
person they do not represent, nor for an adult child; from 16 the young person decides (D132)."""

from __future__ import annotations

import html
import re
from datetime import date, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN
from tests.exchange.test_push_privacy import represent
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.sharing.test_access import DOCTOR
from tests.submissions.test_intake import facility_with_token, send
from vnehr import identity
from vnehr.audit import AuditEvent
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

STRANGER = ("001090000789", "Võ Văn Lạ", "1990-01-01", "male")


async def _child_of_an(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, seed: int = 91
) -> tuple[tuple[str, str, str, str], str]:
    """A child with a visit at one facility, AN their parent; another facility where DOCTOR
    works: the child and that facility's code."""
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, seed, datetime(2026, 10, 1, 9, 0), age_group=0)  # noqa: DTZ001
    answer = await send(client, headers, synth.envelope([one], code))
    assert answer.json()["status"] != "rejected", answer.text
    clinic, _ = await facility_with_token(client, session, settings)
    await represent(session, AN, who(one)[0], "parent", date(2020, 1, 1))
    return who(one), clinic


async def test_a_parent_shares_the_childs_record_and_the_clinician_reads_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    child, clinic = await _child_of_an(client, session, settings)
    record = f"/api/v1/patients/{child[0]}/record"
    at_clinic = {"role": "clinician", "facility_code": clinic}
    await sign_in_as(client, session, settings, DOCTOR, at_clinic)
    error(await client.get(record), 403, "SHR-0001")

    await sign_in_as(client, session, settings, AN)
    made = await client.post(
        "/api/v1/me/consents", params={"for": child[0]}, json={"facility": clinic, "scope": "full"}
    )
    assert made.status_code == 201, made.text
    assert (await client.get("/api/v1/me/consents")).json() == []  # not the parent's own
    [theirs] = (await client.get("/api/v1/me/consents", params={"for": child[0]})).json()
    assert (theirs["facility"], theirs["scope"], theirs["in_force"]) == (clinic, "full", True)

    await sign_in_as(client, session, settings, DOCTOR, at_clinic)
    view = await client.get(record)
    assert view.status_code == 200, view.text
    assert (view.json()["basis"], view.json()["summary"]["person_name"]) == ("consent", child[1])

    # the child's access log (read by the parent) shows the clinician's read
    await sign_in_as(client, session, settings, AN)
    log = (await client.get("/api/v1/me/access-log")).json()
    assert [(e["action"], e["who"]["name"], e["person_name"]) for e in log] == [
        ("clinical.read", DOCTOR[1], child[1])
    ]
    # the parent revokes it, for the child: refused at once
    revoked = await client.delete(f"/api/v1/me/consents/{theirs['id']}", params={"for": child[0]})
    assert revoked.status_code == 200, revoked.text
    await sign_in_as(client, session, settings, DOCTOR, at_clinic)
    error(await client.get(record), 403, "SHR-0001")

    # each act is the parent's, about the child
    child_id = await identity.person_id_of(session, child[0])
    acts = await session.scalars(
        select(AuditEvent).where(AuditEvent.action.in_(("consent.created", "consent.revoked")))
    )
    assert sorted((r.action, r.actor, r.person_id, (r.detail or {}).get("as")) for r in acts) == [
        ("consent.created", f"person:{AN[0]}", child_id, "parent"),
        ("consent.revoked", f"person:{AN[0]}", child_id, "parent"),
    ]


async def test_a_code_made_for_the_child_opens_the_childs_record(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    child, clinic = await _child_of_an(client, session, settings)
    await sign_in_as(client, session, settings, AN)
    own = (await client.post("/api/v1/me/reception-codes")).json()["code"]
    made = await client.post("/api/v1/me/reception-codes", params={"for": child[0]})
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": clinic}
    )
    redeem = f"/api/v1/patients/{child[0]}/reception-code"
    if own != code:  # the parent's own code is the parent's, not the child's
        error(await client.post(redeem, json={"code": own}), 403, "SHR-0008")
    used = await client.post(redeem, json={"code": code})
    assert used.status_code == 201, used.text
    view = await client.get(f"/api/v1/patients/{child[0]}/record")
    assert (view.status_code, view.json()["scope"]) == (200, "full")
    # the parent's own code still works for the parent
    parent = await client.post(f"/api/v1/patients/{AN[0]}/reception-code", json={"code": own})
    assert parent.status_code == 201, parent.text
    child_id = await identity.person_id_of(session, child[0])
    [made_row] = await session.scalars(
        select(AuditEvent).where(AuditEvent.action == "reception_code.made")
    )
    assert (made_row.actor, made_row.person_id, made_row.detail) == (
        f"person:{AN[0]}",
        child_id,
        {"as": "parent"},
    )


async def test_nobody_shares_for_a_person_they_do_not_represent_nor_for_an_adult_child(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    child, clinic = await _child_of_an(client, session, settings)
    adult, _ = await _child_of_an(client, session, settings, seed=92)
    await born_years_ago(session, adult[0], 18)
    await sign_in_as(client, session, settings, AN)
    shared = await client.post(
        "/api/v1/me/consents", params={"for": child[0]}, json={"facility": clinic}
    )
    directive = shared.json()["id"]
    for outsider, whom in ((STRANGER, child[0]), (AN, adult[0])):
        await sign_in_as(client, session, settings, outsider)
        for answer in (
            await client.post(
                "/api/v1/me/consents", params={"for": whom}, json={"facility": clinic}
            ),
            await client.get("/api/v1/me/consents", params={"for": whom}),
            await client.delete(f"/api/v1/me/consents/{directive}", params={"for": whom}),
            await client.post("/api/v1/me/reception-codes", params={"for": whom}),
        ):
            error(answer, 403, "HB-0002")
    # nor revokes the child's directive as their own
    await sign_in_as(client, session, settings, STRANGER)
    error(await client.delete(f"/api/v1/me/consents/{directive}"), 404, "SHR-0004")
    await sign_in_as(client, session, settings, AN)
    [still] = (await client.get("/api/v1/me/consents", params={"for": child[0]})).json()
    assert still["in_force"] is True
    adult_id = await identity.person_id_of(session, adult[0])
    made = await session.scalars(select(AuditEvent).where(AuditEvent.person_id == adult_id))
    assert [r.action for r in made if r.action.startswith(("consent", "reception"))] == []


async def test_from_16_the_young_person_shares_and_the_parent_does_not(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, clinic = await _child_of_an(client, session, settings)
    await sign_in_as(client, session, settings, young)
    await born_years_ago(session, young[0], 16)  # after signing in, which records VNeID's
    mine = await client.post(
        "/api/v1/me/consents", json={"facility": clinic, "scope": "full", "sensitive": ["hiv"]}
    )
    assert mine.status_code == 201, mine.text
    await sign_in_as(client, session, settings, AN)
    for answer in (
        await client.post("/api/v1/me/consents", params={"for": young[0]}, json={"facility": "*"}),
        await client.get("/api/v1/me/consents", params={"for": young[0]}),
        await client.delete(f"/api/v1/me/consents/{mine.json()['id']}", params={"for": young[0]}),
        await client.post("/api/v1/me/reception-codes", params={"for": young[0]}),
    ):
        body = error(answer, 403, "SHR-0014")
        assert young[1] in body["message"]["vi"]
    # the page of the young person's book says so, names no facility and offers no form
    page = await client.get("/portal/book/sharing", params={"for": young[0]})
    assert page.status_code == 200, page.text[:300]
    assert text("web.sharing.confided", "vi", {"name": young[1]}) in page.text
    assert clinic not in page.text
    assert 'name="action"' not in page.text
    await sign_in_as(client, session, settings, young)
    [kept] = (await client.get("/api/v1/me/consents")).json()
    assert (kept["facility"], kept["in_force"]) == (clinic, True)


def _links(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text[:300]
    return [html.unescape(h) for h in re.findall(r'(?:href|action)="([^"]*)"', page.text)]


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found[1]


async def test_the_sharing_page_of_the_childs_book_acts_for_the_child(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    child, clinic = await _child_of_an(client, session, settings)
    await sign_in_as(client, session, settings, AN)
    book = await client.get("/portal/book", params={"for": child[0]})
    address = next(h for h in _links(book) if h.startswith("/portal/book/sharing?p="))
    page = await client.get(address)
    assert child[1] in page.text
    assert [h for h in _links(page) if child[0] in h] == []
    # the page lets the parent choose whom: their own sharing is one link away
    assert "/portal/book/sharing" in _links(page)
    form = next(h for h in _links(page) if h.startswith("/portal/book/sharing?p="))
    shared = await client.post(
        form,
        data={"csrf": _csrf(page), "action": "share", "facility": clinic, "scope": "full"},
        follow_redirects=False,
    )
    assert shared.status_code == 303
    assert child[0] not in shared.headers["location"]
    assert (await client.get("/api/v1/me/consents")).json() == []
    [theirs] = (await client.get("/api/v1/me/consents", params={"for": child[0]})).json()
    assert (theirs["facility"], theirs["scope"]) == (clinic, "full")
    # the code made on the child's page is the child's, and shows there only
    made = await client.post(
        form, data={"csrf": _csrf(page), "action": "code"}, follow_redirects=False
    )
    assert made.status_code == 303
    assert made.headers["location"].startswith("/portal/book/sharing?p=")
    shown = await client.get(made.headers["location"].split("#")[0])
    found = re.search(r'id="reception-code">(\d{6})<', shown.text)
    assert found is not None
    assert "reception-code" not in (await client.get("/portal/book/sharing")).text
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": clinic}
    )
    used = await client.post(f"/api/v1/patients/{child[0]}/reception-code", json={"code": found[1]})
    assert used.status_code == 201, used.text
    # a stranger's page at the child's address shows the stranger's own sharing
    await sign_in_as(client, session, settings, STRANGER)
    elsewhere = await client.get(address)
    assert child[1] not in elsewhere.text
    assert text("web.book.expired", "vi") in elsewhere.text
