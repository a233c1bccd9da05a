"""A facility system sends visit files over HTTP and gets a receipt; what it says is stored."""

from __future__ import annotations

import asyncio
import base64
import copy
import random
import threading
import time
import unicodedata
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import facilities, identity
from vnehr.audit import AuditEvent
from vnehr.identity.models import Person
from vnehr.kit.auth import SESSION_COOKIE, Grant, Subject, make_session_cookie
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry, VisitVersion
from vnehr.submissions import synth
from vnehr.submissions.models import Submission

ADMIN = Subject(
    "person", "001085004217", "Sở Y tế", (Grant("department_admin", province_code="01"),)
)
ADMIN_OF_FACILITY = "079162003581"  # Trần Thị Bình, a facility's administrator
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENDED = datetime(2026, 10, 20, 10, 30)  # noqa: DTZ001


async def facility_with_token(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    *,
    steps: int = 4,
    scopes: tuple[str, ...] = ("submission.write", "checkin.write"),
) -> tuple[str, dict[str, str]]:
    """A registered facility moved ``steps`` along onboarding, with a system and its token.
    Its facts are overridden (no certificate, no test file), as the department may: the tests
    of a connected facility send unsigned files with no certificate to check."""
    code = await new_facility(session, steps)
    return code, await system_token(client, session, settings, code, scopes)


async def new_facility(session: AsyncSession, steps: int = 4) -> str:
    """A registered facility moved ``steps`` along onboarding (its facts overridden); its code."""
    facility = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện thử",
            kind=facilities.Kind.hospital,
            level=facilities.Level.basic,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    for state in list(facilities.State)[1 : 1 + steps]:
        await facilities.move(session, ADMIN, facility.code, state, "test", override=True)
    return facility.code


async def system_token(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    code: str,
    scopes: tuple[str, ...],
) -> dict[str, str]:
    """A new system of facility ``code`` holding ``scopes``, and its bearer token's header."""
    client_id, key = await new_system(session, code, scopes)
    return await bearer(client, settings, client_id, key)


async def new_system(
    session: AsyncSession, code: str, scopes: tuple[str, ...]
) -> tuple[str, ECKey]:
    """A new system of facility ``code`` holding ``scopes``: its client id and signing key."""
    key = ECKey.generate_key("P-256", parameters={"kid": "k"})
    registered = await facilities.add_client(
        session,
        ADMIN,
        code,
        facilities.ClientCreate(
            name="HIS", jwks={"keys": [key.as_dict(private=False)]}, scopes=list(scopes)
        ),
    )
    return registered.client_id, key


async def bearer(
    client: httpx.AsyncClient, settings: Settings, client_id: str, key: ECKey
) -> dict[str, str]:
    """The header of the bearer token ``/oauth/token`` gives the system for an assertion signed
    with its ``key``."""
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": "k"},
        {"iss": client_id, "sub": client_id, "aud": f"{settings.public_url}/oauth/token",
         "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        key,
    )  # fmt: skip
    token = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION,
            "client_assertion": assertion,
        },
    )
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def connect(session: AsyncSession, code: str) -> None:
    """Move a facility on along onboarding until it is connected (its facts overridden)."""
    facility = await facilities.get(session, ADMIN, code)
    states = list(facilities.State)
    for state in states[states.index(facilities.State(facility.status)) + 1 :]:
        facility = await facilities.move(session, ADMIN, code, state, "test", override=True)
        if facility.status == "connected":
            return
    raise AssertionError(f"{code} did not reach connected: {facility.status}")


def checkin_row(code: str, visit_key: str = "LK-CI-1") -> dict[str, str]:
    """One XML0 check-in row of the facility ``code``."""
    return {
        "MA_LK": visit_key, "STT": "1", "MA_BN": "BN1", "HO_TEN": "Trần Văn Nam",
        "NGAY_SINH": "199001010000", "GIOI_TINH": "1", "MA_CSKCB": code, "MA_DOITUONG_KCB": "1.1",
        "MA_LOAI_KCB": "01", "NGAY_VAO": "202610200800", "NGAY_YL": "202610200815",
    }  # fmt: skip


def visit(code: str, seed: int = 1, **kwargs: Any) -> synth.SynthVisit:
    return synth.make_visit(random.Random(seed), facility_code=code, ended=ENDED, **kwargs)


