"""The recount of the stored visits (``vnehr report check`` and ``rebuild``), done by the
database, against figures worked out by hand over a mixed set of visits: three facilities in two
provinces, insured or not, every kind of care, on time or late by a minute around midnight in
Vietnam and around a holiday, months that begin at 17:00 UTC, visits without an end or a lag,
corrections and test submissions that do not count, and a visit of 1975 (when Vietnam was at
UTC+8) that counts in the month it ended there."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.facilities.test_service import BA_DINH, HCMC_ADMIN, HOAN_KIEM, THU_DAU_MOT, register
from vnehr import papers, reporting, submissions
from vnehr.papers.models import Paper
from vnehr.records.models import VisitVersion
from vnehr.reporting import rollup
from vnehr.reporting.metrics import Period
from vnehr.reporting.models import ReportCount
from vnehr.submissions.models import Submission

PERIOD = Period.parse("2026H2")
VN = timezone(timedelta(hours=7))
Key = tuple[date, str, str, str, str, str, str]


def vn(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment of 2026 in Vietnam time."""
    return datetime(2026, month, day, hour, minute, second, tzinfo=VN)


def visit(
    code: str,
    key: str,
    *,
    ended: datetime | None,
    received: datetime,
    lag: int | None,
    care: str | None,
    insured: bool,
    person: bool,
    summary: bool,
    version: int = 1,
    test_mode: bool = False,
) -> VisitVersion:
    return VisitVersion(
        facility_code=code, visit_key=key, version=version, current=True, test_mode=test_mode,
        submission_id="recount", content_sha256=key, person_id=1 if person else None,
        care_type=care, insured=insured, ended_at=ended, received_at=received, lag_seconds=lag,
        has_summary=summary, tables={},
    )  # fmt: skip


def hand_counted(a: str, b: str, c: str) -> dict[Key, int]:
    """The period's counters, worked out by hand from the visits below."""
    july, august = date(2026, 7, 1), date(2026, 8, 1)
    october, november, december = date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)
    at_a, at_b, at_c = ("01", BA_DINH, a), ("01", HOAN_KIEM, b), ("79", THU_DAU_MOT, c)
    rows = [
        # A in July: A0 (00:10 on 1 July in Vietnam, still 30 June in UTC), A1, A2, A3, A4
        # (A4 ended at 23:30 on 31 July, Vietnam time)
        (july, at_a, "visits_sent", "outpatient_exam", "insured", 2),
        (july, at_a, "visits_sent", "inpatient", "insured", 1),
        (july, at_a, "visits_sent", "inpatient", "uninsured", 1),
        (july, at_a, "visits_sent", "medicine_by_appointment", "insured", 1),
        (july, at_a, "lag", "60", "", 3),
        (july, at_a, "lag", "14400", "", 2),
        (july, at_a, "visits_in_book", "outpatient_exam", "insured", 1),
        (july, at_a, "visits_in_book", "inpatient", "uninsured", 1),
        (july, at_a, "visits_in_book", "medicine_by_appointment", "insured", 1),
        (july, at_a, "with_summary", "", "", 3),
        (july, at_a, "within_24h", "", "", 3),
        (july, at_a, "within_deadline", "", "", 4),
        # A in August: A5 (00:30 on 1 August in Vietnam, still 31 July in UTC), A6 (version 1)
        (august, at_a, "visits_sent", "medicine_by_appointment", "insured", 1),
        (august, at_a, "visits_sent", "outpatient_exam", "uninsured", 1),
        (august, at_a, "lag", "60", "", 1),
        (august, at_a, "lag", "5", "", 1),
        (august, at_a, "visits_in_book", "outpatient_exam", "uninsured", 1),
        (august, at_a, "with_summary", "", "", 1),
        (august, at_a, "within_24h", "", "", 2),
        (august, at_a, "within_deadline", "", "", 2),
        # B: B1 and B2 over the National Day holiday, B3 without an end, B4 beyond a year, B5
        (august, at_b, "visits_sent", "remote", "insured", 2),
        (august, at_b, "lag", "43200", "", 2),
        (august, at_b, "visits_in_book", "remote", "insured", 1),
        (august, at_b, "with_summary", "", "", 1),
        (august, at_b, "within_deadline", "", "", 1),
        (october, at_b, "visits_sent", "other", "uninsured", 1),
        (october, at_b, "lag", "unknown", "", 1),
        (october, at_b, "with_summary", "", "", 1),
        (november, at_b, "visits_sent", "other", "insured", 1),
        (november, at_b, "lag", "more", "", 1),
        (november, at_b, "visits_in_book", "other", "insured", 1),
        (december, at_b, "visits_sent", "outpatient_exam", "insured", 1),
        (december, at_b, "lag", "5", "", 1),
        (december, at_b, "visits_in_book", "outpatient_exam", "insured", 1),
        (december, at_b, "with_summary", "", "", 1),
        (december, at_b, "within_24h", "", "", 1),
        (december, at_b, "within_deadline", "", "", 1),
        # C (Hồ Chí Minh City): 24 hours exactly, and one second more
        (july, at_c, "visits_sent", "outpatient_exam", "insured", 2),
        (july, at_c, "lag", "1440", "", 1),
        (july, at_c, "lag", "2160", "", 1),
        (july, at_c, "visits_in_book", "outpatient_exam", "insured", 1),
        (july, at_c, "with_summary", "", "", 1),
        (july, at_c, "within_24h", "", "", 1),
        (july, at_c, "within_deadline", "", "", 2),
    ]
    return {(m, p, w, f, metric, d1, d2): n for m, (p, w, f), metric, d1, d2, n in rows}


