"""The server-rendered pages as a person meets them: the clinic page for a clinician of several
facilities, registry and access log paged to their end, bad input answered with the error page,
the way back after signing in, and words (not codes) for statuses, kinds and reasons."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import get_args

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import SCOPES, local_now
from tests.sharing.test_access import DEPARTMENT, DOCTOR, SUPERVISOR, world
from tests.submissions.test_intake import ADMIN, facility_with_token, send
from tests.web.test_login import AN, login
from vnehr import audit, facilities, sharing
from vnehr.identity.schemas import RepresentativeCreate
from vnehr.identity.service import ROLES
from vnehr.kit.i18n import catalogue, text
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.sharing.models import EmergencyAccess
from vnehr.submissions import synth


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found is not None, html[-500:]
    return found[1]


def _html(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/html")


async def test_a_clinician_of_two_facilities_chooses_where_they_work_on_the_page(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
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
    assert re.search(rf'<option value="{consented}"', form.text)
    assert re.search(rf'<option value="{other}"', form.text)
    unchosen = await client.get("/clinic/patient", params={"id": patient[0]})
    assert unchosen.status_code == 200
    assert text("web.clinic.choose_facility", "vi") in unchosen.text
    assert 'id="basis"' not in unchosen.text
    assert "SHR-0002" not in unchosen.text
    read = await client.get("/clinic/patient", params={"id": patient[0], "facility": consented})
    assert read.status_code == 200
    assert 'id="basis"' in read.text
    # at the facility without consent: the code and emergency forms act for that facility
    refused = await client.get("/clinic/patient", params={"id": patient[0], "facility": other})
    assert text("web.clinic.no_consent", "vi") in refused.text
    assert f'<input type="hidden" name="facility" value="{other}">' in refused.text
    opened = await client.post(
        f"/clinic/patient/{patient[0]}/break-glass",
        data={
            "csrf": _csrf(refused.text),
            "facility": other,
            "reason": "unconscious",
            "text": "brought in unconscious",
        },
    )
    assert opened.status_code == 303, opened.text
    assert f"facility={other}" in opened.headers["location"]
    row = (await session.scalars(select(EmergencyAccess))).one()
    assert row.facility_code == other
    # a clinician of one facility is not asked
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "clinician", "facility_code": consented}
    )
    single = await client.get("/clinic/patient", params={"id": patient[0]})
    assert 'id="basis"' in single.text
    assert 'name="facility"' not in single.text


async def test_the_registry_page_pages_through_every_facility_in_words(
    session: AsyncSession, client: httpx.AsyncClient, settings: Settings
) -> None:
    for i in range(201):
        await facilities.register(
            session,
            ADMIN,
            facilities.FacilityCreate(
                name=f"Phòng khám số {i}",
                kind=facilities.Kind.polyclinic,
                level=facilities.Level.basic,
                ownership=facilities.Ownership.private,
                province_code="01",
            ),
        )
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    first = await client.get("/department/facilities")
    codes = re.findall(
        r"<tr><td[^>]*><a href=\"/department/facilities/\w{5}\"><code>(\w{5})</code>", first.text
    )
    assert len(codes) == 200
    more = re.search(r'id="next-page" href="([^"]+)"', first.text)
    assert more is not None
    rest = await client.get(more[1].replace("&amp;", "&"))
    later = re.findall(
        r"<tr><td[^>]*><a href=\"/department/facilities/\w{5}\"><code>(\w{5})</code>", rest.text
    )
    assert later
    assert min(later) > max(codes)
    assert "Phòng khám số 200" in rest.text
    assert 'id="next-page"' not in rest.text
    # states, kinds and ownership in words, not the registry's codes
    cells = re.sub(r"<td[^>]*>", "<td>", first.text)
    assert "<td>Phòng khám đa khoa</td><td>Tư nhân</td>" in cells
    assert ">polyclinic<" not in first.text
    assert "<td>registered</td>" not in cells


async def test_the_access_log_page_shows_older_reads_and_each_can_be_disputed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    person = await sign_in_as(client, session, settings, patient)
    ids = []
    for _ in range(105):
        row = audit.audit_event(
            actor=f"person:{DOCTOR[0]}",
            action="clinical.read",
            object_type="record",
            object_id=patient[0],
            person_id=person.id,
            detail={"facility": consented},
        )
        session.add(row)
        await session.flush()
        ids.append(row.id)
    first = await client.get("/portal/book/access-log")
    assert first.text.count('/dispute"') == 100
    older = re.search(r'id="older" href="([^"]+)"', first.text)
    assert older is not None
    second = await client.get(older[1])
    assert second.status_code == 200
    assert second.text.count('/dispute"') >= 5
    assert 'id="older"' not in second.text
    assert f"/portal/book/access-log/{ids[0]}/dispute" in second.text
    disputed = await client.post(
        f"/portal/book/access-log/{ids[0]}/dispute", data={"csrf": _csrf(second.text)}
    )
    assert disputed.status_code == 303


async def test_bad_input_on_a_page_gets_the_error_page_not_json(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client,
        session,
        settings,
        DEPARTMENT,
        {"role": "department_admin", "province_code": "01"},
        {"role": "clinician", "facility_code": consented},
    )
    csrf = _csrf((await client.get("/portal")).text)
    answers = {
        "visit abc": await client.get("/portal/book/visits/abc"),
        "visit 0": await client.get("/portal/book/visits/0"),
        "older than abc": await client.get("/portal/book/access-log", params={"before": "x"}),
        "dispute abc": await client.post("/portal/book/access-log/abc/dispute", data={}),
        "clinic id=123": await client.get("/clinic/patient", params={"id": "123"}),
        "act on id 123": await client.post("/clinic/patient/123/code", data={"csrf": csrf}),
        "unknown action": await client.post(f"/clinic/patient/{patient[0]}/x", data={}),
        "review abc": await client.post("/review/emergency/abc", data={"csrf": csrf}),
        "long note": await client.post(
            "/review/emergency/1", data={"csrf": csrf, "note": "x" * 1001}
        ),
        "long qr": await client.post("/verify", data={"qr": "x" * 20_001}),
        "long notes": await client.post(
            "/department/report/notes",
            data={"csrf": csrf, "period": "2026H1", "text": "x" * 20_001},
        ),
        "5-digit days": await client.post(
            "/portal/book/sharing",
            data={"csrf": csrf, "action": "share", "facility": consented, "days": "99999"},
        ),
    }
    wrong = {
        name: (r.status_code, r.headers.get("content-type"))
        for name, r in answers.items()
        if r.status_code != 422 or not _html(r) or "KIT-0422" not in r.text
    }
    assert wrong == {}
    assert text("KIT-0422", "vi", {"count": 1}) in answers["visit abc"].text
    # another method on a page's address: the page too; the API keeps its JSON
    method = await client.get(f"/clinic/patient/{patient[0]}/code")
    assert (method.status_code, _html(method)) == (405, True)
    assert "KIT-0405" in method.text
    api = await client.get("/api/v1/me/visits/abc")
    assert (api.status_code, api.json()["code"]) == (422, "KIT-0422")


async def test_signed_out_visitors_come_back_to_the_page_they_asked_for(
    client: httpx.AsyncClient,
) -> None:
    def next_of(response: httpx.Response) -> str:
        assert response.status_code == 303
        location = httpx.URL(response.headers["location"])
        assert location.path == "/auth/login"
        return str(location.params["next"])

    book = await client.get("/portal/book", params={"cursor": "c", "for": "001099000001"})
    assert next_of(book).startswith("/portal/book?cursor=c&p=")  # the child by reference
    assert "001099000001" not in book.headers["location"]
    child = "/portal/book/papers?p=made-for-the-parent"
    assert next_of(await client.get(child)) == child
    page = "/clinic/patient?id=001099000001"
    assert next_of(await client.get(page)) == page
    # a form sent while signed out: back to the page the form was on, never to its address
    form = "/clinic/patient/001099000001/code"
    here = await client.post(
        form, data={"code": "1"}, headers={"referer": f"https://testserver{page}"}
    )
    assert next_of(here) == page
    elsewhere = await client.post(
        form, data={"code": "1"}, headers={"referer": "https://evil.example/clinic/patient"}
    )
    assert next_of(elsewhere) == "/portal"
    assert next_of(await client.post(form, data={"code": "1"})) == "/portal"
    # and signing in keeps the query to the end
    answer = await login(client, AN, page)
    assert answer.headers["location"] == page


async def test_a_corrected_visits_old_paper_says_why_in_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 51, local_now() - timedelta(days=5), care_type="01", insured=True, appointment=True
    )
    await send(client, headers, synth.envelope([one], code))
    one.tables["XML14"][0]["NGAY_HEN_KL"] = one.tables["XML14"][0]["NGAY_HEN_KL"][:8] + "1400"
    await send(client, headers, synth.envelope([one], code))
    old = (
        await session.scalars(select(Paper).where(Paper.facility_code == code, Paper.version == 1))
    ).one()
    qr = f"shc:/{''.join(f'{ord(c) - 45:02d}' for c in old.jws)}"
    replaced = text("web.papers.reason.replaced", "vi")
    verdict = await client.post("/verify", data={"qr": qr})
    assert replaced in verdict.text
    assert "(replaced)" not in verdict.text
    english = await client.post("/verify?lang=en", data={"qr": qr})
    assert text("web.papers.reason.replaced", "en") in english.text
    await sign_in_as(client, session, settings, who(one))
    book = await client.get("/portal/book/papers")
    statuses = re.findall(r'class="status">(.*?)</td>', book.text)
    assert any(replaced in s for s in statuses)
    assert not any("replaced)" in s for s in statuses)


async def test_the_clinic_page_answers_with_the_errors_status_and_plain_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)  # no clinician role
    citizen = await client.get("/clinic/patient", params={"id": patient[0]})
    assert citizen.status_code == 403
    assert text("web.clinic.not_a_clinician", "vi") in citizen.text
    assert "cơ sở -" not in citizen.text
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    unknown = await client.get("/clinic/patient", params={"id": "001199999999"})
    assert unknown.status_code == 404
    assert text("SHR-0003", "vi", {"personal_id": "001199999999"}) in unknown.text


async def test_a_form_from_before_signing_in_again_says_to_reload(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    old = _csrf((await client.get("/portal/book/sharing")).text)
    await sign_in_as(client, session, settings, patient)  # a new session, a new form token
    stale = await client.post("/portal/book/sharing", data={"csrf": old, "action": "code"})
    assert stale.status_code == 403
    assert "AUTH-0005" in stale.text
    assert "AUTH-0002" not in stale.text
    assert text("AUTH-0005", "vi") in stale.text


async def test_the_review_page_names_the_clinician_and_says_the_status_in_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    made = await client.post(
        f"/api/v1/patients/{patient[0]}/break-glass",
        json={"reason": "unconscious", "text": "brought in unconscious"},
    )
    assert made.status_code in (200, 201), made.text
    await sign_in_as(
        client,
        session,
        settings,
        SUPERVISOR,
        {"role": "facility_admin", "facility_code": consented},
    )
    page = await client.get("/review")
    clinician = re.findall(r'class="clinician">([^<]*)<', page.text)
    assert clinician == [DOCTOR[1]]
    assert f"person:{DOCTOR[0]}" not in page.text
    assert text("web.review.status.open", "vi") in page.text
    assert not re.search(r'class="status">open', page.text)


def test_every_code_a_page_shows_has_its_words_in_both_languages() -> None:
    """The values the code can put where a page looks words up by key: each has its text."""
    relations = get_args(RepresentativeCreate.model_fields["relation"].annotation)
    wanted = {
        "web.access.relation.": relations,
        "web.access.action.": audit.READS,
        "web.reason.": sharing.REASONS,
        "web.sharing.category.": sharing.SENSITIVE,
        # a paper's stored status, "expired" read on the day, "unknown" for a QR not on record
        "web.papers.status.": ("valid", "used", "revoked", "expired", "unknown"),
        # the hub's own revocations (a facility's own reason is shown as written)
        "web.papers.reason.": ("replaced", "withdrawn", "not_on_record"),
        "web.review.status.": ("open", "reviewed", "closed", "all"),
        "web.review.outcome.": sharing.OUTCOMES,
        # a share in force, revoked, or ended when its time ran out (pages._share_state)
        "web.sharing.": ("active", "revoked", "inactive"),
        # "unknown": a code never issued, as a refused file names it (SUB-0010)
        "web.department.state.": (*facilities.State, "unknown"),
        "web.department.kind.": tuple(facilities.Kind),
        "web.department.level.": tuple(facilities.Level),
        "web.department.ownership.": tuple(facilities.Ownership),
        "web.role.": ROLES,
    }
    missing = [
        (language, prefix + value)
        for language in ("vi", "en")
        for prefix, values in wanted.items()
        for value in values
        if prefix + value not in catalogue(language)
    ]
    assert relations
    assert missing == []
