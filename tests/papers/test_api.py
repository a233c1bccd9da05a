"""Electronic papers as users meet them: a visit file issues its papers into the citizen's book
(with a notification), the next visit that cites an appointment uses it up, a rule-breaking
paper rejects its visit and stores nothing, a driver's certificate is issued through the API,
verified by anyone, revoked by its facility only (verification fails at once, the revocation
list says so), corrected papers replace the old, and the PDF carries two valid signatures that a
changed byte breaks."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pypdf
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import count, facility_with_token, send
from vnehr import exchange, identity
from vnehr.audit import AuditEvent
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.papers import pdf
from vnehr.papers.models import Paper
from vnehr.records.models import VisitVersion
from vnehr.submissions import synth

REGISTRAR = Subject(
    kind="person", id="registrar", name="registrar", grants=(Grant("department_admin"),)
)
SCOPES = ("submission.write", "checkin.write", "paper.write")
DRIVER = ("001090012345", "Vũ Đức Thắng", "1990-04-12", "male")


def local_now() -> datetime:
    return utcnow().astimezone(VIETNAM).replace(tzinfo=None, second=0, microsecond=0)


async def verify(client: httpx.AsyncClient, qr: str) -> dict[str, Any]:
    response = await client.post("/api/v1/papers/verify", json={"qr": qr})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_visit_issues_its_appointment_and_the_next_visit_uses_it_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    first = visit_of(
        code, 31, local_now() - timedelta(days=20), care_type="01", insured=True, appointment=True
    )
    # the appointment was three days ago, at half past seven
    booked = (local_now() - timedelta(days=3)).replace(hour=7, minute=30)
    first.tables["XML14"][0]["NGAY_HEN_KL"] = booked.strftime("%Y%m%d%H%M")
    assert (await send(client, headers, synth.envelope([first], code))).json()["status"] != (
        "rejected"
    )
    number = first.tables["XML14"][0]["SO_GIAYHEN_KL"]
    appointment = datetime.strptime(first.tables["XML14"][0]["NGAY_HEN_KL"], "%Y%m%d%H%M")  # noqa: DTZ007
    events = await session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "paper.issued"))
    assert any(e.payload["params"]["number"] == number for e in events)

    patient = who(first)
    await sign_in_as(client, session, settings, patient)
    mine = (await client.get("/api/v1/me/papers")).json()
    [paper] = [p for p in mine["papers"] if p["kind"] == "re_exam"]
    assert (paper["number"], paper["status"], paper["visit_key"]) == (number, "valid", first.ma_lk)
    assert paper["content"]["facts"]["appointment"].startswith(appointment.date().isoformat())

    checked = await verify(client, paper["qr"])
    assert (checked["authentic"], checked["valid"], checked["status"]) == (True, True, "valid")
    assert checked["paper"]["holder"]["name"] == patient[1]
    assert checked["paper"]["facts"]["appointment"].startswith(appointment.date().isoformat())
    assert "diagnosis" not in orjson.dumps(checked).decode()  # never in a card

    # the re-examination cites the appointment in XML1 GIAY_CHUYEN_TUYEN: it is used
    second = visit_of(
        code,
        32,
        appointment + timedelta(hours=2),
        first,
        care_type="01",
        insured=True,
        appointment=False,
    )
    second.tables["XML1"][0]["GIAY_CHUYEN_TUYEN"] = number
    assert (await send(client, headers, synth.envelope([second], code))).json()["status"] != (
        "rejected"
    )
    used = await verify(client, paper["qr"])
    assert (used["authentic"], used["valid"], used["status"]) == (True, False, "used")
    row = await session.get(Paper, paper["id"])
    assert row is not None
    assert row.used_by == f"{code}:{second.ma_lk}"

    # a third visit citing it again changes nothing: an appointment is used once
    third = visit_of(
        code,
        33,
        appointment + timedelta(days=1),
        first,
        care_type="01",
        insured=True,
        appointment=False,
    )
    third.tables["XML1"][0]["GIAY_CHUYEN_TUYEN"] = number
    await send(client, headers, synth.envelope([third], code))
    await session.refresh(row)
    assert row.used_by == f"{code}:{second.ma_lk}"


def sick_leave(one: synth.SynthVisit, days: int) -> dict[str, str]:
    xml1 = one.tables["XML1"][0]
    start = datetime.strptime(xml1["NGAY_VAO"][:8], "%Y%m%d")  # noqa: DTZ007
    return {
        "MA_LK": one.ma_lk,
        "SO_CT": "NV-0001",
        "SO_SERI": "S-0001",
        "SO_KCB": "K-0001",
        "DON_VI": "Công ty TNHH Sông Hồng",
        "MA_BHXH": "0123456789",
        "MA_THE_BHYT": xml1["MA_THE_BHYT"],
        "CHAN_DOAN_RV": xml1["CHAN_DOAN_RV"],
        "PP_DIEUTRI": "Điều trị nội khoa",
        "SO_NGAY_NGHI": str(days),
        "TU_NGAY": start.strftime("%Y%m%d"),
        "DEN_NGAY": (start + timedelta(days=days - 1)).strftime("%Y%m%d"),
        "HO_TEN_ME": "Nguyễn Thị Mai",
        "MA_TTDV": "0101001234",
        "MA_BS": "0101005678",
        "NGAY_CT": start.strftime("%Y%m%d"),
    }


async def test_a_sick_leave_too_long_rejects_the_visit_and_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 41, local_now() - timedelta(days=3), care_type="01", insured=True, appointment=False
    )
    one.tables["XML1"][0]["MA_BENH_CHINH"] = "J06.9"
    one.tables["XML11"] = [sick_leave(one, 31)]
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["status"] == "rejected"
    [issue] = [i for i in receipt["visits"][0]["issues"] if i["severity"] == "error"]
    assert (issue["code"], issue["table"], issue["field"]) == ("PAP-0104", "XML11", "SO_NGAY_NGHI")
    assert "31" in issue["message"]["vi"]
    assert "30" in issue["message"]["en"]
    assert await count(session, Paper, Paper.facility_code == code) == 0
    assert await count(session, VisitVersion, VisitVersion.facility_code == code) == 0

    one.tables["XML11"] = [sick_leave(one, 30)]
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["status"] != "rejected", receipt
    [paper] = (
        await session.scalars(
            select(Paper).where(Paper.facility_code == code, Paper.kind == "sick_leave")
        )
    ).all()
    assert paper.content["facts"]["days"] == 30
    assert (paper.valid_until - paper.valid_from).days == 29  # type: ignore[operator]


def driver_body(**extra: Any) -> dict[str, Any]:
    examined = (utcnow().astimezone(VIETNAM) - timedelta(days=2)).date().isoformat()
    return {
        "kind": "driver",
        "holder": {
            "personal_id": DRIVER[0],
            "name": DRIVER[1],
            "birth_date": DRIVER[2],
            "sex": DRIVER[3],
        },
        "examined_on": examined,
        "classes": ["B", "C1"],
        "drug_test": "negative",
        "alcohol": "negative",
        "conclusion": "fit",
        "doctor_id": "001234/HNO-CCHN",
        "doctor_name": "BS. Đỗ Thu Hà",
        **extra,
    }


async def test_a_driver_certificate_is_issued_verified_and_revoked_by_its_facility_only(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    _, other = await facility_with_token(client, session, settings, scopes=SCOPES)
    _, no_scope = await facility_with_token(client, session, settings)

    error(
        await client.post("/api/v1/papers", json=driver_body(), headers=no_scope), 403, "AUTH-0004"
    )
    refused = error(
        await client.post(
            "/api/v1/papers", json=driver_body(drug_test="positive"), headers=headers
        ),
        422,
        "PAP-0004",
    )
    assert [i["code"] for i in refused["detail"]["issues"]] == ["PAP-0122"]

    made = await client.post("/api/v1/papers", json=driver_body(), headers=headers)
    assert made.status_code == 201, made.text
    paper = made.json()
    assert paper["content"]["facts"]["classes"] == ["B", "C1"]
    assert paper["number"].startswith(f"{code}.KSK.")
    checked = await verify(client, paper["qr"])
    assert (checked["authentic"], checked["valid"]) == (True, True)
    assert checked["paper"]["facts"]["classes"] == "B, C1"
    assert checked["paper"]["facts"]["conclusion"] == "fit"

    # the holder finds it in their book
    await sign_in_as(client, session, settings, DRIVER)
    assert [p["id"] for p in (await client.get("/api/v1/me/papers")).json()["papers"]] == [
        paper["id"]
    ]
    # somebody else does not see it, and never learns whose it is
    await sign_in_as(
        client, session, settings, ("001199000001", "Người Khác", "1999-01-01", "female")
    )
    error(await client.get(f"/api/v1/papers/{paper['id']}"), 404, "PAP-0001")

    revoke = f"/api/v1/papers/{paper['id']}/revoke"
    error(await client.post(revoke, json={"reason": "nhầm"}, headers=other), 403, "PAP-0002")
    done = await client.post(revoke, json={"reason": "Cấp nhầm người"}, headers=headers)
    assert done.status_code == 200
    assert done.json()["status"] == "revoked"
    checked = await verify(client, paper["qr"])
    assert (checked["authentic"], checked["valid"], checked["status"]) == (True, False, "revoked")
    assert checked["reason"] == "Cấp nhầm người"
    error(await client.post(revoke, json={"reason": "again"}, headers=headers), 409, "PAP-0003")

    jwks = (await client.get("/.well-known/jwks.json")).json()
    [key] = jwks["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["crlVersion"] >= 1
    crl = (await client.get(f"/.well-known/crl/{key['kid']}.json")).json()
    row = await session.get(Paper, paper["id"])
    assert row is not None
    assert row.rid in crl["rids"]
    assert crl["ctr"] == key["crlVersion"]


def tamper(qr: str) -> str:
    """Change one character of the JWS payload inside a shc:/ text."""
    digits = qr[5:]
    middle = len(digits) // 2 - (len(digits) // 2) % 2
    pair = int(digits[middle : middle + 2])
    changed = pair + 1 if pair < 77 else pair - 1
    return f"shc:/{digits[:middle]}{changed:02d}{digits[middle + 2 :]}"


async def test_a_changed_or_foreign_qr_is_not_authentic(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    forged = await verify(client, tamper(paper["qr"]))
    assert (forged["authentic"], forged["valid"]) == (False, False)
    assert forged["reason"] in ("bad_signature", "malformed")
    assert "paper" not in forged
    assert (await verify(client, "shc:/123"))["reason"] == "malformed"
    assert (await verify(client, "hello"))["reason"] == "malformed"


async def test_a_corrected_visit_replaces_its_paper(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 51, local_now() - timedelta(days=5), care_type="01", insured=True, appointment=True
    )
    await send(client, headers, synth.envelope([one], code))
    again = await send(client, headers, synth.envelope([one], code))
    assert again.json()["visits"][0]["outcome"] == "unchanged"
    assert await count(session, Paper, Paper.facility_code == code) == 1
    one.tables["XML14"][0]["NGAY_HEN_KL"] = one.tables["XML14"][0]["NGAY_HEN_KL"][:8] + "1400"
    await send(client, headers, synth.envelope([one], code))
    versions = (
        await session.scalars(
            select(Paper).where(Paper.facility_code == code).order_by(Paper.version)
        )
    ).all()
    assert [(p.version, p.status, p.revoke_reason) for p in versions] == [
        (1, "revoked", "replaced"),
        (2, "valid", None),
    ]
    old = await verify(client, f"shc:/{''.join(f'{ord(c) - 45:02d}' for c in versions[0].jws)}")
    assert (old["authentic"], old["status"]) == (True, "revoked")


async def test_the_pdf_carries_the_doctor_and_facility_signatures(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    response = await client.get(f"/api/v1/papers/{paper['id']}.pdf", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    body = response.content
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(body)).pages)
    assert DRIVER[1] in text
    assert "GIẤY KHÁM SỨC KHỎE LÁI XE" in text

    checked = (await client.post("/api/v1/papers/verify-pdf", content=body)).json()
    assert checked["authentic"] is True
    signers = [s["signer"] for s in checked["signatures"]]
    assert len(signers) == 2
    assert "Đỗ Thu Hà" in signers[0]
    assert all(s["intact"] and s["trusted"] for s in checked["signatures"])

    position = len(body) // 3
    changed = body[:position] + bytes([body[position] ^ 0x01]) + body[position + 1 :]
    assert (await client.post("/api/v1/papers/verify-pdf", content=changed)).json()[
        "authentic"
    ] is False
    # the same paper signed by keys outside the hub's roots is not trusted
    row = await session.get(Paper, paper["id"])
    assert row is not None
    unsigned = pdf.render(row.content, paper_id=row.id, status="valid", qr_svg="<svg/>")
    foreign = await pdf.sign(unsigned, pdf.signers_of(row.content), pdf.HubAuthority("x" * 40))
    checked = (await client.post("/api/v1/papers/verify-pdf", content=foreign)).json()
    assert checked["authentic"] is False
    assert [s["intact"] and not s["trusted"] for s in checked["signatures"]] == [True, True]
    # and nobody signed out reads the PDF
    error(await client.get(f"/api/v1/papers/{paper['id']}.pdf"), 401, "AUTH-0001")


class Phone:
    """The app's push service as a test sees it: what it was asked to show."""

    def __init__(self) -> None:
        self.shown: list[tuple[int, dict[str, str], dict[str, str]]] = []

    async def push(self, message: exchange.PushMessage) -> None:
        self.shown.append((message.person_id, message.title, message.body))


