"""The facility administrator's page (``/facility/{code}``): her facility, where it stands in
onboarding and what it still needs, its systems, certificates and clinicians, the latest
receipts newest first with a rejected visit's reasons in words, the visits checked in but
never sent, and a form that checks a file before it is sent (nothing stored). Driven over HTTP
as a browser does, signed in with VNeID as the demo's Trần Thị Bình."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tests.submissions.test_intake import ADMIN, bearer, checkin_row, count, new_system, send, visit
from tests.submissions.test_signature import sign
from tests.web.test_login import AN, _hidden, login
from vnehr import audit, demo, facilities, identity
from vnehr.identity.models import Person, RoleGrant
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth
from vnehr.submissions.models import CheckinEntry, Submission
from vnehr.submissions.xmlio import write_table
from vnehr.web import facility_pages

BINH = demo.FACILITY_ADMIN  # Trần Thị Bình administers the demo's first facility
DUNG = demo.CLINICIAN  # Phạm Thị Dung, a doctor there
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<GIAMDINHHS>&e;</GIAMDINHHS>"
)


def _shown(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _section(html: str, anchor: str) -> str:
    """The words of a part of the page: from its heading to the next (a check's result: its
    whole ``<section>``)."""
    start = html.index(f'id="{anchor}"')
    end = html.find("</section>" if anchor == "check-result" else "<h2", start + 1)
    return _shown(html[start : end if end > 0 else len(html)])


async def _facility(session: AsyncSession, steps: int) -> str:
    """The demo's first facility (Xanh Pôn, ward 00004 of Hanoi), moved ``steps`` along
    onboarding as the demo moves it: its certificate registered by the facility, the test
    file's fact overridden; Bình its administrator, Dung its clinician."""
    facility = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện Đa khoa Xanh Pôn",
            kind=facilities.Kind.hospital,
            level=facilities.Level.specialised,
            ownership=facilities.Ownership.public,
            province_code="01",
            ward_code="00004",
        ),
    )
    for state in demo.PATH[:steps]:
        if state == facilities.State.certificate_registered:
            _, pem = demo.self_signed_certificate(facility.name, days=20)
            await facilities.add_certificate(session, ADMIN, facility.code, pem)
        else:
            await facilities.move(session, ADMIN, facility.code, state, "tập huấn", override=True)
    await identity.bootstrap_grant(session, BINH, "facility_admin", facility_code=facility.code)
    await identity.bootstrap_grant(session, DUNG, "clinician", facility_code=facility.code)
    return facility.code


async def test_binh_sees_her_facility_where_it_stands_and_what_it_still_needs(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    made = utcnow()
    code = await _facility(session, steps=1)  # trained: no certificate yet, no system
    await login(client, DUNG)  # (her name is on record once she has signed in)
    await login(client, BINH)
    portal = await client.get("/portal")
    assert f'<a href="/facility/{code}">Cơ sở của tôi</a>' in portal.text

    page = await client.get(f"/facility/{code}")
    assert page.status_code == 200, _shown(page.text)[-600:]
    shown = _shown(page.text)
    assert "Bệnh viện Đa khoa Xanh Pôn" in shown
    assert code in shown
    assert "Thành phố Hà Nội" in shown  # the province by name
    assert '<td id="state"><strong>Đã tập huấn</strong>' in page.text
    checklist = _section(page.text, "checklist")
    assert "Tập huấn kết nối — Đã xong (Sở Y tế thực hiện)" in checklist
    assert "Chứng thư số ký hồ sơ đang có hiệu lực — Còn thiếu (Cơ sở thực hiện)" in checklist
    assert "Hồ sơ gửi thử được chấp nhận — Còn thiếu" in checklist
    next_step = _section(page.text, "next-step")
    assert "Cơ sở đăng ký chứng thư số ký hồ sơ" in next_step
    assert "Ai làm: Cơ sở thực hiện" in next_step  # the facility, not the department
    history = _section(page.text, "history")
    # when, in Vietnam time, dd/mm/yyyy (the day the moves were made, or the next)
    days = {m.astimezone(VIETNAM).strftime("%d/%m/%Y") for m in (made, utcnow())}
    assert any(re.search(rf"{day} \d\d:\d\d", history) for day in days), history
    assert "Đã tập huấn" in history
    assert BINH not in page.text  # people by name, never by their personal IDs
    assert DUNG not in page.text
    clinicians = _section(page.text, "clinicians")
    assert "Phạm Thị Dung Bác sĩ" in clinicians
    assert "Trần Thị Bình Quản trị viên cơ sở khám bệnh, chữa bệnh" in clinicians

    english = await client.get(f"/facility/{code}?lang=en")
    assert '<td id="state"><strong>Trained</strong>' in english.text
    assert "registers its signing certificate" in _section(english.text, "next-step")
    assert "Connection training — Done" in _section(english.text, "checklist")


async def test_the_department_is_named_for_a_step_only_it_takes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=3)  # test passed: the department connects it
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    next_step = _section(page.text, "next-step")
    assert "Sở Y tế rà soát và chuyển cơ sở sang «Đã kết nối»" in next_step
    assert "Ai làm: Sở Y tế thực hiện" in next_step
    # what the facility still lacks meanwhile: no system registered
    assert "Cơ sở vẫn cần bổ sung: Hệ thống phần mềm của cơ sở đã đăng ký" in next_step
    certificates = _section(page.text, "certificates")
    assert "sắp hết hạn" in certificates  # valid 20 days more: flagged


