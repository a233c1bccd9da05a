"""Delivery through NATS JetStream to the BHXH portal simulator, next to the raw JetStream
publish rate measured in the same run (same server, same cores).

First on SQLite (file, WAL; one message at a time) with a portal answering at once; then on
PostgreSQL with a portal that takes ``BENCH_PORTAL_LATENCY`` seconds (0.2) to answer, one call
at a time and ``VNEHR_OUTBOX_CONCURRENCY``'s default (8) at once, over JetStream and with the
in-process bus's rounds (D257). The worker runs in this
process; the simulator answers in-process.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
from fastapi import FastAPI
from sqlalchemy import func, select

VISITS = int(os.environ.get("BENCH_DELIVERY_VISITS", "1000"))
#: visits and portal latency of the PostgreSQL runs
SLOW_VISITS = int(os.environ.get("BENCH_SLOW_VISITS", "300"))
LATENCY = float(os.environ.get("BENCH_PORTAL_LATENCY", "0.2"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def raw_publish_rate(url: str, count: int = 20_000) -> float:
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name="RAWBENCH", subjects=["rawbench.>"])
    started = time.perf_counter()
    for n in range(count):
        await js.publish_async("rawbench.x", b'{"event_id":"%d"}' % n)
    await js.publish_async_completed()
    elapsed = time.perf_counter() - started
    await client.close()
    return count / elapsed


async def delivery_rate(
    db_url: str,
    url: str,
    visits: int,
    *,
    latency: float = 0.0,
    concurrency: int = 8,
    inprocess: bool = False,
) -> float:
    """Visits a second delivered through NATS (or the in-process bus's rounds) to the portal
    simulator from a fresh database holding ``visits`` accepted visits (outbox full)."""
    from vnehr import catalogs, exchange, facilities, submissions
    from vnehr.exchange import nats_bus
    from vnehr.kit.auth import Grant, Subject
    from vnehr.kit.db import Database
    from vnehr.kit.migrate import upgrade
    from vnehr.kit.outbox import OutboxEvent
    from vnehr.sim.bhxh import Account, BhxhConfig, create_app
    from vnehr.submissions import synth

    await upgrade(db_url)
    db = Database.from_urls(db_url)
    async with db.session() as session:
        await catalogs.load_builtin(session)
    admin = Subject("person", "001085004217", "bench", (Grant("department_admin"),))
    async with db.session() as session:
        facility = await facilities.register(
            session, admin,
            facilities.FacilityCreate(name="BV", kind=facilities.Kind.hospital,
                                      level=facilities.Level.basic,
                                      ownership=facilities.Ownership.public, province_code="01"),
        )  # fmt: skip
        for state in list(facilities.State)[1:5]:
            await facilities.move(session, admin, facility.code, state, "bench", override=True)
    system = Subject("facility_system", "his", "his", scopes=frozenset({"submission.write"}),
                     facility_code=facility.code)  # fmt: skip
    rng = random.Random(5)
    options = submissions.IntakeOptions(limits=submissions.Limits())
    for _ in range(visits):
        async with db.session() as session:
            one = synth.make_visit(rng, facility_code=facility.code)
            await submissions.submit(session, system, synth.envelope([one], facility.code), options)
    config = BhxhConfig(accounts={"hub": Account("pw", ())})
    config.faults.latency_seconds = latency
    outer = FastAPI()
    outer.mount("/sim/bhxh", create_app(config))
    stream = f"BENCH{random.randrange(10**6)}"
    nats_bus.STREAM, nats_bus.PREFIX = stream, f"{stream.lower()}.events."
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://p"
    ) as http:
        client = exchange.BhxhClient(
            http, base_url="http://p/sim/bhxh", username="hub", password="pw"
        )
        consumers: exchange.Consumers = {"visit.accepted": {"bhxh": exchange.bhxh_consumer(client)}}
        stop = asyncio.Event()
        started = time.perf_counter()
        policy = exchange.Policy(concurrency=concurrency)
        if inprocess:
            running = exchange.run(db, consumers, policy, stop=stop, idle_seconds=0.05)
        else:
            running = nats_bus.run(db, url, consumers, policy, stop=stop)
        task = asyncio.create_task(running)
        while True:
            async with db.read_session() as session:
                left = await session.scalar(
                    select(func.count()).select_from(OutboxEvent)
                    .where(OutboxEvent.status != "delivered")
                )  # fmt: skip
            if not left:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    await db.dispose()
    return visits / elapsed


async def main() -> None:
    from bench.common import postgres

    work = Path(tempfile.mkdtemp(prefix="vnehr-bench-exchange-"))
    port = _free_port()
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or "nats-server"
    server = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(work / "nats")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{port}"
    try:
        await asyncio.sleep(1)
        raw = await raw_publish_rate(url)
        sqlite = await delivery_rate(f"sqlite+aiosqlite:///{work / 'bench.db'}", url, VISITS)
        slow: dict[tuple[str, int], float] = {}
        names = ("one_call", "calls_at_once", "rounds_one_call", "rounds_at_once")
        with postgres(*names) as socket:
            for bus, concurrency, name in (
                ("nats", 1, "one_call"),
                ("nats", 8, "calls_at_once"),
                ("inprocess", 1, "rounds_one_call"),
                ("inprocess", 8, "rounds_at_once"),
            ):
                slow[bus, concurrency] = await delivery_rate(
                    f"postgresql+asyncpg://postgres@/{name}?host={socket}", url, SLOW_VISITS,
                    latency=LATENCY, concurrency=concurrency, inprocess=bus == "inprocess",
                )  # fmt: skip
        print(json.dumps({
            "visits": VISITS,
            "delivered_visits_per_s": round(sqlite),
            "raw_jetstream_publish_msgs_per_s": round(raw),
            "postgresql_portal_latency_s": LATENCY,
            "postgresql_visits": SLOW_VISITS,
            "postgresql_one_call_at_a_time_visits_per_s": round(slow["nats", 1], 1),
            "postgresql_8_calls_at_once_visits_per_s": round(slow["nats", 8], 1),
            "postgresql_inprocess_one_call_at_a_time_visits_per_s": round(
                slow["inprocess", 1], 1),
            "postgresql_inprocess_8_calls_at_once_visits_per_s": round(slow["inprocess", 8], 1),
            "ceiling_one_call_at_a_time_visits_per_s": round(1 / LATENCY, 1) if LATENCY else None,
        }, indent=1))  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
