"""The "who viewed my record" page says, in the citizen's language, what became of each
emergency access: awaiting its review, or found justified or unjustified on a given day. An
ordinary read says nothing of a review; a parent of a 17-year-old reads the finding without
the facility."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import BINH, as_person
from tests.exchange.test_push_privacy import represent
from tests.healthbook.test_access import born_years_ago
from tests.identity.test_api import sign_in_as
from tests.sharing.test_access import DOCTOR, OTHER_DOCTOR, world
from tests.sharing.test_emergency_review import _break_glass
from tests.sharing.test_emergency_review_told import _named, _review
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.settings import Settings

PAGE = "/portal/book/access-log"


async def test_the_page_says_in_words_what_the_review_of_an_emergency_access_found(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    await client.post("/api/v1/me/consents", json={"facility": consented, "scope": "summary"})
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": consented}
    )
    assert (await client.get(f"/api/v1/patients/{patient[0]}/record")).status_code == 200
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    access = await _break_glass(client, patient[0])

    await sign_in_as(client, session, settings, patient)
    page = (await client.get(PAGE)).text
    assert page.count("Quyền truy cập khẩn cấp này đang chờ được xem xét") == 1
    assert "chính đáng" not in page

    await _review(client, session, settings, {access: "unjustified"})
    await sign_in_as(client, session, settings, patient)
    day = today_in_vietnam().strftime("%d/%m/%Y")
    page = (await client.get(PAGE)).text
    assert page.count(f"Đã được xem xét ngày {day}: không chính đáng") == 1
    assert "đang chờ được xem xét" not in page
    english = (await client.get(PAGE, params={"lang": "en"})).text
    assert english.count(f"Reviewed on {day}: unjustified") == 1
    assert "không chính đáng" not in english


async def test_a_parent_of_a_seventeen_year_old_reads_the_finding_without_the_facility(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, patient)
    await born_years_ago(session, patient[0], 17)
    await represent(
        session, BINH, patient[0], "parent", today_in_vietnam() - timedelta(days=365 * 17)
    )
    await sign_in_as(
        client, session, settings, OTHER_DOCTOR, {"role": "clinician", "facility_code": other}
    )
    access = await _break_glass(client, patient[0])
    await _review(client, session, settings, {access: "justified"})
    name = await _named(session, other)
    as_person(client, settings, BINH[0])
    page = (await client.get(PAGE)).text
    assert "Một cơ sở khám bệnh, chữa bệnh" in page
    assert f"Đã được xem xét ngày {today_in_vietnam().strftime('%d/%m/%Y')}: chính đáng" in page
    assert name not in page
    assert other not in page
    assert OTHER_DOCTOR[1] not in page
