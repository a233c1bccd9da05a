"""The book's download section for a reader of English: the PDF comes in the page's language
(D209, as amended), so its link says no other language; the Vietnamese link is unchanged."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN
from tests.identity.test_api import sign_in_as
from vnehr.kit.settings import Settings


def _pdf_link(page: str) -> str:
    found = re.search(r'<a class="download" href="/portal/book/download\.pdf">(.*?)</a>', page)
    assert found is not None, page[-2000:]
    return found[1]


async def test_a_reader_of_english_is_offered_the_pdf_in_english(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await sign_in_as(client, session, settings, AN)
    english = await client.get("/portal/book", params={"lang": "en"})
    assert english.status_code == 200
    assert _pdf_link(english.text) == "Download as PDF"
    # (the file it downloads is the English book: tests/healthbook/test_book_english.py)
    vietnamese = await client.get("/portal/book", params={"lang": "vi"})
    assert _pdf_link(vietnamese.text) == "Tải bản PDF"
