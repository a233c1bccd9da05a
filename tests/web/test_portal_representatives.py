"""The portal lists who acts for the citizen (their representation links) and, for each child
or ward they act for, who acts for that person; a link that is wrong is reported to the health
department ("Không đúng? Báo Sở Y tế"), whose review page names the link and ends it. The
citizen then reads the link as ended, with the department's finding."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import AN, BINH, CUONG, DUNG, HUNG, error, sign_in_as
from tests.identity.test_end_representative import DEPARTMENT, _family, _link, _resident
from tests.identity.test_service import KHANG, person
from vnehr import identity
from vnehr.audit import AccessDispute
from vnehr.identity import service
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.settings import Settings

TODAY = today_in_vietnam()
HANOI = {"role": "department_admin", "province_code": "01"}  # Khang's family lives in Hoàn Kiếm
SAIGON = ("079080012345", "Lê Văn Sài", "1980-01-01", "male")
HCMC = {"role": "department_admin", "province_code": "79"}
REASON = "Anh An không phải cha của cháu Khang"


def _shown(page: str) -> str:
    """The page's text as read: no tags."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))).strip()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, _shown(page)[-600:]
    return found[1]


def _part(page: str, element_id: str, tag: str = "section") -> str:
    """The markup of the element with this id (``<section id=...>``), "" when none."""
    found = re.search(rf'<{tag} id="{element_id}"[^>]*>(.*?)</{tag}>', page, re.S)
    return found[1] if found is not None else ""


def _link_item(page: str, link_id: int) -> tuple[str, str]:
    """(the class, the words) of a link's line on the portal; ("", "") when not shown."""
    found = re.search(rf'<li id="link-{link_id}"( class="([^"]*)")?>(.*?)</li>', page, re.S)
    return (found[2] or "", _shown(found[3])) if found is not None else ("", "")


def _day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


async def _cases(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AccessDispute)) or 0)


async def _contest(client: httpx.AsyncClient, link_id: int, reason: str = REASON) -> httpx.Response:
    """The portal's "Không đúng? Báo Sở Y tế" form, sent as the signed-in person."""
    portal = await client.get("/portal")
    return await client.post(
        f"/portal/representatives/{link_id}/contest",
        data={"csrf": _csrf(portal.text), "reason": reason},
    )


