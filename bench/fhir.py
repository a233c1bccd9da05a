"""The health book and FHIR: validation speed, and timeline reads with a million visits stored.

1. Validation of a 100-entry transaction Bundle (50 Patient + 50 Observation, the official R4
   examples ``Patient-example`` and ``Observation-example``): our validator (JSON parse +
   structural checks against the R4 definitions) next to ``fhir.resources`` (pydantic R4B
   models, ``model_validate_json``) measured in the same run.
2. ``GET /api/v1/me/timeline`` on PostgreSQL with ``BENCH_TIMELINE_VISITS`` visits (default
   1,000,000: 100,000 people x 10 visits, loaded with set-based SQL, as ``vnehr synth`` +
   import would leave them but without the hours of intake), signed-in citizens chosen at random
   per request; ceiling: ``/healthz`` of the same server in the same run. ``vnehr serve
   --workers 2``, wrk 1 thread, 32 connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.catalog_http import _free_port
from bench.common import packed_tables, postgres, until_up, wrk

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / ".cache" / "fhir" / "node_modules" / "hl7.fhir.r4.examples"
VISITS = int(os.environ.get("BENCH_TIMELINE_VISITS", "1000000"))
PER_PERSON = 10
CONCURRENCY = 32
SECONDS = 10
SECRET = "bench-secret-" + "y" * 40


def _bundle() -> bytes:
    patient = json.loads((EXAMPLES / "Patient-example.json").read_text())
    observation = json.loads((EXAMPLES / "Observation-example.json").read_text())
    entries: list[dict[str, Any]] = []
    for i in range(50):
        entries.append({"fullUrl": f"urn:uuid:p{i}", "resource": patient,
                        "request": {"method": "POST", "url": "Patient"}})  # fmt: skip
        entries.append({"fullUrl": f"urn:uuid:o{i}", "resource": observation,
                        "request": {"method": "POST", "url": "Observation"}})  # fmt: skip
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


def _timed(function: Any, data: bytes, rounds: int) -> float:
    """Median ms per call over ``rounds`` calls (after one warm-up)."""
    function(data)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function(data)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def validation() -> list[str]:
    import orjson
    from fhir.resources.R4B.bundle import Bundle

    from vnehr.fhir.validate import validate

    data = _bundle()

    def ours(raw: bytes) -> None:
        problems = validate(orjson.loads(raw))
        if problems:
            raise RuntimeError(problems[:3])

    def decimals(raw: bytes) -> None:  # what POST /fhir/R4 does: exact decimals
        problems = validate(json.loads(raw, parse_float=__import__("decimal").Decimal))
        if problems:
            raise RuntimeError(problems[:3])

    reference = _timed(Bundle.model_validate_json, data, 20)
    fast = _timed(ours, data, 200)
    exact = _timed(decimals, data, 200)
    return [
        f"| `fhir.resources` R4B `Bundle.model_validate_json` (reference) | {reference:.1f} |",
        f"| ours: orjson parse + `vnehr.fhir.validate` | **{fast:.2f}** |",
        f"| ours as `POST /fhir/R4` runs it: json with exact decimals + validate | {exact:.2f} |",
        f"| bundle size | {len(data) / 1024:.0f} KiB |",
    ]


LOAD_SQL = """
INSERT INTO person (id, personal_id, full_name, birth_date, sex, provisional, created_at, created_by)
SELECT n, lpad('1' || n::text, 12, '0'), 'Người thử ' || n, date '1980-01-01' + (n % 9000),
       CASE WHEN n % 2 = 0 THEN 'female' ELSE 'male' END, false, now(), 'bench'
FROM generate_series(1, {persons}) AS n;

INSERT INTO visit_version (id, facility_code, visit_key, version, current, test_mode,
  submission_id, content_sha256, person_id, personal_id, care_type, insured, main_diagnosis,
  outcome, started_at, ended_at, received_at, lag_seconds, has_summary, tables)
SELECT v, '01001', 'BENCH' || v, 1, true, false, 'bench', md5(v::text), 1 + (v - 1) / {per},
       lpad('1' || (1 + (v - 1) / {per})::text, 12, '0'), '01', v % 3 <> 0,
       (ARRAY['J18.9','I10','E11.9','K29.7','J45'])[1 + v % 5], '2',
       timestamptz '2024-01-01' + (v % 700) * interval '1 day',
       timestamptz '2024-01-01' + (v % 700) * interval '1 day' + interval '2 hours',
       timestamptz '2024-01-01' + (v % 700) * interval '1 day' + interval '3 hours', 3600, false,
       '{tables}'::bytea
FROM generate_series(1, {visits}) AS v;

INSERT INTO timeline_entry (id, person_id, facility_code, visit_key, version_id, care_type,
  main_diagnosis, outcome, insured, started_at, ended_at, version, updated_at)
SELECT id, person_id, facility_code, visit_key, id, care_type, main_diagnosis, outcome, insured,
       started_at, ended_at, 1, received_at
FROM visit_version;

