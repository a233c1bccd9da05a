"""Thousands of visits, end to end with real processes: files imported with `vnehr import`, the
outbox delivered by the worker to the BHXH portal simulator (its own process) failing 30 % of
the time, and the worker killed (SIGKILL) midway and started again. Twice: PostgreSQL with NATS
JetStream and a separate `vnehr worker`; SQLite with the in-process bus inside `vnehr serve`.

Every visit version reaches the simulator (which, like the portal, keys on facility + MA_LK), in
order per MA_LK (a correction never before its original), none lost, and sent twice only when
the kill cut an attempt whose answer never came. ``VNEHR_E2E_VISITS`` sets the number of visits
(default 1,200: enough for a kill midway, ordering and retries through 30 % faults;
5,000 and more by hand)."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, new_database_on, wait_for_port
from vnehr.submissions import synth

pytestmark = pytest.mark.e2e
VISITS = int(os.environ.get("VNEHR_E2E_VISITS", "1200"))
PER_FILE = 50
CORRECTED = max(VISITS // 25, 2)  # corrections of the first visits, sent after everything
FACILITY = "01001"  # the demo's connected hospital
FACILITY_NAME = "Xanh Pôn"
VNEHR = [sys.executable, "-m", "vnehr"]


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [*VNEHR, *args], env=env, check=True, capture_output=True, timeout=600, text=True
    )
    return done.stdout


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    started = subprocess.Popen(
        [*VNEHR, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield started
    finally:
        if started.poll() is None:
            started.send_signal(signal.SIGINT)
            try:
                started.wait(timeout=20)
            except subprocess.TimeoutExpired:
                started.kill()


def write_files(folder: Path, visits: list[synth.SynthVisit]) -> None:
    folder.mkdir(parents=True)
    for start in range(0, len(visits), PER_FILE):
        batch = visits[start : start + PER_FILE]
        (folder / f"f{start:06d}.xml").write_bytes(synth.envelope(batch, FACILITY))


def make_visits(tmp_path: Path) -> tuple[list[synth.SynthVisit], list[synth.SynthVisit]]:
    rng = random.Random(2026)
    visits = [synth.make_visit(rng, facility_code=FACILITY, sequence=n) for n in range(VISITS)]
    write_files(tmp_path / "first", visits)
    corrected = []
    for one in visits[:CORRECTED]:
        again = dataclasses.replace(one, tables=dict(one.tables))
        again.tables.pop("XML8", None)  # the correction drops the record summary
        corrected.append(again)
    write_files(tmp_path / "second", corrected)
    return visits, corrected


@pytest.fixture
def postgres_database(postgres_url: str) -> str:
    """A database of its own on the test server (the processes commit for real)."""
    return new_database_on(postgres_url, "e2e")


@pytest.mark.parametrize("bus", ["nats", "inprocess"])
def test_thousands_of_visits_reach_the_portal_through_faults_and_a_killed_worker(
    bus: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    visits, corrected = make_visits(tmp_path)
    simulator_port, port = free_port(), free_port()
    base = {**os.environ, "VNEHR_ENV": "development", "VNEHR_LOG_LEVEL": "WARNING"}
    for name in ("VNEHR_SECRET_KEY", "VNEHR_VNEID_SIMULATOR", "VNEHR_DATABASE_URL"):
        base.pop(name, None)
    # the portal simulator: its own process, so that it outlives the killed worker
    portal = {
        **base,
        "VNEHR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}",
        "VNEHR_PUBLIC_URL": f"http://127.0.0.1:{simulator_port}",
        "VNEHR_WORKER_IN_PROCESS": "false",
    }
    run(["db", "upgrade"], portal)
    env = {
        **base,
        "VNEHR_PUBLIC_URL": f"http://localhost:{port}",
        "VNEHR_BHXH_URL": f"http://127.0.0.1:{simulator_port}/sim/bhxh",
        # the citizens' phones are told through the other process's VNeID simulator
        "VNEHR_PUSH_URL": f"http://127.0.0.1:{simulator_port}/sim/vneid/push",
        "VNEHR_OUTBOX_BACKOFF_SECONDS": "0.05",
        "VNEHR_OUTBOX_MAX_ATTEMPTS": "100",
    }
    if bus == "nats":
        env["VNEHR_DATABASE_URL"] = str(request.getfixturevalue("postgres_database"))
        env["VNEHR_BUS"] = "nats"
        env["VNEHR_NATS_URL"] = str(request.getfixturevalue("nats_url"))
        env["VNEHR_WORKER_IN_PROCESS"] = "false"
    else:
        env["VNEHR_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        env["VNEHR_WORKER_IN_PROCESS"] = "true"
        # the killed server's claimed events are due again after the claim (60 s by default)
        env["VNEHR_DB_BUSY_TIMEOUT_SECONDS"] = "10"
        env["VNEHR_OUTBOX_CLAIM_SECONDS"] = "16"
    run(["db", "upgrade"], env)
    run(["demo", "load"], env)
    sim = f"http://127.0.0.1:{simulator_port}/sim/bhxh"

    def received() -> list[dict[str, object]]:
        answer: list[dict[str, object]] = httpx.get(f"{sim}/_sim/received", timeout=30).json()
        return answer

    ours = {v.ma_lk for v in visits}

    def arrived() -> int:
        return len({str(r["ma_lk"]) for r in received() if r["ma_lk"] in ours})

    with process(["serve", "--port", str(simulator_port)], portal):
        wait_for_port(simulator_port, timeout=90)
        faults = httpx.put(f"{sim}/_sim/faults", json={"error_rate": 0.3, "seed": 5}, timeout=10)
        assert faults.status_code == 200, faults.text
        run(["import", str(tmp_path / "first")], env)
        run(["import", str(tmp_path / "second")], env)

        def deliverer() -> list[str]:
            return ["worker"] if bus == "nats" else ["serve", "--port", str(port)]

        first = subprocess.Popen(
            [*VNEHR, *deliverer()], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 600
            while arrived() < VISITS // 3 and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            first.send_signal(signal.SIGKILL)  # no goodbye: mid-transaction, mid-request
            first.wait(timeout=10)
        at_kill = arrived()
        assert 0 < at_kill < VISITS  # midway
        with process(deliverer(), env):
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                # (the outbox is listed only once every visit arrived: each listing is a
                # `vnehr` process, whose start-up would take a core from the deliverer)
                if arrived() == VISITS:
                    waiting = run(["outbox", "list"], env)
                    if "pending" not in waiting and "relayed" not in waiting:
                        break
                time.sleep(1)
            records = [r for r in received() if r["ma_lk"] in ours]
            final = run(["outbox", "list"], env)
            assert "dead" not in final
            assert "pending" not in final
            assert "relayed" not in final
            pushed = httpx.get(
                f"http://127.0.0.1:{simulator_port}/sim/vneid/_sim/pushed", timeout=30
            ).json()
            # (these people never signed in: their phones hear of each visit in neutral
            # words, kind "notice", D110)
            assert len([p for p in pushed if p["kind"] in ("visit", "notice")]) >= VISITS
            words = [f"{p['title']} {p['body']}" for p in pushed if p["kind"] == "notice"]
            assert words
            # (the words only: the personal ID and the time sent may hold the code's digits)
            assert not [w for w in words if FACILITY in w or FACILITY_NAME in w]
            # the deliverer (`vnehr worker` on NATS, `vnehr serve` in-process) seals the log
            sealed = run(["audit", "verify"], env)
            assert int(sealed.split(" sealed rows")[0].split()[-1]) > 0, sealed

    by_visit: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_visit.setdefault(str(record["ma_lk"]), []).append(record)
    assert set(by_visit) == ours  # none lost
    corrected_keys = {v.ma_lk for v in corrected}
    resent = 0
    for key, got in by_visit.items():
        fresh = [r for r in got if not r["duplicate"]]
        versions = []  # distinct contents in the order they arrived
        for record in fresh:
            if not versions or versions[-1] != record["content_sha256"]:
                versions.append(record["content_sha256"])
        expected = 2 if key in corrected_keys else 1
        assert len(versions) == expected, key  # in order: never v1 after v2
        assert len(set(versions)) == expected, key
        if key in corrected_keys:  # the original (with XML8) first, then the correction
            with_summary = ["XML8" in r["tables"] for r in fresh]  # type: ignore[operator]
            assert with_summary[0] is True, key
            assert with_summary[-1] is False, key
        resent += len(fresh) - expected
    # a version is sent again only when the kill cut the attempt whose answer never came
    assert resent <= 2, resent
