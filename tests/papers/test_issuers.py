"""Only a connected facility issues papers: one still onboarding (its visits are test
submissions) or suspended issues nothing a verifier would take as valid."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import sign_in_as
from tests.papers.test_api import SCOPES, driver_body
from tests.submissions.test_intake import ADMIN, connect, facility_with_token
from vnehr import facilities
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper


async def _papers(session: AsyncSession, code: str) -> int:
    found = await session.scalar(
        select(func.count()).select_from(Paper).where(Paper.facility_code == code)
    )
    return int(found or 0)


async def test_an_onboarding_facility_issues_no_paper_until_it_is_connected(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, steps=2, scopes=SCOPES)
    refused = await client.post("/api/v1/papers", json=driver_body(), headers=headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "PAP-0007"
    # the state in words, its name in the detail (D220)
    assert 'the step "Certificate registered"' in refused.json()["message"]["en"]
    assert refused.json()["detail"]["status"] == "certificate_registered"
    assert await _papers(session, code) == 0
    await connect(session, code)
    issued = await client.post("/api/v1/papers", json=driver_body(), headers=headers)
    assert issued.status_code == 201, issued.text


async def test_staff_of_a_suspended_facility_issue_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, _ = await facility_with_token(client, session, settings, scopes=SCOPES)
    await facilities.move(session, ADMIN, code, facilities.State.suspended, "vi phạm")
    await sign_in_as(
        client,
        session,
        settings,
        ("001185012399", "Bác Sĩ Thử", "1985-05-05", "female"),
        {"role": "clinician", "facility_code": code},
    )
    refused = await client.post("/api/v1/papers", json=driver_body(facility_code=code))
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "PAP-0007"
    assert await _papers(session, code) == 0
