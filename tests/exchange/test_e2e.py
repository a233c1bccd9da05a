"""`make run` in miniature: the embedded default relays visits to the built-in BHXH portal
simulator with no other process than `vnehr serve`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_for_port

pytestmark = pytest.mark.e2e


def test_imported_visits_reach_the_simulated_portal(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VNEHR_ENV": "development",
        "VNEHR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "VNEHR_PUBLIC_URL": f"http://localhost:{port}",
        "VNEHR_LOG_LEVEL": "WARNING",
    }
    for name in ("VNEHR_SECRET_KEY", "VNEHR_VNEID_SIMULATOR"):
        env.pop(name, None)
    vnehr = [sys.executable, "-m", "vnehr"]
    demo_visits = 0
    for args in (
        ["db", "upgrade"],
        ["demo", "load"],
        ["synth", str(tmp_path / "files"), "--count", "8"],
    ):
        done = subprocess.run(
            [*vnehr, *args], env=env, check=True, capture_output=True, timeout=600, text=True
        )
        found = re.search(r"\bvisit (\d+)", done.stdout)
        demo_visits += int(found[1]) if found else 0
    assert demo_visits > 0  # the demo's own visits travel too
    expected = 8 + demo_visits
    server = subprocess.Popen(
        [*vnehr, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=90)
        done = subprocess.run(
            [*vnehr, "import", str(tmp_path / "files")],
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
            text=True,
        )
        assert "accepted 8" in done.stdout
        received: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < expected:
            received = httpx.get(
                f"http://127.0.0.1:{port}/sim/bhxh/_sim/received", timeout=5
            ).json()
            time.sleep(0.2)
        assert len(received) == expected
        assert {r["facility"] for r in received} == {"01001"}
        deadline = time.monotonic() + 30
        while True:
            outbox = subprocess.run(
                [*vnehr, "outbox", "list"],
                env=env,
                check=True,
                capture_output=True,
                timeout=600,
                text=True,
            )
            if "pending" not in outbox.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # every visit's event, and the papers' (paper.issued), delivered; none left waiting
        delivered = re.search(r"delivered (\d+)", outbox.stdout)
        assert delivered is not None, outbox.stdout
        assert int(delivered[1]) > expected
        assert "pending" not in outbox.stdout
        assert "dead" not in outbox.stdout
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