async def stored_visits(session: AsyncSession) -> tuple[str, str, str]:
    a = await register(session, name="Bệnh viện A", ward=BA_DINH)
    b = await register(session, name="Bệnh viện B", ward=HOAN_KIEM)
    c = await register(session, HCMC_ADMIN, name="Bệnh viện C", province="79", ward=THU_DAU_MOT)
    monday, friday = vn(7, 6, 10), vn(8, 28, 8)  # last days on time: 15 July, 11 September
    session.add_all(
        [
            visit(a, "A0", ended=vn(7, 1, 0, 10), received=vn(7, 1, 1, 10), lag=3600,
                  care="01", insured=True, person=False, summary=False),
            visit(a, "A1", ended=monday, received=vn(7, 6, 11), lag=3600, care="01",
                  insured=True, person=True, summary=True),
            visit(a, "A2", ended=monday, received=vn(7, 15, 23, 59), lag=827_940, care="03",
                  insured=True, person=False, summary=True),
            visit(a, "A3", ended=monday, received=vn(7, 16, 0), lag=828_000, care="03",
                  insured=False, person=True, summary=False),
            visit(a, "A4", ended=vn(7, 31, 23, 30), received=vn(8, 1, 0, 10), lag=2400,
                  care="07", insured=True, person=True, summary=True),
            visit(a, "A5", ended=vn(8, 1, 0, 30), received=vn(8, 1, 1, 30), lag=3600, care="07",
                  insured=True, person=False, summary=False),
            visit(a, "A6", ended=vn(8, 10, 9), received=vn(8, 10, 9), lag=0, care="01",
                  insured=False, person=True, summary=True),
            # a correction: counts as first received (A6), never itself
            visit(a, "A6", ended=vn(8, 10, 9), received=vn(8, 12, 9), lag=172_800, care="03",
                  insured=True, person=False, summary=False, version=2),
            visit(a, "T1", ended=monday, received=vn(7, 6, 11), lag=3600, care="01",
                  insured=True, person=True, summary=True, test_mode=True),
            # the period before (ended at 23:30 on 30 June, received in July)
            visit(a, "H1", ended=datetime(2026, 6, 30, 23, 30, tzinfo=VN), received=vn(7, 1, 8),
                  lag=30_600, care="01", insured=True, person=False, summary=False),
            # ended at 00:30 on 1 February 1975 in Vietnam (UTC+8 then), 31 January at UTC+7
            visit(a, "Y1975", ended=datetime(1975, 1, 31, 16, 30, tzinfo=UTC),
                  received=datetime(1975, 1, 31, 17, 30, tzinfo=UTC), lag=3600, care="01",
                  insured=True, person=False, summary=False),
            visit(b, "B1", ended=friday, received=vn(9, 11, 20), lag=1_252_800, care="14",
                  insured=True, person=True, summary=True),
            visit(b, "B2", ended=friday, received=vn(9, 12, 0, 5), lag=1_267_500, care="14",
                  insured=True, person=False, summary=False),
            visit(b, "B3", ended=None, received=vn(10, 5, 10), lag=None, care=None,
                  insured=False, person=False, summary=True),
            visit(b, "B4", ended=vn(11, 2, 10), received=vn(11, 2, 10) + timedelta(
                  seconds=40_000_000), lag=40_000_000, care="99", insured=True, person=True,
                  summary=False),
            visit(b, "B5", ended=vn(12, 1, 10), received=vn(12, 1, 9, 58), lag=-120, care="01",
                  insured=True, person=True, summary=True),
            visit(c, "C1", ended=vn(7, 20, 10), received=vn(7, 21, 10), lag=86_400, care="01",
                  insured=True, person=True, summary=True),
            visit(c, "C2", ended=vn(7, 20, 10), received=vn(7, 21, 10, 0, 1), lag=86_401,
                  care="01", insured=True, person=False, summary=False),
        ]
    )  # fmt: skip
    await session.flush()
    return a, b, c


