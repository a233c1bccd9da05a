"""The six-monthly report on PostgreSQL: its time with 100,000 and with 1,000,000 visits stored
(the report reads rollups, so it should barely move), next to the recount of the stored rows
that ``vnehr report check`` runs (a scan, which grows with the data; its memory should not).

    python -m bench report
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import packed_tables, postgres
from vnehr import reporting
from vnehr.kit.db import Database

SIZES = (100_000, 1_000_000)
PERIOD = reporting.Period.parse("2026H2")
# visits spread over 2026 across the demo's five facilities, every care type, insured or not,
# sent from minutes to weeks after they ended; 90 % with a personal ID
LOAD_SQL = """
INSERT INTO visit_version (facility_code, visit_key, version, current, test_mode,
  submission_id, content_sha256, person_id, personal_id, care_type, insured, main_diagnosis,
  outcome, started_at, ended_at, received_at, lag_seconds, has_summary, tables)
SELECT '0100' || (1 + v % 5), 'BENCH' || v, 1, true, false, 'bench', md5(v::text),
       CASE WHEN v % 10 = 0 THEN NULL ELSE 1 END, NULL,
       (ARRAY['01','02','03','04','05','06','07','08','09','14'])[1 + v % 10], v % 4 <> 0,
       'J18.9', '2',
       timestamptz '2026-01-01' + (v % 364) * interval '1 day',
       timestamptz '2026-01-01' + (v % 364) * interval '1 day' + interval '2 hours',
       timestamptz '2026-01-01' + (v % 364) * interval '1 day' + interval '2 hours'
         + ((v::bigint * 7919) % 1209600) * interval '1 second',
       (v::bigint * 7919) % 1209600, v % 7 <> 0, '{tables}'::bytea
FROM generate_series({first}, {last}) AS v;
ANALYZE visit_version;
"""


VNEHR = [sys.executable, "-m", "vnehr"]


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, env=env, check=True, capture_output=True)


@contextmanager
def _demo_database(name: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A throw-away PostgreSQL 18 database ``name``, migrated, with the demo loaded: its
    socket folder, its URL and the environment of a ``vnehr`` command on it."""
    with postgres(name) as socket_dir:
        url = f"postgresql+asyncpg://postgres@/{name}?host={socket_dir}"
        env = {
            **os.environ,
            "VNEHR_ENV": "development",
            "VNEHR_DATABASE_URL": url,
            "VNEHR_LOG_LEVEL": "WARNING",
        }
        _run([*VNEHR, "db", "upgrade"], env)
        _run([*VNEHR, "demo", "load"], env)
        yield socket_dir, url, env


async def _execute(socket_dir: str, database: str, sql: str, count: str | None = None) -> int:
    """Run ``sql`` on the database (asyncpg: several statements at once), then the query
    ``count``: what it counts (0 without one)."""
    import asyncpg

    connection = await asyncpg.connect(host=socket_dir, user="postgres", database=database)
    try:
        await connection.execute(sql)
        return int(await connection.fetchval(count)) if count else 0
    finally:
        await connection.close()


