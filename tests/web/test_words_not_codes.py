"""What the public check of a paper and the citizen's page say in words a person reads: dates
and moments as the book writes them (``14/03/1985``, ``10:30 11/11/2026`` in Vietnam time),
relations, roles, facilities and provinces by name rather than their codes."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import REGISTRAR, SCOPES, local_now
from tests.submissions.test_intake import facility_with_token, send
from vnehr import catalogs, identity
from vnehr.kit.clock import VIETNAM
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import synth

PARENT = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
CHILD = ("001216000789", "Hoàng Minh Khang", "2016-05-20", "male")


def _qr(jws: str) -> str:
    return f"shc:/{''.join(f'{ord(c) - 45:02d}' for c in jws)}"


def _shown(page: str) -> str:
    """The page's text as read: no tags, no script."""
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


async def test_the_verify_page_writes_dates_and_moments_as_the_book_does(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    stay = visit_of(
        code, 61, local_now() - timedelta(days=3), care_type="03", insured=True, referral=False
    )
    sent = await send(client, headers, synth.envelope([stay], code))
    assert sent.json()["status"] != "rejected", sent.text
    paper = (
        await session.scalars(
            select(Paper).where(Paper.facility_code == code, Paper.kind == "discharge")
        )
    ).one()
    qr = _qr(paper.jws)
    facts = (await client.post("/api/v1/papers/verify", json={"qr": qr})).json()["paper"]
    admitted = datetime.fromisoformat(facts["facts"]["admitted"])
    signed = date.fromisoformat(facts["signed_on"])
    for lang in ("vi", "en"):
        page = _shown((await client.post("/verify", data={"qr": qr}, params={"lang": lang})).text)
        assert text("web.verify.valid", lang) in page
        label = text("web.verify.fact.admitted", lang)
        assert f"{label} {admitted.astimezone(VIETNAM):%H:%M %d/%m/%Y}" in page
        assert f"{text('web.papers.signed', lang)} {signed:%d/%m/%Y}" in page
        assert facts["facts"]["admitted"] not in page
        assert not re.search(r"\d{4}-\d{2}-\d{2}", page), page


async def test_the_portal_names_relations_roles_facilities_and_provinces_in_words(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    facility, _ = await facility_with_token(client, session, settings)
    await sign_in_as(client, session, settings, CHILD)
    await sign_in_as(
        client,
        session,
        settings,
        PARENT,
        {"role": "department_admin", "province_code": "01"},
        {"role": "clinician", "facility_code": facility},
        {"role": "ward_officer", "ward_code": "00070"},
    )
    await identity.add_representative(
        session,
        REGISTRAR,
        agent_personal_id=PARENT[0],
        subject_person=CHILD[0],
        relation="parent",
        valid_from=date(2020, 1, 1),
        valid_to=None,
    )
    page = _shown((await client.get("/portal")).text)
    assert f"{CHILD[1]} ({text('web.access.relation.parent', 'vi')})" in page
    assert "(parent)" not in page
    province = await catalogs.lookup(session, "province", "01")
    ward = await catalogs.lookup(session, "ward", "00070")
    assert province.title_vi
    assert ward.title_vi
    for role, place in (
        ("department_admin", province.title_vi),
        ("clinician", "Bệnh viện thử"),
        ("ward_officer", ward.title_vi),
    ):
        assert f"{text(f'web.role.{role}', 'vi')} — {place}" in page
        assert role not in page
    assert "Tỉnh 01" not in page
