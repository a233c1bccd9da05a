"""Driver's health certificates numbered by the hub (``{facility}.KSK.{serial}.{yy}``): one
serial after another per facility and year of the exam, restarting each year; an issue that
is rolled back leaves no gap; concurrent issues on PostgreSQL get distinct consecutive
numbers; the migration that brings the counters seeds them from the certificates issued
before it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.papers.test_api import SCOPES, driver_body
from tests.submissions.test_intake import facility_with_token
from vnehr import papers
from vnehr.cli import app
from vnehr.kit.auth import Subject
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.kit.db import Database, JSONDoc, create_engine
from vnehr.kit.migrate import downgrade, upgrade
from vnehr.kit.settings import Settings, get_settings
from vnehr.papers.models import Paper, PaperCounter
from vnehr.papers.numbers import next_driver_number
from vnehr.papers.rules import add_months

HOLDERS = [
    {"personal_id": f"0010900{n:05d}", "name": f"Người Lái {n}", "birth_date": "1990-04-12"}
    for n in range(1, 13)
]


def _serial(number: str) -> tuple[int, str]:
    """(serial, yy) of a number the hub made."""
    _, kind, serial, yy = number.split(".")
    assert kind == "KSK"
    return int(serial), yy


async def _issue(client: httpx.AsyncClient, headers: dict[str, str], **extra: Any) -> str:
    made = await client.post("/api/v1/papers", json=driver_body(**extra), headers=headers)
    assert made.status_code == 201, made.text
    number: str = made.json()["number"]
    return number


async def test_numbers_follow_one_another_and_restart_each_year(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    today = utcnow().astimezone(VIETNAM).date()
    yy, last_yy = f"{today.year % 100:02d}", f"{(today.year - 1) % 100:02d}"
    this_year = [await _issue(client, headers, holder=HOLDERS[n]) for n in range(3)]
    assert this_year == [f"{code}.KSK.{n:06d}.{yy}" for n in (1, 2, 3)]
    # a certificate of an exam last year is numbered in last year's series, from 1 (valid 12
    # months: on 31 December no exam of last year gives a valid certificate any more)
    if (today.month, today.day) != (12, 31):
        december = date(today.year - 1, 12, 31).isoformat()
        assert await _issue(client, headers, holder=HOLDERS[3], examined_on=december) == (
            f"{code}.KSK.000001.{last_yy}"
        )
    assert await _issue(client, headers, holder=HOLDERS[4]) == f"{code}.KSK.000004.{yy}"
    # another facility's series is its own
    other, other_headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    assert await _issue(client, other_headers, holder=HOLDERS[5]) == f"{other}.KSK.000001.{yy}"
    # a revoked certificate keeps its number: it is never given again
    [first] = await session.scalars(select(Paper.id).where(Paper.number == this_year[0]))
    revoked = await client.post(
        f"/api/v1/papers/{first}/revoke", json={"reason": "Cấp nhầm"}, headers=headers
    )
    assert revoked.status_code == 200
    assert await _issue(client, headers, holder=HOLDERS[6]) == f"{code}.KSK.000005.{yy}"


async def test_a_rolled_back_issue_leaves_no_gap(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    first = await _issue(client, headers, holder=HOLDERS[0])
    system = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"paper.write"}), facility_code=code
    )
    body = driver_body()
    data = {
        **body,
        "examined_on": date.fromisoformat(body["examined_on"]),
        "holder": {**HOLDERS[1], "birth_date": date(1990, 4, 12), "sex": None},
    }

    class Abandoned(Exception):
        pass

    given: list[str] = []

    async def abandoned() -> None:
        async with db.session() as inner:  # the issue's transaction fails after numbering
            paper, _ = await papers.issue_driver(inner, papers.keys_for(settings), system, data)
            given.append(paper.number)
            raise Abandoned

    with pytest.raises(Abandoned):
        await abandoned()
    assert [_serial(n)[0] for n in given] == [2]
    # the number the abandoned issue had is the next one given
    second = await _issue(client, headers, holder=HOLDERS[2])
    assert _serial(second) == (2, first[-2:])


# ------------------------------------------------------------------ concurrent issues


@pytest.fixture
def demo_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL database of its own with the demo loaded (facility 01001, connected)."""
    runner = CliRunner()
    database = new_database_on(postgres_url, "numbers")
    monkeypatch.setenv("VNEHR_DATABASE_URL", database)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0
    yield database
    get_settings.cache_clear()


def test_concurrent_issues_on_postgresql_get_distinct_consecutive_numbers(
    demo_url: str,
) -> None:
    code = "01001"
    system = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"paper.write"}), facility_code=code
    )
    examined = utcnow().astimezone(VIETNAM).date() - timedelta(days=1)
    keys = papers.keys_for(get_settings())

    def body(n: int) -> dict[str, Any]:
        holder = {**HOLDERS[n], "birth_date": date(1990, 4, 12), "sex": "male"}
        return {**driver_body(holder=holder), "examined_on": examined}

    async def main() -> None:
        dbs = [Database.from_urls(demo_url, pool_size=2) for _ in range(4)]  # four API workers
        try:
            async with dbs[0].read_session() as session:
                before = list(
                    await session.scalars(
                        select(Paper.number).where(
                            Paper.facility_code == code, Paper.kind == "driver"
                        )
                    )
                )

            async def issue(n: int) -> str:
                async with dbs[n % 4].session() as session:
                    paper, _ = await papers.issue_driver(session, keys, system, body(n))
                    await asyncio.sleep(0.05)  # others arrive while this one is uncommitted
                    return paper.number

            numbers = await asyncio.gather(*(issue(n) for n in range(12)))
            yy = f"{examined.year % 100:02d}"
            start = 1 + max((_serial(n)[0] for n in before if n.endswith(f".{yy}")), default=0)
            assert sorted(_serial(n) for n in numbers) == [
                (s, yy) for s in range(start, start + 12)
            ]
            async with dbs[0].read_session() as session:
                counter = await session.scalar(
                    select(PaperCounter.last_serial).where(
                        PaperCounter.facility_code == code,
                        PaperCounter.kind == "driver",
                        PaperCounter.year == examined.year,
                    )
                )
            assert counter == start + 11
        finally:
            for db in dbs:
                await db.dispose()

    asyncio.run(main())