async def _timed_report(db: Database, source: str, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        began = time.perf_counter()
        async with db.read_session() as session:
            figures = await reporting.figures(
                session, PERIOD, province="01", cost_per_record=5000, source=source
            )  # type: ignore[arg-type]
        timings.append(time.perf_counter() - began)
    if not figures["totals"]["sent"]:
        raise RuntimeError("the report counted nothing")
    return statistics.median(timings)


async def _check_peak(db: Database) -> float:
    """Peak Python memory (tracemalloc, MB) of ``vnehr report check``."""
    tracemalloc.start()
    async with db.read_session() as session:
        await reporting.check(session, PERIOD, "01")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


async def main() -> None:
    with _demo_database("report") as (socket_dir, url, _):
        db = Database.from_urls(url)
        rows = []
        loaded = 0
        try:
            for size in SIZES:
                load = LOAD_SQL.format(first=loaded + 1, last=size, tables=packed_tables({}))
                await _execute(socket_dir, "report", load)
                loaded = size
                began = time.perf_counter()
                async with db.session() as session:
                    counters = await reporting.rebuild(session)
                rebuild = time.perf_counter() - began
                report = await _timed_report(db, "rollups", 5)
                recount = await _timed_report(db, "recount", 1)
                rows.append((size, counters, rebuild, report, recount, await _check_peak(db)))
        finally:
            await db.dispose()
    print(f"Six-monthly report ({PERIOD.name}, province 01) on PostgreSQL 18\n")
    print(
        "| visits stored | counters | report from rollups (median of 5) | recount of the "
        "stored rows (`report check`) | rebuild of every rollup | peak memory of "
        "`report check` |"
    )
    print("|---|---|---|---|---|---|")
    for size, counters, rebuild, report, recount, peak in rows:
        print(
            f"| {size:,} | {counters:,} | **{report * 1000:,.0f} ms** | {recount:,.1f} s | "
            f"{rebuild:,.1f} s | {peak:,.1f} MB |"
        )
    first, last = rows[0][3], rows[-1][3]
    print(f"\nReport time at {SIZES[-1]:,} / at {SIZES[0]:,} visits: **{last / first:.2f}x**")


#: Health accounts for the accounts' recount (``report check`` / ``rebuild``).
ACCOUNTS = 200_000
# every person of the bench lives in one of the wards in force of Hanoi and Ho Chi Minh City
# and opens an account (2025-01 to 2026-06); one in ten moves 60 days later to a ward of the
# other list (from Hanoi to HCMC or back), one in twenty closes 90 days after opening, and one
# in fifty of those reopens 30 days later
ACCOUNTS_SQL = """
CREATE TEMP TABLE bench_ward AS
  SELECT row_number() OVER (ORDER BY code) - 1 AS n, code FROM (
    SELECT DISTINCT code FROM catalog_entry
    WHERE list_name = 'ward' AND valid_to IS NULL AND parent_code IN ('01', '79')) AS w;
INSERT INTO person (personal_id, full_name, provisional, residence_ward_code, created_at,
  created_by)
SELECT 'B' || lpad(n::text, 11, '0'), 'Bench ' || n, false,
       (SELECT code FROM bench_ward WHERE bench_ward.n = g.n % (SELECT count(*) FROM bench_ward)),
       timestamptz '2025-01-01', 'bench'
FROM generate_series(1, {count}) AS g(n);
INSERT INTO health_account (person_id, status, channel, opened_at)
SELECT id, 'open', 'vneid', timestamptz '2025-01-01' + (id % 540) * interval '1 day'
FROM person WHERE created_by = 'bench';
INSERT INTO health_account_event (account_id, action, channel, actor, at)
SELECT id, 'opened', 'vneid', 'bench', opened_at FROM health_account ORDER BY id;
CREATE TEMP TABLE bench_move AS
  SELECT a.id AS account, p.id AS person, p.residence_ward_code AS left_ward,
         (SELECT code FROM bench_ward
          WHERE bench_ward.n = (p.id * 7 + 3) % (SELECT count(*) FROM bench_ward)) AS entered,
         a.opened_at + interval '60 days' AS at
  FROM health_account a JOIN person p ON p.id = a.person_id
  WHERE p.created_by = 'bench' AND a.id % 10 = 0;
INSERT INTO health_account_event (account_id, action, channel, ward_code, actor, at)
SELECT account, action, 'vneid', ward, 'bench', at FROM bench_move,
  LATERAL (VALUES (1, 'moved_out', left_ward), (2, 'moved_in', entered)) AS m(k, action, ward)
ORDER BY account, k;
UPDATE person SET residence_ward_code = bench_move.entered FROM bench_move
WHERE person.id = bench_move.person;
INSERT INTO health_account_event (account_id, action, channel, actor, at)
SELECT id, 'closed', 'vneid', 'bench', opened_at + interval '90 days' FROM health_account
WHERE id % 20 = 1 ORDER BY id;
INSERT INTO health_account_event (account_id, action, channel, actor, at)
SELECT id, 'reopened', 'vneid', 'bench', opened_at + interval '120 days' FROM health_account
WHERE id % 20 = 1 AND id % 50 = 1 ORDER BY id;
UPDATE health_account SET status = 'closed', closed_at = opened_at + interval '90 days'
WHERE id % 20 = 1 AND id % 50 <> 1;
ANALYZE person; ANALYZE health_account; ANALYZE health_account_event;
"""


async def _time_and_peak(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Seconds of one run of ``work``, and the peak Python memory (tracemalloc, MB) of another
    (tracing slows Python down: not timed)."""
    began = time.perf_counter()
    await work()
    seconds = time.perf_counter() - began
    tracemalloc.start()
    await work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak / 1e6


async def accounts_main() -> None:
    """``report check`` and ``rebuild`` over ``ACCOUNTS`` health accounts (and no visits)."""
    with _demo_database("accounts") as (socket_dir, url, _):
        sql = ACCOUNTS_SQL.format(count=ACCOUNTS)
        events = await _execute(
            socket_dir, "accounts", sql, "SELECT count(*) FROM health_account_event"
        )
        db = Database.from_urls(url)
        try:

            async def rebuild() -> None:
                async with db.session() as session:
                    await reporting.rebuild(session)

            async def check(province: str | None) -> None:
                async with db.read_session() as session:
                    if await reporting.check(session, PERIOD, province):
                        raise RuntimeError("the rollups differ from the recount")

            runs = [
                ("rebuild", await _time_and_peak(rebuild)),
                ("check (country)", await _time_and_peak(lambda: check(None))),
                ("check --province 01", await _time_and_peak(lambda: check("01"))),
            ]
        finally:
            await db.dispose()
    print(f"Accounts' recount on PostgreSQL 18: {ACCOUNTS:,} accounts, {events:,} events\n")
    print("| run | time | peak memory (tracemalloc) |")
    print("|---|---|---|")
    for name, (seconds, peak) in runs:
        print(f"| `report {name}` | {seconds:,.1f} s | {peak:,.1f} MB |")


#: Facilities of the many-facilities case: each sends in every month of the period.
FACILITIES = 5_000
# FACILITIES facilities of Hanoi (codes Z0001...), registered and connected in January, spread
# over the wards in force of Hanoi; per facility and month 20 counters: visits sent and in the
# book (insured or not), with a summary, within 24 h and on time, a rejection and 12 lag
# buckets (at 5,000 facilities: 600,000 counters)
FACILITIES_SQL = """
CREATE TEMP TABLE bench_ward AS
  SELECT row_number() OVER (ORDER BY code) - 1 AS n, code FROM (
    SELECT DISTINCT code FROM catalog_entry
    WHERE list_name = 'ward' AND valid_to IS NULL AND parent_code = '01') AS w;
INSERT INTO facility (code, name, kind, level, ownership, address, ward_code, province_code,
  status, issued, created_at, created_by)
SELECT 'Z' || lpad(n::text, 4, '0'), 'Cơ sở ' || n, 'polyclinic', 'basic',
       CASE WHEN n % 3 = 0 THEN 'private' ELSE 'public' END, NULL,
       (SELECT code FROM bench_ward WHERE bench_ward.n = g.n % (SELECT count(*) FROM bench_ward)),
       '01', 'connected', true, timestamptz '2026-01-05', 'bench'
FROM generate_series(1, {count}) AS g(n);
INSERT INTO facility_onboarding_event (facility_code, from_state, to_state, actor, at)
SELECT code, NULL, 'connected', 'bench', timestamptz '2026-01-05' FROM facility
WHERE created_by = 'bench' ORDER BY code;
INSERT INTO report_count (month, province, ward, facility, metric, dim1, dim2, value)
SELECT m.month, '01', f.ward_code, f.code, c.metric, c.dim1, c.dim2,
       1 + (hashtext(f.code || c.metric || c.dim1 || c.dim2 || m.month::text) & 63)
FROM facility f
CROSS JOIN generate_series(date '2026-07-01', date '2026-12-01', interval '1 month') AS m(month)
CROSS JOIN (VALUES
  ('visits_sent', 'outpatient_exam', 'insured'), ('visits_sent', 'outpatient_exam', 'uninsured'),
  ('visits_in_book', 'outpatient_exam', 'insured'),
  ('visits_in_book', 'outpatient_exam', 'uninsured'),
  ('with_summary', '', ''), ('within_24h', '', ''), ('within_deadline', '', ''),
  ('rejected_visits', '', ''), ('lag', '5', ''), ('lag', '15', ''), ('lag', '30', ''),
  ('lag', '60', ''), ('lag', '120', ''), ('lag', '240', ''), ('lag', '480', ''),
  ('lag', '720', ''), ('lag', '1440', ''), ('lag', '4320', ''), ('lag', '10080', ''),
  ('lag', 'more', '')) AS c(metric, dim1, dim2)
WHERE f.created_by = 'bench';
ANALYZE facility; ANALYZE facility_onboarding_event; ANALYZE report_count;
"""


async def _loop_pause(work: Callable[[], Awaitable[object]]) -> float:
    """The longest time (s) the event loop could not run another task while ``work`` ran
    (what every other request of that server process waits)."""
    longest = 0.0
    done = False

    async def tick() -> None:
        nonlocal longest
        while not done:
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            longest = max(longest, time.perf_counter() - began)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        await work()
    finally:
        done = True
        await ticker
    return longest


def _command_run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak resident memory (MB) of one command. The peak is the process's own
    high-water mark, read from /proc while it runs: the ``ru_maxrss`` the kernel reports for a
    child also holds what its parent had resident when it forked (the benchmark's own MBs)."""
    began = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    status = Path(f"/proc/{process.pid}/status")
    peak_kb = 0
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass  # it just ended
        time.sleep(0.02)
    seconds = time.perf_counter() - began
    if process.returncode:
        raise RuntimeError(f"{args} exited {process.returncode}")
    return seconds, peak_kb / 1024


async def _page_loads(db: Database, rounds: int = 2) -> tuple[list[float], int]:
    """The department's report page of province 01 as the demo's department administrator
    (Nguyễn Văn An) opens it, ``rounds`` times in one app: each load's seconds, and the page's
    size in bytes."""
    import httpx

    from vnehr.app import create_app
    from vnehr.kit.auth import SESSION_COOKIE, make_session_cookie
    from vnehr.kit.settings import Settings

    settings = Settings()
    app = create_app(settings, database=db)
    signed = make_session_cookie(
        settings, {"personal_id": "001085004217", "name": "Nguyễn Văn An", "assurance_level": 2}
    )
    loads, size = [], 0
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as client:
        client.cookies.set(SESSION_COOKIE, signed)
        for _ in range(rounds):
            began = time.perf_counter()
            page = await client.get(f"/department/report?period={PERIOD.name}&province=01")
            loads.append(time.perf_counter() - began)
            if page.status_code != 200 or "Cơ sở 1" not in page.text:
                raise RuntimeError(f"the report page answered {page.status_code}")
            size = len(page.content)
    await app.state.http.aclose()
    return loads, size


async def facilities_main() -> None:
    """The report of a province with ``FACILITIES`` facilities sending: the figures, the
    event loop's longest pause while they are made, the department's page (first and second
    load in one process) and ``vnehr report --format json``."""
    with _demo_database("facilities") as (socket_dir, url, env):
        sql = FACILITIES_SQL.format(count=FACILITIES)
        counters = await _execute(
            socket_dir, "facilities", sql, "SELECT count(*) FROM report_count"
        )
        db = Database.from_urls(url)
        try:

            async def report() -> None:
                async with db.read_session() as session:
                    figures = await reporting.figures(
                        session, PERIOD, province="01", cost_per_record=5000
                    )
                if len(figures["timeliness"]["slowest"]) != 10:
                    raise RuntimeError("the report ranked no facilities")

            seconds, peak = await _time_and_peak(report)
            pause = await _loop_pause(report)
            loads, size = await _page_loads(db)
        finally:
            await db.dispose()
        with tempfile.TemporaryDirectory() as out:
            command = [*VNEHR, "report", "--period", PERIOD.name, "--province", "01"]
            command += ["--format", "json", "--out", out]
            cli_seconds, cli_rss = _command_run(command, env)
            command[command.index("01")] = "79"  # a province without facilities: the baseline
            empty_seconds, empty_rss = _command_run(command, env)
    print(
        f"Report of a province with {FACILITIES:,} facilities sending ({counters:,} counters) "
        "on PostgreSQL 18\n"
    )
    print("| run | time | peak memory | longest event-loop pause |")
    print("|---|---|---|---|")
    print(
        f"| `reporting.figures` | {seconds:,.2f} s | {peak:,.1f} MB (tracemalloc) | {pause:,.2f} s |"
    )
    print(
        f"| `/department/report`, first / second load ({size / 1e3:,.0f} kB) | "
        f"{loads[0]:,.2f} s / {loads[1]:,.2f} s | | |"
    )
    print(
        f"| `vnehr report --format json` | {cli_seconds:,.1f} s | {cli_rss:,.0f} MB (peak RSS) | |"
    )
    print(
        f"| the same for a province without facilities | {empty_seconds:,.1f} s | "
        f"{empty_rss:,.0f} MB (peak RSS) | |"
    )


if __name__ == "__main__":
    which = sys.argv[1:]
    asyncio.run(
        accounts_main()
        if which == ["accounts"]
        else facilities_main()
        if which == ["facilities"]
        else main()
    )
