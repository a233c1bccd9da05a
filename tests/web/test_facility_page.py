"""The facility administrator's page (``/facility/{code}``): her facility, where it stands in
onboarding and what it still needs, its systems, certificates and clinicians, the latest
receipts newest first with a rejected visit's reasons in words, the visits checked in but
never sent, and a form that checks a file before it is sent (nothing stored). Driven over HTTP
as a browser does, signed in with VNeID as the demo's Trần Thị Bình."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import ADMIN, bearer, checkin_row, count, new_system, send, visit
from tests.web.test_login import AN, _hidden, login
from vnehr import demo, facilities, identity
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
