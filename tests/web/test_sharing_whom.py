"""On the sharing page "every facility" is a choice the citizen makes and confirms, never what an
empty facility box means: a citizen who searched but picked nothing, then pressed "Chia sẻ",
is told to choose a facility, and shares with no one."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_sharing_search import _an_on_the_demo, _register, _search, _shown
from vnehr.kit.i18n import text


def _share_form(page: str) -> tuple[str, str]:
    """The address and the markup of the share form."""
    found = re.search(
        r'<form method="post" action="([^"]*)" aria-label="share"[^>]*>(.*?)</form>', page, re.S
    )
    assert found is not None, _shown(page)[-600:]
    return html.unescape(found[1]).split("#", 1)[0], found[2]


def _as_sent(form: str, **changed: str) -> dict[str, str | list[str]]:
    """What a browser sends for the form as shown, with the fields in ``changed`` set as the
    citizen sets them (a radio button clicked, a box typed in)."""
    sent: dict[str, str | list[str]] = {}
    for tag in re.findall(r"<input\b[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None:
            continue
        kind = re.search(r'type="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        typed = html.unescape(value[1]) if value else ""
        if kind and kind[1] in ("radio", "checkbox"):
            if " checked" not in tag:
                continue
            if kind[1] == "checkbox":
                boxes = sent.setdefault(name[1], [])
                assert isinstance(boxes, list)
                boxes.append(typed)
                continue
        sent[name[1]] = typed
    return {**sent, **changed}


def _checked(form: str, name: str) -> list[str]:
    return re.findall(rf'<input type="radio" name="{name}" value="([^"]+)"[^>]*\schecked', form)


async def test_a_search_without_a_pick_and_an_empty_code_shares_with_no_one(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _an_on_the_demo(client, session)
    await _register(session, "Bệnh viện Bạch Mai", ward="00229")
    page = await _search(client, "bach mai")
    action, form = _share_form(page.text)
    # the form sent as shown, the code box still empty, shares with no one
    refused = await client.post(action, data=_as_sent(form, scope="full"))
    assert (await client.get("/api/v1/me/consents")).json() == []
    assert refused.status_code == 422
    # "one facility" is what the form starts with; "every facility" says what it means
    assert _checked(form, "whom") == ["one"]
    assert text("web.sharing.whom_every", "vi") in _shown(form)
    # said beside the code box, the rest kept as typed (D193): the search, the scope
    _, form = _share_form(refused.text)
    beside = form.split('id="facility"', 1)[1].split("</fieldset>", 1)[0]
    assert text("SHR-0021", "vi") in _shown(beside)
    assert "<code>SHR-0021</code>" in beside
    assert re.search(r'id="facility"[^>]*aria-invalid="true"', form)
    assert _checked(form, "whom") == ["one"]
    assert _checked(form, "scope") == ["full"]
    assert 'value="bach mai"' in refused.text
    # a form opened before "every facility" was a choice (no such field) shares with no one too
    old = {"csrf": _as_sent(form)["csrf"], "action": "share", "facility": "", "scope": "summary"}
    assert (await client.post(action, data=old)).status_code == 422
    assert (await client.get("/api/v1/me/consents")).json() == []
    english = await client.post(action, data=_as_sent(form), params={"lang": "en"})
    assert text("SHR-0021", "en") in _shown(english.text)


async def test_every_facility_is_chosen_then_confirmed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await _an_on_the_demo(client, session)
    page = await client.get("/portal/book/sharing")
    action, fresh = _share_form(page.text)
    asked = await client.post(action, data=_as_sent(fresh, whom="every", days="30"))
    # asked first, in words, with what was typed; nothing shared yet
    assert asked.status_code == 200, _shown(asked.text)[-900:]
    assert (await client.get("/api/v1/me/consents")).json() == []
    _, form = _share_form(asked.text)
    assert text("web.sharing.every_confirm", "vi") in _shown(form)
    assert _checked(form, "whom") == ["every"]
    assert re.search(r'name="days"[^>]*value="30"', form)
    confirm = text("web.sharing.every_yes", "vi")
    assert re.search(rf"<button[^>]*>{re.escape(confirm)}</button>", form)
    shared = await client.post(action, data=_as_sent(form))
    assert shared.status_code == 303
    [made] = (await client.get("/api/v1/me/consents")).json()
    assert (made["facility"], made["scope"], made["in_force"]) == ("*", "summary", True)
    mine = (await client.get(shared.headers["location"])).text
    row = mine.split(f'id="share-{made["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert text("web.sharing.everyone", "vi") in _shown(row)
    # a citizen who turns back to "one facility" on the question shares as that choice says
    asked = await client.post(action, data=_as_sent(fresh, whom="every", scope="full"))
    _, form = _share_form(asked.text)
    refused = await client.post(action, data=_as_sent(form, whom="one"))
    assert refused.status_code == 422
    assert len((await client.get("/api/v1/me/consents")).json()) == 1
    # the API's meaning is unchanged: "*" is every facility, and a facility must be named
    missing = await client.post("/api/v1/me/consents", json={"scope": "summary"})
    assert missing.status_code == 422
    english = await client.post(
        action, data=_as_sent(fresh, whom="every", scope="full"), params={"lang": "en"}
    )
    assert text("web.sharing.every_confirm", "en") in _shown(english.text)
