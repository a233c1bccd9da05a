"""The citizen's page in the reader's language (D195's way): Vietnamese by default, English
with ``?lang=en`` and then the cookie, the switch in the header, and its messages, roles and
notices worded in the language chosen."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import message
from tests.identity.test_api import sign_in_as
from tests.web.test_login import AN, HUNG
from vnehr import exchange
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings

PERSON = (AN, "Nguyễn Văn An", "1985-03-12", "male")


def _shown(page: str) -> str:
    """The page's text as read: no tags."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _main(page: str) -> str:
    """What the page says below its header (which names the site in both languages)."""
    return _shown(page[page.index("<main>") : page.index("</main>")])


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[-600:]
    return found[1]


def _switch(page: str) -> str:
    found = re.search(r'id="lang-switch" href="([^"]+)"', page)
    assert found is not None, "no language switch"
    return html.unescape(found[1])


async def test_the_portal_speaks_english_when_chosen_and_vietnamese_by_default(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person = await sign_in_as(
        client, session, settings, PERSON, {"role": "department_admin", "province_code": "01"}
    )
    opened = await client.post(
        "/portal/account/open", data={"csrf": _csrf((await client.get("/portal")).text)}
    )
    assert opened.status_code == 303
    viewed = message(person.id, 1, "viewed", facility="01999")
    session.add(viewed)
    await session.flush()
    [said] = await exchange.texts_of(session, [(viewed.kind, viewed.params)])

    # by default: Vietnamese only, with the way to English
    default = await client.get(opened.headers["location"])
    assert '<html lang="vi">' in default.text
    shown = _main(default.text)
    for key in ("web.portal.greeting", "web.portal.messages", "web.role.department_admin"):
        assert text(key, "vi") in shown, key
        assert text(key, "en") not in shown, key
    assert text("web.portal.notice.opened", "vi") in shown
    assert text("web.portal.notice.opened", "en") not in shown
    assert said["title"]["vi"] in shown
    assert said["title"]["en"] not in shown
    assert "lang=en" in _switch(default.text)

    # ?lang=en: English throughout, and remembered
    english = await client.get("/portal", params={"lang": "en", "notice": "opened"})
    assert english.cookies.get("vnehr_lang") == "en"
    assert '<html lang="en">' in english.text
    shown = _main(english.text)
    for key in (
        "web.portal.greeting",
        "web.portal.personal_id",
        "web.portal.book",
        "web.book.open_book",
        "web.portal.messages",
        "web.portal.read_all",
        "web.portal.roles",
        "web.role.department_admin",
        "web.department.title",
        "web.review.title",
        "web.portal.notice.opened",
    ):
        assert text(key, "en") in shown, key
        assert text(key, "vi") not in shown, key
    assert text("web.portal.book_open", "en") in shown
    # the messages in the reader's language, each title and text
    assert said["title"]["en"] in shown
    assert said["body"]["en"] in shown
    assert said["title"]["vi"] not in shown
    assert said["body"]["vi"] not in shown
    assert "Báo cáo" not in shown  # the report's link too
    assert "Đăng xuất" not in english.text
    assert "Sign out" in _shown(english.text)
    assert "lang=vi" in _switch(english.text)
    assert "notice=opened" in _switch(english.text)  # the switch keeps the page as it is

    # the cookie carries the choice; ?lang=vi brings Vietnamese back
    assert '<html lang="en">' in (await client.get("/portal")).text
    back = await client.get("/portal", params={"lang": "vi"})
    assert '<html lang="vi">' in back.text
    assert text("web.portal.greeting", "vi") in _main(back.text)
    assert text("web.portal.greeting", "en") not in _main(back.text)


async def test_a_level_1_identity_is_told_to_upgrade_in_english_when_chosen(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(
        client, session, settings, (HUNG, "Đặng Văn Hùng", "1978-04-04", "male"), level=1
    )
    shown = _main((await client.get("/portal?lang=en")).text)
    assert text("ID-0101", "en", {"level": 1, "required": 2}) in shown
    assert text("ID-0101", "vi", {"level": 1, "required": 2}) not in shown