# ------------------------------------------------------------------ the migration


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'numbers.db'}"
    return new_database_on(request.getfixturevalue("postgres_url"), "counters")


_PAPER = text(
    "INSERT INTO paper (id, kind, number, version, facility_code, source, signed_on,"
    " valid_from, status, content, content_sha256, jws, rid, issued_at, issued_by)"
    " VALUES (:id, :kind, :number, :version, :facility, 'api', '2026-01-05', '2026-01-05',"
    " 'valid', :content, 'h', 'jws', :id, CURRENT_TIMESTAMP, 'test')"
).bindparams(bindparam("content", type_=JSONDoc))


async def test_the_migration_seeds_the_counters_from_the_certificates_issued(
    empty_url: str,
) -> None:
    url = empty_url
    await upgrade(url, "0020")
    held = [
        ("driver", "01001.KSK.000007.25", 1, "01001"),
        ("driver", "01001.KSK.000012.25", 1, "01001"),
        ("driver", "01001.KSK.000012.25", 2, "01001"),  # a corrected certificate
        ("driver", "01001.KSK.000003.26", 1, "01001"),
        ("driver", "01001.KSK.1000000.24", 1, "01001"),  # past six digits
        ("driver", "KSK-2026/0099", 1, "01001"),  # the facility's own numbering
        ("driver", "01002.KSK.000050.26", 1, "01001"),  # another facility's shape: not ours
        ("re_exam", "01001.KSK.000090.26", 1, "01001"),  # not a driver's certificate
        ("driver", "01002.KSK.000004.26", 1, "01002"),
        ("driver", "01002.KSK.00000A.26", 1, "01002"),  # not a serial
    ]
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for n, (kind, number, version, facility) in enumerate(held):
                await connection.execute(
                    _PAPER,
                    {"id": f"p{n}", "kind": kind, "number": number, "version": version,
                     "facility": facility, "content": {}},
                )  # fmt: skip
    finally:
        await engine.dispose()
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with AsyncSession(engine) as session:
            rows = await session.execute(
                select(
                    PaperCounter.facility_code,
                    PaperCounter.kind,
                    PaperCounter.year,
                    PaperCounter.last_serial,
                ).order_by(PaperCounter.facility_code, PaperCounter.year)
            )
            assert list(rows) == [
                ("01001", "driver", 2024, 1_000_000),
                ("01001", "driver", 2025, 12),
                ("01001", "driver", 2026, 3),
                ("01002", "driver", 2026, 4),
            ]
            # the next certificates continue each series
            assert await next_driver_number(session, "01001", date(2026, 3, 1)) == (
                "01001.KSK.000004.26"
            )
            assert await next_driver_number(session, "01001", date(2025, 12, 1)) == (
                "01001.KSK.000013.25"
            )
            assert await next_driver_number(session, "01003", date(2026, 3, 1)) == (
                "01003.KSK.000001.26"
            )
            await session.rollback()
    finally:
        await engine.dispose()
    await downgrade(url, "0020")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            assert "paper_counter" not in tables
    finally:
        await engine.dispose()


async def test_an_exam_too_old_for_a_valid_certificate_is_refused_and_takes_no_number(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A certificate is valid 12 months from the exam (TT 36/2024): an exam older than that
    (a century typo, 1926 for 2026, above all) would give a certificate expired on the day it
    is issued. It is refused (PAP-0123) before it is numbered: no counter for that year, no
    walk over this year's numbers that share its two digits, and the series goes on."""
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    today = utcnow().astimezone(VIETNAM).date()
    yy = f"{today.year % 100:02d}"
    assert await _issue(client, headers, holder=HOLDERS[0]) == f"{code}.KSK.000001.{yy}"
    expired = add_months(today, -12)  # valid until yesterday
    for examined in (date(today.year - 100, 1, 5), date(1, 1, 1), expired):
        body = driver_body(holder=HOLDERS[1], examined_on=examined.isoformat())
        refused = await client.post("/api/v1/papers", json=body, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (422, "PAP-0004"), examined
        [issue] = refused.json()["detail"]["issues"]
        assert (issue["code"], issue["field"]) == ("PAP-0123", "examined_on"), issue
        assert examined.isoformat() in issue["message"]["en"], issue
    counters = await session.execute(
        select(PaperCounter.year, PaperCounter.last_serial).where(
            PaperCounter.facility_code == code
        )
    )
    assert list(counters) == [(today.year, 1)]
    # the oldest exam still valid today is numbered in its year's series
    oldest = expired + timedelta(days=1)
    number = await _issue(client, headers, holder=HOLDERS[2], examined_on=oldest.isoformat())
    assert number == f"{code}.KSK.{1 if oldest.year < today.year else 2:06d}.{oldest:%y}"
