"""Catalogue lookups over HTTP against a trivial endpoint measured in the same run.

A real ``vnehr serve`` process (one uvicorn worker) on SQLite and on PostgreSQL; the load comes
from wrk with 32 connections on the same 2 cores (read the figures as relative). Ceiling =
``/healthz``, measured in the same run, which touches no database.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil

from bench.common import postgres, wrk

CONCURRENCY = 32
SECONDS = 5.0
CODES = ["J45", "I10", "E11.9", "K29.7", "J18.9", "A09.0", "N39.0", "R50.9", "O80.0", "Z00.0"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "vnehr", *args], env=env, check=True, capture_output=True)


async def _measure(name: str, url: str) -> list[str]:
    env = {**os.environ, "VNEHR_ENV": "development", "VNEHR_DATABASE_URL": url}
    env["VNEHR_LOG_LEVEL"] = "WARNING"
    _run(["db", "upgrade"], env)
    _run(["demo", "load", "--if-empty"], env)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vnehr", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        rows = []
        for label, paths in (
            ("`/healthz` (ceiling)", ["/healthz"]),
            ("`/api/v1/catalogs/icd10/{code}`", [f"/api/v1/catalogs/icd10/{c}" for c in CODES]),
            ("`/api/v1/catalogs/ward?q=` search", ["/api/v1/catalogs/ward?q=hoan%20kiem"]),
        ):
            rps, p99 = await wrk(base, paths, connections=CONCURRENCY, seconds=SECONDS)
            rows.append(f"| {name} | {label} | {rps:,.0f} | {p99:.1f} |")
        rss = psutil.Process(server.pid).memory_info().rss / 2**20
        rows.append(f"| {name} | server RSS after the run | {rss:.0f} MB | |")
        return rows
    finally:
        server.terminate()
        server.wait(timeout=10)


async def main() -> None:
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += await _measure("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
    with postgres("vnehr_bench") as socket_dir:
        rows += await _measure(
            "PostgreSQL", f"postgresql+asyncpg://postgres@/vnehr_bench?host={socket_dir}"
        )
    print(f"Catalogue lookups, {CONCURRENCY} connections, {SECONDS:.0f} s each, one worker\n")
    print("| database | request | requests/s | p99 ms |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nload generator peak RSS: {peak:.0f} MB")
