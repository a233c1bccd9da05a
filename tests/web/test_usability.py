"""What a browser review found on the citizen's and the clinician's pages: times in Vietnam time,
forms that keep what was typed when they are refused, error pages in words (never JSON or a
validator's message) that know who is signed in, a confirmation before what cannot be taken
back, one share however often the form is sent, and messages that lead to what they tell of."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import message
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import REGISTRAR
from tests.sharing.test_access import DOCTOR, world
from tests.web.test_login import HUNG
from vnehr import audit, identity
from vnehr.identity.models import HealthAccount
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry

CHILD = ("001217009876", "Hoàng Minh Khôi", "2017-02-03", "male")


def _shown(page: str) -> str:
    """The page's text as read: no tags."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page[-600:]
    return found[1]


def _form(page: str, containing: str) -> tuple[str, str]:
    """The address and the markup of the form on the page that holds ``containing``."""
    for found in re.finditer(r'<form method="post" action="([^"]*)"[^>]*>(.*?)</form>', page, re.S):
        if containing in found[2]:
            return html.unescape(found[1]), found[2]
    raise AssertionError(f"no form with {containing!r}")


def _signed_in_header(page: str, name: str) -> None:
    assert name in page
    assert text("web.logout", "vi") in page
    assert text("web.login", "vi") not in page


