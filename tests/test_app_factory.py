"""Started other than with ``vnehr serve`` — ``uvicorn --factory vnehr.app:factory``, or
``vnehr.app:create_app`` — the service checks its database as ``vnehr serve`` does (D85): a
database it cannot use is one coded line and no server, not a service that starts and fails
every request. ``vnehr serve``, which checked before starting its workers, does not check
again in them."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_for_port
from vnehr.kit.migrate import head_revisions

FACTORIES = ("vnehr.app:factory", "vnehr.app:create_app")


def _env(url: str, language: str = "en") -> dict[str, str]:
    env = {**os.environ, "VNEHR_DATABASE_URL": url, "VNEHR_LOG_JSON": "false",
           "VNEHR_DEFAULT_LANGUAGE": language, "VNEHR_WORKER_IN_PROCESS": "false"}  # fmt: skip
    env.pop("VNEHR_READ_DATABASE_URL", None)
    return env


def _uvicorn(factory: str, url: str, language: str = "en") -> tuple[int, str]:
    """``uvicorn --factory FACTORY`` as an operator would run it: exit code, output."""
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(free_port())],
        env=_env(url, language),
        capture_output=True,
        timeout=60,
    )
    return done.returncode, (done.stdout + done.stderr).decode()


def _migrated(tmp_path: Path, revision: str = "head") -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vnehr.db'}"
    subprocess.run([sys.executable, "-m", "vnehr", "db", "upgrade", revision], env=_env(url),
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    return url


def _coded(output: str, code: str) -> list[str]:
    return [line for line in output.splitlines() if f"{code}:" in line]


@pytest.mark.parametrize("factory", FACTORIES)
def test_uvicorn_refuses_an_unreachable_database_in_one_coded_line(factory: str) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://vnehr:s3cret-pw@127.0.0.1:{port}/vnehr"
    code, output = _uvicorn(factory, url, language="vi")
    assert code != 0, output  # (uvicorn's start-up failure)
    [line] = _coded(output, "KIT-0003")
    assert f"KIT-0003: Không kết nối được cơ sở dữ liệu tại 127.0.0.1:{port}" in line
    assert "Traceback" not in output
    assert "s3cret" not in output
    assert "Application startup complete" not in output


def test_uvicorn_refuses_a_database_not_there_not_migrated_behind_or_of_another_driver(
    tmp_path: Path,
) -> None:
    def refused(url: str, code: str) -> str:
        exit_code, output = _uvicorn("vnehr.app:factory", url)
        assert exit_code != 0, output
        assert "Traceback" not in output
        [line] = _coded(output, code)
        return line

    missing = tmp_path / "nowhere" / "vnehr.db"
    line = refused(f"sqlite+aiosqlite:///{missing}", "KIT-0004")
    assert f"There is no database at {missing}" in line
    assert not missing.parent.exists()  # not created by asking

    empty = tmp_path / "empty.db"
    empty.touch()  # a file, but never migrated
    assert "run `vnehr db upgrade`" in refused(f"sqlite+aiosqlite:///{empty}", "KIT-0004")
    assert "run `vnehr db upgrade`" in refused(_migrated(tmp_path, "0001"), "KIT-0005")
    line = refused("postgresql://vnehr@127.0.0.1/vnehr", "KIT-0007")  # psycopg's scheme
    assert "postgresql://" in line


def _serve_once(args: list[str], url: str, port: int) -> str:
    """Start, answer /readyz, stop on SIGINT; the output."""
    server = subprocess.Popen(args, env=_env(url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out.decode()[-2000:]
    return out.decode()


def test_the_check_runs_once_however_the_service_is_started(tmp_path: Path) -> None:
    """One ``database_ready`` line at start: from the lifespan under uvicorn, from the command
    under ``vnehr serve`` (its workers do not check again)."""
    url = _migrated(tmp_path)
    port = free_port()
    factory = [sys.executable, "-m", "uvicorn", "--factory", "vnehr.app:factory",
               "--port", str(port)]  # fmt: skip
    output = _serve_once(factory, url, port)
    assert output.count("database_ready") == 1, output

    port = free_port()
    serve = [sys.executable, "-m", "vnehr", "serve", "--port", str(port)]
    output = _serve_once(serve, url, port)
    assert output.count("database_ready") == 1, output


# ------------------------------------------------- a database the next release migrated


def _next_release(url: str) -> str:
    """Stamp the database as the next release's ``vnehr db upgrade`` leaves it: at a
    revision numbered after this release's newest, which this release does not know."""
    [head] = head_revisions()
    newer = f"{int(head) + 1:04d}"
    with sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///")) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (newer,))
    return newer


def _workers(output: str) -> list[int]:
    """The worker processes uvicorn said it started, in order."""
    return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", output)]


def _wait(done: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_worker_that_restarts_after_the_next_release_migrated_serves_again(
    tmp_path: Path,
) -> None:
    """A rolling upgrade (docs/operations.md): ``vnehr db upgrade`` of the next release ran,
    then one of this release's uvicorn workers dies and is restarted. It starts and serves;
    before, it refused (KIT-0005) and uvicorn stopped the healthy worker too (exit 0)."""
    url = _migrated(tmp_path)
    port = free_port()
    log = tmp_path / "uvicorn.log"
    args = [sys.executable, "-m", "uvicorn", "--factory", "vnehr.app:factory",
            "--port", str(port), "--workers", "2"]  # fmt: skip
    env = {**_env(url), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        server = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            started = "Application startup complete"
            _wait(lambda: log.read_text().count(started) == 2)
            newer = _next_release(url)
            victim = _workers(log.read_text())[0]
            os.kill(victim, signal.SIGKILL)
            # uvicorn starts another worker in its place, or gives up and stops the other
            _wait(lambda: server.poll() is not None or log.read_text().count(started) == 3)
            output = log.read_text()
            assert server.poll() is None, output
            assert "KIT-0005" not in output
            for _ in range(4):  # every worker answers
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                assert ready.status_code == 200, ready.text
                assert ready.json()["revision"] == [newer]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_of_this_release_start_on_the_next_releases_schema(
    command: str, tmp_path: Path
) -> None:
    """The same rule for every way of starting (D85, D112): a schema ahead of this release is
    the next release's, and this one keeps working on it until it is replaced."""
    url = _migrated(tmp_path)
    _next_release(url)
    if command == "serve":
        port = free_port()
        output = _serve_once([sys.executable, "-m", "vnehr", "serve", "--port", str(port)],
                             url, port)  # fmt: skip
    else:
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen([sys.executable, "-m", "vnehr", "worker"], env=_env(url),
                                      stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            try:
                for _ in range(300):
                    if worker.poll() is not None or "delivering the outbox" in log.read_text():
                        break
                    time.sleep(0.1)
            finally:
                worker.send_signal(signal.SIGINT)
                worker.wait(timeout=30)
        output = log.read_text()
        assert "delivering the outbox" in output, output
        assert worker.returncode == 0, output
    assert output.count("database_ready") == 1, output
    assert "KIT-0005" not in output


def test_a_schema_this_release_cannot_place_is_refused(tmp_path: Path) -> None:
    """Ahead means numbered after this release's newest; any other revision it does not know
    (another program's, a branch) is refused like an older schema."""
    url = _migrated(tmp_path)
    with sqlite3.connect(tmp_path / "vnehr.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ae1027a6acf'")
    exit_code, output = _uvicorn("vnehr.app:factory", url)
    assert exit_code != 0, output
    assert len(_coded(output, "KIT-0005")) == 1, output
