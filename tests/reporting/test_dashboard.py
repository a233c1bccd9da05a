"""The department's report page: its charts are words and figures a reader (and a screen
reader) can read, each bar telling its figure, the wards named as the catalogue names them."""

from __future__ import annotations

import re
from html import unescape

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import who
from tests.identity.test_api import sign_in_as
from tests.reporting.test_report import ADMIN, DEPARTMENT, PERIOD, deliver, world
from vnehr import catalogs, identity, reporting
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings


def _charts(page: str) -> list[str]:
    """The charts of the page: each ``<figure class="chart">``'s content."""
    return re.findall(r'<figure class="chart">(.*?)</figure>', page, flags=re.S)


def _said(svg: str) -> set[str]:
    """What a chart says in words: its texts and its bars' titles."""
    return {unescape(t).strip() for t in re.findall(r">([^<>]+)</(?:text|title)>", svg)}


async def test_the_charts_name_their_bars_with_their_figures(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    made = await world(client, session, settings)
    for person, ward in zip([who(v) for v in made["visits"][:2]], ["00004", "00070"], strict=True):
        await sign_in_as(client, session, settings, person)
        await identity.set_residence(session, ADMIN, person[0], ward)
        assert (await client.post("/api/v1/me/account")).status_code in (200, 201)
    await reporting.load_population(session, "ward_code,population\n00004,20000\n00070,18000\n")
    await deliver(db)
    figures = await reporting.figures(session, PERIOD, province="01", cost_per_record=5000)
    await sign_in_as(
        client, session, settings, DEPARTMENT, {"role": "department_admin", "province_code": "01"}
    )

    page = await client.get("/department/report?period=2026H2")
    assert page.status_code == 200
    matrix, accounts, lag = _charts(page.text)

    said = _said(matrix)
    assert {"Có thẻ BHYT", "Không có thẻ BHYT"} <= said
    for row in figures["matrix"]:
        name = row["title"][0]
        assert name in said
        assert f"{name}, có thẻ BHYT: {row['insured']['sent']}" in said
        assert f"{name}, không có thẻ BHYT: {row['uninsured']['sent']}" in said

    # the wards by the names the catalogue gives them on the period's last day
    said = _said(accounts)
    assert "Tài khoản Sổ sức khỏe điện tử theo phường, xã" in said
    shares = {w["ward"]: w["share"] for w in figures["people"]["by_ward"]}
    for ward in ("00004", "00070"):
        name = (await catalogs.lookup(session, "ward", ward, PERIOD.end)).title_vi
        assert name
        assert f"{name}: {100 * shares[ward]:.1f} %".replace(".", ",") in said
    named = {w["ward"]: w["name"] for w in figures["people"]["by_ward"]}
    for ward, name in named.items():
        assert name == (await catalogs.lookup(session, "ward", ward, PERIOD.end)).title_vi

    said = _said(lag)
    assert "Độ trễ từ khi kết thúc lượt khám đến khi nhận" in said
    bars = [t for t in said if re.fullmatch(r"(≤ .+|> 1 năm|lâu hơn): [0-9.]+", t)]
    assert sum(int(t.rsplit(": ", 1)[1].replace(".", "")) for t in bars) == len(made["visits"])
