"""Two reviewers close the same emergency access at the same moment, on PostgreSQL where two
requests really run side by side (D182). Before, both read it open: the second's finding
overwrote the first's, and two `emergency.reviewed` events went out, so the citizen could be
told "found unjustified, ended" of an access that went on running as "justified"."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.exchange.test_inbox import AN, signed_in
from vnehr.audit import AuditEvent
from vnehr.cli import app
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import get_settings
from vnehr.sharing import service
from vnehr.sharing.models import EmergencyAccess

FACILITY = "01001"


def _admin(personal_id: str) -> Subject:
    return Subject("person", personal_id, "admin", (Grant("department_admin", province_code="01"),))


@pytest.fixture
def url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    runner = CliRunner()
    database = new_database_on(postgres_url, "review_race")
    monkeypatch.setenv("VNEHR_DATABASE_URL", database)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0  # facility 01001
    yield database
    get_settings.cache_clear()


def test_of_two_reviews_at_once_the_first_stands_and_is_told_once(url: str) -> None:
    async def main() -> None:
        first, second = Database.from_urls(url), Database.from_urls(url)  # two API workers
        try:
            async with first.session() as session:
                person = await signed_in(session, AN)
                now = utcnow()
                access = EmergencyAccess(
                    person_id=person,
                    facility_code=FACILITY,
                    clinician="person:001090000001",
                    reason_code="unconscious",
                    reason_text="brought in unconscious, no relative reachable",
                    opened_at=now,
                    expires_at=now + timedelta(hours=24),
                    status="open",
                )
                session.add(access)
                await session.flush()
                access_id = access.id
            async with first.session() as session:  # the first finds it unjustified ...
                await service.review(
                    session, _admin("001090000002"), access_id, "no emergency", "unjustified"
                )

                async def other() -> tuple[str, str | None, str | None]:
                    async with second.session() as theirs:
                        row = await service.review(
                            theirs, _admin("001090000003"), access_id, "fine", "justified"
                        )
                        return row.status, row.review_outcome, row.reviewed_by

                waiting = asyncio.create_task(other())  # ... as the second closes it too
                await asyncio.sleep(0.5)
                assert not waiting.done()  # it waits for the first
            # the second sees the first's review: nothing changed, nothing told
            status = await asyncio.wait_for(waiting, 10)
            assert status == ("reviewed", "unjustified", "person:001090000002")
            async with first.read_session() as session:
                row = await session.get(EmergencyAccess, access_id)
                assert row is not None
                assert (row.review_outcome, row.review_note) == ("unjustified", "no emergency")
                told = await session.scalars(
                    select(OutboxEvent.payload).where(OutboxEvent.topic == "emergency.reviewed")
                )
                assert [p["outcome"] for p in told] == ["unjustified"]
                audited = await session.scalars(
                    select(AuditEvent.actor).where(AuditEvent.action == "emergency.reviewed")
                )
                assert list(audited) == ["person:001090000002"]
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())
