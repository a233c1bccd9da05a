"""Visit intake throughput: HTTP (32 concurrent clients), `vnehr import`, and ceilings
measured in the same run on the same files and cores: parsing alone on all cores (the issue's
ceiling: the intake's XML parser, no checks; at the start and the end), parsing + validation
on all cores (what the intake does before storing; before, between and after the two
intakes, as the machine's speed drifts), and a raw PostgreSQL COPY of the same visit rows.

Typical visit (from `vnehr synth`): XML1 + 8 drugs + 12 services + 10 lab results + 3 notes +
XML8, one HOSO per file.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import postgres, until_up

FILES = int(os.environ.get("BENCH_VISITS", "2000"))
CONCURRENCY = 32
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _warm() -> None:
    from vnehr import catalogs

    catalogs.offline()  # build the packaged catalogues once per worker, before timing


def _parse_chunk(paths: list[str]) -> int:
    from vnehr import catalogs, submissions

    codes = catalogs.offline()
    limits = submissions.Limits()
    accepted = 0
    for path in paths:
        analysis = submissions.analyse(Path(path).read_bytes(), codes=codes, limits=limits)
        accepted += sum(not v.findings.rejected for v in analysis.visits)
    return accepted


def _parse_only_chunk(paths: list[str]) -> int:
    """Parsing alone, the issue's ceiling: the envelope and every inner table read into lxml
    trees by the intake's own parser (same caps and safety), base64 decoded; no checks, no
    typed rows."""
    from vnehr.submissions import xmlio

    limits = xmlio.Limits()
    tables = 0
    for path in paths:
        envelope = xmlio.read_envelope(Path(path).read_bytes(), limits)
        for entries in envelope.records:
            for entry in entries:
                xmlio.parse(xmlio.b64decode(entry.content, what=entry.kind), limits)
                tables += 1
    return tables


def parse_ceiling(paths: list[Path], chunk: Any = _parse_chunk) -> tuple[float, int]:
    """Files/s of ``chunk`` over all cores (a process per core), and the sum of its results:
    ``_parse_chunk`` (parse and validate, as the intake does before storing) by default."""
    workers = os.cpu_count() or 1
    chunks = [[str(p) for p in paths[i::workers]] for i in range(workers)]
    with ProcessPoolExecutor(workers, initializer=_warm) as pool:
        list(pool.map(chunk, [c[:20] for c in chunks]))  # warm up
        started = time.perf_counter()
        counted = sum(pool.map(chunk, chunks))
        elapsed = time.perf_counter() - started
    return len(paths) / elapsed, counted


def _vnehr(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "vnehr", *args], env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


async def _setup_facility(url: str) -> tuple[str, Any]:
    """A connected facility 01001 with one registered system; returns (client id, key)."""
    from joserfc.jwk import ECKey

    from vnehr import facilities
    from vnehr.kit.auth import Grant, Subject
    from vnehr.kit.db import Database

    admin = Subject("person", "001085004217", "bench", (Grant("department_admin"),))
    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    db = Database.from_urls(url)
    async with db.session() as session:
        facility = await facilities.get(session, admin, "01001")
        for state in list(facilities.State)[1:5]:
            if facility.status == "connected":
                break
            facility = await facilities.move(session, admin, "01001", state, "bench", override=True)
        client = await facilities.add_client(
            session,
            admin,
            "01001",
            facilities.ClientCreate(
                name="bench",
                jwks={"keys": [key.as_dict(private=False)]},
                scopes=["submission.write"],
            ),
        )
    await db.dispose()
    return client.client_id, key


def _assertion(client_id: str, key: Any, audience: str) -> str:
    from joserfc import jwt

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 120,
              "jti": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


async def http_rate(
    base: str,
    token: str,
    bodies: list[bytes],
    seconds: int = 12,
    *,
    warm_up: bool = False,
    cpu: dict[str, float] | None = None,
    server_pid: int | None = None,
) -> tuple[float, int]:
    """Visits/s over HTTP with wrk (C, one thread, 32 connections) posting distinct files.
    With ``server_pid``, ``cpu`` is filled with the CPU seconds the run took from the server,
    PostgreSQL and wrk, from the moment the requests begin (wrk first reads and formats every
    request: seconds of its own CPU that are not the run's)."""
    work = Path(tempfile.mkdtemp(prefix="vnehr-wrk-"))
    for n, body in enumerate(bodies, start=1):
        (work / f"{n}.xml").write_bytes(body)
    script = work / "post.lua"
    script.write_text(
        f"""
-- every request formatted once, before the run: the load generator shares the two cores
-- with the server and PostgreSQL, and building a 42 KB request each time costs it CPU
local requests = {{}}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/xml"
wrk.headers["Authorization"] = "Bearer {token}"
for n = 1, {len(bodies)} do
  local f = io.open("{work}/" .. n .. ".xml", "rb")
  requests[n] = wrk.format(nil, "/api/v1/submissions", nil, f:read("*a")); f:close()
end
local i = 0
request = function()
  i = i % #requests + 1
  return requests[i]
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %d %d %d\\n", summary.requests, summary.duration / 1e6,
    summary.errors.status, summary.errors.timeout, latency:percentile(99)))
end
""",
        encoding="utf-8",
    )
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script),
        base, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    if server_pid is not None and cpu is not None:
        cpu.update(await _cpu_when_busy(server_pid, process.pid))
    out, _ = await process.communicate()
    if server_pid is not None and cpu is not None:
        after = _cpu_seconds(server_pid)  # (wrk has ended: counted with the waited children)
        for key in cpu:
            cpu[key] = after[key] - cpu[key]
    line = next(x for x in out.decode().splitlines() if x.startswith("RESULT"))
    _, requests, elapsed, bad, timeouts, _p99 = line.split()
    if int(bad) or int(timeouts):
        raise RuntimeError(f"{bad} non-2xx and {timeouts} timeouts: {out.decode()[-500:]}")
    if int(requests) > len(bodies) and not warm_up:
        raise RuntimeError("more requests than distinct files: raise BENCH_VISITS")
    return int(requests) / float(elapsed), int(requests)