SELECT setval(pg_get_serial_sequence('person', 'id'), {persons} + 1000);
SELECT setval(pg_get_serial_sequence('visit_version', 'id'), {visits} + 1000);
SELECT setval(pg_get_serial_sequence('timeline_entry', 'id'), {visits} + 1000);
ANALYZE;
"""


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(args, env=env, check=True, capture_output=True)


async def timeline() -> list[str]:
    with postgres("book") as socket_dir:
        return await _timeline(socket_dir)


async def _timeline(socket_dir: str) -> list[str]:
    from vnehr.kit.auth import make_session_cookie
    from vnehr.kit.settings import Settings

    url = f"postgresql+asyncpg://postgres@/book?host={socket_dir}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VNEHR_ENV": "development", "VNEHR_DATABASE_URL": url,
           "VNEHR_PUBLIC_URL": base, "VNEHR_LOG_LEVEL": "WARNING", "VNEHR_SECRET_KEY": SECRET,
           # as in production: the outbox worker runs as its own process, not in the API's
           "VNEHR_WORKER_IN_PROCESS": "false"}  # fmt: skip
    vnehr = [sys.executable, "-m", "vnehr"]
    _run([*vnehr, "db", "upgrade"], env)
    _run([*vnehr, "demo", "load"], env)
    import asyncpg

    persons = VISITS // PER_PERSON
    connection = await asyncpg.connect(host=socket_dir, user="postgres", database="book")
    try:
        # the demo's own rows use small ids: start the bench rows above them
        await connection.execute(
            "DELETE FROM timeline_entry; DELETE FROM notification; DELETE FROM outbox_event;"
            " DELETE FROM delivery_attempt; DELETE FROM visit_version;"
            " DELETE FROM representative; DELETE FROM health_account; DELETE FROM insurance_card;"
            " DELETE FROM person;"
        )
        started = time.perf_counter()
        await connection.execute(
            LOAD_SQL.format(
                persons=persons,
                visits=VISITS,
                per=PER_PERSON,
                tables=packed_tables({"XML1": [{"MA_LK": "x"}]}),
            )
        )
        load_seconds = time.perf_counter() - started
        stored = await connection.fetchval("SELECT count(*) FROM timeline_entry")
    finally:
        await connection.close()
    process = subprocess.Popen(
        [*vnehr, "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await until_up(base)
        settings = Settings(secret_key=SECRET, env="development")
        rng = random.Random(3)
        cookies = []
        for n in rng.sample(range(1, persons + 1), 2000):
            pid = ("1" + str(n)).rjust(12, "0")
            cookies.append(make_session_cookie(settings, {"personal_id": pid, "name": "x",
                                                          "assurance_level": 2}))  # fmt: skip
        check = httpx.get(base + "/api/v1/me/timeline",
                          cookies={"vnehr_session": cookies[0]}).json()  # fmt: skip
        if len(check["items"]) != PER_PERSON:
            raise RuntimeError(f"the loaded book is not what was loaded: {check}")
        # warm-up at full concurrency, so both workers have built their catalogue copy
        await wrk(base, ["/api/v1/me/timeline"], cookies=cookies[:200], seconds=SECONDS)
        await wrk(base, ["/healthz"], seconds=SECONDS)
        figures = {}
        for connections in (4, CONCURRENCY):
            load = {"connections": connections, "seconds": SECONDS}
            ceiling, ceiling_p99 = await wrk(base, ["/healthz"], **load)
            rate, p99 = await wrk(base, ["/api/v1/me/timeline"], cookies=cookies, **load)
            ceiling_after, _ = await wrk(base, ["/healthz"], **load)
            figures[connections] = (ceiling, ceiling_after, ceiling_p99, rate, p99)
    finally:
        process.terminate()
        process.wait(timeout=20)
    rows = [f"| visits stored (timeline rows) | {stored:,} ({persons:,} people, loaded in "
            f"{load_seconds:.0f} s) | |"]  # fmt: skip
    for connections, (before, after, ceiling_p99, rate, p99) in figures.items():
        mean = (before + after) / 2
        rows += [
            f"| {connections} connections: `/healthz` (ceiling) requests/s, before / after | "
            f"{before:,.0f} / {after:,.0f} | p99 {ceiling_p99:.1f} ms |",
            f"| {connections} connections: `GET /api/v1/me/timeline` requests/s | **{rate:,.0f}** "
            f"(**{rate / mean:.0%}** of the ceiling) | p99 **{p99:.1f} ms** |",
        ]
    return rows


async def main() -> None:
    print("FHIR validation, one 100-entry transaction Bundle (median ms per Bundle)\n")
    print("| what | ms |")
    print("|---|---|")
    print("\n".join(validation()))
    print(f"\nHealth book timeline on PostgreSQL, {SECONDS} s per row, 2 workers\n")
    print("| what | figure | latency |")
    print("|---|---|---|")
    print("\n".join(await timeline()))


if __name__ == "__main__":
    asyncio.run(main())
