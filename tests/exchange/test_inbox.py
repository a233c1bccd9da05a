"""The citizen's inbox (``/api/v1/me/notifications`` and the portal page): level 2 reads it,
every message can be reached page by page, a parent reads the messages of the child they
represent, and messages name facilities and reasons in words."""

from __future__ import annotations

import re
from datetime import date

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import ADMIN
from vnehr import demo, exchange, facilities, identity
from vnehr.exchange.models import Notification
from vnehr.kit.auth import make_session_cookie
from vnehr.kit.clock import utcnow
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings

AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
KHANG = ("001217005432", "Hoàng Minh Khang", "2017-09-01", "male")
BINH = ("079162003581", "Trần Thị Bình", "1962-08-02", "female")


async def signed_in(session: AsyncSession, who: tuple[str, str, str, str]) -> int:
    person = await identity.sign_in(
        session,
        {"sub": f"s-{who[0]}", "personal_id": who[0], "name": who[1], "birthdate": who[2],
         "gender": who[3], "assurance_level": 2},
    )  # fmt: skip
    return person.id


def as_person(
    client: httpx.AsyncClient, settings: Settings, personal_id: str, level: int = 2
) -> None:
    client.cookies.set(
        "vnehr_session",
        make_session_cookie(
            settings, {"personal_id": personal_id, "name": "x", "assurance_level": level}
        ),
    )


def message(person_id: int, n: int, kind: str = "visit", **params: str) -> Notification:
    return Notification(
        event_id=f"ev-{person_id}-{n}",
        person_id=person_id,
        kind=kind,
        params=params or {"facility": "01999", "visit_key": f"LK{n}"},
        created_at=utcnow(),
    )


async def hospital(session: AsyncSession, name: str) -> str:
    facility = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name=name,
            kind=facilities.Kind.hospital,
            level=facilities.Level.basic,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    return facility.code