async def test_a_paper_issued_after_the_visit_is_checked_like_the_file_and_the_citizen_told(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 61, local_now() - timedelta(days=2), care_type="01", insured=True, appointment=False
    )
    one.tables["XML1"][0]["MA_BENH_CHINH"] = "J06.9"
    await send(client, headers, synth.envelope([one], code))
    leave = sick_leave(one, 31)
    body = {"kind": "sick_leave", "visit_key": one.ma_lk, "fields": leave}
    refused = error(
        await client.post("/api/v1/papers", json=body, headers=headers), 422, "PAP-0004"
    )
    assert [(i["code"], i["field"]) for i in refused["detail"]["issues"]] == [
        ("PAP-0104", "SO_NGAY_NGHI")
    ]
    missing = {**body, "fields": {k: v for k, v in sick_leave(one, 3).items() if k != "DON_VI"}}
    refused = error(
        await client.post("/api/v1/papers", json=missing, headers=headers), 422, "PAP-0004"
    )
    assert [(i["code"], i["field"]) for i in refused["detail"]["issues"]] == [
        ("SUB-0110", "DON_VI")
    ]
    error(
        await client.post("/api/v1/papers", json={**body, "visit_key": "NOPE"}, headers=headers),
        404,
        "PAP-0005",
    )
    made = await client.post(
        "/api/v1/papers", json={**body, "fields": sick_leave(one, 3)}, headers=headers
    )
    assert made.status_code == 201, made.text
    assert made.json()["content"]["holder"]["personal_id"] == who(one)[0]

    [event] = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.topic == "paper.issued", OutboxEvent.key == f"paper:{made.json()['id']}"
            )
        )
    ).all()
    # (signed in at level 2 once: the phone is told in full, D110)
    await sign_in_as(client, session, settings, who(one))
    phone = Phone()
    await exchange.event_notifier("paper", phone)(session, event)
    [(_, title, text)] = phone.shown
    assert title["vi"] == "Có giấy tờ mới trong Sổ sức khỏe điện tử"
    assert "Giấy chứng nhận nghỉ việc hưởng BHXH" in text["vi"]
    assert "Sick-leave certificate" in text["en"]
    inbox = (await client.get("/api/v1/me/notifications")).json()
    assert any(n["kind"] == "paper" for n in inbox["items"])