async def _cpu_when_busy(server_pid: int, wrk_pid: int) -> dict[str, float]:
    """``_cpu_seconds`` at the moment the server starts working on wrk's requests, with wrk's
    own CPU so far (its start-up) added to the waited children's: subtracted from the totals
    at the end, what is left is the run's."""
    wrk = psutil.Process(wrk_pid)
    last = _cpu_seconds(server_pid)["server"]
    while True:
        await asyncio.sleep(0.02)
        wrk_times = wrk.cpu_times()
        now = _cpu_seconds(server_pid)
        if now["server"] - last > 0.01:  # (an idle server takes far less in 20 ms)
            now["wrk"] += wrk_times.user + wrk_times.system
            return now
        last = now["server"]


def _cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the API server (supervisor and workers), by PostgreSQL (every
    ``postgres`` process) and by this benchmark's waited-for children (wrk)."""

    def used(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    server = psutil.Process(server_pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "server": used(server) + sum(used(c) for c in server.children(recursive=True)),
        "postgres": sum(used(p) for p in psutil.process_iter() if p.name() == "postgres"),
        "wrk": children.ru_utime + children.ru_stime,
    }


def echo_rate(bodies: list[bytes], port: int, workers: int) -> float:
    """The HTTP ceiling: requests/s of a trivial endpoint (``bench/echo.py``: the same server,
    bodies and load, nothing checked or stored)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", str(port), str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.post(base + "/api/v1/submissions", content=b"<x/>", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        rate, _ = asyncio.run(http_rate(base, "-", bodies, seconds=6, warm_up=True))
        return rate
    finally:
        process.terminate()
        process.wait(timeout=20)


async def copy_ceiling(dsn: str, rows: list[tuple[Any, ...]]) -> float:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE TEMP TABLE copy_probe (facility_code text, visit_key text, version int,"
            " content_sha256 text, personal_id text, care_type text, tables bytea)"
        )
        started = time.perf_counter()
        await connection.copy_records_to_table("copy_probe", records=rows)
        return len(rows) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def main() -> None:
    from vnehr.submissions import synth

    work = Path(tempfile.mkdtemp(prefix="vnehr-bench-intake-"))
    files = work / "files"
    synth.write_files(files, FILES, seed=7, facility_code="01001")
    paths = sorted(files.glob("*.xml"))
    size = sum(p.stat().st_size for p in paths) / len(paths)
    # This machine's speed drifts by tens of percent within minutes: the ceiling is measured
    # before, between and after the two intakes, and each is compared with the mean of the
    # ceilings measured just before and just after it.
    ceilings = [parse_ceiling(paths)[0]]
    # the issue's own ceiling, parsing alone (no checks): the same files through lxml
    parse_only = [parse_ceiling(paths, _parse_only_chunk)[0]]

    with postgres("intake_http", "intake_import") as socket_dir:
        results: dict[str, Any] = {"files": len(paths), "bytes_per_file": round(size)}
        # HTTP
        url = f"postgresql+asyncpg://postgres@/intake_http?host={socket_dir}"
        port = 8765
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "VNEHR_ENV": "development", "VNEHR_DATABASE_URL": url,
               "VNEHR_PUBLIC_URL": base, "VNEHR_LOG_LEVEL": "WARNING",
               # as in production: the outbox worker runs as its own process (on its own
               # machine), not inside the API workers whose intake is measured here
               "VNEHR_WORKER_IN_PROCESS": "false"}  # fmt: skip
        _vnehr(["db", "upgrade"], env)
        _vnehr(["demo", "load"], env)
        client_id, key = await _setup_facility(url)
        workers = int(os.environ.get("BENCH_WORKERS", "2"))
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vnehr",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await until_up(base)
            token = httpx.post(
                base + "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": _assertion(client_id, key, base + "/oauth/token"),
                },
            ).json()["access_token"]
            bodies = [p.read_bytes() for p in paths]
            await http_rate(base, token, bodies[:100], seconds=1, warm_up=True)
            used: dict[str, float] = {}
            rate, ok = await http_rate(base, token, bodies[100:], cpu=used, server_pid=process.pid)
            results["http_visits_per_s"] = round(rate)
            results["http_accepted"] = ok
            # where the two cores went during the run, in ms of CPU a visit
            results["http_cpu_ms_per_visit"] = {k: round(1000 * v / ok, 2) for k, v in used.items()}
            rss = sum(c.memory_info().rss for c in psutil.Process(process.pid).children()) / 2**20
            results["http_worker_rss_mb_total"] = round(rss)
            results["http_workers"] = workers
        finally:
            process.terminate()
            process.wait(timeout=20)
        # the HTTP stack's own ceiling: a trivial endpoint, same server, bodies and load
        echo = await asyncio.to_thread(echo_rate, bodies, port + 1, workers)
        results["http_trivial_endpoint_per_s"] = round(echo)
        results["http_share_of_trivial_endpoint"] = round(results["http_visits_per_s"] / echo, 2)
        ceiling_rate, parse_accepted = parse_ceiling(paths)
        ceilings.append(ceiling_rate)
        results["parse_accepted"] = parse_accepted
        # vnehr import
        import_url = f"postgresql+asyncpg://postgres@/intake_import?host={socket_dir}"
        env["VNEHR_DATABASE_URL"] = import_url
        _vnehr(["db", "upgrade"], env)
        _vnehr(["demo", "load"], env)
        await _setup_facility(import_url)
        started = time.perf_counter()
        out = _vnehr(["import", str(files)], env)
        results["import_visits_per_s"] = round(len(paths) / (time.perf_counter() - started))
        results["import_summary"] = out.strip().splitlines()[-1]
        ceilings.append(parse_ceiling(paths)[0])
        parse_only.append(parse_ceiling(paths, _parse_only_chunk)[0])
        results["parse_only_ceiling_visits_per_s"] = round(sum(parse_only) / 2)
        results["parse_only_ceiling_runs"] = [round(c) for c in parse_only]
        results["http_share_of_parse_only"] = round(
            results["http_visits_per_s"] / (sum(parse_only) / 2), 2
        )
        results["import_share_of_parse_only"] = round(
            results["import_visits_per_s"] / (sum(parse_only) / 2), 2
        )
        results["parse_ceiling_visits_per_s"] = round(sum(ceilings) / 3)
        results["parse_ceiling_runs"] = [round(c) for c in ceilings]
        results["http_share_of_ceiling"] = round(
            results["http_visits_per_s"] / ((ceilings[0] + ceilings[1]) / 2), 2
        )
        results["import_share_of_ceiling"] = round(
            results["import_visits_per_s"] / ((ceilings[1] + ceilings[2]) / 2), 2
        )
        # raw COPY of the same rows
        from vnehr import catalogs, submissions
        from vnehr.kit.db import pack_json

        codes = catalogs.offline()
        rows = []
        for path in paths:
            for visit in submissions.analyse(
                path.read_bytes(), codes=codes, limits=submissions.Limits()
            ).visits:
                xml1 = visit.tables.get("XML1", [{}])[0]
                tables = pack_json(visit.tables)  # as the intake stores them (D51)
                rows.append(
                    ("01001", visit.visit_key, 1, visit.content_sha256,
                     xml1.get("SO_CCCD"), xml1.get("MA_LOAI_KCB"), tables)
                )  # fmt: skip
        results["copy_ceiling_rows_per_s"] = round(
            await copy_ceiling(f"postgresql://postgres@/intake_import?host={socket_dir}", rows)
        )
    print(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
