"""Started other than with ``vnehr serve`` — ``uvicorn --factory vnehr.app:factory``, or
``vnehr.app:create_app`` — the service checks its database as ``vnehr serve`` does (D85): a
database it cannot use is one coded line and no server, not a service that starts and fails
every request. ``vnehr serve``, which checked before starting its workers, does not check
again in them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_for_port

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