async def send(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> httpx.Response:
    return await client.post(
        "/api/v1/submissions", content=body, headers={**headers, "Content-Type": "application/xml"}
    )


async def count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_a_clean_visit_is_stored_with_its_timeline_outbox_and_audit_rows(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, care_type="01", insured=True)
    response = await send(client, headers, synth.envelope([one], code))
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["status"] == "accepted"
    assert receipt["test_mode"] is False
    [entry] = receipt["visits"]
    assert (entry["visit_key"], entry["version"], entry["outcome"]) == (one.ma_lk, 1, "new")
    again = await client.get(f"/api/v1/submissions/{receipt['id']}", headers=headers)
    assert again.json() == receipt

    stored = (
        await session.scalars(select(VisitVersion).where(VisitVersion.visit_key == one.ma_lk))
    ).one()
    xml1 = one.tables["XML1"][0]
    assert stored.tables["XML1"][0]["HO_TEN"] == xml1["HO_TEN"]
    assert stored.personal_id == xml1["SO_CCCD"]
    assert stored.care_type == "01"
    assert stored.total_hospital_cost == Decimal(xml1["T_TONGCHI_BV"]).quantize(Decimal("0.01"))
    assert stored.lag_seconds is not None
    person = (
        await session.scalars(select(Person).where(Person.personal_id == xml1["SO_CCCD"]))
    ).one()
    assert person.created_by == f"intake:{code}"
    assert person.vneid_sub is None  # pending confirmation
    assert stored.person_id == person.id
    assert await count(session, TimelineEntry, TimelineEntry.person_id == person.id) == 1
    events = list(
        await session.scalars(select(OutboxEvent).where(OutboxEvent.key == f"{code}:{one.ma_lk}"))
    )
    assert [e.topic for e in events] == ["visit.accepted"]
    assert events[0].payload["version_id"] == stored.id
    assert await count(session, AuditEvent, AuditEvent.object_id == str(stored.id)) == 1
    raw = (await session.scalars(select(Submission).where(Submission.id == receipt["id"]))).one()
    assert raw.raw_size == len(synth.envelope([one], code))


async def test_the_same_visit_again_changes_nothing_and_changed_content_is_a_new_version(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code)
    first = (await send(client, headers, synth.envelope([one], code))).json()
    same = (await send(client, headers, synth.envelope([one], code))).json()
    assert same["visits"][0]["outcome"] == "unchanged"
    assert same["visits"][0]["first_receipt"] == first["id"]
    # the drug lines in another order, each keeping its STT: the same visit
    drugs = one.tables["XML2"]
    assert len(drugs) > 1
    one.tables["XML2"] = drugs[::-1]
    reordered = (await send(client, headers, synth.envelope([one], code))).json()
    assert reordered["visits"][0]["outcome"] == "unchanged"
    one.tables["XML2"] = drugs
    # the text written decomposed (NFD), as some systems send Vietnamese: the same words
    decomposed = copy.deepcopy(one)
    for rows in decomposed.tables.values():
        for row in rows:
            for name, value in row.items():
                row[name] = unicodedata.normalize("NFD", value)
    assert decomposed.tables["XML1"][0]["HO_TEN"] != one.tables["XML1"][0]["HO_TEN"]
    again = (await send(client, headers, synth.envelope([decomposed], code))).json()
    assert again["visits"][0]["outcome"] == "unchanged", again
    assert await count(session, VisitVersion, VisitVersion.visit_key == one.ma_lk) == 1
    assert await count(session, OutboxEvent, OutboxEvent.key == f"{code}:{one.ma_lk}") == 1

    first_note = one.tables["XML1"][0].get("GHI_CHU", "")
    one.tables["XML1"][0]["GHI_CHU"] = "Tái khám sau 7 ngày"
    changed = (await send(client, headers, synth.envelope([one], code))).json()
    assert (changed["visits"][0]["outcome"], changed["visits"][0]["version"]) == ("changed", 2)
    versions = list(
        await session.scalars(
            select(VisitVersion)
            .where(VisitVersion.visit_key == one.ma_lk)
            .order_by(VisitVersion.version)
        )
    )
    assert [(v.version, v.current) for v in versions] == [(1, False), (2, True)]
    timeline = (
        await session.scalars(select(TimelineEntry).where(TimelineEntry.visit_key == one.ma_lk))
    ).one()
    assert timeline.version_id == versions[1].id
    # the first file sent again, late (a retry that lost its way): it undoes the correction,
    # and the receipt says so
    one.tables["XML1"][0]["GHI_CHU"] = first_note
    late = (await send(client, headers, synth.envelope([one], code))).json()
    assert late["visits"][0]["outcome"] == "changed"
    assert (late["visits"][0]["version"], late["visits"][0]["same_as_version"]) == (3, 1)
    assert "same_as_version" not in changed["visits"][0]


async def test_one_bad_visit_does_not_reject_the_others(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    good, bad = visit(code, 1), visit(code, 2, defect="wrong_total")
    receipt = (await send(client, headers, synth.envelope([good, bad], code))).json()
    assert receipt["status"] == "partially_accepted"
    statuses = {v["visit_key"]: v for v in receipt["visits"]}
    assert statuses[good.ma_lk]["status"] == "accepted"
    rejected = statuses[bad.ma_lk]
    assert rejected["status"] == "rejected"
    [issue] = [i for i in rejected["issues"] if i["severity"] == "error"]
    assert (issue["code"], issue["table"], issue["field"]) == ("SUB-0132", "XML1", "T_TONGCHI_BV")
    assert "T_TONGCHI_BV" in issue["message"]["vi"]
    assert await count(session, VisitVersion, VisitVersion.visit_key == bad.ma_lk) == 0
    assert await count(session, VisitVersion, VisitVersion.visit_key == good.ma_lk) == 1


async def test_the_portal_style_base64_form_field_is_accepted(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    body = synth.envelope([visit(code)], code)
    response = await client.post(
        "/api/v1/submissions",
        data={
            "username": "his",
            "loaiHoSo": "130",
            "maCSKCB": code,
            "fileHSBase64": base64.b64encode(body).decode(),
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "accepted"


async def test_a_multipart_upload_of_the_file_is_accepted(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """As staff upload a file from a browser form, or ``curl -F file=@visit.xml``."""
    code, headers = await facility_with_token(client, session, settings)
    one, two = visit(code, 1), visit(code, 2)
    response = await client.post(
        "/api/v1/submissions",
        files={"file": ("hoso.xml", synth.envelope([one], code), "application/xml")},
        data={"maCSKCB": code},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["visits"][0]["visit_key"] == one.ma_lk
    assert await count(session, VisitVersion, VisitVersion.visit_key == one.ma_lk) == 1
    # the portal's base64 field, sent as multipart
    encoded = base64.b64encode(synth.envelope([two], code)).decode()
    response = await client.post(
        "/api/v1/submissions", files={"fileHSBase64": (None, encoded)}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert await count(session, VisitVersion, VisitVersion.visit_key == two.ma_lk) == 1


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ({"note": (None, "no file here")}, 400, "SUB-0018"),
        ({"a": ("a.xml", b"<x/>"), "b": ("b.xml", b"<y/>")}, 400, "SUB-0018"),
        ({"file": ("empty.xml", b"")}, 400, "SUB-0014"),
        ({"fileHSBase64": (None, "%%%not base64%%%")}, 422, "SUB-0007"),
        ({"file": ("x.xml", b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>")},
         422, "SUB-0003"),
    ],
)  # fmt: skip
async def test_a_bad_multipart_form_is_refused_with_its_code(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    files: dict[str, Any],
    status: int,
    code: str,
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    response = await client.post("/api/v1/submissions", files=files, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["message"]["vi"]
    assert response.json()["message"]["en"]
    assert await count(session, Submission) == 0


@pytest.mark.parametrize("text", ["01001\x00", "a\x01b", "\x1b[31m", "x\x7f", "\x00" * 70_000])
async def test_a_control_character_in_a_multipart_text_field_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, text: str
) -> None:
    """KIT-0002 as for a URL-encoded form (D76), before the intake reads the form: the portal's
    form fields (maCSKCB, here, which the intake ignores) and fileHSBase64 alike."""
    code, headers = await facility_with_token(client, session, settings)
    file = ("hoso.xml", synth.envelope([visit(code, 8)], code), "application/xml")
    for files in (
        {"maCSKCB": (None, text), "file": file},
        {"file": file, "maCSKCB": (None, text)},
        {"fileHSBase64": (None, base64.b64encode(file[1]).decode() + text)},
    ):
        response = await client.post("/api/v1/submissions", files=files, headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "KIT-0002"), files
        assert response.json()["message"]["vi"].startswith("Yêu cầu chứa ký tự điều khiển")
        assert response.json()["message"]["en"].startswith("The request holds a control")
    assert await count(session, Submission) == 0
    # tab, line feed and carriage return are text (base64 in 76-character lines)
    lines = base64.encodebytes(file[1]).decode().replace("\n", "\r\n")
    response = await client.post(
        "/api/v1/submissions",
        files={"fileHSBase64": (None, lines), "loaiHoSo": (None, "3176\t")},
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def test_a_file_part_may_hold_any_byte(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Only text fields are searched: a file part goes to the intake's reader whatever it
    holds (here UTF-16, a NUL in every other byte: the reader's own refusal, SUB-0004)."""
    code, headers = await facility_with_token(client, session, settings)
    utf16 = (
        synth.envelope([visit(code, 9)], code)
        .decode()
        .replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
        .encode("utf-16")
    )
    assert b"\x00" in utf16
    response = await client.post(
        "/api/v1/submissions",
        files={"maCSKCB": (None, code), "file": ("hoso.xml", utf16, "application/xml")},
        headers=headers,
    )
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0004"), response.text


async def test_a_file_declaring_more_visits_than_it_holds_is_refused_whole(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """SOLUONGHOSO 5 with one HOSO: four visits lost on the way. The BHXH portal refuses such
    a file; so does the hub, before storing anything (SUB-0022), and so does a dry run."""
    code, headers = await facility_with_token(client, session, settings)
    body = synth.envelope([visit(code, 12)], code).replace(
        b"<SOLUONGHOSO>1<", b"<SOLUONGHOSO>5<", 1
    )
    response = await send(client, headers, body)
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0022"), response.text
    assert response.json()["message"]["en"] == (
        "The file declares SOLUONGHOSO = 5 but holds 1 visit file(s) (HOSO): the declared "
        "number must be the number of HOSO in DANHSACHHOSO."
    )
    assert await count(session, Submission) == 0
    checked = await client.post("/api/v1/submissions/validate", content=body, headers=headers)
    assert (checked.status_code, checked.json()["code"]) == (422, "SUB-0022")


async def test_a_form_with_a_broken_boundary_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    response = await client.post(
        "/api/v1/submissions",
        content=b"--abc\r\nContent-Disposition: form-data; name=file; filename=x.xml\r\n\r\n<x",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert (response.status_code, response.json()["code"]) == (400, "SUB-0018"), response.text
    assert await count(session, Submission) == 0


async def test_validate_checks_and_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    bad = visit(code, 3, defect="bad_icd")
    response = await client.post(
        "/api/v1/submissions/validate", content=synth.envelope([bad], code), headers=headers
    )
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert response.json()["visits"][0]["issues"][0]["code"] == "SUB-0121"
    assert await count(session, Submission) == 0


async def test_validate_makes_the_file_level_checks_of_a_submission(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """ "Accepted" by /validate means accepted by /submissions: another facility's file, or a
    caller that is not a facility's sending system, is refused there as here."""
    code, headers = await facility_with_token(client, session, settings)
    other = synth.envelope([visit("01999")], "01999")
    checked = await client.post("/api/v1/submissions/validate", content=other, headers=headers)
    sent = await send(client, headers, other)
    assert (checked.status_code, checked.json()["code"]) == (403, "SUB-0009")
    assert (sent.status_code, sent.json()["code"]) == (403, "SUB-0009")
    own = await client.post(
        "/api/v1/submissions/validate", content=synth.envelope([visit(code)], code), headers=headers
    )
    assert own.status_code == 200, own.text
    assert (own.json()["status"], own.json()["test_mode"], own.json()["warnings"]) == (
        "accepted", False, []
    )  # fmt: skip
    _, reader = await facility_with_token(client, session, settings, scopes=("record.read",))
    refused = await client.post(
        "/api/v1/submissions/validate", content=synth.envelope([visit(code)], code), headers=reader
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "AUTH-0004"), refused.text
    assert await count(session, Submission) == 0


@pytest.mark.parametrize(
    ("steps", "status", "code"),
    # (its token stops at the door: a facility that may not connect reads and writes nothing,
    # D190; the intake's own SUB-0010 is the second line, for a request already admitted)
    [(1, 403, "AUTH-0007"), (0, 403, "AUTH-0007")],
)
async def test_a_facility_without_a_certificate_cannot_send(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    steps: int,
    status: int,
    code: str,
) -> None:
    token = await client.post("/oauth/token", data={})  # no token for such a facility either
    assert token.status_code == 400
    facility_code, _ = await facility_with_token(
        client, session, settings
    )  # connected one for a token
    facility = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Chưa kết nối", kind=facilities.Kind.polyclinic, level=facilities.Level.basic,
            ownership=facilities.Ownership.private, province_code="01",
        ),
    )  # fmt: skip
    for state in list(facilities.State)[1 : 1 + steps]:
        await facilities.move(session, ADMIN, facility.code, state, None)
    from vnehr.kit.auth import issue_access_token

    # (a token as if one had been issued: a system of the facility, registered all the same)
    system = await facilities.add_client(
        session,
        ADMIN,
        facility.code,
        facilities.ClientCreate(
            name="HIS", jwks={"keys": [ECKey.generate_key("P-256").as_dict(private=False)]},
            scopes=["submission.write"],
        ),
    )  # fmt: skip
    access, _ = issue_access_token(settings, system.client_id, facility.code, ["submission.write"])
    response = await send(
        client,
        {"Authorization": f"Bearer {access}"},
        synth.envelope([visit(facility.code)], facility.code),
    )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert facility_code != facility.code


async def test_a_facility_in_onboarding_sends_in_test_mode_and_passes_its_test(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, steps=2)
    one = visit(code)
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["test_mode"] is True
    assert receipt["status"] == "accepted"
    stored = (
        await session.scalars(select(VisitVersion).where(VisitVersion.visit_key == one.ma_lk))
    ).one()
    assert stored.test_mode is True
    assert stored.person_id is None
    assert await count(session, TimelineEntry, TimelineEntry.visit_key == one.ma_lk) == 0
    facility = await facilities.get(session, ADMIN, code)
    assert facility.status == "test_passed"


async def test_visits_sent_while_onboarding_enter_the_record_when_sent_again_for_real(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # Test-mode versions are kept apart (D60): once connected, the same visit sent again,
    # unchanged or changed, is new to the record: version 1, on the timeline, counted.
    code, headers = await facility_with_token(client, session, settings, steps=2)
    same, changed = visit(code, 61), visit(code, 62)
    for v in (same, changed):
        tested = (await send(client, headers, synth.envelope([v], code))).json()
        assert (tested["test_mode"], tested["visits"][0]["version"]) == (True, -1)
    await connect(session, code)  # its test passed: on to connected
    changed.tables["XML1"][0]["GHI_CHU"] = "gửi lại sau khi kết nối"
    for v in (same, changed):
        real = (await send(client, headers, synth.envelope([v], code))).json()
        assert real["test_mode"] is False
        assert (real["visits"][0]["outcome"], real["visits"][0]["version"]) == ("new", 1)
        assert await count(session, TimelineEntry, TimelineEntry.visit_key == v.ma_lk) == 1
    rows = await session.execute(
        select(VisitVersion.visit_key, VisitVersion.version, VisitVersion.test_mode).where(
            VisitVersion.visit_key.in_([same.ma_lk, changed.ma_lk])
        )
    )
    assert sorted(rows) == sorted(
        [(v.ma_lk, n, n < 0) for v in (same, changed) for n in (-1, 1)]
    )  # the test versions are kept
    from vnehr import records

    counted = {r.facility_code for r in await records.first_versions(session, None, None)}
    assert code in counted
    history = await records.versions(session, code, changed.ma_lk)  # (what FHIR _history shows)
    assert [v.version for v in history] == [1]


async def test_the_bulk_import_loads_a_file_first_sent_while_onboarding(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """`vnehr import` skips files received before (resuming after a crash): not the ones a
    facility sent in test mode, which never entered the record."""
    from vnehr.submissions import IntakeOptions, Limits, import_file

    code, headers = await facility_with_token(client, session, settings, steps=2)
    one = visit(code, 63)
    body = synth.envelope([one], code)
    assert (await send(client, headers, body)).json()["test_mode"] is True
    await connect(session, code)
    imported = await import_file(session, body, IntakeOptions(limits=Limits()))
    assert imported is not None, "skipped as if received"
    assert (imported["test_mode"], imported["visits"][0]["version"]) == (False, 1)
    assert await count(session, TimelineEntry, TimelineEntry.visit_key == one.ma_lk) == 1
    assert await import_file(session, body, IntakeOptions(limits=Limits())) is None  # resumed


async def test_a_file_for_another_facility_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    response = await send(client, headers, synth.envelope([visit("01999")], "01999"))
    assert response.status_code == 403
    assert response.json()["code"] == "SUB-0009"
    assert await count(session, Submission) == 0
    assert code != "01999"


async def test_callers_without_the_scope_or_a_token_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=("checkin.write",))
    body = synth.envelope([visit(code)], code)
    assert (await send(client, headers, body)).json()["code"] == "AUTH-0004"
    anonymous = await client.post("/api/v1/submissions", content=body)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "AUTH-0001")
    assert anonymous.json()["message"]["vi"]
    assert anonymous.json()["message"]["en"]


async def test_a_person_signed_in_is_told_to_send_with_the_facility_systems_token(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility's administrator on the portal (or its /docs page) who sends or validates a
    file is told that only the facility's system sends, with its token, not that a
    "submission -" belongs to another facility."""
    code = await new_facility(session)
    await identity.bootstrap_grant(session, ADMIN_OF_FACILITY, "facility_admin", facility_code=code)
    await session.flush()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(
            settings,
            {"personal_id": ADMIN_OF_FACILITY, "name": "Trần Thị Bình", "assurance_level": 2},
        ),
    )
    told = {
        "vi": "Chỉ hệ thống phần mềm của cơ sở KCB được gửi hoặc kiểm tra dữ liệu khám chữa "
        "bệnh, không phải người dùng đăng nhập: hãy gửi bằng mã truy cập (token) của hệ thống "
        "cơ sở, lấy tại POST /oauth/token bằng client assertion của hệ thống.",
        "en": "Only a facility's own system sends or validates visit data, not a person signed "
        "in: send it with the facility system's token, from POST /oauth/token with the "
        "system's client assertion.",
    }
    body = synth.envelope([visit(code)], code)
    for path in ("/api/v1/submissions/validate", "/api/v1/submissions", "/api/v1/checkins"):
        answer = await client.post(path, content=body, headers={"Content-Type": "application/xml"})
        assert (answer.status_code, answer.json()["code"]) == (403, "SUB-0024"), path
        assert answer.json()["message"] == told, path
    assert await count(session, Submission) == 0


async def test_the_plain_submission_route_leaves_the_other_routes_of_its_path_alone(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # POST /api/v1/submissions is served by a plain route ahead of FastAPI's (D55): the
    # listing on the same path, the other methods and the API description are unchanged.
    code, headers = await facility_with_token(client, session, settings)
    sent = await send(client, headers, synth.envelope([visit(code)], code))
    assert sent.status_code == 201, sent.text
    listed = await client.get("/api/v1/submissions", headers=headers)
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["items"]] == [sent.json()["id"]]
    assert (await client.delete("/api/v1/submissions", headers=headers)).status_code == 405
    described = (await client.get("/openapi.json")).json()["paths"]["/api/v1/submissions"]
    assert set(described) == {"get", "post"}
    assert "application/xml" in described["post"]["requestBody"]["content"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><GIAMDINHHS>&e;</GIAMDINHHS>',
            422,
            "SUB-0003",
        ),
        (b"<GIAMDINHHS>", 422, "SUB-0002"),
        (b"", 400, "SUB-0014"),
        (b"<TONG_HOP/>", 422, "SUB-0005"),
    ],
)
async def test_hostile_or_broken_files_get_a_code_and_store_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    body: bytes,
    status: int,
    code: str,
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    response = await send(client, headers, body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert await count(session, Submission) == 0


async def test_a_crash_before_the_commit_leaves_nothing_half_written(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    from vnehr.submissions import service

    calls = 0

    def crash(*args: Any, **kwargs: Any) -> Any:
        """After both visits' rows are written, before the submission row and the commit."""
        nonlocal calls
        calls += 1
        raise OSError("disk gone")

    monkeypatch.setattr(service, "_finish", crash)
    response = await send(client, headers, synth.envelope([visit(code, 1), visit(code, 2)], code))
    assert response.status_code == 500
    assert response.json()["code"] == "KIT-0500"
    assert calls == 2  # the batch's transaction, then the file alone: both rolled back
    for model in (Submission, VisitVersion, TimelineEntry, OutboxEvent):
        assert await count(session, model) == 0, model.__name__
    # (the only audit rows: the test facility's onboarding, overridden)
    assert (
        await count(session, AuditEvent, AuditEvent.action != "facility.onboarding_overridden") == 0
    )


async def test_a_large_file_is_checked_off_the_event_loop_and_a_usual_one_on_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D52: files up to ``intake_inline_max_bytes`` are checked on the event loop, larger ones
    in a thread; both get the same checks and their receipt."""
    code, headers = await facility_with_token(client, session, settings)
    from vnehr.submissions import service

    loop_thread = threading.get_ident()
    checked_on: list[bool] = []
    prepare = service.prepare

    def watched(data: bytes, **kwargs: Any) -> service.Analysis:
        checked_on.append(threading.get_ident() == loop_thread)
        return prepare(data, **kwargs)

    monkeypatch.setattr(service, "prepare", watched)
    usual = synth.envelope([visit(code, 1)], code)
    large = synth.envelope(
        [visit(code, n) for n in range(2, 12)] + [visit(code, 12, defect="wrong_total")], code
    )
    monkeypatch.setattr(settings, "intake_inline_max_bytes", (len(usual) + len(large)) // 2)
    first, second = await send(client, headers, usual), await send(client, headers, large)
    assert checked_on == [True, False]
    assert (first.status_code, first.json()["status"]) == (201, "accepted")
    assert (second.status_code, second.json()["status"]) == (201, "partially_accepted")
    assert await count(session, VisitVersion) == 11
    # a file of many visits, however small, goes to a thread too (a visit costs a check each)
    many = synth.envelope([visit(code, n) for n in range(13, 22)], code)
    many = many.replace(b"<HOSO>", b"<HOSO >")  # (however its tags are spaced)
    monkeypatch.setattr(settings, "intake_inline_max_bytes", len(many) + 1)
    third = await send(client, headers, many)
    assert checked_on == [True, False, False]
    assert third.status_code == 201


async def test_files_arriving_together_are_written_together_each_with_its_own_receipt(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst of files (group commit, D49): new visits, one sent twice at once, a defective
    one, and one for another facility; each gets the receipt it would get alone."""
    from vnehr.submissions import queue

    sizes: list[int] = []
    real = queue.accept_many

    async def counted(session: AsyncSession, files: list[Any], options: Any) -> Any:
        sizes.append(len(files))
        return await real(session, files, options)

    monkeypatch.setattr(queue, "accept_many", counted)
    monkeypatch.setattr(settings, "intake_batch_wait_ms", 300.0)  # a burst is one batch here
    code, headers = await facility_with_token(client, session, settings)
    clean = [visit(code, n) for n in range(1, 11)]
    bodies = [synth.envelope([v], code) for v in clean]
    bodies.append(bodies[0])  # the same file twice, in the same burst
    bodies.append(synth.envelope([visit(code, 40, defect="bad_icd")], code))
    bodies.append(synth.envelope([visit("01999", 41)], "01999"))
    answers = await asyncio.gather(*(send(client, headers, body) for body in bodies))
    statuses = [a.status_code for a in answers]
    assert statuses == [201] * 12 + [403], [a.text for a in answers]
    assert answers[-1].json()["code"] == "SUB-0009"
    assert sum(sizes) == len(bodies)
    assert max(sizes) > 1, "files that arrived together were written together"
    outcomes = sorted(a.json()["visits"][0].get("outcome") or "-" for a in answers[:11])
    assert outcomes == ["new"] * 10 + ["unchanged"]
    twice = [answers[0].json(), answers[10].json()]
    first = next(r for r in twice if r["visits"][0]["outcome"] == "new")
    again = next(r for r in twice if r["visits"][0]["outcome"] == "unchanged")
    assert again["visits"][0]["first_receipt"] == first["id"]
    assert answers[11].json()["visits"][0]["status"] == "rejected"
    assert answers[11].json()["visits"][0]["issues"][0]["code"] == "SUB-0121"
    assert await count(session, VisitVersion) == 10
    assert await count(session, TimelineEntry) == 10
    assert await count(session, Submission) == 12
    keys = {v.ma_lk for v in clean}
    events = list(await session.scalars(select(OutboxEvent.key).where(
        OutboxEvent.topic == "visit.accepted")))  # fmt: skip
    assert sorted(events) == sorted(f"{code}:{k}" for k in keys)
    for answer in answers[:12]:  # each receipt can be read again: it was committed
        again_read = await client.get(f"/api/v1/submissions/{answer.json()['id']}", headers=headers)
        assert again_read.json() == answer.json()


async def test_a_file_that_breaks_its_batch_fails_alone(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Group commit (D49): when one file makes the batch's transaction fail, the others of the
    batch are written again alone and get their receipts; only that file gets the error."""
    from vnehr.submissions import service

    code, headers = await facility_with_token(client, session, settings)
    good = [visit(code, n) for n in (51, 52)]
    bad = visit(code, 53)
    real = service._finish

    def finish(subject: Any, data: bytes, *args: Any) -> Any:
        if bad.ma_lk.encode() in base64.b64decode(data.split(b"<NOIDUNGFILE>")[1].split(b"<")[0]):
            raise OSError("this file's row cannot be written")
        return real(subject, data, *args)

    monkeypatch.setattr(service, "_finish", finish)
    monkeypatch.setattr(settings, "intake_batch_wait_ms", 300.0)
    answers = await asyncio.gather(
        *(send(client, headers, synth.envelope([v], code)) for v in [*good, bad])
    )
    assert [a.status_code for a in answers] == [201, 201, 500]
    assert answers[2].json()["code"] == "KIT-0500"
    stored = set(await session.scalars(select(VisitVersion.visit_key)))
    assert stored == {v.ma_lk for v in good}
    assert await count(session, Submission) == 2


async def test_a_check_in_is_received(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    row = checkin_row(code)
    from vnehr.submissions.xmlio import write_table

    ok = await client.post("/api/v1/checkins", content=write_table("XML0", [row]), headers=headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["status"] == "accepted"
    row["MA_CSKCB"] = "01999"
    wrong = await client.post(
        "/api/v1/checkins", content=write_table("XML0", [row]), headers=headers
    )
    assert wrong.json()["status"] == "rejected"
    assert wrong.json()["issues"][0]["code"] == "SUB-0152"


async def test_a_stored_visit_exports_to_the_same_content(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = visit(code, 5, care_type="03")
    await send(client, headers, synth.envelope([one], code))
    exported = await client.get(f"/api/v1/visits/{code}/{one.ma_lk}/xml", headers=headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/xml")
    stored = (
        await session.scalars(select(VisitVersion).where(VisitVersion.visit_key == one.ma_lk))
    ).one()
    from vnehr import catalogs
    from vnehr.submissions import analyse
    from vnehr.submissions.xmlio import Limits

    [again] = analyse(exported.content, codes=catalogs.offline(), limits=Limits()).visits
    assert again.tables == stored.tables
    assert again.findings.issues == []
    resent = (await send(client, headers, exported.content)).json()
    assert resent["visits"][0]["outcome"] == "unchanged"
    missing = await client.get(f"/api/v1/visits/{code}/NO-SUCH-VISIT/xml", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "SUB-0017")


async def test_an_export_keeps_a_slash_in_the_key_and_carriage_returns_in_text(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = visit(code, 7)
    for rows in one.tables.values():
        for row in rows:
            if "MA_LK" in row:
                row["MA_LK"] = "2026/000123"
    one.tables["XML1"][0]["GHI_CHU"] = "Dòng 1\r\nDòng 2"  # sent as "&#13;": a CR kept
    from vnehr.submissions.xmlio import write_envelope, write_table

    tables = {name: write_table(name, rows) for name, rows in one.tables.items()}
    first = (await send(client, headers, write_envelope(code, "202611011200", [tables]))).json()
    assert first["visits"][0]["status"] != "rejected", first
    exported = await client.get(f"/api/v1/visits/{code}/2026/000123/xml", headers=headers)
    assert exported.status_code == 200, exported.text
    from vnehr import catalogs
    from vnehr.submissions import analyse
    from vnehr.submissions.xmlio import Limits

    [again] = analyse(exported.content, codes=catalogs.offline(), limits=Limits()).visits
    assert again.tables["XML1"][0]["GHI_CHU"] == "Dòng 1\r\nDòng 2"
    resent = (await send(client, headers, exported.content)).json()
    assert resent["visits"][0]["outcome"] == "unchanged"  # (not a new version)
    encoded = await client.get(f"/api/v1/visits/{code}/2026%2F000123/xml", headers=headers)
    assert encoded.status_code == 200


async def test_reading_records_needs_the_record_scope_and_exports_are_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, sender = await facility_with_token(client, session, settings)
    one = visit(code, 6)
    receipt = (await send(client, sender, synth.envelope([one], code))).json()
    # the sender (submission.write) reads its receipts but not the clinical content
    assert (
        await client.get(f"/api/v1/submissions/{receipt['id']}", headers=sender)
    ).status_code == 200
    denied = await client.get(f"/api/v1/visits/{code}/{one.ma_lk}/xml", headers=sender)
    assert (denied.status_code, denied.json()["code"]) == (403, "AUTH-0004")
    reader = await system_token(client, session, settings, code, ("record.read",))
    before = await count(session, AuditEvent, AuditEvent.action == "visit.exported")
    allowed = await client.get(f"/api/v1/visits/{code}/{one.ma_lk}/xml", headers=reader)
    assert allowed.status_code == 200
    assert await count(session, AuditEvent, AuditEvent.action == "visit.exported") == before + 1


@pytest.mark.parametrize(
    ("path", "code"),
    [("/api/v1/submissions?since=2026-01-01T00:00:00", "KIT-0422")],
)
async def test_bad_query_values_are_coded_errors_not_crashes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, path: str, code: str
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    response = await client.get(path, headers=headers)
    assert (response.status_code, response.json()["code"]) == (422, code)


async def test_a_form_with_too_many_fields_or_absurd_money_is_refused_cleanly(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    crowded = "&".join(f"f{n}=1" for n in range(30))
    form = await client.post(
        "/api/v1/submissions",
        content=crowded.encode(),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (form.status_code, form.json()["code"]) == (400, "SUB-0014")
    good, absurd = visit(code, 1), visit(code, 2)
    absurd.tables["XML1"][0]["T_TONGCHI_BV"] = "1" * 30
    receipt = (await send(client, headers, synth.envelope([good, absurd], code))).json()
    statuses = {v["visit_key"]: v["status"] for v in receipt["visits"]}
    assert statuses == {good.ma_lk: "accepted", absurd.ma_lk: "rejected"}


# ------------------------------------------------------------------ found in review (D58)


async def test_forms_are_read_whatever_the_case_of_their_media_type(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    body = synth.envelope([visit(code, 5)], code)
    form = "fileHSBase64=" + base64.b64encode(body).decode().replace("+", "%2B").replace("/", "%2F")
    response = await client.post(
        "/api/v1/submissions",
        content=form.encode(),
        headers={**headers, "Content-Type": "Application/X-WWW-Form-Urlencoded"},
    )
    assert response.status_code == 201, response.text
    boundary = "XyZ"
    multipart = (
        (
            f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=a.xml\r\n\r\n"
        ).encode()
        + synth.envelope([visit(code, 6)], code)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await client.post(
        "/api/v1/submissions",
        content=multipart,
        headers={**headers, "Content-Type": f"Multipart/Form-Data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text


async def test_an_absurdly_long_multipart_boundary_is_a_coded_refusal_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    response = await client.post(
        "/api/v1/submissions",
        content=b"--" + b"a" * 5000 + b"\r\n",
        headers={**headers, "Content-Type": "multipart/form-data; boundary=" + "a" * 5000},
    )
    assert (response.status_code, response.json()["code"]) == (400, "SUB-0018")


async def test_a_document_near_the_cap_fits_in_a_form_however_it_is_encoded(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    settings.max_body_bytes = 1024 * 1024  # (the old cap's fixed slack hid the case below this)
    body = synth.envelope([visit(code, 7)], code)
    padding = settings.max_body_bytes - len(body) - 64
    body = body.replace(b"<CHUKYDONVI", b"<!--" + b"p" * padding + b"--><CHUKYDONVI", 1)
    assert settings.max_body_bytes - 100 < len(body) <= settings.max_body_bytes
    lines = base64.encodebytes(body)  # 76-character lines, as many encoders write them
    response = await client.post(
        "/api/v1/submissions", files={"fileHSBase64": (None, lines)}, headers=headers
    )
    assert response.status_code == 201, response.text


async def test_no_route_reads_a_body_past_the_app_wide_cap(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # the public PDF check, say: before, it read any amount into memory
    limit = settings.max_body_bytes * 3 // 2 + 4096 + 65536

    async def stream() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b"%" * 65536

    streamed = await client.post(
        "/api/v1/papers/verify-pdf", content=stream(), headers={"Content-Type": "application/pdf"}
    )
    assert (streamed.status_code, streamed.json()["code"]) == (413, "KIT-0413")
    declared = await client.post(
        "/api/v1/papers/verify-pdf",
        content=b"%" * 10,
        headers={"Content-Type": "application/pdf", "Content-Length": str(limit + 1)},
    )
    assert (declared.status_code, declared.json()["code"]) == (413, "KIT-0413")
    assert declared.json()["message"]["vi"]
    # a route whose body FastAPI reads and parses (any failure there used to become a 400)
    json_route = await client.post(
        "/api/v1/facilities", content=stream(), headers={"Content-Type": "application/json"}
    )
    assert (json_route.status_code, json_route.json()["code"]) == (413, "KIT-0413")


@pytest.mark.parametrize(
    ("files", "reason", "vi", "en"),
    [
        ({"note": (None, "no file here")}, "no_file", "không có phần tệp nào", "no file part"),
        ({"a": ("a.xml", b"<x/>"), "b": ("b.xml", b"<y/>")}, "more_than_one_file",
         "có hơn một tệp", "more than one file"),
    ],
)  # fmt: skip
async def test_an_unreadable_form_is_told_in_each_language(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    files: dict[str, Any],
    reason: str,
    vi: str,
    en: str,
) -> None:
    # (the reason was an English phrase inside the Vietnamese sentence, D218)
    _, headers = await facility_with_token(client, session, settings)
    response = await client.post("/api/v1/submissions", files=files, headers=headers)
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "SUB-0018"), response.text
    assert vi in body["message"]["vi"]
    assert en not in body["message"]["vi"]
    assert en in body["message"]["en"]
    assert body["detail"]["reason"] == reason
