"""Who viewed my record: reads by others appear in the citizen's access log with who they were;
"I don't recognise this" opens a case the health department sees and closes."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import STRANGER, visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import audit, identity
from vnehr.identity.models import Person
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

ADMIN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")


SAIGON = ("079080012345", "Lê Văn Sài", "1980-01-01", "male")  # Sở Y tế TP. Hồ Chí Minh


async def test_reads_by_a_facility_are_listed_and_can_be_disputed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = visit_of(code, 71, datetime(2026, 10, 9, 9, 0))  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    citizen = who(one)
    # The citizen reads their own book: not an "access by someone else".
    await sign_in_as(client, session, settings, citizen)
    registrar = Subject("person", "registrar", "registrar", (Grant("department_admin"),))
    await identity.set_residence(session, registrar, citizen[0], "00070")  # Hà Nội
    visit_id = (await client.get("/api/v1/me/timeline")).json()["items"][0]["id"]
    assert (await client.get(f"/api/v1/me/visits/{visit_id}")).status_code == 200
    assert (await client.get("/api/v1/me/access-log")).json() == []
    # The facility's system reads the visit through FHIR.
    client.cookies.clear()
    assert (await client.get(f"/fhir/R4/Encounter/{visit_id}", headers=headers)).status_code == 200
    await sign_in_as(client, session, settings, citizen)
    log = (await client.get("/api/v1/me/access-log")).json()
    fhir_reads = [e for e in log if e["action"] == "fhir.read"]
    assert len(fhir_reads) == 1
    entry = fhir_reads[0]
    assert entry["who"]["kind"] == "facility_system"
    assert entry["who"]["facility"] == {"code": code, "name": "Bệnh viện thử"}
    assert entry["person_name"] == citizen[1]
    assert entry["disputed"] is False

    opened = await client.post(
        f"/api/v1/me/access-log/{entry['id']}/dispute", json={"reason": "Tôi không khám ở đây"}
    )
    assert opened.status_code == 201, opened.text
    again = await client.post(f"/api/v1/me/access-log/{entry['id']}/dispute")
    assert again.json()["id"] == opened.json()["id"]
    log = (await client.get("/api/v1/me/access-log")).json()
    assert [e["disputed"] for e in log if e["id"] == entry["id"]] == [True]

    # Nobody else can dispute it, and only the department sees the queue.
    await sign_in_as(client, session, settings, STRANGER)
    error(await client.post(f"/api/v1/me/access-log/{entry['id']}/dispute"), 404, "HB-0004")
    error(await client.get("/api/v1/access-disputes"), 403, "AUTH-0002")
    # another province's department has nothing to do with a Hanoi resident's case
    await sign_in_as(
        client, session, settings, SAIGON, {"role": "department_admin", "province_code": "79"}
    )
    assert (await client.get("/api/v1/access-disputes")).json() == {
        "items": [],
        "next_cursor": None,
    }
    await sign_in_as(
        client, session, settings, ADMIN, {"role": "department_admin", "province_code": "01"}
    )
    queue = (await client.get("/api/v1/access-disputes")).json()["items"]
    assert [d["audit_event_id"] for d in queue] == [entry["id"]]
    assert queue[0]["reason"] == "Tôi không khám ở đây"
    # a case closes only with a finding (the citizen's answer), on the API and the review page
    close = f"/api/v1/access-disputes/{queue[0]['id']}/close"
    error(await client.post(close, json={"finding": "   "}), 422, "HB-0006")
    review = await client.get("/review")
    token = re.search(r'name="csrf" value="([^"]+)"', review.text)
    assert token is not None
    for finding in ("", "  "):
        page = await client.post(
            f"/review/dispute/{queue[0]['id']}",
            data={"csrf": token[1], "finding": finding},
            follow_redirects=False,
        )
        assert page.status_code == 422
        assert "<code>HB-0006</code>" in page.text
    still = (await client.get("/api/v1/access-disputes")).json()["items"]
    assert [d["status"] for d in still] == ["open"]
    closed = await client.post(
        f"/api/v1/access-disputes/{queue[0]['id']}/close",
        json={"finding": "Đọc nhầm bệnh nhân; đã nhắc nhở cơ sở."},
    )
    assert closed.json()["status"] == "closed"
    await sign_in_as(client, session, settings, SAIGON)
    error(
        await client.post(f"/api/v1/access-disputes/{queue[0]['id']}/close", json={"finding": "x"}),
        404,
        "HB-0005",
    )
    await sign_in_as(
        client, session, settings, ADMIN, {"role": "department_admin", "province_code": "01"}
    )
    assert (await client.get("/api/v1/access-disputes")).json()["items"] == []
    closed_cases = await client.get("/api/v1/access-disputes", params={"status": "closed"})
    assert len(closed_cases.json()["items"]) == 1


async def test_a_parents_reads_of_the_childs_papers_are_in_the_childs_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from tests.papers.test_api import REGISTRAR, SCOPES, local_now

    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    child = visit_of(
        code, 71, local_now() - timedelta(days=2), insured=True, appointment=True, age_group=0
    )
    assert (await send(client, headers, synth.envelope([child], code))).status_code == 201
    await sign_in_as(client, session, settings, who(child))
    await sign_in_as(client, session, settings, STRANGER)
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=STRANGER[0],
        subject_person=who(child)[0],
        relation="parent",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )
    [paper] = (await client.get("/api/v1/me/papers", params={"for": who(child)[0]})).json()[
        "papers"
    ]
    assert (await client.get(f"/api/v1/papers/{paper['id']}")).status_code == 200
    await sign_in_as(client, session, settings, who(child))
    log = (await client.get("/api/v1/me/access-log")).json()
    assert sorted((e["action"], e["who"]["name"], e["relation"]) for e in log) == [
        ("paper.list", STRANGER[1], "parent"),
        ("paper.read", STRANGER[1], "parent"),
    ]
    page = (await client.get("/portal/book/access-log")).text
    assert "Xem một giấy tờ" in page
    assert "Xem danh sách giấy tờ" in page
    read = next(e for e in log if e["action"] == "paper.read")
    opened = await client.post(f"/api/v1/me/access-log/{read['id']}/dispute")
    assert opened.status_code == 201, opened.text


async def test_a_departments_queue_keeps_its_cases_behind_many_of_other_provinces(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    hanoian = await sign_in_as(client, session, settings, STRANGER)
    registrar = Subject("person", "registrar", "registrar", (Grant("department_admin"),))
    await identity.set_residence(session, registrar, STRANGER[0], "00070")  # Hà Nội
    # no residence: the national department's cases
    elsewhere = await sign_in_as(client, session, settings, SAIGON)
    now = utcnow()
    read = audit.audit_event(
        actor="facility_system:x", action="fhir.read", object_type="fhir", object_id="Encounter/1"
    )
    session.add(read)
    await session.flush()
    cases = [(hanoian.id, now - timedelta(days=3))] + [
        (elsewhere.id, now - timedelta(minutes=i)) for i in range(500)
    ]
    session.add_all(
        audit.AccessDispute(
            audit_event_id=read.id,
            person_id=person_id,
            opened_by="person:x",
            opened_at=at,
            status="open",
        )
        for person_id, at in cases
    )
    await session.flush()
    await sign_in_as(
        client, session, settings, ADMIN, {"role": "department_admin", "province_code": "01"}
    )
    queue = (await client.get("/api/v1/access-disputes")).json()["items"]
    assert [d["opened_at"][:16] for d in queue] == [(now - timedelta(days=3)).isoformat()[:16]]
    await sign_in_as(
        client, session, settings, SAIGON, {"role": "department_admin", "province_code": "79"}
    )
    assert (await client.get("/api/v1/access-disputes")).json()["items"] == []
    await sign_in_as(client, session, settings, SAIGON, {"role": "department_admin"})
    national = await client.get("/api/v1/access-disputes", params={"limit": 500})
    assert len(national.json()["items"]) == 500
    assert national.json()["next_cursor"]  # the 501st on the next page


async def test_the_dispute_queue_pages_through_every_case_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """More cases than a page, on the API and the review page: each next page has the rest,
    newest first, nothing twice, nothing skipped (two cases opened at the same moment
    included), and a case opened meanwhile does not shift the pages after the first."""
    hanoian = await sign_in_as(client, session, settings, STRANGER)
    registrar = Subject("person", "registrar", "registrar", (Grant("department_admin"),))
    await identity.set_residence(session, registrar, STRANGER[0], "00070")  # Hà Nội
    read = audit.audit_event(
        actor="facility_system:x", action="fhir.read", object_type="fhir", object_id="Encounter/1"
    )
    session.add(read)
    await session.flush()
    now = utcnow().replace(microsecond=0)
    # 130 cases; every tenth shares its moment with the one before
    moments = [now - timedelta(minutes=i - i % 10 // 9) for i in range(130)]
    rows = [
        audit.AccessDispute(
            audit_event_id=read.id, person_id=hanoian.id, opened_by="person:x", opened_at=at,
            status="open",
        )
        for at in moments
    ]  # fmt: skip
    session.add_all(rows)
    await session.flush()
    expected = [r.id for r in sorted(rows, key=lambda r: (r.opened_at, r.id), reverse=True)]
    await sign_in_as(
        client, session, settings, ADMIN, {"role": "department_admin", "province_code": "01"}
    )
    seen: list[int] = []
    cursor = None
    for number in range(1, 10):
        params: dict[str, str | int] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/access-disputes", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if number == 1:  # a newer case arrives while the department reads
            late = audit.AccessDispute(
                audit_event_id=read.id, person_id=hanoian.id, opened_by="person:x",
                opened_at=utcnow(), status="open",
            )  # fmt: skip
            session.add(late)
            await session.flush()
        if cursor is None:
            break
    assert number == 3
    assert seen == expected
    first = (await client.get("/api/v1/access-disputes")).json()  # 100 by default
    assert [d["id"] for d in first["items"]] == [late.id, *expected[:99]]
    forged = await client.get("/api/v1/access-disputes", params={"cursor": "bm90IGpzb24"})
    error(forged, 400, "KIT-0001")
    error(await client.get("/api/v1/access-disputes", params={"limit": 501}), 422, "KIT-0422")

    # the review page: 100 cases, then a link to the rest
    shown: list[int] = []
    url: str | None = "/review"
    while url is not None:
        html = (await client.get(url)).text
        shown += [int(i) for i in re.findall(r'<tr id="dispute-(\d+)"', html)]
        link = re.search(r'<a id="more-cases" href="([^"]+)"', html)
        url = link[1].replace("&amp;", "&") if link else None
    assert shown == [late.id, *expected]


async def test_a_parent_of_a_sixteen_year_old_is_not_told_which_facility_looked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """From 16 the young person may choose care in confidence (mental health here): a parent
    sees that a facility read the record, and when, but not which facility nor what it read;
    the young person's own log names it. A younger child's parent still sees it."""
    from tests.exchange.test_inbox import AN
    from tests.exchange.test_push_privacy import represent
    from tests.sharing.test_access import DOCTOR

    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = visit_of(code, 71, datetime(2026, 10, 9, 9, 0), age_group=1)  # noqa: DTZ001
    for rows in one.tables.values():
        for row in rows:
            if "MA_BENH_CHINH" in row:
                row["MA_BENH_CHINH"], row["MA_BENH_KT"] = "F32.2", ""
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    young = who(one)
    pid, name = young[0], young[1]
    await sign_in_as(client, session, settings, young)
    visit_id = (await client.get("/api/v1/me/timeline")).json()["items"][0]["id"]
    await born_years_ago(session, pid, 17)
    await represent(session, AN, pid, "parent", date(2010, 1, 1))
    client.cookies.clear()
    assert (await client.get(f"/fhir/R4/Encounter/{visit_id}", headers=headers)).status_code == 200
    facility_name = "Bệnh viện thử"
    # and a clinician of another facility opens the record in an emergency
    other, _ = await facility_with_token(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": other}
    )
    glass = await client.post(
        f"/api/v1/patients/{pid}/break-glass", json={"reason": "unconscious", "text": "hôn mê"}
    )
    assert glass.status_code == 201, glass.text
    assert (await client.get(f"/api/v1/patients/{pid}/record")).status_code == 200

    await sign_in_as(client, session, settings, young)
    await born_years_ago(session, pid, 17)
    own = (await client.get("/api/v1/me/access-log")).json()
    fhir_read = next(e for e in own if e["action"] == "fhir.read")
    assert fhir_read["who"]["facility"] == {"code": code, "name": facility_name}
    assert {e["who"]["name"] for e in own if e["action"] != "fhir.read"} == {DOCTOR[1]}

    await sign_in_as(client, session, settings, AN)
    answer = await client.get("/api/v1/me/access-log")
    log = answer.json()
    assert sorted(e["action"] for e in log) == ["clinical.read", "emergency.opened", "fhir.read"]
    assert all(e["who"] == {"kind": "facility", "name": None, "facility": None} for e in log)
    assert DOCTOR[1] not in answer.text
    assert other not in answer.text
    seen = next(e for e in log if e["action"] == "fhir.read")
    assert seen["person_name"] == name
    assert code not in answer.text
    assert facility_name not in answer.text
    assert str(visit_id) not in seen["what"]
    for lang, words in (("vi", "Một cơ sở khám bệnh, chữa bệnh"), ("en", "A medical facility")):
        page = (await client.get("/portal/book/access-log", params={"lang": lang})).text
        assert words in page
        assert code not in page
        assert facility_name not in page
    # the parent may still say "I don't recognise this": the department sees it all
    opened = await client.post(f"/api/v1/me/access-log/{seen['id']}/dispute")
    assert opened.status_code == 201, opened.text

    # a child of 15: the parent sees the facility, as before
    await born_years_ago(session, pid, 15)
    log = (await client.get("/api/v1/me/access-log")).json()
    seen = next(e for e in log if e["action"] == "fhir.read")
    assert seen["who"]["facility"] == {"code": code, "name": facility_name}
    assert {e["who"]["name"] for e in log if e["action"] != "fhir.read"} == {DOCTOR[1]}


async def test_a_parent_of_a_sixteen_year_old_is_not_told_which_facility_admin_exported(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility's administrator who exports the visit file is a medical facility to the
    parent of a person of 16 or more (neither their name nor the visit); the department's
    export names the department's officer; the young person's own log names both."""
    from tests.exchange.test_inbox import AN

    admin = ("001185002222", "Nguyễn Quản Trị", "1985-01-01", "female")
    officer = ("001086003333", "Phạm Sở Y Tế", "1986-01-01", "male")
    code, _, one = await seventeen_with_a_parent(client, session, settings, 73)
    young = who(one)
    await sign_in_as(
        client, session, settings, admin, {"role": "facility_admin", "facility_code": code}
    )
    assert (await client.get(f"/api/v1/visits/{code}/{one.ma_lk}/xml")).status_code == 200
    await sign_in_as(
        client, session, settings, officer, {"role": "department_admin", "province_code": "01"}
    )
    assert (await client.get(f"/api/v1/visits/{code}/{one.ma_lk}/xml")).status_code == 200

    await sign_in_as(client, session, settings, AN)
    answer = await client.get("/api/v1/me/access-log")
    log = answer.json()
    assert [e["action"] for e in log] == ["visit.exported", "visit.exported"]
    by_officer, by_admin = log
    assert by_admin["who"] == {"kind": "facility", "name": None, "facility": None}
    assert by_admin["what"] == "visit_version"
    assert by_officer["who"]["name"] == officer[1]
    assert admin[1] not in answer.text
    page = (await client.get("/portal/book/access-log", params={"lang": "en"})).text
    assert "A medical facility" in page
    assert admin[1] not in page

    await sign_in_as(client, session, settings, young)
    own = (await client.get("/api/v1/me/access-log")).json()
    assert {e["who"]["name"] for e in own} == {admin[1], officer[1]}


