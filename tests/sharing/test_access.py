"""Sharing between facilities, as an authorisation matrix: the patient, a clinician of a
consented facility, a clinician of another facility, a facility system, the department, nobody;
directives with scopes and sensitive categories; revocation at once; break-glass told to the
citizen, reviewed, and expiring; one audit row per allowed read."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange
from vnehr.audit import AuditEvent
from vnehr.fhir.models import StoredResource
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.paging import encode_moment_cursor
from vnehr.kit.settings import Settings
from vnehr.sharing.models import EmergencyAccess
from vnehr.submissions import synth

DOCTOR = ("001080001111", "BS. Trần Minh Đức", "1980-05-05", "male")
OTHER_DOCTOR = ("001182002222", "BS. Lê Thu Hà", "1982-06-06", "female")
SUPERVISOR = ("001075003333", "Phạm Văn Giám", "1975-07-07", "male")
DEPARTMENT = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")


async def clinical_reads(session: AsyncSession, actor: str) -> int:
    stmt = (
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "clinical.read", AuditEvent.actor == f"person:{actor}")
    )
    return int(await session.scalar(stmt) or 0)


async def world(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, str, str, tuple[str, str, str, str], dict[str, str]]:
    """A patient with an ordinary visit and a mental-health visit at facility A; clinicians at
    facilities B and C."""
    sender, headers = await facility_with_token(client, session, settings)
    ordinary = visit_of(sender, 81, datetime(2026, 9, 1, 9, 0), care_type="01")  # noqa: DTZ001
    mental = visit_of(sender, 82, datetime(2026, 10, 1, 9, 0), ordinary, care_type="01")  # noqa: DTZ001
    mental.tables["XML1"][0]["MA_BENH_CHINH"] = "F32.9"
    mental.tables["XML1"][0]["MA_BENH_KT"] = ""
    response = await send(client, headers, synth.envelope([ordinary, mental], sender))
    assert response.json()["status"] != "rejected", response.text
    consented, _ = await facility_with_token(client, session, settings)
    other, _ = await facility_with_token(client, session, settings)
    return sender, consented, other, who(ordinary), headers


async def test_consent_scopes_sensitive_categories_and_revocation(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"

    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    error(await client.get(record), 403, "SHR-0001")  # no consent yet
    assert await clinical_reads(session, DOCTOR[0]) == 0

    await sign_in_as(client, session, settings, patient)
    made = await client.post(
        "/api/v1/me/consents", json={"facility": consented, "scope": "summary"}
    )
    assert made.status_code == 201, made.text

    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    view = (await client.get(record)).json()
    assert (view["basis"], view["scope"], view["visits"]) == ("consent", "summary", [])
    assert view["summary"]["person_name"] == patient[1]
    assert [v["main_diagnosis"]["code"] for v in view["summary"]["last_visits"]] != []
    assert "F32.9" not in {v["main_diagnosis"]["code"] for v in view["summary"]["last_visits"]}
    assert await clinical_reads(session, DOCTOR[0]) == 1

    await sign_in_as(client, session, settings, patient)
    full = await client.post("/api/v1/me/consents", json={"facility": "*", "scope": "full"})
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    view = (await client.get(record)).json()
    assert view["scope"] == "full"
    assert len(view["visits"]) == 1  # the mental-health visit stays hidden
    visit_id = view["visits"][0]["id"]
    detail = await client.get(f"/api/v1/patients/{patient[0]}/visits/{visit_id}")
    assert detail.status_code == 200
    assert await clinical_reads(session, DOCTOR[0]) == 3

    await sign_in_as(client, session, settings, patient)
    await client.post(
        "/api/v1/me/consents",
        json={"facility": consented, "scope": "full", "sensitive": ["mental"]},
    )
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    view = (await client.get(record)).json()
    assert len(view["visits"]) == 2
    assert "F32.9" in {v["main_diagnosis"]["code"] for v in view["visits"]}

    # another facility's clinician reads through the "*" directive, but without "mental"
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    assert len((await client.get(record)).json()["visits"]) == 1

    # the patient revokes everything: refused at once, for both
    await sign_in_as(client, session, settings, patient)
    for directive in (await client.get("/api/v1/me/consents")).json():
        assert (await client.delete(f"/api/v1/me/consents/{directive['id']}")).status_code == 200
    assert all(not d["in_force"] for d in (await client.get("/api/v1/me/consents")).json())
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    error(await client.get(record), 403, "SHR-0001")
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    error(await client.get(record), 403, "SHR-0001")

    # the patient sees who looked, in their access log
    await sign_in_as(client, session, settings, patient)
    log = (await client.get("/api/v1/me/access-log")).json()
    doctors = {e["who"]["name"] for e in log if e["action"] == "clinical.read"}
    assert doctors == {DOCTOR[1], OTHER_DOCTOR[1]}
    assert full.status_code == 201


async def test_a_category_named_for_the_summary_never_opens_those_visits_in_full(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"
    await sign_in_as(client, session, settings, patient)
    mine = (await client.get("/api/v1/me/timeline")).json()["items"]
    mental_id = next(v["id"] for v in mine if v["main_diagnosis"]["code"] == "F32.9")
    # facility B: the full record, nothing sensitive; every facility: the summary with "mental"
    for body in (
        {"facility": consented, "scope": "full"},
        {"facility": "*", "scope": "summary", "sensitive": ["mental"]},
    ):
        assert (await client.post("/api/v1/me/consents", json=body)).status_code == 201

    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    view = (await client.get(record)).json()
    assert view["scope"] == "full"
    assert {v["main_diagnosis"]["code"] for v in view["visits"]} == {"A09.0"}
    assert "F32.9" in {v["main_diagnosis"]["code"] for v in view["summary"]["last_visits"]}
    error(await client.get(f"/api/v1/patients/{patient[0]}/visits/{mental_id}"), 404, "HB-0001")
    # facility C has the summary only, with the mental-health visit in it
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    view = (await client.get(record)).json()
    assert (view["scope"], view["visits"]) == ("summary", [])
    assert "F32.9" in {v["main_diagnosis"]["code"] for v in view["summary"]["last_visits"]}


async def test_nobody_without_a_clinician_role_reads_a_patient(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, headers = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"
    await sign_in_as(client, session, settings, patient)
    await client.post("/api/v1/me/consents", json={"facility": "*", "scope": "full"})
    # a facility system, the department, another citizen, nobody
    client.cookies.clear()
    error(await client.get(record, headers=headers), 403, "SHR-0013")
    error(await client.get(record), 401, "AUTH-0001")
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    error(await client.get(record), 403, "SHR-0013")
    await sign_in_as(client, session, settings, DOCTOR)
    body = error(await client.get(record), 403, "SHR-0013")
    assert "-" not in body["message"]["en"]
    # a clinician naming a facility they do not work at
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    error(await client.get(record, params={"facility": "99999"}), 403, "SHR-0002")
    error(await client.get("/api/v1/patients/001099999999/record"), 404, "SHR-0003")
    # a clinician of two facilities says which one they work at now
    await sign_in_as(
        client, session, settings, DOCTOR,
        {"role": "clinician", "facility_code": consented}, {"role": "clinician", "facility_code": other},
    )  # fmt: skip
    body = error(await client.get(record), 422, "SHR-0012")
    assert consented in body["message"]["vi"]
    assert other in body["message"]["vi"]
    assert (await client.get(record, params={"facility": consented})).status_code == 200


async def test_break_glass_is_told_reviewed_and_expires(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"
    grant = {"role": "clinician", "facility_code": other}
    await sign_in_as(client, session, settings, OTHER_DOCTOR, grant)
    error(await client.get(record), 403, "SHR-0001")
    bad = await client.post(
        f"{record.rsplit('/', 1)[0]}/break-glass", json={"reason": "curious", "text": "muốn xem"}
    )
    assert bad.status_code == 422
    opened = await client.post(
        f"/api/v1/patients/{patient[0]}/break-glass",
        json={"reason": "unconscious", "text": "Bệnh nhân hôn mê, không người nhà"},
    )
    assert opened.status_code == 201, opened.text
    emergency = opened.json()
    view = (await client.get(record)).json()
    assert (view["basis"], view["scope"], len(view["visits"])) == ("emergency", "full", 1)

    # the citizen is told at once (the worker delivers the outbox event to the inbox)
    handlers = {
        "emergency.access": {"inbox": exchange.event_notifier("emergency", exchange.LogPush())}
    }
    while await exchange.deliver_once(db, handlers, exchange.Policy()):
        pass
    await sign_in_as(client, session, settings, patient)
    inbox = (await client.get("/api/v1/me/notifications")).json()
    assert any("cấp cứu" in m["title"]["vi"] for m in inbox["items"])

    # the facility's administrator reviews it; the department sees it too
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "facility_admin", "facility_code": other}
    )
    queue = (await client.get("/api/v1/emergency-accesses")).json()["items"]
    assert [e["id"] for e in queue] == [emergency["id"]]
    # another province's department neither sees nor closes it
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "79"}
    )
    assert (await client.get("/api/v1/emergency-accesses")).json() == {
        "items": [],
        "next_cursor": None,
    }
    error(
        await client.post(
            f"/api/v1/emergency-accesses/{emergency['id']}/review", json={"note": "không phải"}
        ),
        404,
        "SHR-0006",
    )
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    queue = (await client.get("/api/v1/emergency-accesses")).json()["items"]
    assert [e["id"] for e in queue] == [emergency["id"]]
    # the department closes it from its review page
    page = await client.get("/review")
    assert page.status_code == 200
    assert "Bệnh nhân hôn mê, không người nhà" in page.text
    assert "Người bệnh bất tỉnh" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    closed = await client.post(
        f"/review/emergency/{emergency['id']}",
        data={"csrf": csrf[1], "note": "Hợp lý: cấp cứu.", "outcome": "justified"},
        follow_redirects=False,
    )
    assert closed.status_code == 303
    assert (await client.get("/api/v1/emergency-accesses")).json()["items"] == []
    reviewed = (await client.get("/api/v1/emergency-accesses?status=reviewed")).json()["items"]
    assert [(e["status"], e["review_note"]) for e in reviewed] == [("reviewed", "Hợp lý: cấp cứu.")]
    assert "Hợp lý: cấp cứu." in (await client.get("/review?status=reviewed")).text
    await sign_in_as(client, session, settings, DOCTOR)
    error(await client.get("/api/v1/emergency-accesses"), 403, "AUTH-0002")

    # and it expires
    await session.execute(
        update(EmergencyAccess)
        .where(EmergencyAccess.id == emergency["id"])
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    await sign_in_as(client, session, settings, OTHER_DOCTOR, grant)
    error(await client.get(record), 403, "SHR-0001")


async def test_a_code_shown_at_reception_opens_the_record_for_that_visit_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    record = f"/api/v1/patients/{patient[0]}/record"
    await sign_in_as(client, session, settings, patient)
    made = await client.post("/api/v1/me/reception-codes")
    assert made.status_code == 201
    code = made.json()["code"]
    assert len(code) == 6
    assert code.isdigit()
    grant = {"role": "clinician", "facility_code": consented}
    await sign_in_as(client, session, settings, DOCTOR, grant)
    redeem = f"/api/v1/patients/{patient[0]}/reception-code"
    wrong = "000000" if code != "000000" else "111111"
    error(await client.post(redeem, json={"code": wrong}), 403, "SHR-0008")
    error(await client.get(record), 403, "SHR-0001")
    used = await client.post(redeem, json={"code": code})
    assert used.status_code == 201, used.text
    assert (used.json()["facility"], used.json()["scope"]) == (consented, "full")
    assert (await client.get(record)).json()["basis"] == "consent"
    error(await client.post(redeem, json={"code": code}), 403, "SHR-0008")  # one use only


async def test_reception_codes_stop_after_five_wrong_tries_and_a_new_code_voids_the_old(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    older, newer = [(await client.post("/api/v1/me/reception-codes")).json()["code"] for _ in "ab"]
    grant = {"role": "clinician", "facility_code": consented}
    await sign_in_as(client, session, settings, DOCTOR, grant)
    redeem = f"/api/v1/patients/{patient[0]}/reception-code"
    wrong = [c for c in (f"{i:06d}" for i in range(10)) if c not in (older, newer)][:4]
    if older != newer:  # the older code died when the newer one was made
        error(await client.post(redeem, json={"code": older}), 403, "SHR-0008")
    else:
        wrong.append(f"{int(newer) ^ 1:06d}")
    for code in wrong:
        error(await client.post(redeem, json={"code": code}), 403, "SHR-0008")
    failed = select(func.count()).where(
        AuditEvent.action == "consent.reception_failed", AuditEvent.actor == f"person:{DOCTOR[0]}"
    )
    assert await session.scalar(failed) == 5
    # five wrong tries: the patient's code is spent, even the right one is refused now
    error(await client.post(redeem, json={"code": newer}), 403, "SHR-0008")
    error(await client.get(f"/api/v1/patients/{patient[0]}/record"), 403, "SHR-0001")
    # the patient makes a new one, which works
    await sign_in_as(client, session, settings, patient)
    fresh = (await client.post("/api/v1/me/reception-codes")).json()["code"]
    await sign_in_as(client, session, settings, DOCTOR, grant)
    assert (await client.post(redeem, json={"code": fresh})).status_code == 201


async def test_directives_are_fhir_consents_in_the_citizens_compartment(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    made = (
        await client.post(
            "/api/v1/me/consents",
            json={"facility": consented, "scope": "full", "sensitive": ["mental"], "days": 30},
        )
    ).json()
    bundle = (await client.get("/fhir/R4/Consent")).json()
    [entry] = bundle["entry"]
    consent = entry["resource"]
    get_fhir_model_class("Consent").model_validate(consent)
    assert consent["status"] == "active"
    assert consent["provision"]["actor"][0]["reference"]["reference"] == f"Organization/{consented}"
    assert [label["code"] for label in consent["provision"]["securityLabel"]] == ["mental"]
    await client.delete(f"/api/v1/me/consents/{made['id']}")
    again = (await client.get(f"/fhir/R4/Consent/{consent['id']}")).json()
    assert again["status"] == "inactive"
    assert (await client.get("/fhir/R4/Consent", params={"status": "active"})).json()["total"] == 0


async def test_the_citizen_shares_and_revokes_from_the_portal_page(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    page = await client.get("/portal/book/sharing")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    refused = await client.post(
        "/portal/book/sharing", data={"csrf": "forged", "action": "share", "facility": consented}
    )
    assert refused.status_code == 403
    assert (await client.get("/api/v1/me/consents")).json() == []
    bad = await client.post(
        "/portal/book/sharing", data={"csrf": csrf[1], "action": "share", "facility": "x!"}
    )
    assert bad.status_code == 422
    made = await client.post(
        "/portal/book/sharing",
        data={
            "csrf": csrf[1],
            "action": "share",
            "facility": consented.lower(),
            "scope": "full",
            "sensitive": ["mental"],
            "days": "30",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    [directive] = (await client.get("/api/v1/me/consents")).json()
    assert (directive["facility"], directive["scope"], directive["sensitive"]) == (
        consented,
        "full",
        ["mental"],
    )
    assert directive["valid_to"] is not None
    await client.post(
        "/portal/book/sharing",
        data={"csrf": csrf[1], "action": "revoke", "directive": str(directive["id"])},
    )
    [after] = (await client.get("/api/v1/me/consents")).json()
    assert after["in_force"] is False


def _form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found[1]


async def test_the_reception_code_is_never_in_the_address_and_shows_to_its_session_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Addresses stay in browser history and proxy logs: the one-time code travels in an
    httpOnly cookie bound to the portal session that made it."""
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    page = await client.get("/portal/book/sharing")
    made = await client.post(
        "/portal/book/sharing",
        data={"csrf": _form_token(page.text), "action": "code"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/portal/book/sharing#code"
    shown = await client.get("/portal/book/sharing")
    found = re.search(r'id="reception-code">(\d{6})<', shown.text)
    assert found is not None, "the page does not show the code it made"
    code = found[1]
    assert code not in str(shown.url)
    # the next person to sign in on this browser does not see it
    cookie = client.cookies.get("vnehr_reception")
    assert cookie is not None
    await sign_in_as(client, session, settings, OTHER_DOCTOR)
    client.cookies.set("vnehr_reception", cookie)
    assert code not in (await client.get("/portal/book/sharing")).text
    # and it is the patient's real code
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    used = await client.post(f"/api/v1/patients/{patient[0]}/reception-code", json={"code": code})
    assert used.status_code == 201, used.text


async def test_break_glass_needs_a_written_reason_on_the_page_as_in_the_api(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    api = f"/api/v1/patients/{patient[0]}/break-glass"
    error(await client.post(api, json={"reason": "other", "text": "      "}), 422, "SHR-0009")
    token = _form_token((await client.get("/clinic")).text)
    for text in ("", "  ", "ok"):
        page = await client.post(
            f"/clinic/patient/{patient[0]}/break-glass",
            data={"csrf": token, "reason": "other", "text": text},
            follow_redirects=False,
        )
        assert page.status_code == 422, text
        assert "<code>SHR-0009</code>" in page.text
    assert (await session.scalars(select(EmergencyAccess))).all() == []
    error(await client.get(f"/api/v1/patients/{patient[0]}/record"), 403, "SHR-0001")
    opened = await client.post(
        f"/clinic/patient/{patient[0]}/break-glass",
        data={"csrf": token, "reason": "other", "text": "Ngừng tuần hoàn tại sảnh"},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    [row] = (await session.scalars(select(EmergencyAccess))).all()
    assert row.reason_text == "Ngừng tuần hoàn tại sảnh"


async def test_an_emergency_review_needs_a_note_on_the_page_as_in_the_api(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    opened = await client.post(
        f"/api/v1/patients/{patient[0]}/break-glass",
        json={"reason": "unconscious", "text": "Bệnh nhân hôn mê"},
    )
    access_id = opened.json()["id"]
    await sign_in_as(
        client,
        session,
        settings,
        SUPERVISOR,
        {"role": "facility_admin", "facility_code": consented},
    )
    review = f"/api/v1/emergency-accesses/{access_id}/review"
    error(await client.post(review, json={"note": "   "}), 422, "SHR-0010")
    token = _form_token((await client.get("/review")).text)
    for note in ("", "   "):
        page = await client.post(
            f"/review/emergency/{access_id}",
            data={"csrf": token, "note": note},
            follow_redirects=False,
        )
        assert page.status_code == 422
        assert "<code>SHR-0010</code>" in page.text
    queue = (await client.get("/api/v1/emergency-accesses")).json()["items"]
    assert [(e["id"], e["status"]) for e in queue] == [(access_id, "open")]
    done = await client.post(
        f"/review/emergency/{access_id}",
        data={"csrf": token, "note": "Hợp lý", "outcome": "justified"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert (await client.get("/api/v1/emergency-accesses")).json()["items"] == []


async def test_a_share_lasts_1_to_3650_days_and_until_revoked_only_when_left_blank(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    token = _form_token((await client.get("/portal/book/sharing")).text)

    async def share(days: str) -> httpx.Response:
        return await client.post(
            "/portal/book/sharing",
            data={"csrf": token, "action": "share", "facility": consented, "days": days},
            follow_redirects=False,
        )

    for days, code in (("0", "SHR-0011"), ("9999", "SHR-0011"), ("-1", "SHR-0011")):
        refused = await share(days)
        assert refused.status_code == 422, days
        assert f"<code>{code}</code>" in refused.text
    refused = await share("ba")
    assert refused.status_code == 422
    assert "<code>KIT-0422</code>" in refused.text
    assert (await client.get("/api/v1/me/consents")).json() == []
    assert (await share("3650")).status_code == 303
    assert (await share("")).status_code == 303
    made = (await client.get("/api/v1/me/consents")).json()
    assert sorted(d["valid_to"] is None for d in made) == [False, True]


async def test_a_clinician_sees_the_allergies_but_not_one_recorded_in_a_hidden_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Allergies sent as FHIR AllergyIntolerance show in the summary the clinician reads (and
    on the clinic page); one recorded in a visit the rules leave out is left out with it."""
    _, consented, _, patient, headers = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    mine = (await client.get("/api/v1/me/timeline")).json()["items"]
    visits = {v["main_diagnosis"]["code"]: v["id"] for v in mine}
    person = (await client.get("/fhir/R4/Patient")).json()["entry"][0]["resource"]["id"]
    for substance, visit_id in (("Penicillin", visits["A09.0"]), ("Sertralin", visits["F32.9"])):
        allergy = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": substance},
            "category": ["medication"],
            "patient": {"reference": f"Patient/{person}"},
            "encounter": {"reference": f"Encounter/{visit_id}"},
        }
        written = await client.post("/fhir/R4/AllergyIntolerance", json=allergy, headers=headers)
        assert written.status_code == 201, written.text
    made = await client.post(
        "/api/v1/me/consents", json={"facility": consented, "scope": "summary"}
    )
    assert made.status_code == 201, made.text

    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    view = (await client.get(f"/api/v1/patients/{patient[0]}/record")).json()
    assert [a["substance"] for a in view["summary"]["allergies"]] == ["Penicillin"]
    page = await client.get("/clinic/patient", params={"id": patient[0]})
    assert page.status_code == 200, page.text
    assert "Penicillin" in page.text
    assert "Sertralin" not in page.text

    await sign_in_as(client, session, settings, patient)
    await client.post(
        "/api/v1/me/consents",
        json={"facility": consented, "scope": "summary", "sensitive": ["mental"]},
    )
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    view = (await client.get(f"/api/v1/patients/{patient[0]}/record")).json()
    assert {a["substance"] for a in view["summary"]["allergies"]} == {"Penicillin", "Sertralin"}


def test_every_code_that_tells_hiv_status_or_reproductive_care_is_sensitive() -> None:
    """D35 names Z30-Z39 (Z38: liveborn infants) and HIV care; an inconclusive HIV test, an
    exposure, counselling, screening and HIV in pregnancy tell the HIV status as much."""
    from vnehr.sharing import categories

    def of(main: str, others: str = "") -> set[str]:
        return categories({"XML1": [{"MA_BENH_CHINH": main, "MA_BENH_KT": others}]})

    assert of("Z38.0") == {"reproductive"}
    for code in ("R75", "Z20.6", "Z206", "Z71.7", "Z11.4", "B24", "Z21"):
        assert of(code) == {"hiv"}, code
    assert of("O98.7") == {"hiv", "reproductive"}
    assert of("J06.9", "Z20.6") == {"hiv"}
    assert of("Z20.8") == set()  # exposure to other communicable diseases
    assert of("J06.9") == set()


async def test_the_emergency_queue_pages_through_every_access_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """More emergency accesses than a page, on the API and the review page (as the dispute
    queue beside it, D86): each next page has the rest, newest first, nothing twice, nothing
    skipped (two opened at the same moment included), and one opened meanwhile does not shift
    the pages after the first."""
    code, _ = await facility_with_token(client, session, settings)
    now = utcnow().replace(microsecond=0)

    def access(at: datetime) -> EmergencyAccess:
        return EmergencyAccess(
            person_id=1, facility_code=code, clinician="person:001080001111",
            reason_code="unconscious", reason_text="Bệnh nhân hôn mê", opened_at=at,
            expires_at=at + timedelta(hours=24), status="open",
        )  # fmt: skip

    # 130 accesses; every tenth shares its moment with the one before
    rows = [access(now - timedelta(minutes=i - i % 10 // 9)) for i in range(130)]
    session.add_all(rows)
    await session.flush()
    expected = [r.id for r in sorted(rows, key=lambda r: (r.opened_at, r.id), reverse=True)]
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "facility_admin", "facility_code": code}
    )
    seen: list[int] = []
    cursor = None
    for number in range(1, 10):
        params: dict[str, str | int] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/emergency-accesses", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if number == 1:  # a clinician breaks the glass while the administrator reads
            late = access(utcnow())
            session.add(late)
            await session.flush()
        if cursor is None:
            break
    assert number == 3
    assert seen == expected
    first = (await client.get("/api/v1/emergency-accesses")).json()  # 100 by default
    assert [e["id"] for e in first["items"]] == [late.id, *expected[:99]]
    forged = await client.get("/api/v1/emergency-accesses", params={"cursor": "bm90IGpzb24"})
    error(forged, 400, "KIT-0001")
    error(await client.get("/api/v1/emergency-accesses", params={"limit": 501}), 422, "KIT-0422")

    # the review page: 100 accesses, then a link to the rest
    shown: list[int] = []
    url: str | None = "/review"
    while url is not None:
        html = (await client.get(url)).text
        shown += [int(i) for i in re.findall(r'<tr id="emergency-(\d+)"', html)]
        link = re.search(r'<a id="more-emergencies" href="([^"]+)"', html)
        url = link[1].replace("&amp;", "&") if link else None
    assert shown == [late.id, *expected]

    # the department pages one queue without losing its place in the other
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )
    at_cases = encode_moment_cursor(now, 1)
    html = (await client.get("/review", params={"cases_cursor": at_cases})).text
    link = re.search(r'<a id="more-emergencies" href="([^"]+)"', html)
    assert link is not None
    query = parse_qs(urlsplit(link[1].replace("&amp;", "&")).query)
    assert query["cases_cursor"] == [at_cases]


async def test_a_clinician_sees_no_allergy_whose_visit_reference_is_not_a_visit_shown(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The clinician's summary judges an allergy's visit however the reference is written
    (versioned, absolute with this server's address), also for allergies stored so before
    references were normalised; one whose encounter is not one of the visits shown (another
    server's, by identifier) stays out. The citizen sees every one, linked to its visit."""
    _, consented, _, patient, headers = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    mine = (await client.get("/api/v1/me/timeline")).json()["items"]
    visits = {v["main_diagnosis"]["code"]: v["id"] for v in mine}
    kept, left_out = visits["A09.0"], visits["F32.9"]
    person = (await client.get("/fhir/R4/Patient")).json()["entry"][0]["resource"]["id"]
    ours = settings.public_url + "/fhir/R4"
    encounters = {
        "Penicillin": {"reference": f"Encounter/{kept}/_history/1"},
        "Aspirin": {"reference": f"{ours}/Encounter/{kept}"},
        "Sertralin": {"reference": f"Encounter/{left_out}/_history/1"},
        "Fluoxetin": {"reference": f"{ours}/Encounter/{left_out}"},
        "Olanzapin": {"reference": f"https://fhir.other.example/R4/Encounter/{kept}"},
        "Lithium": {"identifier": {"system": "urn:visit", "value": str(left_out)}},
    }
    ids = {}
    for substance, encounter in encounters.items():
        allergy = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": substance},
            "patient": {"reference": f"Patient/{person}"},
            "encounter": encounter,
        }
        written = await client.post("/fhir/R4/AllergyIntolerance", json=allergy, headers=headers)
        assert written.status_code == 201, written.text
        ids[substance] = written.json()["id"]
    made = await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    assert made.status_code == 201, made.text

    async def clinician_sees() -> set[str]:
        await sign_in_as(
            client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
        )
        view = (await client.get(f"/api/v1/patients/{patient[0]}/record")).json()
        page = await client.get("/clinic/patient", params={"id": patient[0]})
        assert page.status_code == 200, page.text
        seen = {a["substance"] for a in view["summary"]["allergies"]}
        assert {s for s in encounters if s in page.text} == seen
        return seen

    async def citizen_sees() -> dict[str, int | None]:
        await sign_in_as(client, session, settings, patient)
        summary = (await client.get("/api/v1/me/summary")).json()
        return {a["substance"]: a["visit_id"] for a in summary["allergies"]}

    linked = {"Penicillin": kept, "Aspirin": kept, "Sertralin": left_out, "Fluoxetin": left_out}
    assert await clinician_sees() == {"Penicillin", "Aspirin"}
    assert await citizen_sees() == {**dict.fromkeys(encounters), **linked}

    # stored as sent by an earlier release
    for substance, encounter in encounters.items():
        await session.execute(
            update(StoredResource)
            .where(StoredResource.resource_id == ids[substance])
            .values(
                body={
                    "resourceType": "AllergyIntolerance",
                    "id": ids[substance],
                    "meta": {"versionId": "1"},
                    "code": {"text": substance},
                    "patient": {"reference": f"Patient/{person}"},
                    "encounter": encounter,
                }
            )
        )
    await session.flush()
    assert await clinician_sees() == {"Penicillin", "Aspirin"}
    assert await citizen_sees() == {**dict.fromkeys(encounters), **linked}
