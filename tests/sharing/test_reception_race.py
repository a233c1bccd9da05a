"""Wrong reception codes sent at the same time are counted one after another (D74): a burst of
parallel guesses, each in its own committed transaction on PostgreSQL, still voids the code
after five."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import func, select

from tests.conftest import new_database_on
from tests.submissions.test_intake import new_facility
from vnehr import catalogs, identity, sharing
from vnehr.audit import AuditEvent
from vnehr.demo import demo_icd10_titles
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.sharing import errors as sharing_errors

PATIENT = "001085004217"
DOCTOR = Subject(
    kind="person", id="001080001111", name="BS. Thử", assurance_level=2,
    grants=(Grant("clinician", facility_code="01001"),),
)  # fmt: skip


@pytest.fixture
def race_url(postgres_url: str) -> str:
    return new_database_on(postgres_url, "reception_race")


async def test_parallel_wrong_codes_still_void_the_code_after_five(race_url: str) -> None:
    await upgrade(race_url)
    db = Database.from_urls(race_url, pool_size=10)
    try:
        async with db.session() as session:
            await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
            # the doctor's facility, connected: a clinician acts only for a connected one
            assert await new_facility(session) == "01001"
            await identity.sign_in(
                session,
                {"sub": "v-1", "personal_id": PATIENT, "name": "Nguyễn Văn An",
                 "birthdate": "1985-03-14", "gender": "male", "assurance_level": 2},
            )  # fmt: skip
        patient = Subject(kind="person", id=PATIENT, name="An", assurance_level=2)
        async with db.session() as session:
            code, _ = await sharing.reception_code(session, patient)
        tries = 6
        together = asyncio.Barrier(tries)
        guesses = [f"{n:06d}" for n in range(100) if f"{n:06d}" != code][:tries]

        async def guess(text: str) -> None:
            async with db.session() as session:
                with pytest.raises(sharing_errors.BadReceptionCode):
                    await sharing.redeem(session, DOCTOR, PATIENT, text, None)
                # hold the transaction open until all are in flight (or, when they take turns
                # at the patient's codes, a moment), then commit as the route does
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(together.wait(), 0.5)

        await asyncio.gather(*(guess(g) for g in guesses))
        async with db.session() as session:
            failed = await session.scalar(
                select(func.count()).where(AuditEvent.action == "consent.reception_failed")
            )
            assert failed == tries
            with pytest.raises(sharing_errors.BadReceptionCode):
                await sharing.redeem(session, DOCTOR, PATIENT, code, None)
    finally:
        await db.dispose()
