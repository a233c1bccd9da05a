"""Addresses that carry a patient's 12-digit personal ID (the clinician's API and page routes,
``/persons/{personal_id}/...``) are written down nowhere in full: error bodies and error pages
name them masked as the access line does (``001*******74``), the pages keep them from leaving
the site in a Referer, and the clinic page and a parent's pages of a child's book keep the ID
out of the browser's address bar and history. The audit rows keep the patient as their subject, not the address."""

from __future__ import annotations

import html
import re
import time
from datetime import date, datetime
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import STRANGER, visit_of, who
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import REGISTRAR
from tests.sharing.test_access import DOCTOR, SUPERVISOR, world
from tests.submissions.test_intake import facility_with_token, send
from vnehr import identity
from vnehr.audit import AuditEvent
from vnehr.kit.i18n import text
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.submissions import synth
from vnehr.web import pages

OTHER_PARENT = ("001188000456", "Phạm Thị Khác", "1988-02-02", "female")


def _masked(personal_id: str) -> str:
    return f"{personal_id[:3]}*******{personal_id[-2:]}"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found is not None, html[-500:]
    return found[1]


async def test_error_answers_name_the_address_with_the_personal_id_masked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    pid = patient[0]
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    answers = {
        "no such address": await client.get(f"/api/v1/patients/{pid}/records"),
        "another method": await client.delete(f"/api/v1/patients/{pid}/record"),
        "cards, another method": await client.patch(f"/api/v1/persons/{pid}/cards"),
        "page, another method": await client.get(f"/clinic/patient/{pid}/code"),
        "page, no such address": await client.get(f"/clinic/patient/{pid}"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {
        "no such address": 404,
        "another method": 405,
        "cards, another method": 405,
        "page, another method": 405,
        "page, no such address": 404,
    }
    assert answers["no such address"].json()["detail"]["path"] == (
        f"/api/v1/patients/{_masked(pid)}/records"
    )
    assert f"/api/v1/patients/{_masked(pid)}/record" in answers["another method"].text
    assert _masked(pid) in answers["page, another method"].text  # the error page says where
    leaked = [name for name, r in answers.items() if pid in r.text]
    assert leaked == []


async def test_pages_keep_addresses_with_personal_ids_from_leaving_the_site(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    answers = {
        "clinic": await client.get("/clinic"),
        "clinic, old address": await client.get("/clinic/patient", params={"id": patient[0]}),
        "error page": await client.get(f"/clinic/patient/{patient[0]}/code"),
        "home": await client.get("/"),
    }
    # the form's "come back here" after sign-in needs this site's Referer (D77); others get none
    policies = {name: r.headers.get("referrer-policy") for name, r in answers.items()}
    assert policies == dict.fromkeys(answers, "same-origin")


async def test_the_clinic_page_keeps_the_personal_id_out_of_the_address_bar(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    pid = patient[0]
    await sign_in_as(client, session, settings, patient)
    await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    await sign_in_as(
        client,
        session,
        settings,
        DOCTOR,
        {"role": "clinician", "facility_code": consented},
        {"role": "clinician", "facility_code": other},
    )
    form = await client.get("/clinic")
    assert re.search(r'<form method="post" action="/clinic/patient">', form.text), form.text
    looked_up = await client.post(
        "/clinic/patient", data={"csrf": _csrf(form.text), "id": pid, "facility": consented}
    )
    assert looked_up.status_code == 303, looked_up.text
    address = looked_up.headers["location"]
    assert pid not in address
    assert f"facility={consented}" in address
    shown = await client.get(address)
    assert shown.status_code == 200
    assert 'id="basis"' in shown.text
    assert patient[1] in shown.text
    assert [h for h in re.findall(r'href="([^"]*)"', shown.text) if pid in h] == []
    # at the facility without consent, an emergency: back to the page, still no ID in sight
    refused = await client.post(
        "/clinic/patient", data={"csrf": _csrf(form.text), "id": pid, "facility": other}
    )
    page = await client.get(refused.headers["location"])
    assert 'id="basis"' not in page.text
    assert "break-glass" in page.text
    opened = await client.post(
        f"/clinic/patient/{pid}/break-glass",
        data={
            "csrf": _csrf(page.text),
            "facility": other,
            "reason": "unconscious",
            "text": "brought in unconscious",
        },
    )
    assert opened.status_code == 303, opened.text
    assert pid not in opened.headers["location"]
    after = await client.get(opened.headers["location"])
    assert 'id="basis"' in after.text
    assert patient[1] in after.text
    # the address names the patient for this clinician only
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "clinician", "facility_code": consented}
    )
    elsewhere = await client.get(address)
    assert elsewhere.status_code == 200
    assert 'id="basis"' not in elsewhere.text
    assert patient[1] not in elsewhere.text
    assert text("web.clinic.expired", "vi") in elsewhere.text
    # a look-up form sent without the session's token is refused
    forged = await client.post("/clinic/patient", data={"csrf": "x", "id": pid})
    assert forged.status_code == 403
    # the reads are audited with the patient as their subject, never with the address
    rows = (await session.scalars(select(AuditEvent))).all()
    events = (await session.scalars(select(OutboxEvent))).all()
    written = [f"{r.object_id} {r.detail}" for r in rows] + [str(e.payload) for e in events]
    assert [w for w in written if "/clinic/" in w or "/api/v1/patients/" in w] == []


async def test_a_parents_pages_of_the_childs_book_keep_the_childs_id_out_of_addresses(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    first = visit_of(code, 81, datetime(2026, 10, 1, 9, 0), age_group=0)  # noqa: DTZ001
    more = [
        visit_of(code, 82 + n, datetime(2026, 9, 1 + n, 9, 0), like=first)  # noqa: DTZ001
        for n in range(20)
    ]  # 21 visits: the book pages, and its "more" link must not name the child either
    sent = await send(client, headers, synth.envelope([first, *more], code))
    assert sent.status_code == 201, sent.text
    child, child_name = who(first)[:2]
    await sign_in_as(client, session, settings, STRANGER)
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=STRANGER[0],
        subject_person=child,
        relation="parent",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )

    def links(page: httpx.Response) -> list[str]:
        assert page.status_code == 200, page.text[:300]
        found = re.findall(r'(?:href|action)="([^"]*)"', page.text)
        assert [h for h in found if child in h] == [], page.request.url
        return [html.unescape(h) for h in found]

    def heading(page: httpx.Response) -> str:
        found = re.search(r"<h1>([^<]*)</h1>", page.text)
        assert found is not None
        return found[1].strip()

    def to(page: httpx.Response, prefix: str) -> str:
        return next(h for h in links(page) if h.startswith(prefix))

    portal = await client.get("/portal")
    address = to(portal, "/portal/book?")
    book = await client.get(address)
    assert heading(book).endswith(child_name)
    assert len(re.findall(r"/portal/book/visits/\d+", book.text)) == 20
    later = await client.get(next(h for h in links(book) if "cursor=" in h))
    assert child_name in later.text
    assert len(re.findall(r"/portal/book/visits/\d+", later.text)) == 1
    summary = await client.get(to(book, "/portal/book/summary?"))
    assert child_name in summary.text
    assert child_name in (await client.get(to(summary, "/portal/book?"))).text
    papers = await client.get(to(book, "/portal/book/papers?"))
    assert child_name in papers.text
    visit = await client.get(to(book, "/portal/book/visits/"))
    assert child_name in (await client.get(to(visit, "/portal/book?"))).text
    assert child_name in (await client.get(to(visit, "/portal/book/papers?"))).text
    switched = await client.get(to(book, "/portal/book?"), params={"lang": "en"})
    assert child_name in switched.text
    # links made before keep working
    old = await client.get("/portal/book", params={"for": child})
    assert child_name in old.text
    links(old)
    # signed out, an old link's sign-in does not carry the ID either, and still ends there
    client.cookies.clear()
    signed_out = await client.get("/portal/book/summary", params={"for": child})
    assert signed_out.status_code == 303
    back = httpx.URL(signed_out.headers["location"]).params["next"]
    assert child not in back
    assert child not in signed_out.headers["location"]
    await sign_in_as(client, session, settings, STRANGER)
    assert back.startswith("/portal/book/summary?p=")
    again = await client.get(back)
    assert again.status_code == 303  # on to an address made for the parent who signed in
    assert child not in again.headers["location"]
    again = await client.get(again.headers["location"])
    assert heading(again).endswith(child_name)
    links(again)
    # the address names the child for this parent only: another parent sees their own book
    other = await sign_in_as(client, session, settings, OTHER_PARENT)
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=OTHER_PARENT[0],
        subject_person=child,
        relation="parent",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )
    for url in (address, to(book, "/portal/book/summary?"), to(book, "/portal/book/papers?")):
        elsewhere = await client.get(url)
        assert elsewhere.status_code == 200, elsewhere.text[:300]
        assert heading(elsewhere).endswith(other.full_name)
        assert "/portal/book/visits/" not in elsewhere.text  # the child's visits are not shown
        assert text("web.book.expired", "vi") in elsewhere.text
    # and for a while: a day past its age, the parent's own book with the notice
    await sign_in_as(client, session, settings, STRANGER)
    assert child_name in (await client.get(address)).text
    later_on = time.time() + pages.BOOK_REF_MAX_AGE + 24 * 3600
    monkeypatch.setattr(pages, "time", SimpleNamespace(time=lambda: later_on))
    expired = await client.get(address)
    assert heading(expired).endswith(STRANGER[1])
    assert "/portal/book/visits/" not in expired.text
    assert text("web.book.expired", "vi") in expired.text
    switch = next(h for h in links(expired) if "lang=en" in h)
    assert "p=" not in switch  # the other language shows the same: the parent's own book