async def seventeen_with_a_parent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, sequence: int
) -> tuple[str, dict[str, str], synth.SynthVisit]:
    """A facility's visit of a person made 17 years old, signed in, whose parent is AN: the
    facility's code and headers, and the visit."""
    from tests.exchange.test_inbox import AN
    from tests.exchange.test_push_privacy import represent

    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = visit_of(code, sequence, datetime(2026, 10, 9, 9, 0), age_group=1)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    await sign_in_as(client, session, settings, who(one))
    await born_years_ago(session, who(one)[0], 17)
    await represent(session, AN, who(one)[0], "parent", date(2010, 1, 1))
    return code, headers, one


async def born_years_ago(session: AsyncSession, personal_id: str, years: int) -> None:
    """Make a person ``years`` old today (a month short of their next birthday), whatever the
    personal ID says (the birth date recorded decides, D100). That birth is not the one VNeID
    confirmed, so the person no longer counts as confirmed: the files that still carry their
    NGAY_SINH go on into their book (a confirmed person's are held when they differ, D23)."""
    born = today_in_vietnam() - timedelta(days=365 * (years + 1) - 30)
    await session.execute(
        update(Person)
        .where(Person.personal_id == personal_id)
        .values(birth_date=born, vneid_sub=None)
    )
    await session.flush()