async def test_an_adult_reads_her_guardian_and_a_parent_who_else_acts_for_the_child(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, dung_link = await _family(session)
    await _resident(session, BINH)
    await _resident(session, HUNG)
    await _resident(session, CUONG)
    # Bình (of age): a court's guardian in force, and a former one whose period is over
    court = await _link(session, HUNG, BINH, "guardian", TODAY - timedelta(days=30))
    former = await _link(
        session, CUONG, BINH, "guardian", TODAY - timedelta(days=400), TODAY - timedelta(days=31)
    )
    revoked = await _link(session, DUNG, BINH, "guardian", TODAY - timedelta(days=60))
    await service.end_representative(
        session, DEPARTMENT, revoked, ends_on=None, reason="Tòa án hủy quyết định giám hộ"
    )

    await sign_in_as(client, session, settings, BINH)
    page = (await client.get("/portal")).text
    mine = _part(page, "representatives")
    assert "Người đại diện cho bạn" in _shown(mine)
    style, words = _link_item(mine, court)
    assert "muted" not in style
    assert HUNG[1] in words
    assert "người giám hộ" in words
    assert f"từ {_day(TODAY - timedelta(days=30))}" in words
    assert "đang có hiệu lực" in words
    assert "Không đúng? Báo Sở Y tế" in words
    style, words = _link_item(mine, former)
    assert "muted" in style  # ended: shown greyed, after the one in force
    assert f"đến {_day(TODAY - timedelta(days=31))}" in words
    assert "đã chấm dứt" in words
    assert "Không đúng? Báo Sở Y tế" not in words
    assert mine.index(f'id="link-{court}"') < mine.index(f'id="link-{former}"')
    style, words = _link_item(mine, revoked)  # ended by the department: why, as recorded
    assert "muted" in style
    assert "Lý do chấm dứt: Tòa án hủy quyết định giám hộ" in words
    # agents by name and relation: never their personal IDs
    assert HUNG[0] not in page
    assert CUONG[0] not in page
    english = _part((await client.get("/portal", params={"lang": "en"})).text, "representatives")
    assert "Who acts for you" in _shown(english)
    assert "in force" in _link_item(english, court)[1]
    assert "Not right? Tell the health department" in _link_item(english, court)[1]

    # An, who has no representative, has no such section; under Khang, whom he acts for, he
    # reads Khang's representatives: Dung, and himself
    await sign_in_as(client, session, settings, AN)
    page = (await client.get("/portal")).text
    assert _part(page, "representatives") == ""
    theirs = _part(page, "representatives-of-1", "div")
    assert f"Người đại diện của {KHANG[1]}" in _shown(theirs)
    assert DUNG[1] in _link_item(theirs, dung_link)[1]
    assert "cha/mẹ" in _link_item(theirs, dung_link)[1]
    assert "(bạn)" in _link_item(theirs, an_link)[1]
    assert DUNG[0] not in page
    assert KHANG[0] not in page

    # Khang, 8, signed in himself: his two parents, by name
    await sign_in_as(client, session, settings, KHANG)
    mine = _part((await client.get("/portal")).text, "representatives")
    assert AN[1] in _link_item(mine, an_link)[1]
    assert DUNG[1] in _link_item(mine, dung_link)[1]
    assert AN[0] not in mine
    assert DUNG[0] not in mine


async def test_a_woman_named_as_a_newborns_mother_by_mistake_reports_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The mother's link made with the newborn's provisional identity is recorded as any
    other (D245): the woman named reports it, and the department ends it from the case."""
    await _resident(session, DUNG)
    child = await service.add_newborn(
        session, DEPARTMENT, mother_personal_id=DUNG[0], birth_date=TODAY - timedelta(days=3),
        sex="male", full_name=None,
    )  # fmt: skip
    [link] = await identity.representation_links(session, child.id)
    await sign_in_as(client, session, settings, DUNG)
    theirs = _part((await client.get("/portal")).text, "representatives-of-1", "div")
    assert f"Người đại diện của {child.full_name}" in _shown(theirs)
    _, words = _link_item(theirs, link.id)
    assert "(bạn)" in words
    assert "đang có hiệu lực" in words
    assert "Không đúng? Báo Sở Y tế" in words
    sent = await _contest(client, link.id, "Tôi không sinh con ngày đó")
    assert sent.status_code == 303, _shown(sent.text)[-600:]
    assert await _cases(session) == 1

    await sign_in_as(client, session, settings, CUONG, HANOI)
    review = (await client.get("/review")).text
    [case] = re.findall(r'<tr id="dispute-(\d+)"', review)
    row = _shown(_part(review, f"dispute-{case}", "tr"))
    for said in (child.full_name, DUNG[1], "cha/mẹ", "Tôi không sinh con ngày đó"):
        assert said in row, said
    done = await client.post(
        f"/review/dispute/{case}/end-link",
        data={"csrf": _csrf(review), "reason": "Cơ sở ghi nhầm số định danh của người mẹ"},
    )
    assert done.status_code == 303, _shown(done.text)[-600:]
    [after] = await identity.representation_links(session, child.id)
    assert after.state == "ended"
    await sign_in_as(client, session, settings, DUNG)
    assert child.full_name not in _shown((await client.get("/portal")).text)


async def test_a_level_one_identity_reads_the_upgrade_text_instead(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await _resident(session, BINH)
    await _resident(session, HUNG)
    court = await _link(session, HUNG, BINH, "guardian", TODAY - timedelta(days=30))
    await sign_in_as(client, session, settings, BINH, level=1)
    page = (await client.get("/portal")).text
    mine = _shown(_part(page, "representatives"))
    assert "Người đại diện cho bạn" in mine
    assert "Có người được ghi là đại diện cho bạn" in mine
    assert "mức 2 mới xem được đó là ai" in mine
    assert HUNG[1] not in page
    assert f'id="link-{court}"' not in page
    error(await client.post(f"/api/v1/me/representatives/{court}/contest", json={}), 403, "ID-0101")
    # someone nobody acts for (any more) reads no such heading at level 1
    await service.end_representative(session, DEPARTMENT, court, ends_on=None, reason="Tòa án")
    page = (await client.get("/portal")).text
    assert _part(page, "representatives") == ""
    assert "cần mức 2" in _shown(page)  # the book's upgrade text, as before


async def test_the_other_parent_reports_a_link_the_department_of_the_province_sees_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, _ = await _family(session)
    # Dung says An is not Khang's father: the same form sent twice opens one case
    await sign_in_as(client, session, settings, DUNG)
    for _ in range(2):
        sent = await _contest(client, an_link)
        assert sent.status_code == 303, _shown(sent.text)[-600:]
    assert await _cases(session) == 1
    page = (await client.get(sent.headers["location"])).text
    assert "Đã gửi Sở Y tế" in _shown(page)
    _, words = _link_item(_part(page, "representatives-of-1", "div"), an_link)
    assert f"Đã gửi Sở Y tế ngày {_day(TODAY)}" in words
    assert "Không đúng? Báo Sở Y tế" not in words  # sent: no second form
    # the app's route answers the same case
    via_api = await client.post(
        f"/api/v1/me/representatives/{an_link}/contest", json={"reason": "lần nữa"}
    )
    assert via_api.status_code == 201, via_api.text
    assert (via_api.json()["link_id"], via_api.json()["status"]) == (an_link, "open")
    assert await _cases(session) == 1
    # Khang reads it too, by his own link
    await sign_in_as(client, session, settings, KHANG)
    words = _link_item(_part((await client.get("/portal")).text, "representatives"), an_link)[1]
    assert "Đã gửi Sở Y tế" in words

    # Hà Nội's department reads the case as a link, naming the person, the agent, the period
    await sign_in_as(client, session, settings, CUONG, HANOI)
    review = (await client.get("/review")).text
    [case] = re.findall(r'<tr id="dispute-(\d+)"', review)
    row = _shown(_part(review, f"dispute-{case}", "tr"))
    assert "Người dân báo một người đại diện không đúng" in row
    for said in (KHANG[1], AN[1], "cha/mẹ", f"từ {_day(date.fromisoformat(KHANG[2]))}", REASON):
        assert said in row, said
    assert AN[0] not in review
    assert "Chấm dứt mối đại diện này" in row
    english = _shown((await client.get("/review", params={"lang": "en"})).text)
    assert "A person says a representative link is wrong" in english
    # Hồ Chí Minh City's does not
    await sign_in_as(client, session, settings, SAIGON, HCMC)
    review = (await client.get("/review")).text
    assert 'id="dispute-' not in review
    assert AN[1] not in review


async def test_nobody_reports_a_link_of_someone_they_do_not_act_for(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, _ = await _family(session)
    await sign_in_as(client, session, settings, HUNG)
    refused = await _contest(client, an_link)
    assert refused.status_code == 404
    assert "<code>HB-0007</code>" in refused.text
    # said the same as of a link that does not exist
    missing = await _contest(client, an_link + 1000)
    for page, number in ((refused, an_link), (missing, an_link + 1000)):
        assert f"Mối đại diện số {number} không phải của bạn" in _shown(page.text)
    assert _shown(refused.text).replace(f"số {an_link} ", "số # ").replace(
        f"link {an_link} ", "link # "
    ) == _shown(missing.text).replace(f"số {an_link + 1000} ", "số # ").replace(
        f"link {an_link + 1000} ", "link # "
    )
    error(await client.post(f"/api/v1/me/representatives/{an_link}/contest", json={}), 404,
          "HB-0007")  # fmt: skip
    # a number no link can have is refused in words, never a server error
    huge = "9" * 23
    too_big = await client.post(
        f"/portal/representatives/{huge}/contest",
        data={"csrf": _csrf((await client.get("/portal")).text)},
    )
    assert too_big.status_code == 422
    assert "Số mối đại diện trong địa chỉ trang" in _shown(too_big.text)
    assert (
        await client.post(f"/api/v1/me/representatives/{huge}/contest", json={})
    ).status_code == 422
    # a form without the session's token does nothing either
    await sign_in_as(client, session, settings, DUNG)
    forged = await client.post(
        f"/portal/representatives/{an_link}/contest", data={"csrf": "x", "reason": REASON}
    )
    assert forged.status_code == 403
    assert await _cases(session) == 0


async def test_the_department_ends_the_link_from_the_case_and_the_parent_reads_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, _ = await _family(session)
    await sign_in_as(client, session, settings, DUNG)
    assert (await _contest(client, an_link)).status_code == 303
    await sign_in_as(client, session, settings, AN)
    assert (await client.get("/api/v1/me/timeline", params={"for": KHANG[0]})).status_code == 200

    await sign_in_as(client, session, settings, CUONG, HANOI)
    review = (await client.get("/review")).text
    [case] = re.findall(r'<tr id="dispute-(\d+)"', review)
    end = f"/review/dispute/{case}/end-link"
    # refused on the page, in words, nothing changed: a day before today, no reason
    yesterday = TODAY - timedelta(days=1)
    for typed, code in (
        ({"ends_on": yesterday.isoformat()}, "ID-0121"),
        ({"reason": " "}, "ID-0123"),
    ):
        page = await client.post(end, data={"csrf": _csrf(review), "reason": "Sai", **typed})
        assert page.status_code == 422, _shown(page.text)[-600:]
        row = _shown(_part(page.text, f"dispute-{case}", "tr"))
        assert code in row
        if code == "ID-0121":
            assert _day(yesterday) in row  # the page's dates, not the API's
        assert "Chấm dứt mối đại diện này" in row  # the form again
    assert await identity.may_act_for(session, person(AN[0]), KHANG[0])

    # a day that is none, said by the field's name; a case number no case can have
    page = await client.post(
        end, data={"csrf": _csrf(review), "reason": "Sai", "ends_on": "31/02/2027"}
    )
    assert page.status_code == 422
    assert "Ngày chấm dứt không đúng dạng" in _shown(_part(page.text, f"dispute-{case}", "tr"))
    page = await client.post(f"/review/dispute/{'9' * 23}/end-link", data={"csrf": _csrf(review)})
    assert page.status_code == 422
    assert "Số trường hợp trong địa chỉ trang" in _shown(page.text)

    # the department ends it: An reads Khang's book no more, the case is closed with the reason
    done = await client.post(
        end, data={"csrf": _csrf(review), "reason": "Đã xác minh: ghi nhầm người cha"}
    )
    assert done.status_code == 303, _shown(done.text)[-600:]
    review = (await client.get(done.headers["location"])).text
    assert 'id="dispute-' not in review  # no longer open
    closed = (await client.get("/review", params={"status": "all"})).text
    row = _shown(_part(closed, f"dispute-{case}", "tr"))
    assert "Đã đóng" in row
    assert "Đã xác minh: ghi nhầm người cha" in row
    assert "Chấm dứt mối đại diện này" not in row
    # the same form sent again changes nothing and is no error
    again = await client.post(
        end, data={"csrf": _csrf(review), "reason": "Đã xác minh: ghi nhầm người cha"}
    )
    assert again.status_code == 303

    await sign_in_as(client, session, settings, AN)
    error(await client.get("/api/v1/me/timeline", params={"for": KHANG[0]}), 403, "HB-0002")
    assert "Người bạn đại diện" not in _shown((await client.get("/portal")).text)
    # Dung reads An's link ended, with the department's answer
    await sign_in_as(client, session, settings, DUNG)
    style, words = _link_item(
        _part((await client.get("/portal")).text, "representatives-of-1", "div"), an_link
    )
    assert "muted" in style
    assert "đã chấm dứt" in words
    assert "Sở Y tế trả lời: Đã xác minh: ghi nhầm người cha" in words
    assert words.count("ghi nhầm người cha") == 1  # the reason is the finding: said once


async def test_only_a_case_about_a_link_of_the_province_ends_a_link(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an_link, _ = await _family(session)
    await sign_in_as(client, session, settings, DUNG)
    assert (await _contest(client, an_link)).status_code == 303
    [link_case] = await session.scalars(select(AccessDispute.id))
    # a case about a read of Khang's record (the department's look-up of his links)
    await identity.person_links(session, DEPARTMENT, KHANG[0])
    await sign_in_as(client, session, settings, KHANG)
    [read] = (await client.get("/api/v1/me/access-log")).json()
    opened = await client.post(f"/api/v1/me/access-log/{read['id']}/dispute")
    assert opened.status_code == 201, opened.text
    assert opened.json()["link_id"] is None

    # another province's department knows neither case
    await sign_in_as(client, session, settings, SAIGON, HCMC)
    csrf = _csrf((await client.get("/review")).text)
    page = await client.post(
        f"/review/dispute/{link_case}/end-link", data={"csrf": csrf, "reason": "x"}
    )
    assert page.status_code == 404
    assert "<code>HB-0005</code>" in page.text
    # Hà Nội's ends no link from a case about a read: said on the page, the case still open
    await sign_in_as(client, session, settings, CUONG, HANOI)
    review = (await client.get("/review")).text
    assert "Chấm dứt mối đại diện này" not in _shown(
        _part(review, f"dispute-{opened.json()['id']}", "tr")
    )
    page = await client.post(
        f"/review/dispute/{opened.json()['id']}/end-link",
        data={"csrf": _csrf(review), "reason": "x"},
    )
    assert page.status_code == 409, _shown(page.text)[-600:]
    assert "HB-0008" in _shown(_part(page.text, f"dispute-{opened.json()['id']}", "tr"))
    assert await identity.may_act_for(session, person(AN[0]), KHANG[0])
    queue = (await client.get("/api/v1/access-disputes")).json()["items"]
    assert {(d["link_id"], d["status"]) for d in queue} == {(an_link, "open"), (None, "open")}


async def test_a_review_page_left_open_does_not_end_a_link_another_reviewer_kept(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Two reviewers have the case open; one closes it: the link is right. The other's end,
    sent from the page still open, ends nothing and says why."""
    an_link, _ = await _family(session)
    await sign_in_as(client, session, settings, DUNG)
    assert (await _contest(client, an_link)).status_code == 303
    await sign_in_as(client, session, settings, CUONG, HANOI)
    review = (await client.get("/review")).text
    [case] = re.findall(r'<tr id="dispute-(\d+)"', review)
    kept = "Đã xác minh: anh An đúng là cha, mối đại diện giữ nguyên"
    closed = await client.post(
        f"/review/dispute/{case}", data={"csrf": _csrf(review), "finding": kept}
    )
    assert closed.status_code == 303
    stale = await client.post(
        f"/review/dispute/{case}/end-link",
        data={"csrf": _csrf(review), "reason": "Ghi nhầm người cha"},
    )
    assert stale.status_code == 409, _shown(stale.text)[-600:]
    assert "<code>HB-0009</code>" in stale.text
    assert kept in _shown(stale.text)
    assert await identity.may_act_for(session, person(AN[0]), KHANG[0])
    [row] = await session.scalars(select(AccessDispute))
    assert (row.status, row.finding) == ("closed", kept)
    # nor is the answer overwritten by another finding from the page left open; the same one
    # sent again is done
    other = await client.post(
        f"/review/dispute/{case}", data={"csrf": _csrf(review), "finding": "Sai, đã sửa"}
    )
    assert other.status_code == 409
    assert "<code>HB-0009</code>" in other.text
    again = await client.post(
        f"/review/dispute/{case}", data={"csrf": _csrf(review), "finding": kept}
    )
    assert again.status_code == 303
    await session.refresh(row)
    assert row.finding == kept


async def test_a_case_closed_without_a_finding_is_refused_on_its_row(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A browser that does not check the field (no scripts, an old one): said on the case's
    row, the page as it was, not an error page."""
    an_link, _ = await _family(session)
    await sign_in_as(client, session, settings, DUNG)
    assert (await _contest(client, an_link)).status_code == 303
    await sign_in_as(client, session, settings, CUONG, HANOI)
    review = (await client.get("/review")).text
    [case] = re.findall(r'<tr id="dispute-(\d+)"', review)
    empty = await client.post(
        f"/review/dispute/{case}", data={"csrf": _csrf(review), "finding": " "}
    )
    assert empty.status_code == 422
    row = _shown(_part(empty.text, f"dispute-{case}", "tr"))
    assert "HB-0006" in row
    assert 'action="/review/dispute/' in _part(empty.text, f"dispute-{case}", "tr")
