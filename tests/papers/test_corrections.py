"""A corrected visit file takes back the papers its new version no longer carries: an
appointment dropped from the visit, or given a corrected number, no longer verifies as valid;
what the new version carries stays as it was."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.papers.test_api import SCOPES, local_now, sick_leave, verify
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import synth


async def _papers(session: AsyncSession, code: str) -> list[Paper]:
    found = await session.scalars(
        select(Paper).where(Paper.facility_code == code).order_by(Paper.issued_at, Paper.number)
    )
    return list(found.all())


def qr_of(paper: Paper) -> str:
    return "shc:/" + "".join(f"{ord(c) - 45:02d}" for c in paper.jws)


async def test_an_appointment_dropped_from_the_corrected_visit_is_withdrawn(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 51, local_now() - timedelta(days=5), care_type="01", insured=True, appointment=True
    )
    one.tables["XML11"] = [sick_leave(one, 3)]
    await send(client, headers, synth.envelope([one], code))
    appointment, leave = sorted(await _papers(session, code), key=lambda p: p.kind)
    assert (appointment.kind, leave.kind) == ("re_exam", "sick_leave")
    assert (await verify(client, qr_of(appointment)))["valid"] is True

    # the facility corrects the visit: the appointment was a mistake, XML14 is dropped
    dropped = one.tables.pop("XML14")
    one.tables["XML1"][0]["GHI_CHU"] = "Không hẹn khám lại"
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["visits"][0]["outcome"] == "changed", receipt
    checked = await verify(client, qr_of(appointment))
    assert (checked["authentic"], checked["valid"], checked["status"]) == (True, False, "revoked")
    assert checked["reason"] == "withdrawn"
    # the sick leave the new version still carries is untouched (no new version either)
    await session.refresh(leave)
    assert (leave.status, leave.version) == ("valid", 1)
    assert len(await _papers(session, code)) == 2

    # corrected back: the appointment is valid again, as a new version of the paper
    one.tables["XML14"] = dropped
    one.tables["XML1"][0]["GHI_CHU"] = "Hẹn khám lại"
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["visits"][0]["outcome"] == "changed", receipt
    again = [p for p in await _papers(session, code) if p.kind == "re_exam" and p.version == 2]
    assert [(p.number, p.status) for p in again] == [(appointment.number, "valid")]
    assert (await verify(client, qr_of(again[0])))["valid"] is True


async def test_an_appointment_renumbered_by_a_correction_leaves_one_valid(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 52, local_now() - timedelta(days=5), care_type="01", insured=True, appointment=True
    )
    await send(client, headers, synth.envelope([one], code))
    old_number = one.tables["XML14"][0]["SO_GIAYHEN_KL"]
    one.tables["XML14"][0]["SO_GIAYHEN_KL"] = old_number + "A"
    receipt = (await send(client, headers, synth.envelope([one], code))).json()
    assert receipt["visits"][0]["outcome"] == "changed", receipt
    found = {p.number: (p.status, p.revoke_reason) for p in await _papers(session, code)}
    assert found == {old_number: ("revoked", "withdrawn"), old_number + "A": ("valid", None)}