def ours(counts: dict[Key, int], codes: tuple[str, ...]) -> dict[Key, int]:
    return {k: v for k, v in counts.items() if k[3] in codes}


async def test_the_recount_of_a_period_matches_the_figures_worked_out_by_hand(
    session: AsyncSession,
) -> None:
    a, b, c = await stored_visits(session)
    expected = hand_counted(a, b, c)
    assert ours(await rollup.recount(session, PERIOD, None), (a, b, c)) == expected
    hanoi = {k: v for k, v in expected.items() if k[1] == "01"}
    assert ours(await rollup.recount(session, PERIOD, "01"), (a, b, c)) == hanoi


async def test_a_rebuild_counts_every_period_as_worked_out_by_hand(
    session: AsyncSession,
) -> None:
    a, b, c = await stored_visits(session)
    expected = hand_counted(a, b, c)
    at_a = ("01", BA_DINH, a)
    june, february_1975 = date(2026, 6, 1), date(1975, 2, 1)
    for month, metric, dim1, dim2, n in [
        (june, "visits_sent", "outpatient_exam", "insured", 1),
        (june, "lag", "720", "", 1),
        (june, "within_24h", "", "", 1),
        (june, "within_deadline", "", "", 1),
        (february_1975, "visits_sent", "outpatient_exam", "insured", 1),
        (february_1975, "lag", "60", "", 1),
        (february_1975, "within_24h", "", "", 1),
        (february_1975, "within_deadline", "", "", 1),
    ]:
        expected[(month, *at_a, metric, dim1, dim2)] = n
    await reporting.rebuild(session)
    rows = await session.execute(
        select(
            ReportCount.month, ReportCount.province, ReportCount.ward, ReportCount.facility,
            ReportCount.metric, ReportCount.dim1, ReportCount.dim2, ReportCount.value,
        ).where(ReportCount.facility.in_([a, b, c]))
    )  # fmt: skip
    assert {tuple(row[:7]): row[7] for row in rows} == expected
    assert await reporting.check(session, PERIOD, "01") == []


def receipt(*visits: tuple[str, list[tuple[str, str]]]) -> dict[str, object]:
    """A receipt listing visits: (status, [(code, severity), ...])."""
    return {
        "visits": [
            {"status": status, "issues": [{"code": c, "severity": s} for c, s in issues]}
            for status, issues in visits
        ]
    }


async def test_rejections_and_papers_are_read_a_page_at_a_time_and_none_is_missed(
    session: AsyncSession,
) -> None:
    """The recount reads rejected files and papers in pages (a receipt lists every visit of
    its file): with pages of one, every rejected visit and every first paper of the period is
    still there, and nothing else."""
    start, end = PERIOD.bounds_utc()
    august, september, june = vn(8, 3, 9), vn(9, 1, 15), vn(6, 20, 9)
    files = [
        ("S1", "01001", august, False, 2, receipt(
            ("rejected", [("SUB-0002", "error"), ("SUB-0001", "error"), ("SUB-0001", "error")]),
            ("accepted", []),
            ("rejected", [("SUB-0003", "error"), ("SUB-0009", "warning")]),
        )),
        ("S2", "01002", september, False, 1, receipt(("rejected", [("SUB-0001", "error")]))),
        ("S3", "01001", august, True, 1, receipt(("rejected", [("SUB-0004", "error")]))),
        ("S4", "01001", august, False, 0, receipt(("accepted", []))),
        ("S5", "01001", june, False, 1, receipt(("rejected", [("SUB-0005", "error")]))),
    ]  # fmt: skip
    session.add_all(
        Submission(
            id=f"recount-{name}", kind="giamdinhhs", facility_code=code, client_id="test",
            received_at=at, status="done", test_mode=test_mode, visits=3, accepted=0,
            rejected=rejected, raw_sha256=name, raw_size=0, raw_zstd=b"", receipt=body,
        )
        for name, code, at, test_mode, rejected, body in files
    )  # fmt: skip
    papers_issued = [
        ("P1", "01001", "discharge", "N1", 1, vn(7, 10, 9)),
        ("P2", "01001", "discharge", "N1", 2, vn(7, 11, 9)),  # a new version: not a new paper
        ("P3", "01002", "appointment", "N2", 1, vn(8, 5, 9)),
        ("P4", "01003", "driver", "N3", 1, vn(12, 31, 23, 59)),
        ("P5", "01003", "driver", "N4", 1, datetime(2027, 1, 1, 0, 0, tzinfo=VN)),
    ]
    session.add_all(
        Paper(
            id=f"recount-{name}", kind=kind, number=number, version=version,
            facility_code=code, source="api", signed_on=at.date(), valid_from=at.date(),
            content={}, content_sha256=name, jws="", rid=f"recount-{name}", issued_at=at,
            issued_by="test",
        )
        for name, code, kind, number, version, at in papers_issued
    )  # fmt: skip
    await session.flush()

    rejected = [r async for r in submissions.rejections(session, start, end, page_size=1)]
    assert sorted(r for r in rejected if r[1] in (august, september)) == [
        ("01001", august, ["SUB-0001", "SUB-0002"]),
        ("01001", august, ["SUB-0003"]),
        ("01002", september, ["SUB-0001"]),
    ]
    issued = [p async for p in papers.first_issues(session, start, end, page_size=1)]
    assert sorted(p for p in issued if p[0] in ("01001", "01002", "01003")) == [
        ("01001", "discharge", vn(7, 10, 9)),
        ("01002", "appointment", vn(8, 5, 9)),
        ("01003", "driver", vn(12, 31, 23, 59)),
    ]


