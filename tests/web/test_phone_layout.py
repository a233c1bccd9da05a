"""The department's pages and the review queue on a phone (390 px wide, as a real browser lays
them out): nothing wider than the screen, so nobody scrolls sideways to read a row; the
Ministry's matrix scrolls inside its own box."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.web.test_browser import browser, server  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.e2e

#: An element wider than the screen, by tag, class and the start of its text.
OVERFLOW_JS = """
() => [...document.querySelectorAll('body *')]
  .filter(el => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= window.innerWidth + 1) return false;
    for (let up = el.parentElement; up; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (['auto', 'scroll'].includes(style.overflowX)) return false;  // scrolls in its box
    }
    return true;
  })
  .map(el => el.tagName + '.' + el.className + ': ' + (el.textContent || '').trim().slice(0, 40))
"""


async def test_the_department_pages_fit_a_phone(
    server: str,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    context = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    await expect(page).to_have_url(server + "/portal")
    for address in (
        "/department/facilities",
        "/department/facilities/01001",
        "/department/report",
        "/review",
    ):
        for lang in ("vi", "en"):
            await page.goto(f"{server}{address}?lang={lang}")
            wide = await page.evaluate(OVERFLOW_JS)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert (width, wide[:5]) == (390, []), f"{address} ({lang})"
    await context.close()
