"""A real `vnehr serve` process on a free port, as `make run` starts it (migrate, demo data,
serve), for tests that drive it from outside: a browser, FHIR client libraries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import free_port, wait_for_port


@contextmanager
def demo_server(tmp_path_factory: pytest.TempPathFactory, *, keep_secret: bool) -> Iterator[str]:
    """The base URL of a served demo. ``keep_secret``: the server signs sessions with the test
    process's ``VNEHR_SECRET_KEY`` (so a test can mint a session cookie); otherwise it runs
    with the development default."""
    port = free_port()
    base = f"http://localhost:{port}"
    env = {
        **os.environ,
        "VNEHR_ENV": "development",
        "VNEHR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('run') / 'vnehr.db'}",
        "VNEHR_PUBLIC_URL": base,
    }
    env.pop("VNEHR_VNEID_SIMULATOR", None)
    if not keep_secret:
        env.pop("VNEHR_SECRET_KEY", None)
    vnehr = [sys.executable, "-m", "vnehr"]
    subprocess.run([*vnehr, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([*vnehr, "demo", "load"], env=env, check=True, capture_output=True, timeout=600)
    process = subprocess.Popen(
        [*vnehr, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=90)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
