"""The demo's facilities reach their onboarding states the way a real facility does, and say
so where they do not (``vnehr demo load``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import demo, facilities
from vnehr.audit import AuditEvent
from vnehr.facilities import service


async def test_the_demo_facilities_hold_the_facts_of_their_states(session: AsyncSession) -> None:
    await demo.load(session)
    found = {f.code: f.status for f in await facilities.listing(session, demo.OPERATOR, limit=10)}
    assert found == {
        "01001": "connected",
        "01002": "test_passed",
        "01003": "certificate_registered",
        "01004": "trained",
        "01005": "registered",
    }
    for code, status in found.items():
        _, certificates = await facilities.intake_context(session, code)
        usable = [c for c in certificates if not c.problem]
        # a certificate for every facility past "trained", registered as a facility does it:
        # the state moved on by itself (D10)
        assert bool(usable) == (status not in ("registered", "trained")), code
        history = await service.history(session, demo.OPERATOR, code)
        reasons = {e.to_state: e.reason for e in history}
        if usable:
            assert reasons["certificate_registered"] == "certificate"
        if status in ("test_passed", "connected"):  # no test file: an override, audited
            assert (reasons["test_passed"] or "").startswith("override (test_submission): ")
    overridden = list(
        await session.scalars(
            select(AuditEvent.object_id).where(
                AuditEvent.action == "facility.onboarding_overridden"
            )
        )
    )
    assert sorted(overridden) == ["01001", "01002"]
