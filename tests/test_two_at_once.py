"""The same request twice at once, on PostgreSQL with two workers (two connection pools on one
fresh database; the first request paused just before its commit, the second started
meanwhile): a double submit, a retry after a timeout, two reviewers, two reads of one record.
Each time the second waits for the first and then answers as for a request sent again: one
grant, one account and one "opened" event, one case, the first finding kept, one check-in
relayed, one resource for one condition, one "viewed" notice. Before (D253) these gave
duplicates, a lost answer or a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import new_database_on
from tests.identity.test_service import claims, dept, person, ward_officer
from tests.submissions.test_intake import checkin_row
from vnehr import audit, catalogs, healthbook, identity, reporting, sharing
from vnehr.demo import demo_icd10_titles
from vnehr.facilities.models import Facility
from vnehr.fhir import write
from vnehr.identity.models import AccountEvent, HealthAccount, RoleGrant
from vnehr.kit.auth import Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.kit.outbox import OutboxEvent
from vnehr.reporting.models import ReportNote
from vnehr.sharing.repository import SharingRepository
from vnehr.submissions.models import Submission
from vnehr.submissions.service import IntakeOptions, check_in
from vnehr.submissions.xmlio import Limits, write_table

HOAN_KIEM = "00070"
MAI = ("001190012345", "Nguyễn Thị Mai", "1990-05-12", "female")
NAM = ("001090023456", "Trần Văn Nam", "1990-03-01", "male")
DEPARTMENT = person("079054001111", dept(None))
OTHER_REVIEWER = person("079054002222", dept(None))
HIS = Subject(
    kind="facility_system",
    id="01001-01-his",
    name="HIS",
    scopes=frozenset({"submission.write", "checkin.write"}),
    facility_code="01001",
)

Op = Callable[[AsyncSession], Awaitable[Any]]


@pytest.fixture
def fresh_url(postgres_url: str) -> str:
    return new_database_on(postgres_url, "two_at_once")


@pytest.fixture
async def two(fresh_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two workers' pools on one fresh database with the catalogues, Mai (living in Hoàn
    Kiếm, on VNeID) and a connected facility 01001."""
    await upgrade(fresh_url)
    first, second = Database.from_urls(fresh_url), Database.from_urls(fresh_url)
    async with first.session() as session:
        await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
        mai = await identity.sign_in(session, claims(MAI))
        mai.residence_ward_code = HOAN_KIEM
        session.add(
            Facility(code="01001", name="Bệnh viện 01001", kind="hospital", level="specialised",
                     ownership="public", province_code="01", status="connected",
                     created_at=utcnow(), created_by="test", search_key=" 01001 benh vien")
        )  # fmt: skip
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def at_once(dbs: tuple[Database, Database], first: Op, second: Op | None = None) -> list[Any]:
    """``first`` in one worker, paused before its commit; ``second`` (or ``first`` again) in
    the other meanwhile, which must wait for the commit. Their results, in that order."""
    a, b = dbs
    written, go = asyncio.Event(), asyncio.Event()

    async def one() -> Any:
        async with a.session() as session:
            found = await first(session)
            written.set()
            await go.wait()
            return found

    async def other() -> Any:
        async with b.session() as session:
            return await (second or first)(session)

    task = asyncio.create_task(one())
    paused = asyncio.create_task(written.wait())
    await asyncio.wait([task, paused], return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # the first failed before its pause: its error, not a hang
        paused.cancel()
        task.result()
    later = asyncio.create_task(other())
    await asyncio.sleep(0.5)
    waited = not later.done()
    go.set()
    results = [await task, await later]
    assert waited, "the second request did not wait for the first"
    return results


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_a_role_granted_twice_at_once_is_one_grant(two: tuple[Database, Database]) -> None:
    async def grant(session: AsyncSession) -> int:
        made = await identity.add_grant(
            session, DEPARTMENT, personal_id=NAM[0], role="clinician", facility_code="01001"
        )
        return made.id

    first, second = await at_once(two, grant)
    assert first == second
    assert await _count(two[0], RoleGrant, RoleGrant.revoked_at.is_(None)) == 1
    async with two[0].session() as session:  # revoking it takes the role away
        await identity.revoke_grant(session, DEPARTMENT, first)
    async with two[0].read_session() as session:
        assert [g.role for g in await identity.grants_for(session, NAM[0])] == ["citizen"]


async def test_a_book_opened_or_closed_twice_at_once_is_told_once(
    two: tuple[Database, Database],
) -> None:
    mai = person(MAI[0])
    opened = await at_once(two, lambda s: identity.open_account(s, mai))
    assert opened[0].id == opened[1].id
    assert await _count(two[0], HealthAccount) == 1
    await at_once(two, lambda s: identity.close_account(s, mai, "Tôi không dùng nữa"))
    assert await _count(two[0], AccountEvent, AccountEvent.action == "opened") == 1
    assert await _count(two[0], AccountEvent, AccountEvent.action == "closed") == 1
    # the report's counters hear +1 and -1, not -2
    assert await _count(two[0], OutboxEvent, OutboxEvent.topic == "account.changed") == 2

    # the ward office's enrolment of someone on record without a book, tapped twice
    async def enrol(session: AsyncSession) -> str:
        async with session.begin_nested():
            done = await identity.enrol(
                session, person("031054007793", ward_officer(HOAN_KIEM)), personal_id=NAM[0],
                full_name=NAM[1], birth_date=date(1990, 3, 1), sex=NAM[3], ward_code=HOAN_KIEM,
            )  # fmt: skip
        return done.outcome

    first, second = await at_once(two, enrol)
    assert first == "opened"
    assert second != "opened"


async def test_one_read_disputed_twice_at_once_is_one_case_and_the_first_answer_stays(
    two: tuple[Database, Database],
) -> None:
    async with two[0].session() as session:
        mai = await identity.person_id_of(session, MAI[0])
        read = audit.audit_event(actor="person:079054009999", action="visit.read",
                                 object_type="visit", object_id="1", person_id=mai)  # fmt: skip
        session.add(read)
        await session.flush()
        read_id = read.id
    cases = await at_once(two, lambda s: healthbook.dispute(s, person(MAI[0]), read_id, "Ai?"))
    assert cases[0].id == cases[1].id
    assert await _count(two[0], audit.AccessDispute) == 1

    # two reviewers answer at once: the second is told the case was closed meanwhile
    kept = "Hợp pháp: bác sĩ điều trị"
    refused: list[BaseException] = []

    async def close_other(session: AsyncSession) -> Any:
        try:
            return await healthbook.close_dispute(session, OTHER_REVIEWER, cases[0].id, "Trái phép")
        except healthbook.CaseClosed as exc:
            refused.append(exc)
            return None

    await at_once(
        two, lambda s: healthbook.close_dispute(s, DEPARTMENT, cases[0].id, kept), close_other
    )
    assert len(refused) == 1
    async with two[0].read_session() as session:
        row = await session.get(audit.AccessDispute, cases[0].id)
        assert row is not None
        assert (row.finding, row.closed_by) == (kept, DEPARTMENT.label)


async def test_the_first_notes_of_a_period_sent_twice_at_once_are_kept_not_a_500(
    two: tuple[Database, Database],
) -> None:
    texts = iter(["Bản đầu", "Bản sau"])
    await at_once(two, lambda s: reporting.set_notes(s, DEPARTMENT, "2026H1", None, next(texts)))
    async with two[0].read_session() as session:
        assert list(await session.scalars(select(ReportNote.text))) == ["Bản sau"]


async def test_a_check_in_resent_while_the_first_is_written_is_relayed_once(
    two: tuple[Database, Database],
) -> None:
    async with two[0].read_session() as session:
        codes = await catalogs.codebook(session)
    body = write_table("XML0", [checkin_row("01001", "LK-A")])
    options = IntakeOptions(limits=Limits())
    first, second = await at_once(two, lambda s: check_in(s, HIS, body, options, codes))
    assert first["id"] == second["id"]
    assert await _count(two[0], Submission) == 1
    assert await _count(two[0], OutboxEvent, OutboxEvent.topic == "checkin.received") == 1


async def test_a_conditional_create_sent_twice_at_once_makes_one_resource(
    two: tuple[Database, Database],
) -> None:
    ward = {"resourceType": "Organization", "name": "Khoa Nội",
            "identifier": [{"system": "urn:oid:1.2.3", "value": "khoa-7"}]}  # fmt: skip

    def create(session: AsyncSession) -> Awaitable[write.Written]:
        return write.store(
            session, HIS, dict(ward), if_none_exist="identifier=urn:oid:1.2.3|khoa-7",
            base="https://testserver/fhir/R4",
        )  # fmt: skip

    first, second = await at_once(two, create)
    assert (first.created, second.created) == (True, False)
    assert first.resource["id"] == second.resource["id"]
    async with two[0].session() as session:  # and the next one finds it, not several (412)
        third = await create(session)
    assert (third.created, third.resource["id"]) == (False, first.resource["id"])


async def test_a_move_recorded_twice_at_once_is_counted_once(
    two: tuple[Database, Database],
) -> None:
    async with two[0].session() as session:
        await identity.open_account(session, person(MAI[0]))
    ba_dinh = person("031054007793", dept("01"))  # the department: any ward of Hà Nội
    await at_once(two, lambda s: identity.set_residence(s, ba_dinh, MAI[0], "00004"))
    moves = AccountEvent.action.in_(("moved_in", "moved_out"))
    assert await _count(two[0], AccountEvent, moves) == 2  # out of Hoàn Kiếm, into Ba Đình


async def test_two_reception_codes_asked_at_once_leave_one_open(
    two: tuple[Database, Database],
) -> None:
    codes = await at_once(two, lambda s: sharing.reception_code(s, person(MAI[0])))
    assert codes[0] != codes[1]
    async with two[0].read_session() as session:
        mai = await identity.person_id_of(session, MAI[0])
        assert mai is not None
        still = await SharingRepository(session).open_codes(mai, utcnow())
    assert len(still) == 1


async def test_two_reads_at_once_tell_the_citizen_once(two: tuple[Database, Database]) -> None:
    """Two clinicians of one facility open Mai's record at the same moment: her phone hears
    "your record was viewed" once that day, as for two reads one after the other."""
    async with two[0].read_session() as session:
        mai = await identity.person_id_of(session, MAI[0])
    assert mai is not None
    await at_once(two, lambda s: sharing.notice_viewed(s, mai, "01001"))
    assert await _count(two[0], OutboxEvent, OutboxEvent.topic == "record.viewed") == 1