async def test_the_portal_writes_times_in_vietnam_time_and_the_english_says_since_when(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, _, patient, _ = await world(client, session, settings)
    person = await sign_in_as(client, session, settings, patient)
    page = await client.get("/portal")
    opened = await client.post("/portal/account/open", data={"csrf": _csrf(page.text)})
    assert opened.status_code == 303
    # 20:30 on 1 March in UTC is 03:30 on 2 March in Hanoi
    late = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    await session.execute(
        update(HealthAccount).where(HealthAccount.person_id == person.id).values(opened_at=late)
    )
    told = message(person.id, 1, "viewed", facility="01999")
    told.created_at = late
    session.add(told)
    await session.flush()
    shown = _shown((await client.get("/portal")).text)
    assert f"{text('web.portal.book_open', 'vi')} 02/03/2026" in shown
    assert "02/03/2026 03:30" in shown
    assert "01/03/2026" not in shown
    english = _shown((await client.get("/portal", params={"lang": "en"})).text)
    assert f"{text('web.portal.book_open', 'en')} 02/03/2026" in english


async def test_a_refused_share_is_shown_on_its_form_with_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, _, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    page = await client.get("/portal/book/sharing")
    refused = await client.post(
        "/portal/book/sharing",
        data={
            "csrf": _csrf(page.text),
            "action": "share",
            "facility": "99999",
            "scope": "full",
            "sensitive": ["hiv"],
            "days": "30",
        },
    )
    assert refused.status_code == 422
    assert "<code>SHR-0015</code>" in refused.text
    assert html.escape(text("SHR-0015", "vi", {"facility": "99999"}), quote=False) in refused.text
    _, form = _form(refused.text, 'value="share"')
    assert re.search(r'name="facility"[^>]*value="99999"', form)
    assert re.search(r'value="full" checked', form)
    assert not re.search(r'value="summary" checked', form)
    assert re.search(r'value="hiv" checked', form)
    assert not re.search(r'value="tb" checked', form)
    assert re.search(r'name="days"[^>]*value="30"', form)
    _signed_in_header(refused.text, patient[1])
    assert (await client.get("/api/v1/me/consents")).json() == []
    # a number of days out of range too, on the form, the facility kept
    days = await client.post(
        "/portal/book/sharing",
        data={
            "csrf": _csrf(page.text),
            "action": "share",
            "whom": "every",
            "everyone": "confirmed",
            "days": "0",
        },
    )
    assert days.status_code == 422
    assert "<code>SHR-0011</code>" in days.text
    assert re.search(r'name="days"[^>]*value="0"', _form(days.text, 'value="share"')[1])


async def test_a_wrong_reception_code_is_shown_on_the_patients_page_which_names_nobody(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": other}
    )
    looked = await client.post(
        "/clinic/patient",
        data={"csrf": _csrf((await client.get("/clinic")).text), "id": patient[0]},
        follow_redirects=True,
    )
    assert looked.status_code == 200, looked.text[-400:]
    assert patient[0] not in str(looked.url)
    assert text("web.clinic.no_consent", "vi") in looked.text
    action, _ = _form(looked.text, 'name="code"')
    assert patient[0] not in action
    wrong = await client.post(action, data={"csrf": _csrf(looked.text), "code": "000001"})
    assert wrong.status_code == 403
    assert patient[0] not in str(wrong.url)
    assert html.escape(text("SHR-0008", "vi"), quote=False) in wrong.text
    assert "<code>SHR-0008</code>" in wrong.text
    # the same patient's page: the person looked up, both ways in, the code as typed
    assert re.search(rf'name="id" value="{patient[0]}"', wrong.text)
    action_again, code_form = _form(wrong.text, 'name="code"')
    assert re.search(r'name="code"[^>]*value="000001"', code_form)
    glass, _ = _form(wrong.text, 'name="reason"')
    assert patient[0] not in action_again + glass
    _signed_in_header(wrong.text, DOCTOR[1])
    # an emergency access with too short a reason: said there, the reason kept
    short = await client.post(
        glass, data={"csrf": _csrf(wrong.text), "reason": "unconscious", "text": "ốm"}
    )
    assert short.status_code == 422
    assert "<code>SHR-0009</code>" in short.text
    _, glass_form = _form(short.text, 'name="reason"')
    assert re.search(r'name="text"[^>]*value="ốm"', glass_form)
    assert re.search(r'value="unconscious" selected', glass_form)
    opened = await client.post(
        glass,
        data={"csrf": _csrf(short.text), "reason": "unconscious", "text": "brought in unconscious"},
        follow_redirects=False,
    )
    assert opened.status_code == 303
    assert opened.headers["location"].startswith("/clinic/patient?p=")
    assert patient[0] not in opened.headers["location"]
    assert 'id="basis"' in (await client.get(opened.headers["location"])).text


async def test_page_addresses_answer_pages_in_words_for_whoever_is_signed_in(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    for address in (
        "/portal/nothing",
        "/portal/book/nothing/here",
        "/book",
        "/clinic/nothing",
        "/review/nothing",
        "/department/nothing/at/all",
        "/verify/nothing",
    ):
        answer = await client.get(address)
        assert answer.status_code == 404, address
        assert answer.headers["content-type"].startswith("text/html"), address
        assert "<code>KIT-0404</code>" in answer.text
        _signed_in_header(answer.text, patient[1])
    # another method on a page's address: the page too, for the person signed in
    method = await client.get("/clinic/patient/code")
    assert (method.status_code, method.headers["content-type"][:9]) == (405, "text/html")
    _signed_in_header(method.text, patient[1])
    api = await client.get("/api/v1/nothing")
    assert (api.status_code, api.json()["code"]) == (404, "KIT-0404")
    # an address that is not a number: said in words, not the validator's
    visit = await client.get("/portal/book/visits/abc")
    assert visit.status_code == 422
    for raw in ("path.visit_id", "Input should be", "valid integer"):
        assert raw not in visit.text
    words = text("web.problem.number", "vi", {"field": text("web.field.visit_id", "vi")})
    assert html.escape(words, quote=False) in visit.text
    _signed_in_header(visit.text, patient[1])
    # in the reader's language, the other below
    english = await client.get("/portal/nothing", params={"lang": "en"})
    strong = re.search(r'class="error".*?<strong>(.*?)</strong>', english.text, re.S)
    assert strong is not None
    assert strong[1] == html.escape(text("KIT-0404", "en", {"path": "/portal/nothing"}))
    assert html.escape(text("web.back_home", "en"), quote=False) in english.text
    # a visit of the clinic page without its patient: back to the look-up, not "query.p"
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": other}
    )
    bare = await client.get("/clinic/visits/1", follow_redirects=False)
    assert (bare.status_code, bare.headers["location"]) == (303, "/clinic")
    # a form refused: the error page leads back to the form's page
    form = await client.post(
        "/portal/notifications/read-all",
        data={"csrf": "stale"},
        headers={"referer": "https://testserver/portal?x=1"},
    )
    assert form.status_code == 403
    assert 'href="/portal?x=1"' in form.text


async def test_a_level_1_identity_is_told_to_upgrade_not_led_to_a_refusal(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    hung = (HUNG, "Đặng Văn Hùng", "1978-04-04", "male")
    await sign_in_as(client, session, settings, hung, level=1)
    page = await client.get("/portal")
    assert 'href="/portal/book"' not in page.text
    upgrade = text("ID-0101", "vi", {"level": 1, "required": 2})
    assert html.escape(upgrade, quote=False) in page.text


async def test_revoking_a_share_and_reporting_a_read_ask_first(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, _, patient, _ = await world(client, session, settings)
    person = await sign_in_as(client, session, settings, patient)
    made = await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "full"})
    share = made.json()["id"]
    page = await client.get("/portal/book/sharing")
    # one tap does not revoke: the page has no form that would
    assert 'value="revoke"' not in page.text
    ask = re.search(rf'href="([^"]*revoke={share}[^"]*)"', page.text)
    assert ask is not None
    confirm = await client.get(html.unescape(ask[1]))
    assert confirm.status_code == 200
    assert text("web.sharing.revoke_confirm", "vi") in confirm.text
    action, form = _form(confirm.text, 'value="revoke"')
    assert f'name="directive" value="{share}"' in form
    [still] = (await client.get("/api/v1/me/consents")).json()
    assert still["in_force"] is True
    done = await client.post(
        action,
        data={"csrf": _csrf(confirm.text), "action": "revoke", "directive": str(share)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    [after] = (await client.get("/api/v1/me/consents")).json()
    assert after["in_force"] is False

    read = audit.audit_event(
        actor=f"person:{DOCTOR[0]}",
        action="clinical.read",
        object_type="record",
        object_id=patient[0],
        person_id=person.id,
        detail={"facility": consented},
    )
    session.add(read)
    await session.flush()
    log = await client.get("/portal/book/access-log")
    assert f'action="/portal/book/access-log/{read.id}/dispute"' not in log.text
    asked = await client.get(f"/portal/book/access-log/{read.id}/dispute")
    assert asked.status_code == 200
    assert text("web.access.dispute_confirm", "vi") in asked.text
    action, _ = _form(asked.text, text("web.access.dispute_send", "vi"))
    assert action == f"/portal/book/access-log/{read.id}/dispute"
    entries = (await client.get("/api/v1/me/access-log")).json()
    assert not next(e for e in entries if e["id"] == read.id)["disputed"]
    sent = await client.post(action, data={"csrf": _csrf(asked.text)}, follow_redirects=False)
    assert sent.status_code == 303
    entries = (await client.get("/api/v1/me/access-log")).json()
    assert next(e for e in entries if e["id"] == read.id)["disputed"]
    # asked again once sent: it says so, no second form
    again = await client.get(f"/portal/book/access-log/{read.id}/dispute")
    assert text("web.access.disputed", "vi") in again.text
    assert text("web.access.dispute_send", "vi") not in again.text
    # the largest ids are no error of ours: a page saying so (it was a 500, an overflow)
    for largest in (2**63 - 2, 2**63 - 1):
        odd = await client.get(f"/portal/book/access-log/{largest}/dispute")
        assert odd.status_code in (404, 422), odd.text
        assert odd.headers["content-type"].startswith("text/html")


async def test_sending_the_same_share_twice_keeps_one_share(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    csrf = _csrf((await client.get("/portal/book/sharing")).text)
    form = {
        "csrf": csrf,
        "action": "share",
        "facility": consented,
        "scope": "full",
        "sensitive": ["hiv", "tb"],
        "days": "30",
    }
    first = await client.post("/portal/book/sharing", data=form, follow_redirects=False)
    second = await client.post(
        "/portal/book/sharing", data=form | {"sensitive": ["tb", "hiv"]}, follow_redirects=False
    )
    [share] = (await client.get("/api/v1/me/consents")).json()
    assert first.headers["location"] == second.headers["location"]
    assert first.headers["location"].endswith(f"#share-{share['id']}")
    # another facility, scope, category or length is another share
    for changed in (
        {"facility": other},
        {"scope": "summary"},
        {"sensitive": ["hiv"]},
        {"days": ""},
    ):
        await client.post("/portal/book/sharing", data=form | changed)
    assert len((await client.get("/api/v1/me/consents")).json()) == 5
    # once revoked, the same share is made anew
    await client.delete(f"/api/v1/me/consents/{share['id']}")
    await client.post("/portal/book/sharing", data=form)
    assert len([s for s in (await client.get("/api/v1/me/consents")).json() if s["in_force"]]) == 5


def _messages(page: str) -> list[str]:
    found = re.search(r'<ul id="messages">(.*?)</ul>', page, re.S)
    assert found is not None
    return re.findall(r"<li[^>]*>(.*?)</li>", found[1], re.S)


async def test_each_message_leads_to_what_it_tells_of_and_older_ones_are_reached(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    sender, _, _, patient, _ = await world(client, session, settings)
    person = await sign_in_as(client, session, settings, patient)
    child = await identity.sign_in(
        session,
        {"sub": "v-child", "personal_id": CHILD[0], "name": CHILD[1], "birthdate": CHILD[2],
         "gender": CHILD[3], "assurance_level": 2},
    )  # fmt: skip
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=patient[0],
        subject_person=CHILD[0],
        relation="parent",
        valid_from=date(2017, 2, 3),
        valid_to=None,
    )
    entry = (
        await session.scalars(select(TimelineEntry).where(TimelineEntry.person_id == person.id))
    ).first()
    assert entry is not None
    older = [message(person.id, n, "viewed", facility=sender) for n in range(10, 15)]
    paper = message(person.id, 2, "paper")
    paper.params = {"facility": "BV", "kind": "Giấy ra viện", "number": "1/2026"}
    newer = [
        message(person.id, 1, "visit", facility=sender, visit_key=entry.visit_key),
        paper,
        message(person.id, 3, "emergency", facility=sender, reason="unconscious"),
        message(child.id, 4, "viewed", facility=sender),
        message(person.id, 5, "visit", facility=sender, visit_key="NOT-IN-THE-BOOK"),
    ] + [message(person.id, n, "viewed", facility=sender) for n in range(20, 25)]
    session.add_all(older)
    await session.flush()
    session.add_all(newer)
    await session.flush()
    page = await client.get("/portal")
    lines = _messages(page.text)
    assert len(lines) == 10
    # newest first: the five told first are the last five lines
    visit, papers, emergency, childs, gone = (
        re.findall(r'href="([^"]*)"', lines[len(newer) - 1 - i]) for i in range(5)
    )
    assert visit == [f"/portal/book/visits/{entry.id}"]
    assert papers == ["/portal/book/papers"]
    assert emergency == ["/portal/book/access-log"]
    assert len(childs) == 1
    assert childs[0].startswith("/portal/book/access-log?p=")
    assert CHILD[0] not in page.text.split('id="messages"', 1)[1]
    # a visit no longer in the book: the message, without a link
    assert gone == []
    assert [line for line in lines if "href=" not in line] == [lines[5]]
    opened = await client.get(visit[0])
    assert opened.status_code == 200
    childs_log = await client.get(html.unescape(childs[0]))
    assert childs_log.status_code == 200
    assert CHILD[1] in childs_log.text
    # the older ones, on the next page, then no further link
    more = re.search(r'id="more-messages" href="([^"]+)"', page.text)
    assert more is not None
    rest = await client.get(html.unescape(more[1]))
    assert len(_messages(rest.text)) == 5
    assert 'id="more-messages"' not in rest.text
    assert patient[0] not in more[1]
