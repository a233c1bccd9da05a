"""What a facility's administrator meets on her page after a review in a real browser: on a
phone the next step and the receipts come first and the rarely used parts fold away; a file
the check refuses is told in the reader's language, and an issue names its place once."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import bearer, new_system, send, visit
from tests.web.test_facility_page import BINH, _facility, _shown
from tests.web.test_facility_page import _section as _marked_up
from tests.web.test_login import _hidden, login
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def _section(page: str, anchor: str) -> str:
    """A part of the page as read (``&`` a character, not ``&amp;``)."""
    return html.unescape(_marked_up(page, anchor))


def _folded(html: str, anchor: str) -> str | None:
    """The opening ``<details ...>`` tag around the heading ``anchor``, None when unfolded."""
    at = html.index(f'id="{anchor}"')
    opened = html.rfind("<details", 0, at)
    if opened < 0 or html.rfind("</details>", 0, at) > opened:
        return None
    return html[opened : html.index(">", opened) + 1]


async def test_the_next_step_and_the_receipts_come_first_the_rest_folds_away(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code = await _facility(session, steps=4)  # connected, its certificate ends in 20 days
    client_id, key = await new_system(session, code, ("submission.write",))
    headers = await bearer(client, settings, client_id, key)
    bad = visit(code, 3, defect="wrong_total")
    sent = await send(client, headers, synth.envelope([visit(code, 2), bad], code))
    assert sent.json()["status"] == "partially_accepted", sent.text
    await send(client, headers, synth.envelope([visit(code, 4)], code))

    await login(client, BINH)
    page = (await client.get(f"/facility/{code}")).text
    order = [page.index(f'id="{a}"') for a in ("next-step", "receipts", "check", "history")]
    assert order == sorted(order), order
    # the history and the staff are there, folded; the certificates open (one ends soon)
    for anchor in ("history", "systems", "clinicians"):
        folded = _folded(page, anchor)
        assert folded is not None, anchor
        assert " open" not in folded, anchor
    certificates = _folded(page, "certificates")
    assert certificates is not None
    assert " open" in certificates
    assert _folded(page, "next-step") is None
    assert _folded(page, "receipts") is None
    # the receipt with a rejected visit is named above the list, a tap away
    rejected = re.search(r'<p[^>]*id="rejected-receipts"[^>]*>(.*?)</p>', page, re.S)
    assert rejected is not None
    assert f'href="#receipt-{sent.json()["id"]}"' in rejected.group(1)
    assert "1 biên nhận có lượt khám bị từ chối" in _shown(rejected.group(1))
    english = (await client.get(f"/facility/{code}?lang=en")).text
    assert "1 receipt with a rejected visit" in _section(english, "receipts")


async def test_a_file_refused_whole_is_told_in_the_readers_language(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await login(client, BINH)
    csrf = _hidden((await client.get(f"/facility/{code}")).text)["csrf"]
    whole = synth.envelope([visit(code, 1)], code)
    cases = (
        # (the file, words in Vietnamese, words in English, the parser's English never in vi)
        (whole[: len(whole) // 2], "kết thúc khi thẻ", "ends inside the element", "Premature"),
        (b"not xml at all", "không bắt đầu bằng thẻ XML", "does not start with", "Start tag"),
        (b"<GIAMDINHHS>a & b</GIAMDINHHS>", "dấu &", "an & that", "xmlParseEntityRef"),
        (
            b"<GIAMDINHHS><A></B></GIAMDINHHS>",
            "thẻ mở A không khớp thẻ đóng B",
            "opening tag A does not match the closing tag B",
            "mismatch",
        ),
        ("<GIAMDINHHS/>".encode("utf-16"), "UTF-16 hoặc UTF-32", "UTF-16 or UTF-32", " or "),
        (
            b"<GIAMDINHHS>\xff</GIAMDINHHS>",
            "byte thứ 13 không phải UTF-8",
            "byte 13 is",
            "not UTF-8 at",
        ),
        (
            b"<GIAMDINHHS>" + b"<a>" * 40 + b"</a>" * 40 + b"</GIAMDINHHS>",
            "lồng nhau quá 32 cấp",
            "nested more than 32 levels",
            "deeper",
        ),
    )
    for body, vietnamese, english, foreign in cases:
        shown = {}
        for lang in ("vi", "en"):
            answer = await client.post(
                f"/facility/{code}/check?lang={lang}",
                data={"csrf": csrf},
                files={"file": ("hoso.xml", body, "application/xml")},
            )
            assert answer.status_code == 422, _shown(answer.text)[-400:]
            shown[lang] = _section(answer.text, "check-result")
        assert vietnamese in shown["vi"], shown["vi"]
        assert foreign not in shown["vi"], shown["vi"]
        assert english in shown["en"], shown["en"]
    # where the parser stopped, counted from 1 as editors do (just after the "&")
    answer = await client.post(
        f"/facility/{code}/check?lang=vi",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", b"<GIAMDINHHS>a & b</GIAMDINHHS>", "application/xml")},
    )
    assert "dòng 1, cột 16" in _section(answer.text, "check-result")


async def test_a_file_over_the_cap_is_told_its_size_in_megabytes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code = await _facility(session, steps=4)
    await login(client, BINH)
    csrf = _hidden((await client.get(f"/facility/{code}")).text)["csrf"]
    cap = settings.max_body_bytes
    body = b"<GIAMDINHHS>" + b" " * (cap + 3 * 1024 * 1024) + b"</GIAMDINHHS>"
    answer = await client.post(
        f"/facility/{code}/check",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", body, "application/xml")},
    )
    assert answer.status_code == 413
    result = _section(answer.text, "check-result")
    mb = cap // (1024 * 1024)
    assert f"tối đa {mb} MB" in result, result
    assert f"{mb + 3} MB" in result, result  # the file's own size, not the cap plus one byte
    assert str(cap) not in result.replace(".", "")


async def test_an_issue_names_its_table_row_and_field_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await login(client, BINH)
    csrf = _hidden((await client.get(f"/facility/{code}")).text)["csrf"]
    long_name = visit(code, 5, defect="too_long")
    answer = await client.post(
        f"/facility/{code}/check",
        data={"csrf": csrf},
        files={"file": ("hoso.xml", synth.envelope([long_name], code), "application/xml")},
    )
    result = _section(answer.text, "check-result")
    assert "SUB-0111" in result, result
    assert "Bảng XML1, dòng 1: trường HO_TEN" in result
    assert "(bảng XML1" not in result  # the words say where already
