"""A review of an emergency access says whether it was justified: an access found unjustified
ends at once (the clinician reads nothing more under it), one found justified runs its time (the
patient may still be in the emergency room). The review page asks the same question."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import error, sign_in_as
from tests.sharing.test_access import DEPARTMENT, DOCTOR, OTHER_DOCTOR, SUPERVISOR, world
from vnehr.audit import AuditEvent
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings


async def _break_glass(client: httpx.AsyncClient, personal_id: str) -> int:
    opened = await client.post(
        f"/api/v1/patients/{personal_id}/break-glass",
        json={"reason": "unconscious", "text": "Bệnh nhân hôn mê, không người nhà"},
    )
    assert opened.status_code == 201, opened.text
    return int(opened.json()["id"])


async def test_an_access_found_unjustified_ends_at_once_and_a_justified_one_runs_on(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"
    at_other = {"role": "clinician", "facility_code": other}
    at_consented = {"role": "clinician", "facility_code": consented}
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    unjustified = await _break_glass(client, patient[0])
    assert (await client.get(record)).json()["basis"] == "emergency"
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    justified = await _break_glass(client, patient[0])

    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    review = "/api/v1/emergency-accesses/{}/review"
    # the finding is part of the review: a note alone is refused, and nothing changes
    error(
        await client.post(review.format(unjustified), json={"note": "Không có cấp cứu"}),
        422,
        "SHR-0016",
    )
    bad = await client.post(
        review.format(unjustified), json={"note": "Không có cấp cứu", "outcome": "maybe"}
    )
    assert bad.status_code == 422
    queue = (await client.get("/api/v1/emergency-accesses")).json()["items"]
    assert {e["id"]: e["status"] for e in queue} == {unjustified: "open", justified: "open"}

    ended = await client.post(
        review.format(unjustified), json={"note": "Không có cấp cứu", "outcome": "unjustified"}
    )
    assert ended.status_code == 200, ended.text
    assert (ended.json()["status"], ended.json()["outcome"], ended.json()["in_force"]) == (
        "reviewed",
        "unjustified",
        False,
    )
    kept = await client.post(
        review.format(justified), json={"note": "Cấp cứu thật", "outcome": "justified"}
    )
    assert (kept.json()["outcome"], kept.json()["in_force"]) == ("justified", True)
    reviewed = (await client.get("/api/v1/emergency-accesses?status=reviewed")).json()["items"]
    assert {e["id"]: e["outcome"] for e in reviewed} == {
        unjustified: "unjustified",
        justified: "justified",
    }

    # the clinician whose access was found unjustified reads nothing more, at once
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    error(await client.get(record), 403, "SHR-0001")
    # the other still treats the patient
    await sign_in_as(client, session, settings, DOCTOR, at_consented)
    view = (await client.get(record)).json()
    assert (view["basis"], view["scope"]) == ("emergency", "full")

    # the audit trail keeps the finding
    found = await session.scalars(
        select(AuditEvent).where(AuditEvent.action == "emergency.reviewed")
    )
    assert sorted((r.object_id, (r.detail or {}).get("outcome")) for r in found) == sorted(
        [(str(unjustified), "unjustified"), (str(justified), "justified")]
    )


async def test_the_review_page_asks_whether_the_access_was_justified(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    grant = {"role": "clinician", "facility_code": consented}
    await sign_in_as(client, session, settings, DOCTOR, grant)
    access_id = await _break_glass(client, patient[0])
    await sign_in_as(
        client,
        session,
        settings,
        SUPERVISOR,
        {"role": "facility_admin", "facility_code": consented},
    )
    page = await client.get("/review")
    assert text("web.review.outcome.unjustified", "vi") in page.text
    assert 'name="outcome" value="unjustified"' in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    refused = await client.post(
        f"/review/emergency/{access_id}",
        data={"csrf": token[1], "note": "Không cấp cứu"},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    # said on the access's row, the note typed kept; the form asks again
    row = refused.text.split(f'id="emergency-{access_id}"')[1].split("</tr>")[0]
    assert "<code>SHR-0016</code>" in row
    assert 'value="Không cấp cứu"' in row
    assert 'name="outcome" value="unjustified" required>' in row  # nothing chosen
    # a note left blank, the finding chosen: the choice kept
    blank = await client.post(
        f"/review/emergency/{access_id}",
        data={"csrf": token[1], "note": " ", "outcome": "unjustified"},
        follow_redirects=False,
    )
    assert blank.status_code == 422
    row = blank.text.split(f'id="emergency-{access_id}"')[1].split("</tr>")[0]
    assert "<code>SHR-0010</code>" in row
    assert 'value="unjustified" required checked>' in row
    done = await client.post(
        f"/review/emergency/{access_id}",
        data={"csrf": token[1], "note": "Không cấp cứu", "outcome": "unjustified"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = (await client.get("/review?status=reviewed")).text
    assert text("web.review.outcome.unjustified", "vi") in shown
    await sign_in_as(client, session, settings, DOCTOR, grant)
    error(await client.get(f"/api/v1/patients/{patient[0]}/record"), 403, "SHR-0001")


async def test_nobody_reviews_an_emergency_access_they_opened(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A clinician who also administers the facility (or the department) opened the access:
    another administrator or the department reviews it, never the one who opened it."""
    _, consented, other, patient, _ = await world(client, session, settings)
    both = (
        {"role": "clinician", "facility_code": other},
        {"role": "facility_admin", "facility_code": other},
    )
    await sign_in_as(client, session, settings, OTHER_DOCTOR, *both)
    own = await _break_glass(client, patient[0])
    review = "/api/v1/emergency-accesses/{}/review"
    body = error(
        await client.post(review.format(own), json={"note": "ok by me", "outcome": "justified"}),
        403,
        "SHR-0017",
    )
    assert "own" in body["message"]["en"]
    # the queue still lists it as open; the page offers no form for it, and says why
    queue = (await client.get("/api/v1/emergency-accesses")).json()["items"]
    assert [(e["id"], e["status"]) for e in queue] == [(own, "open")]
    page = (await client.get("/review")).text
    assert f'action="/review/emergency/{own}"' not in page
    assert text("web.review.own", "vi") in page
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    refused = await client.post(
        f"/review/emergency/{own}",
        data={"csrf": token[1], "note": "ok", "outcome": "justified"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert "<code>SHR-0017</code>" in refused.text
    # a department administrator who is also a clinician does not review their own either
    await sign_in_as(
        client,
        session,
        settings,
        DEPARTMENT,
        {"role": "clinician", "facility_code": consented},
        {"role": "department_admin", "province_code": "01"},
    )
    theirs = await _break_glass(client, patient[0])
    error(
        await client.post(review.format(theirs), json={"note": "ok", "outcome": "justified"}),
        403,
        "SHR-0017",
    )
    # ... but reviews the other one, and the facility's other administrator reviews theirs
    done = await client.post(review.format(own), json={"note": "Cấp cứu", "outcome": "justified"})
    assert done.status_code == 200, done.text
    await sign_in_as(
        client,
        session,
        settings,
        SUPERVISOR,
        {"role": "facility_admin", "facility_code": consented},
    )
    done = await client.post(
        review.format(theirs), json={"note": "Không cấp cứu", "outcome": "unjustified"}
    )
    assert (done.status_code, done.json()["outcome"]) == (200, "unjustified")
    reviewers = await session.scalars(
        select(AuditEvent.actor).where(AuditEvent.action == "emergency.reviewed")
    )
    assert sorted(reviewers) == sorted([f"person:{DEPARTMENT[0]}", f"person:{SUPERVISOR[0]}"])