async def test_receipts_come_newest_first_with_a_rejected_visits_reasons_in_words(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = await _facility(session, steps=4)
    client_id, key = await new_system(session, code, ("submission.write", "checkin.write"))
    headers = await bearer(client, settings, client_id, key)
    first = await send(client, headers, synth.envelope([visit(code, 1)], code))
    assert first.status_code == 201, first.text
    good, bad = visit(code, 2), visit(code, 3, defect="wrong_total")
    second = await send(client, headers, synth.envelope([good, bad], code))
    assert second.json()["status"] == "partially_accepted"
    checkin = await client.post(
        "/api/v1/checkins",
        content=write_table("XML0", [checkin_row(code, "LK-CHO-GUI")]),
        headers={**headers, "Content-Type": "application/xml"},
    )
    assert checkin.status_code == 201, checkin.text
    # the visit was checked in two days ago and its file never came
    await session.execute(
        update(CheckinEntry)
        .where(CheckinEntry.visit_key == "LK-CHO-GUI")
        .values(received_at=utcnow() - timedelta(days=2))
    )
    await session.flush()

    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    assert page.status_code == 200, _shown(page.text)[-600:]
    receipts = _section(page.text, "receipts")
    # newest first: the check-in, then the file with the rejected visit, then the first file
    assert (
        receipts.index("Đăng ký khám")
        < receipts.index(bad.ma_lk)
        < receipts.index(first.json()["id"][:8])
    )
    assert "khác tổng THANH_TIEN_BV của bảng XML2 và XML3" in receipts  # the reason in words
    assert "SUB-0132" in receipts  # and its code, for the facility's IT
    assert "(bảng XML1, dòng 1, trường T_TONGCHI_BV)" in receipts
    awaiting = _section(page.text, "awaiting")
    assert "LK-CHO-GUI" in awaiting
    systems = _section(page.text, "systems")
    assert client_id in systems

    english = await client.get(f"/facility/{code}?lang=en")
    receipts = _section(english.text, "receipts")
    assert "differs from the sum of THANH_TIEN_BV over XML2 and XML3" in receipts
    assert "khác tổng" not in receipts

    # a page at a time: the older receipts behind "older"
    monkeypatch.setattr(facility_pages, "RECEIPTS_PAGE", 2)
    page = await client.get(f"/facility/{code}")
    older = re.search(r'<a id="older-receipts" href="([^"]+)"', page.text)
    assert older is not None
    assert first.json()["id"][:8] not in _section(page.text, "receipts")
    rest = await client.get(older.group(1).replace("&amp;", "&"))
    assert first.json()["id"][:8] in _section(rest.text, "receipts")
    assert bad.ma_lk not in _section(rest.text, "receipts")


async def test_the_check_form_finds_a_defect_and_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    form = page.text[page.text.index(f'action="/facility/{code}/check"') :]
    assert 'enctype="multipart/form-data"' in page.text
    csrf = _hidden(form)["csrf"]
    bad = visit(code, 3, defect="bad_icd")
    checked = await client.post(
        f"/facility/{code}/check",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", synth.envelope([bad], code), "application/xml")},
    )
    assert checked.status_code == 200, _shown(checked.text)[-600:]
    result = _section(checked.text, "check-result")
    assert "không phải mã ICD-10 hợp lệ" in result
    assert "SUB-0121" in result
    assert bad.ma_lk in result
    assert "Không lưu gì: đây chỉ là kiểm tra." in result
    assert await count(session, Submission) == 0

    english = await client.post(
        f"/facility/{code}/check?lang=en",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", synth.envelope([bad], code), "application/xml")},
    )
    assert "is not a valid ICD-10 code" in _section(english.text, "check-result")


async def test_a_hostile_or_broken_file_is_told_in_words_with_the_form_kept(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await login(client, BINH)
    csrf = _hidden((await client.get(f"/facility/{code}")).text)["csrf"]
    for body, words, status in (
        (XXE, "có khai báo DOCTYPE/ENTITY", 422),
        (b"<TONG_HOP/>", "Thẻ gốc của tài liệu phải là", 422),
        (b"not xml at all", "không đúng cú pháp XML", 422),
    ):
        answer = await client.post(
            f"/facility/{code}/check",
            data={"csrf": csrf},
            files={"file": ("hoso.xml", body, "application/xml")},
        )
        assert answer.status_code == status, _shown(answer.text)[-400:]
        assert words in _shown(answer.text)
        assert f'action="/facility/{code}/check"' in answer.text  # the form, to try again
        assert f'href="/facility/{code}"' in answer.text  # and the way back
    other = synth.envelope([visit("01999")], "01999")
    answer = await client.post(
        f"/facility/{code}/check",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", other, "application/xml")},
    )
    assert answer.status_code == 403
    assert "Mã cơ sở trong tệp (01999)" in _shown(answer.text)
    assert await count(session, Submission) == 0


async def test_another_facilitys_page_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    own = await _facility(session, steps=4)
    other = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện Thanh Nhàn",
            kind=facilities.Kind.hospital,
            level=facilities.Level.specialised,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    await login(client, BINH)
    for address in (f"/facility/{other.code}", "/facility/01998"):
        refused = await client.get(address)
        assert refused.status_code in (403, 404)
        assert refused.headers["content-type"].startswith("text/html")
        assert "Bệnh viện Thanh Nhàn" not in refused.text
    csrf = _hidden((await client.get(f"/facility/{own}")).text)["csrf"]
    posted = await client.post(
        f"/facility/{other.code}/check",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", synth.envelope([visit(other.code)], other.code))},
    )
    assert posted.status_code == 403
    # /facility leads to her own facility
    mine = await client.get("/facility")
    assert (mine.status_code, mine.headers["location"]) == (303, f"/facility/{own}")


@pytest.mark.parametrize("who", [DUNG, AN])
async def test_a_clinician_or_a_citizen_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, who: str
) -> None:
    code = await _facility(session, steps=4)
    await login(client, who)
    for address in (f"/facility/{code}", "/facility"):
        refused = await client.get(address)
        assert refused.status_code == 403, address
        assert refused.headers["content-type"].startswith("text/html")
        assert "Bệnh viện Đa khoa Xanh Pôn" not in refused.text


async def test_a_facility_still_onboarding_checks_its_files_and_is_told_it_cannot_send_yet(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The API's validate refuses a facility that may not send yet (SUB-0010) before looking
    at its visits; the page checks them all the same, saying what sending would meet."""
    code = await _facility(session, steps=1)
    await login(client, BINH)
    csrf = _hidden((await client.get(f"/facility/{code}")).text)["csrf"]
    checked = await client.post(
        f"/facility/{code}/check",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", synth.envelope([visit(code, 4)], code), "application/xml")},
    )
    assert checked.status_code == 200, _shown(checked.text)[-400:]
    result = _section(checked.text, "check-result")
    assert "Tệp đạt: mọi lượt khám sẽ được nhận." in result
    assert f"Nếu gửi lúc này, tệp sẽ bị từ chối: Cơ sở {code}" in result
    assert "SUB-0010" in result
    assert await count(session, Submission) == 0


# ------------------------------------------------------------------ revoking a certificate


def _form_of(html: str, action: str) -> str:
    """The form of the page posting to ``action`` (its HTML)."""
    start = html.index(f'action="{action}"')
    return html[start : html.index("</form>", start)]


async def _signing_certificate(session: AsyncSession, code: str) -> tuple[bytes, str, int]:
    """A second signing certificate of the facility, valid a year: key, PEM and its row id."""
    key_pem, cert_pem = demo.self_signed_certificate("Xanh Pôn", "Ký hồ sơ Xanh Pôn 2026")
    row = await facilities.add_certificate(session, ADMIN, code, cert_pem)
    return key_pem, cert_pem, row.id


async def test_binh_revokes_a_certificate_from_the_page_and_files_signed_with_it_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code = await _facility(session, steps=4)
    key_pem, cert_pem, cert_id = await _signing_certificate(session, code)
    client_id, key = await new_system(session, code, ("submission.write",))
    headers = await bearer(client, settings, client_id, key)
    before = await send(
        client, headers, sign(synth.envelope([visit(code, 21)], code), key_pem, cert_pem)
    )
    assert before.status_code == 201, before.text

    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    ask = re.search(
        rf'href="(/facility/{code}\?revoke_certificate={cert_id})#certificate-{cert_id}"', page.text
    )
    assert ask is not None, _section(page.text, "certificates")
    for lang, words in (  # (Vietnamese last: the language chosen is remembered)
        ("en", "Revoke the certificate CN=Ký hồ sơ Xanh Pôn 2026"),
        ("vi", "Thu hồi chứng thư số CN=Ký hồ sơ Xanh Pôn 2026"),
    ):
        question = await client.get(f"{ask[1]}&lang={lang}")
        assert question.status_code == 200
        form = _form_of(question.text, f"/facility/{code}/certificates/{cert_id}/revoke")
        assert words in _shown(form), _shown(form)
        assert '<details class="more" open><summary><h2 id="certificates"' in question.text
    # nothing is done by asking
    assert [c.status for c in await facilities.certificates(session, ADMIN, code)] == [
        "active",
        "active",
    ]
    revoked = await client.post(
        f"/facility/{code}/certificates/{cert_id}/revoke", data={"csrf": _hidden(form)["csrf"]}
    )
    assert revoked.status_code == 303, _shown(revoked.text)[-600:]
    after = await client.get(revoked.headers["location"])
    section = _section(after.text, "certificates")
    assert "Đã thu hồi chứng thư số CN=Ký hồ sơ Xanh Pôn 2026" in section
    assert "Tệp ký bằng chứng thư này bị từ chối từ nay." in section
    row = after.text[after.text.index(f'id="certificate-{cert_id}"') :]
    assert "Đã thu hồi" in _shown(row[: row.index("</tr>")])
    assert f"revoke_certificate={cert_id}" not in after.text  # nothing left to revoke there
    english = await client.get(revoked.headers["location"].replace("#", "&lang=en#"))
    assert "The certificate CN=Ký hồ sơ Xanh Pôn 2026,O=Xanh Pôn,C=VN is revoked" in _section(
        english.text, "certificates"
    )

    # the API agrees, and the revocation is audited as the API's is
    listed = await client.get(f"/api/v1/facilities/{code}/certificates")
    assert {c["id"]: c["status"] for c in listed.json()}[cert_id] == "revoked"
    [audited] = (
        await session.scalars(
            select(audit.AuditEvent).where(audit.AuditEvent.action == "certificate.revoked")
        )
    ).all()
    assert (audited.actor, audited.object_id) == (f"person:{BINH}", str(cert_id))
    # a file signed with it no longer verifies
    after_file = await send(
        client, headers, sign(synth.envelope([visit(code, 22)], code), key_pem, cert_pem)
    )
    assert (after_file.status_code, after_file.json()["code"]) == (422, "SUB-0011")


async def test_revoking_the_last_usable_certificate_is_asked_with_what_follows(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=2)  # its one certificate, registered by the demo
    [only] = await facilities.certificates(session, ADMIN, code)
    await login(client, BINH)
    for lang, words in (
        ("vi", "chứng thư số dùng được cuối cùng"),
        ("en", "last usable certificate"),
    ):
        question = await client.get(f"/facility/{code}?revoke_certificate={only.id}&lang={lang}")
        form = _form_of(question.text, f"/facility/{code}/certificates/{only.id}/revoke")
        assert words in _shown(form)


async def test_another_facilitys_administrator_cannot_revoke_its_certificate(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    _, _, cert_id = await _signing_certificate(session, code)
    other = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện Thanh Nhàn",
            kind=facilities.Kind.hospital,
            level=facilities.Level.specialised,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    _, theirs = demo.self_signed_certificate("Thanh Nhàn")
    their_cert = await facilities.add_certificate(session, ADMIN, other.code, theirs)
    cuong = "031054007793"  # Lê Văn Cường, administrator of the other facility
    await identity.bootstrap_grant(session, cuong, "facility_admin", facility_code=other.code)
    await login(client, cuong)
    csrf = _hidden((await client.get(f"/facility/{other.code}")).text)["csrf"]
    for lang, words in (
        ("vi", "Bạn không có quyền thực hiện thao tác này."),
        ("en", "You are not allowed to do this."),
    ):
        refused = await client.post(
            f"/facility/{code}/certificates/{cert_id}/revoke?lang={lang}", data={"csrf": csrf}
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert words in _shown(refused.text)
    asked = await client.get(f"/facility/{code}?revoke_certificate={cert_id}")
    assert asked.status_code == 403
    # nor through his own facility's address
    through = await client.post(
        f"/facility/{other.code}/certificates/{cert_id}/revoke", data={"csrf": csrf}
    )
    assert through.status_code == 404
    assert "FAC-0026" in through.text
    # a clinician of the facility cannot either, nor a form without the session's token
    await login(client, DUNG)
    refused = await client.post(
        f"/facility/{code}/certificates/{cert_id}/revoke", data={"csrf": csrf}
    )
    assert refused.status_code == 403
    await login(client, BINH)
    forged = await client.post(
        f"/facility/{code}/certificates/{cert_id}/revoke", data={"csrf": "guess"}
    )
    assert forged.status_code == 403
    assert "AUTH-0005" in forged.text
    states = {c.id: c.status for c in await facilities.certificates(session, ADMIN, code)}
    assert states[cert_id] == "active"
    assert [c.status for c in await facilities.certificates(session, ADMIN, other.code)] == [
        "active"
    ]
    assert their_cert.status == "active"


# ------------------------------------------------------------------ searching the staff


def _staff_names(html: str) -> list[str]:
    """The names (or unnamed persons' words) of the staff table's rows, in order."""
    if '<table aria-label="staff"' not in html:
        return []
    start = html.index('<table aria-label="staff"')
    table = html[start : html.index("</table>", start)]
    rows = re.findall(r'<tr id="grant-\d+"><td[^>]*>(.*?)</td>', table, re.S)
    return [_shown(row).strip() for row in rows]


async def _staff(session: AsyncSession, code: str, people: dict[str, str]) -> None:
    """Persons on record (personal ID: name), each a clinician at facility ``code``."""
    now = utcnow()
    session.add_all(
        Person(personal_id=pid, full_name=name, created_at=now, created_by="test")
        for pid, name in people.items()
    )
    session.add_all(
        RoleGrant(personal_id=pid, role="clinician", facility_code=code, granted_by="test",
                  granted_at=now)
        for pid in people
    )  # fmt: skip
    await session.flush()


async def _search(client: httpx.AsyncClient, code: str, query: str, lang: str = "vi") -> str:
    page = await client.get(f"/facility/{code}", params={"staff_q": query, "lang": lang})
    assert page.status_code == 200, _shown(page.text)[-600:]
    assert '<details class="more" open><summary><h2 id="clinicians"' in page.text
    return page.text


async def test_the_staff_list_finds_a_name_without_accents_or_an_id_and_no_other_facilitys(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)  # Bình its administrator, Dung a clinician
    other = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện Thanh Nhàn",
            kind=facilities.Kind.hospital,
            level=facilities.Level.specialised,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    await _staff(session, code, {"001190000101": "Nguyễn Thị Huệ", "001190000102": "Đặng Ướt"})
    await _staff(session, other.code, {"001190000201": "Nguyễn Văn Tùng"})
    stranger = "001190000301"  # given a role here, never signed in
    await identity.bootstrap_grant(session, stranger, "clinician", facility_code=code)
    await login(client, DUNG)
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    assert f'<form method="get" action="/facility/{code}#clinicians"' in page.text
    assert 'name="staff_q"' in _form_of(page.text, f"/facility/{code}#clinicians")

    found = await _search(client, code, "nguyen")
    assert _staff_names(found) == ["Nguyễn Thị Huệ"]
    assert "1 người khớp với «nguyen»." in _section(found, "clinicians")
    assert _staff_names(await _search(client, code, "NGUYỄN hue")) == ["Nguyễn Thị Huệ"]
    assert _staff_names(await _search(client, code, "dang uot")) == ["Đặng Ướt"]
    assert _staff_names(await _search(client, code, "ph dung")) == ["Phạm Thị Dung"]
    # by the whole personal ID, or its last four digits as the list shows them
    assert _staff_names(await _search(client, code, DUNG)) == ["Phạm Thị Dung"]
    assert _staff_names(await _search(client, code, DUNG[-4:])) == []  # named: not by ending
    assert _staff_names(await _search(client, code, f" {stranger} ")) == [
        "Chưa có họ tên (số định danh kết thúc bằng 0301)"
    ]
    # another facility's staff never appear, by name or by ID
    for query in ("tung", "nguyen van", "001190000201", "0201"):
        none = await _search(client, code, query)
        assert _staff_names(none) == [], query
        assert f"Không có ai có vai trò tại cơ sở khớp với «{query}»." in _section(
            none, "clinicians"
        )
        assert "Nguyễn Văn Tùng" not in none
        assert f'href="/facility/{code}?staff=#clinicians"' in none  # back to everyone
    # some digits that are neither a personal ID nor its last four: said what to type
    partial = await _search(client, code, "19000010")
    assert "nhập đủ 12 chữ số, hoặc 4 chữ số cuối" in _section(partial, "clinicians")
    assert _staff_names(partial) == []

    english = await _search(client, code, "nguyen", "en")
    assert "1 matching “nguyen”." in _section(english, "clinicians")
    assert "Find by name or personal ID" in _section(english, "clinicians")
    nobody = await _search(client, code, "tung", "en")
    assert "Nobody holding a role at the facility matches “tung”." in _section(nobody, "clinicians")


async def test_a_staff_search_pages_fifty_at_a_time_in_as_many_statements_for_any_staff(
    client: httpx.AsyncClient, session: AsyncSession, connection: AsyncConnection
) -> None:
    code = await _facility(session, steps=4)
    await _staff(session, code, {f"0011{n:08d}": f"Nguyễn Văn Số {n}" for n in range(60)})
    await _staff(session, code, {f"0012{n:08d}": f"Trần Văn Số {n}" for n in range(60)})
    statements: list[str] = []

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def opened(address: str) -> tuple[str, int]:
        statements.clear()
        event.listen(connection.sync_connection, "before_cursor_execute", counted)
        try:
            page = await client.get(address)
        finally:
            event.remove(connection.sync_connection, "before_cursor_execute", counted)
        assert page.status_code == 200, _shown(page.text)[-600:]
        return page.text, len(statements)

    await login(client, BINH)
    first, few = await opened(f"/facility/{code}?staff_q=nguyen")
    names = _staff_names(first)
    assert len(names) == 50
    assert all(n.startswith("Nguyễn Văn Số") for n in names)
    assert "60 người khớp với «nguyen»." in _section(first, "clinicians")
    more = re.search(rf'id="more-staff" href="(/facility/{code}\?[^"#]+)#clinicians"', first)
    assert more is not None
    assert "staff_q=nguyen" in more[1]
    rest, _ = await opened(more[1].replace("&amp;", "&"))
    assert len(_staff_names(rest)) == 10
    assert not set(_staff_names(rest)) & set(names)
    assert 'id="more-staff"' not in rest

    await _staff(session, code, {f"0013{n:08d}": f"Lê Thị Số {n}" for n in range(3000)})
    crowded, many = await opened(f"/facility/{code}?staff_q=nguyen")
    assert many == few  # as many statements for 3,000 more people
    assert "60 người khớp với «nguyen»." in _section(crowded, "clinicians")


async def test_a_search_with_no_letters_or_digits_lists_nobody_and_asks_for_a_name_or_an_id(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await _staff(session, code, {"001190000101": "Nguyễn Thị Huệ"})
    await login(client, DUNG)
    await login(client, BINH)
    for query in ("!!!", "%", "_", "😀", "% _ !"):
        page = await _search(client, code, query)
        assert _staff_names(page) == [], query
        said = _section(page, "clinicians")
        assert "Nhập họ tên hoặc số định danh cá nhân để tìm" in said, query
        assert "khớp với" not in said, query
        assert f'href="/facility/{code}?staff=#clinicians"' in page  # back to everyone
    english = await _search(client, code, "%", "en")
    assert "Type a name or a personal ID to search" in _section(english, "clinicians")
    assert _staff_names(english) == []
    # letters among the marks still search
    assert _staff_names(await _search(client, code, "%%% nguyen")) == ["Nguyễn Thị Huệ"]


async def test_four_digits_find_only_those_the_list_shows_by_their_ending(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)  # Bình and Dung signed in: listed by name
    await _staff(session, code, {"001190000101": "Nguyễn Thị Huệ"})
    stranger = "001190000301"  # given a role here, never signed in: listed by its ending
    await identity.bootstrap_grant(session, stranger, "clinician", facility_code=code)
    await login(client, DUNG)
    await login(client, BINH)
    listed = _staff_names((await client.get(f"/facility/{code}?staff=")).text)
    assert {"Phạm Thị Dung", "Nguyễn Thị Huệ"} <= set(listed)
    # a named person's last four digits find nobody (they would reveal her ID's ending) ...
    for named in (DUNG, BINH, "001190000101"):
        none = await _search(client, code, named[-4:])
        assert _staff_names(none) == [], named
        assert f"Không có ai có vai trò tại cơ sở khớp với «{named[-4:]}»." in _section(
            none, "clinicians"
        )
    # ... she is found by her name or her whole personal ID
    assert _staff_names(await _search(client, code, DUNG)) == ["Phạm Thị Dung"]
    assert _staff_names(await _search(client, code, "001190000101")) == ["Nguyễn Thị Huệ"]
    # the ending the list shows of someone not on record finds him
    assert _staff_names(await _search(client, code, "0301")) == [
        "Chưa có họ tên (số định danh kết thúc bằng 0301)"
    ]
    # once he is on record (signed in), the list names him and his ending no longer finds him
    session.add(
        Person(
            personal_id=stranger, full_name="Hoàng Văn Mới", created_at=utcnow(), created_by="test"
        )
    )
    await session.flush()
    assert _staff_names(await _search(client, code, "0301")) == []
    assert _staff_names(await _search(client, code, "hoang moi")) == ["Hoàng Văn Mới"]
