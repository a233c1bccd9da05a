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
import time
import tracemalloc

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


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, env=env, check=True, capture_output=True)


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
    with postgres("report") as socket_dir:
        url = f"postgresql+asyncpg://postgres@/report?host={socket_dir}"
        env = {
            **os.environ,
            "VNEHR_ENV": "development",
            "VNEHR_DATABASE_URL": url,
            "VNEHR_LOG_LEVEL": "WARNING",
        }
        vnehr = [sys.executable, "-m", "vnehr"]
        _run([*vnehr, "db", "upgrade"], env)
        _run([*vnehr, "demo", "load"], env)
        import asyncpg

        db = Database.from_urls(url)
        rows = []
        loaded = 0
        try:
            for size in SIZES:
                connection = await asyncpg.connect(
                    host=socket_dir, user="postgres", database="report"
                )
                try:
                    await connection.execute(
                        LOAD_SQL.format(first=loaded + 1, last=size, tables=packed_tables({}))
                    )
                finally:
                    await connection.close()
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


if __name__ == "__main__":
    asyncio.run(main())
