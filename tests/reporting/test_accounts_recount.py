"""The recount of health accounts (``vnehr report check`` and ``rebuild``) against figures worked
out by hand: accounts that open, close and reopen, move across provinces within a period and
across periods (open or closed), open before their holder's residence is known, open after the
period, and take a residence from a merge (D70). The accounts are read a page at a time, one
account's history at a time; every page size gives the same figures. A province's recount reads
only that province's facilities."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_service import NEWBORN_DAY, NEWBORN_ID, claims, newborn, person
from tests.identity.test_service import dept as department
from tests.reporting.test_recount import stored_visits
from tests.reporting.test_report import deliver, this_half
from vnehr import facilities, identity, papers, records, reporting, submissions
from vnehr.identity import service as identity_service
from vnehr.identity.models import AccountEvent, HealthAccount, Person
from vnehr.kit.db import Database
from vnehr.papers.models import Paper
from vnehr.reporting import rollup
from vnehr.reporting.metrics import Period, month_of
from vnehr.submissions.models import Submission

H1, H2 = Period.parse("2026H1"), Period.parse("2026H2")
VN = timezone(timedelta(hours=7))
HOAN_KIEM, BA_DINH = "00070", "00004"  # Hà Nội (01)
SAI_GON, THU_DAU_MOT = "26740", "25747"  # Hồ Chí Minh City (79)
PROVINCE = {HOAN_KIEM: "01", BA_DINH: "01", SAI_GON: "79", THU_DAU_MOT: "79", None: ""}
Key = tuple[date, str, str, str, str, str, str]


def vn(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN)


# Each holder: (residence today, [(when, action, ward from, ward to)]); a move is written as
# ``_move_residence`` writes it (moved_out with the ward left, moved_in with the ward entered).
HOLDERS: dict[str, tuple[str | None, list[tuple[datetime, str, str | None, str | None]]]] = {
    # never moves: opens, closes, reopens at 23:30 on 31 December (16:30 UTC, still December)
    "A1": (HOAN_KIEM, [
        (vn(2026, 3, 10), "opened", None, None),
        (vn(2026, 8, 5), "closed", None, None),
        (vn(2026, 12, 31, 23, 30), "reopened", None, None),
    ]),
    # open, moves from Hà Nội to HCMC within the period, and back to Hà Nội after it
    "A2": (HOAN_KIEM, [
        (vn(2026, 2, 1), "opened", None, None),
        (vn(2026, 9, 10), "move", BA_DINH, SAI_GON),
        (vn(2027, 2, 1), "move", SAI_GON, HOAN_KIEM),
    ]),
    # opened at 00:10 on 1 July (30 June in UTC) before anyone recorded where she lives
    "A3": (THU_DAU_MOT, [
        (vn(2026, 7, 1, 0, 10), "opened", None, None),
        (vn(2026, 8, 20), "move", None, THU_DAU_MOT),
    ]),
    # closed, moves while closed (no count), reopens in the new ward
    "A4": (BA_DINH, [
        (vn(2026, 1, 15), "opened", None, None),
        (vn(2026, 4, 1), "closed", None, None),
        (vn(2026, 7, 20), "move", HOAN_KIEM, BA_DINH),
        (vn(2026, 10, 2), "reopened", None, None),
    ]),
    # opened in 2025 in HCMC, moves to Hà Nội in the first half, closes in the second
    "A5": (BA_DINH, [
        (vn(2025, 11, 11), "opened", None, None),
        (vn(2026, 5, 5), "move", SAI_GON, BA_DINH),
        (vn(2026, 11, 30, 23, 59), "closed", None, None),
    ]),
    # opened at midnight on 1 January 2027 (still 2026 in UTC): after the period
    "A6": (HOAN_KIEM, [(vn(2027, 1, 1, 0, 0), "opened", None, None)]),
}  # fmt: skip


def worked_out(until: Period | None) -> dict[Key, int]:
    """The account counters, by hand from ``HOLDERS`` (every month up to the period's end)."""
    rows = [
        (date(2025, 11, 1), SAI_GON, +1),  # A5 opens
        (date(2026, 1, 1), HOAN_KIEM, +1),  # A4 opens
        (date(2026, 2, 1), BA_DINH, +1),  # A2 opens where she lived then
        (date(2026, 3, 1), HOAN_KIEM, +1),  # A1 opens
        (date(2026, 4, 1), HOAN_KIEM, -1),  # A4 closes
        (date(2026, 5, 1), SAI_GON, -1),  # A5 moves out of HCMC...
        (date(2026, 5, 1), BA_DINH, +1),  # ... into Hà Nội
        (date(2026, 7, 1), None, +1),  # A3 opens, no residence yet
        (date(2026, 8, 1), HOAN_KIEM, -1),  # A1 closes
        (date(2026, 8, 1), None, -1),  # A3's residence recorded
        (date(2026, 8, 1), THU_DAU_MOT, +1),
        (date(2026, 9, 1), BA_DINH, -1),  # A2 moves to HCMC
        (date(2026, 9, 1), SAI_GON, +1),
        (date(2026, 10, 1), BA_DINH, +1),  # A4 reopens where it moved while closed
        (date(2026, 11, 1), BA_DINH, -1),  # A5 closes
        (date(2026, 12, 1), HOAN_KIEM, +1),  # A1 reopens
        (date(2027, 1, 1), HOAN_KIEM, +1),  # A6 opens
        (date(2027, 2, 1), SAI_GON, -1),  # A2 moves back
        (date(2027, 2, 1), HOAN_KIEM, +1),
    ]
    found: dict[Key, int] = {}
    for month, ward, delta in rows:
        if until is None or month <= until.end:
            key = (month, PROVINCE[ward], ward or "", "", "accounts", "", "")
            found[key] = found.get(key, 0) + delta
    return found


async def stored_accounts(session: AsyncSession) -> None:
    """The holders of ``HOLDERS``, their accounts and their history rows, written in the order
    things happened (rows of different accounts interleave, as in life)."""
    history: list[tuple[datetime, int, str, str | None]] = []
    for number, (name, (home, events)) in enumerate(HOLDERS.items()):
        holder = Person(
            personal_id=f"00119000{number:04d}", full_name=name, residence_ward_code=home,
            created_at=events[0][0], created_by="test",
        )  # fmt: skip
        session.add(holder)
        await session.flush()
        account = HealthAccount(
            person_id=holder.id, status="open", channel="vneid", opened_at=events[0][0]
        )
        session.add(account)
        await session.flush()
        for at, action, left, entered in events:
            if action == "move":
                history += [
                    (at, account.id, "moved_out", left),
                    (at, account.id, "moved_in", entered),
                ]
            else:
                history.append((at, account.id, action, None))
    for at, account_id, action, ward in sorted(history, key=lambda one: one[0]):
        session.add(
            AccountEvent(
                account_id=account_id, action=action, channel="vneid", ward_code=ward,
                actor="test", at=at.astimezone(UTC),
            )
        )  # fmt: skip
        await session.flush()


def accounts(counts: dict[Key, int]) -> dict[Key, int]:
    return {k: v for k, v in counts.items() if k[4] == "accounts"}


async def test_the_accounts_recount_matches_the_figures_worked_out_by_hand(
    session: AsyncSession,
) -> None:
    await stored_accounts(session)
    expected = worked_out(H2)
    assert accounts(await rollup.recount(session, H2, None)) == expected
    for province in ("01", "79"):
        assert accounts(await rollup.recount(session, H2, province)) == {
            k: v for k, v in expected.items() if k[1] == province
        }
    assert accounts(await rollup.recount(session, H1, None)) == worked_out(H1)


async def test_a_rebuild_gives_each_period_its_accounts_as_worked_out_by_hand(
    session: AsyncSession,
) -> None:
    """At the end of June 2026: A1 in Hoàn Kiếm, A2 and A5 in Ba Đình (A4 closed). At the end
    of December: A1 in Hoàn Kiếm, A4 in Ba Đình, A2 in Sài Gòn, A3 in Thủ Dầu Một (A5 closed,
    A6 not opened yet)."""
    await stored_accounts(session)
    await reporting.rebuild(session)
    assert accounts(await rollup.stored(session, H2, None)) == worked_out(H2)
    assert await reporting.check(session, H2, None) == []
    assert await reporting.check(session, H1, "79") == []

    async def by_ward(period: Period, province: str) -> dict[str, int]:
        figures = await reporting.figures(session, period, province=province, cost_per_record=1)
        return {w["ward"]: w["accounts"] for w in figures["people"]["by_ward"] if w["accounts"]}

    assert await by_ward(H1, "01") == {HOAN_KIEM: 1, BA_DINH: 2}
    assert await by_ward(H1, "79") == {}
    assert await by_ward(H2, "01") == {HOAN_KIEM: 1, BA_DINH: 1}
    assert await by_ward(H2, "79") == {SAI_GON: 1, THU_DAU_MOT: 1}


@pytest.mark.parametrize("page_size", [1, 2, 3, 5000])
async def test_accounts_are_read_a_page_at_a_time_and_none_is_missed(
    session: AsyncSession, page_size: int
) -> None:
    """Pages of any size (one account, two, an account's history cut by no page) give every
    change of every account once."""
    await stored_accounts(session)
    found: dict[tuple[date, str], int] = {}
    async for at, delta, ward in identity.account_changes(
        session, H2.bounds_utc()[1], page_size=page_size
    ):
        key = (month_of(at), ward)
        found[key] = found.get(key, 0) + delta
    assert {k: v for k, v in found.items() if v} == {
        (month, ward): n for (month, _, ward, *_), n in worked_out(H2).items()
    }


async def test_an_account_takes_the_residence_a_merge_gives_its_holder(
    session: AsyncSession, db: Database
) -> None:
    """A boy's account was opened through VNeID before anyone recorded where he lives; his
    provisional record from birth (living with his mother in Hoàn Kiếm) is merged into him:
    the account moves to Hoàn Kiếm with him, and the rollups agree with the recount."""
    boy = (NEWBORN_ID, "Phạm Minh Quân", NEWBORN_DAY.isoformat(), "male")
    await identity.sign_in(session, claims(boy))
    await identity.open_account(session, person(NEWBORN_ID))
    mother = await identity.sign_in(
        session, claims(("048190002468", "Phạm Thị Dung", "1990-05-09", "female"))
    )
    mother.residence_ward_code = HOAN_KIEM
    child = await newborn(session)
    national = person("031054007793", department(None))
    await identity_service.assign_personal_id(session, national, child.id, NEWBORN_ID)
    await deliver(db)

    now = this_half()
    assert await reporting.check(session, now, None) == []
    figures = await reporting.figures(session, now, province="01", cost_per_record=1)
    assert {w["ward"]: w["accounts"] for w in figures["people"]["by_ward"]} == {HOAN_KIEM: 1}


async def test_a_provinces_recount_reads_only_its_facilities(session: AsyncSession) -> None:
    """``report check --province`` asks the database for that province's facilities only
    (visits, rejected files, papers) and gives the figures of the whole country's recount
    that are that province's."""
    a, _, c = await stored_visits(session)
    august = datetime(2026, 8, 3, 9, 0, tzinfo=VN)
    session.add_all(
        Submission(
            id=f"province-{code}", kind="giamdinhhs", facility_code=code, client_id="test",
            received_at=august, status="done", test_mode=False, visits=1, accepted=0,
            rejected=1, raw_sha256=code, raw_size=0, raw_zstd=b"",
            receipt={"visits": [{"status": "rejected", "issues": [
                {"code": "SUB-0001", "severity": "error"}]}]},
        )
        for code in (a, c)
    )  # fmt: skip
    session.add_all(
        Paper(
            id=f"province-{code}", kind="discharge", number=code, version=1, facility_code=code,
            source="api", signed_on=august.date(), valid_from=august.date(), content={},
            content_sha256=code, jws="", rid=f"province-{code}", issued_at=august,
            issued_by="test",
        )
        for code in (a, c)
    )  # fmt: skip
    await session.flush()

    whole = await rollup.recount(session, H2, None)
    for province in ("01", "79"):
        assert await rollup.recount(session, H2, province) == {
            k: v for k, v in whole.items() if k[1] == province
        }
    start, end = H2.bounds_utc()
    hcmc = facilities.codes_query("79")
    assert [r[0] async for r in submissions.rejections(session, start, end, facilities=hcmc)] == [c]
    assert [p[0] async for p in papers.first_issues(session, start, end, facilities=hcmc)] == [c]
    tallies = records.first_version_tallies(
        session, None, None, lag_bounds=(60,), quick_seconds=60,
        last_day_on_time=lambda day: day, facilities=hcmc,
    )  # fmt: skip
    assert {t.facility_code async for t in tallies} == {c}
    assert [r.facility_code for r in await records.first_versions(
        session, None, None, facilities=facilities.codes_query("01"),
        before=records.UTC7_SINCE)] == [a]  # fmt: skip