async def test_files_and_papers_of_the_same_moment_are_each_read_once_across_pages(
    session: AsyncSession,
) -> None:
    """The pages follow the moment received (or issued), then the id: many rows of one moment
    split over pages are each read once, in the order of their moment."""
    start, end = PERIOD.bounds_utc()
    same, before, after = vn(8, 3, 9), vn(8, 3, 8, 59, 59), vn(8, 3, 9, 0, 1)
    moments = [after, same, same, before, same, same, same, after, before]
    # ids in an order of their own, unlike the moments'
    names = ["k", "c", "a", "z", "e", "b", "d", "m", "y"]
    session.add_all(
        Submission(
            id=f"same-{name}", kind="giamdinhhs", facility_code="01009", client_id="test",
            received_at=at, status="done", test_mode=False, visits=1, accepted=0, rejected=1,
            raw_sha256=name, raw_size=0, raw_zstd=b"", receipt=receipt(("rejected", [(name, "error")])),
        )
        for name, at in zip(names, moments, strict=True)
    )  # fmt: skip
    session.add_all(
        Paper(
            id=f"same-{name}", kind="appointment", number=f"S-{name}", version=1,
            facility_code="01009", source="api", signed_on=at.date(), valid_from=at.date(),
            content={}, content_sha256=name, jws="", rid=f"same-{name}", issued_at=at,
            issued_by="test",
        )
        for name, at in zip(names, moments, strict=True)
    )  # fmt: skip
    await session.flush()
    for size in (1, 2, 3, 4, 500):
        rejected = [
            (at, codes[0])
            async for code, at, codes in submissions.rejections(session, start, end, page_size=size)
            if code == "01009"
        ]
        assert len(rejected) == len(names), size
        assert sorted(rejected) == sorted(zip(moments, names, strict=True)), size
        assert [at for at, _ in rejected] == sorted(moments), size
        issued = [
            at
            async for code, _, at in papers.first_issues(session, start, end, page_size=size)
            if code == "01009"
        ]
        assert issued == sorted(moments), size


async def test_a_moment_in_the_last_millisecond_of_a_vietnamese_day_stays_in_that_day(
    session: AsyncSession,
) -> None:
    """SQLite's date functions round to the millisecond: 23:59:59.9996 in Vietnam was counted
    on the next day, so in the next month (and period), and a visit received then was late."""
    a = await register(session, name="Bệnh viện A", ward=BA_DINH)
    last_moment_of_june = datetime(2026, 6, 30, 16, 59, 59, 999_600, tzinfo=UTC)
    monday = vn(7, 6, 10)  # last day on time: 15 July
    last_moment_on_time = datetime(2026, 7, 15, 16, 59, 59, 999_600, tzinfo=UTC)
    session.add_all(
        [
            visit(a, "E1", ended=last_moment_of_june, received=last_moment_of_june, lag=0,
                  care="01", insured=True, person=False, summary=False),
            visit(a, "E2", ended=monday, received=last_moment_on_time, lag=827_999,
                  care="01", insured=True, person=False, summary=False),
        ]
    )  # fmt: skip
    await session.flush()
    at_a = ("01", BA_DINH, a)
    first_half = ours(await rollup.recount(session, Period.parse("2026H1"), None), (a,))
    june = date(2026, 6, 1)
    assert first_half[(june, *at_a, "visits_sent", "outpatient_exam", "insured")] == 1
    assert first_half[(june, *at_a, "within_deadline", "", "")] == 1
    second_half = ours(await rollup.recount(session, PERIOD, None), (a,))
    july = date(2026, 7, 1)
    assert second_half[(july, *at_a, "visits_sent", "outpatient_exam", "insured")] == 1
    assert second_half[(july, *at_a, "within_deadline", "", "")] == 1