async def test_a_level_1_identity_reads_no_notifications(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    session.add(message(an, 1, "emergency", facility="01999", reason="life-threatening"))
    await session.flush()
    [row] = await session.scalars(select(Notification).where(Notification.person_id == an))
    as_person(client, settings, AN[0], level=1)
    for answer in (
        await client.get("/api/v1/me/notifications"),
        await client.post(f"/api/v1/me/notifications/{row.id}/read"),
        await client.post("/api/v1/me/notifications/read-all"),
    ):
        assert (answer.status_code, answer.json()["code"]) == (403, "ID-0101")
    assert (await session.get(Notification, row.id)).read_at is None  # type: ignore[union-attr]
    # the portal page stays, with its upgrade text and no message of the health book
    page = await client.get("/portal")
    assert page.status_code == 200
    assert "mức 2" in page.text
    assert "cấp cứu" not in page.text
    assert "Chưa có thông báo nào." not in page.text  # not "no messages" either: not shown


async def test_every_message_can_be_reached_page_by_page_and_all_marked_read(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    session.add_all(message(an, n) for n in range(60))
    await session.flush()
    as_person(client, settings, AN[0])
    first = (await client.get("/api/v1/me/notifications")).json()
    assert (first["unread"], len(first["items"])) == (60, 50)
    assert first["next_cursor"]
    second = (
        await client.get("/api/v1/me/notifications", params={"cursor": first["next_cursor"]})
    ).json()
    assert len(second["items"]) == 10
    assert second["next_cursor"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 60
    small = (await client.get("/api/v1/me/notifications", params={"limit": 7})).json()
    assert [i["id"] for i in small["items"]] == ids[:7]

    bad = await client.get("/api/v1/me/notifications", params={"cursor": "x"})
    assert (bad.status_code, bad.json()["code"]) == (400, "KIT-0001")
    assert (await client.get("/api/v1/me/notifications", params={"limit": 101})).status_code == 422

    done = await client.post("/api/v1/me/notifications/read-all")
    assert (done.status_code, done.json()) == (200, {"marked": 60})
    after = (await client.get("/api/v1/me/notifications", params={"limit": 100})).json()
    assert after["unread"] == 0
    assert all(i["read"] for i in after["items"])
    assert (await client.post("/api/v1/me/notifications/read-all")).json() == {"marked": 0}


async def test_marking_read_again_is_fine_and_strangers_and_huge_ids_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    binh = await signed_in(session, BINH)
    mine, theirs = message(an, 1), message(binh, 2)
    session.add_all([mine, theirs])
    await session.flush()
    as_person(client, settings, AN[0])
    assert (await client.post(f"/api/v1/me/notifications/{mine.id}/read")).status_code == 204
    assert (await client.post(f"/api/v1/me/notifications/{mine.id}/read")).status_code == 204
    stranger = await client.post(f"/api/v1/me/notifications/{theirs.id}/read")
    assert stranger.status_code == 404
    assert (await session.get(Notification, theirs.id)).read_at is None  # type: ignore[union-attr]
    huge = await client.post(f"/api/v1/me/notifications/{2**63}/read")
    assert huge.status_code == 422


async def test_a_parent_reads_and_marks_the_messages_of_the_child_they_represent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    khang = await signed_in(session, KHANG)
    await signed_in(session, BINH)
    await identity.add_representative(
        session,
        demo.OPERATOR,
        agent_personal_id=AN[0],
        subject_person=KHANG[0],
        relation="parent",
        valid_from=date(2017, 9, 1),
        valid_to=None,
    )
    code = await hospital(session, "Bệnh viện Nhi Trung ương")
    # a clinician opens the child's record in an emergency: the event reaches the inbox
    notify = exchange.event_notifier("emergency", exchange.LogPush())
    event = OutboxEvent(
        event_id="e-glass",
        topic="emergency.access",
        key=f"person:{khang}",
        payload={"person_id": khang, "params": {"facility": code, "reason": "unconscious"}},
    )
    await notify(session, event)
    session.add(message(an, 1, facility=code, visit_key="LK-AN"))
    await session.flush()

    as_person(client, settings, AN[0])
    inbox = (await client.get("/api/v1/me/notifications")).json()
    assert inbox["unread"] == 2
    by_kind = {i["kind"]: i for i in inbox["items"]}
    child = by_kind["emergency"]
    assert child["person"] == {
        "personal_id": KHANG[0],
        "name": "Hoàng Minh Khang",
        "relation": "parent",
    }
    assert by_kind["visit"]["person"]["relation"] is None  # An's own
    assert "Bệnh viện Nhi Trung ương" in child["body"]["vi"]
    page = await client.get("/portal")
    assert "Hồ sơ của Hoàng Minh Khang vừa được mở trong tình huống cấp cứu" in page.text
    assert "Hồ sơ của bạn vừa được mở" not in page.text  # the child's record, not An's
    assert (await client.post(f"/api/v1/me/notifications/{child['id']}/read")).status_code == 204
    assert (await client.get("/api/v1/me/notifications")).json()["unread"] == 1

    # someone who does not represent the child neither sees nor marks it
    as_person(client, settings, BINH[0])
    assert (await client.get("/api/v1/me/notifications")).json()["items"] == []
    stranger = await client.post(f"/api/v1/me/notifications/{child['id']}/read")
    assert stranger.status_code == 404


async def test_messages_name_the_facility_and_the_reason_in_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    code = await hospital(session, "Bệnh viện Đa khoa Đống Đa")
    session.add(message(an, 1, "emergency", facility=code, reason="life-threatening"))
    session.add(message(an, 2, facility=code, visit_key="LK-20261020-77"))
    session.add(message(an, 3, facility="01998", visit_key="LK-X"))  # not in the registry
    await session.flush()
    as_person(client, settings, AN[0])
    items = (await client.get("/api/v1/me/notifications")).json()["items"]
    unknown, visit, emergency = items
    assert emergency["body"]["vi"].startswith("Bệnh viện Đa khoa Đống Đa đã mở hồ sơ")
    assert "Nguy hiểm đến tính mạng" in emergency["body"]["vi"]
    assert "Life-threatening condition" in emergency["body"]["en"]
    assert "life-threatening" not in emergency["body"]["vi"]
    assert code not in emergency["body"]["vi"]
    assert visit["body"]["vi"].startswith("Bệnh viện Đa khoa Đống Đa đã gửi")
    assert "LK-20261020-77" not in visit["body"]["vi"]
    assert code not in visit["body"]["vi"]
    assert visit["params"]["visit_key"] == "LK-20261020-77"  # the app still gets the keys
    assert unknown["body"]["vi"].startswith("Cơ sở 01998 đã gửi")
    assert unknown["body"]["en"].startswith("Facility 01998 has sent")


async def test_the_portal_shows_the_newest_ten_and_marks_all_read(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    session.add_all(message(an, n) for n in range(12))
    await session.flush()
    as_person(client, settings, AN[0])
    page = await client.get("/portal")
    assert page.text.count("Lượt khám mới trong Sổ sức khỏe điện tử") == 10
    assert "(12)" in page.text  # every unread one counted
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    forged = await client.post("/portal/notifications/read-all", data={"csrf": "x"})
    assert (await client.get("/api/v1/me/notifications")).json()["unread"] == 12
    assert forged.status_code != 303
    done = await client.post(
        "/portal/notifications/read-all", data={"csrf": csrf[1]}, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/portal")
    assert (await client.get("/api/v1/me/notifications")).json()["unread"] == 0
    assert "Đánh dấu tất cả đã đọc" not in (await client.get("/portal")).text


def messages_list(page: str) -> list[str]:
    """The portal's messages, one line each, without markup."""
    found = re.search(r'<ul id="messages">(.*?)</ul>', page, re.S)
    assert found is not None
    items = re.findall(r"<li[^>]*>(.*?)</li>", found[1], re.S)
    return [re.sub(r"<[^>]+>", "", item).strip() for item in items]


async def test_a_parent_reads_the_childs_messages_naming_the_child_and_their_own_as_yours(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    an = await signed_in(session, AN)
    khang = await signed_in(session, KHANG)
    await identity.add_representative(
        session, demo.OPERATOR, agent_personal_id=AN[0], subject_person=KHANG[0],
        relation="parent", valid_from=date(2017, 9, 1), valid_to=None,
    )  # fmt: skip
    code = await hospital(session, "Bệnh viện Nhi Trung ương")
    name = "Bệnh viện Nhi Trung ương"
    paper = message(khang, 3, "paper")
    paper.params = {
        "facility": name,
        "kind": {"vi": "giấy ra viện", "en": "discharge paper"},
        "number": "12/2026",
    }
    session.add_all(
        [
            message(khang, 1, "visit", facility=code, visit_key="LK-K"),
            message(khang, 2, "emergency", facility=code, reason="unconscious"),
            paper,
            message(khang, 4, "viewed", facility=name),
            message(an, 5, "visit", facility=code, visit_key="LK-A"),
        ]
    )
    await session.flush()

    as_person(client, settings, AN[0])
    items = (await client.get("/api/v1/me/notifications")).json()["items"]
    [own] = [i for i in items if i["person"]["relation"] is None]
    childs = {i["kind"]: i for i in items if i["person"]["relation"] == "parent"}
    assert sorted(childs) == ["emergency", "paper", "viewed", "visit"]
    for item in childs.values():
        for language, yours in (("vi", "của bạn"), ("en", "your")):
            said = f"{item['title'][language]} {item['body'][language]}"
            assert "Hoàng Minh Khang" in said, said
            assert yours not in said.lower(), said
        assert name in item["body"]["vi"]  # signed in at level 2: the facility, as in the book
    assert childs["emergency"]["title"] == {
        "vi": "Hồ sơ của Hoàng Minh Khang vừa được mở trong tình huống cấp cứu",
        "en": "Hoàng Minh Khang's record was opened in an emergency",
    }
    assert childs["visit"]["title"]["vi"] == (
        "Lượt khám mới trong Sổ sức khỏe điện tử của Hoàng Minh Khang"
    )
    assert "của bạn" in own["body"]["vi"]  # An's own visit stays "your" book
    assert "your" in own["body"]["en"]
    assert "Hoàng Minh Khang" not in own["title"]["vi"] + own["body"]["vi"]

    # the portal's list says the same
    lines = messages_list((await client.get("/portal")).text)
    childs_lines = [line for line in lines if "Hoàng Minh Khang" in line]
    [own_line] = [line for line in lines if "Hoàng Minh Khang" not in line]
    assert len(childs_lines) == 4
    assert not any("của bạn" in line for line in childs_lines)
    assert "của bạn" in own_line
    assert any(line.startswith("Hồ sơ của Hoàng Minh Khang vừa được mở") for line in lines)

    # the child reading the same messages reads them as their own
    as_person(client, settings, KHANG[0])
    theirs = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert len(theirs) == 4
    for item in theirs:
        assert item["person"]["relation"] is None
        said = item["title"]["vi"] + " " + item["body"]["vi"]
        assert "Hoàng Minh Khang" not in said
        assert "người bạn đại diện" not in said
        assert "bạn" in said  # "của bạn", "cho bạn"
