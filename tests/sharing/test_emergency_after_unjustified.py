"""An emergency access found unjustified ends at once (D159), and its clinician cannot open the
same patient's record in an emergency again for ``VNEHR_EMERGENCY_BAR_DAYS`` days: before,
the next request opened a new one, so "ends at once" lasted one request. Another clinician
still opens it in a real emergency; the clinician is told why and what is left to them."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import error, sign_in_as
from tests.sharing.test_access import DOCTOR, OTHER_DOCTOR, SUPERVISOR, world
from tests.sharing.test_emergency_review import _break_glass
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings
from vnehr.sharing.models import EmergencyAccess

EMERGENCY = {"reason": "unconscious", "text": "Bệnh nhân hôn mê, không người nhà"}
NEIGHBOUR = ("001190006666", "Đỗ Thị Lan", "1990-02-02", "female")


async def _opened(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(EmergencyAccess)) or 0)


async def test_a_clinician_found_unjustified_cannot_break_the_glass_on_the_patient_again(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, consented, other, patient, _ = await world(client, session, settings)
    await sign_in_as(client, session, settings, NEIGHBOUR)  # another person, with a book
    record = f"/api/v1/patients/{patient[0]}/record"
    both = (
        {"role": "clinician", "facility_code": other},
        {"role": "clinician", "facility_code": consented},
    )
    await sign_in_as(client, session, settings, OTHER_DOCTOR, *both)
    first = await client.post(
        f"/api/v1/patients/{patient[0]}/break-glass", json={**EMERGENCY, "facility": other}
    )
    assert first.status_code == 201, first.text
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "facility_admin", "facility_code": other}
    )
    reviewed = await client.post(
        f"/api/v1/emergency-accesses/{first.json()['id']}/review",
        json={"note": "Không có cấp cứu", "outcome": "unjustified"},
    )
    assert reviewed.status_code == 200, reviewed.text

    # the reviewer's case: the same clinician opened it again at once, and read
    await sign_in_as(client, session, settings, OTHER_DOCTOR, *both)
    opened = await _opened(session)
    for facility in (other, consented):  # the clinician, wherever they work
        body = error(
            await client.post(
                f"/api/v1/patients/{patient[0]}/break-glass",
                json={**EMERGENCY, "facility": facility},
            ),
            403,
            "SHR-0020",
        )
        assert str(settings.emergency_bar_days) in body["message"]["en"]
        assert "reception code" in body["message"]["en"]
        assert "mã xuất trình" in body["message"]["vi"]
    assert await _opened(session) == opened
    error(await client.get(f"{record}?facility={other}"), 403, "SHR-0001")
    # the clinic page's form says the same, in words
    page = await client.get("/clinic/patient", params={"id": patient[0], "facility": other})
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    refused = await client.post(
        f"/clinic/patient/{patient[0]}/break-glass",
        data={"csrf": token, "facility": other, **EMERGENCY},
        follow_redirects=False,
    )
    assert (refused.status_code, "SHR-0020" in refused.text) == (403, True)
    assert "mã xuất trình" in refused.text
    # another patient in an emergency: the bar is about this patient only
    assert (
        await client.post(
            f"/api/v1/patients/{NEIGHBOUR[0]}/break-glass", json={**EMERGENCY, "facility": other}
        )
    ).status_code == 201

    # a real emergency is still possible: another clinician of the same facility opens it
    await sign_in_as(
        client, session, settings, DOCTOR, {"role": "clinician", "facility_code": other}
    )
    await _break_glass(client, patient[0])
    assert (await client.get(record)).json()["basis"] == "emergency"

    # once the bar's days have passed since the finding, the clinician may again
    await session.execute(
        update(EmergencyAccess)
        .where(EmergencyAccess.id == first.json()["id"])
        .values(reviewed_at=utcnow() - timedelta(days=settings.emergency_bar_days, minutes=1))
    )
    await sign_in_as(client, session, settings, OTHER_DOCTOR, *both)
    again = await client.post(
        f"/api/v1/patients/{patient[0]}/break-glass", json={**EMERGENCY, "facility": other}
    )
    assert again.status_code == 201, again.text


async def test_a_justified_finding_does_not_bar_the_clinician(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, other, patient, _ = await world(client, session, settings)
    at_other = {"role": "clinician", "facility_code": other}
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    first = await _break_glass(client, patient[0])
    await sign_in_as(
        client, session, settings, SUPERVISOR, {"role": "facility_admin", "facility_code": other}
    )
    reviewed = await client.post(
        f"/api/v1/emergency-accesses/{first}/review",
        json={"note": "Cấp cứu thật", "outcome": "justified"},
    )
    assert reviewed.status_code == 200, reviewed.text
    await sign_in_as(client, session, settings, OTHER_DOCTOR, at_other)
    await _break_glass(client, patient[0])