async def test_a_parent_reads_the_child_papers_and_the_read_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    child = visit_of(
        code,
        71,
        local_now() - timedelta(days=2),
        care_type="01",
        insured=True,
        appointment=True,
        age_group=0,
    )
    await send(client, headers, synth.envelope([child], code))
    parent = ("001080012346", "Lê Văn Bố", "1980-02-02", "male")
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
    error(await client.get("/api/v1/me/papers?for=001199000001"), 404, "PAP-0001")
    mine = (await client.get(f"/api/v1/me/papers?for={child_who[0]}")).json()
    assert mine["holder"] == child_who[1]
    [paper] = mine["papers"]
    assert (await client.get(f"/api/v1/papers/{paper['id']}")).status_code == 200
    reads = (
        await session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor == f"person:{parent[0]}")
        )
    ).all()
    assert sorted(reads) == ["paper.list", "paper.read"]


async def test_papers_are_fhir_document_references_in_the_holders_compartment(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    from vnehr.fhir.validate import validate

    _, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    await sign_in_as(client, session, settings, DRIVER)
    found = (await client.get("/fhir/R4/DocumentReference")).json()
    [document] = [
        e["resource"] for e in found["entry"] if e["resource"]["id"] == f"paper-{paper['id']}"
    ]
    assert document["type"]["coding"][0]["code"] == "driver"
    assert document["identifier"][0]["value"] == paper["number"]
    assert document["status"] == "current"
    assert document["content"][0]["attachment"]["url"] == f"/api/v1/papers/{paper['id']}.pdf"
    assert validate(document) == []
    get_fhir_model_class("DocumentReference").model_validate(document)
    again = await client.get(f"/fhir/R4/DocumentReference/paper-{paper['id']}")
    assert again.status_code == 200
    await sign_in_as(
        client, session, settings, ("001199000001", "Người Khác", "1999-01-01", "female")
    )
    assert (await client.get(f"/fhir/R4/DocumentReference/paper-{paper['id']}")).status_code == 404
    # revoked: superseded in FHIR
    client.cookies.clear()
    await client.post(
        f"/api/v1/papers/{paper['id']}/revoke", json={"reason": "Cấp nhầm"}, headers=headers
    )
    await sign_in_as(client, session, settings, DRIVER)
    revoked = (await client.get(f"/fhir/R4/DocumentReference/paper-{paper['id']}")).json()
    assert revoked["status"] == "superseded"
    assert "Cấp nhầm" in revoked["description"]


async def test_the_issuing_facility_reading_a_paper_shows_in_the_holder_s_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    made = await client.post("/api/v1/papers", json=driver_body(), headers=headers)
    assert made.status_code == 201, made.text
    paper = made.json()["id"]
    # the facility's own system reads it again (its JSON and its PDF): another reader of
    # the holder's paper, with the diagnosis it carries
    assert (await client.get(f"/api/v1/papers/{paper}", headers=headers)).status_code == 200
    assert (await client.get(f"/api/v1/papers/{paper}.pdf", headers=headers)).status_code == 200
    await sign_in_as(client, session, settings, DRIVER)
    assert (await client.get(f"/api/v1/papers/{paper}")).status_code == 200  # their own: no row
    log = (await client.get("/api/v1/me/access-log")).json()
    reads = [e for e in log if e["action"] == "paper.read"]
    assert len(reads) == 2
    assert {e["who"]["kind"] for e in reads} == {"facility_system"}
    assert {e["who"]["facility"]["code"] for e in reads} == {code}
    assert {e["relation"] for e in reads} == {None}  # not read as a representative
