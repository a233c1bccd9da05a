"""What a one-shot command prints is on stdout alone; its log lines go to stderr, and so do
those of `vnehr serve`'s workers, in the configured format and level."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

import vnehr
from tests.conftest import free_port
from vnehr.cli import app
from vnehr.kit import serving
from vnehr.kit.settings import get_settings
from vnehr.submissions import rules
from vnehr.submissions.synth import write_files

runner = CliRunner()


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'streams.db'}"
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    yield url
    get_settings.cache_clear()


def test_sql_echo_goes_to_stderr_not_into_what_the_command_prints(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VNEHR_DB_ECHO=true logs every statement; SQLAlchemy's own handler wrote them on stdout,
    between the lines a script reads."""
    monkeypatch.setenv("VNEHR_DB_ECHO", "true")
    get_settings.cache_clear()
    listed = runner.invoke(app, ["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout == "empty\n"
    assert "SELECT" in listed.stderr


@pytest.fixture
def stale_checkout(tmp_path: Path) -> Path:
    """A copy of the package whose ``_fast.pyx`` changed after its module was built (a pull
    without a rebuild, D123): ``rules`` logs ``compiled_reader_stale`` when imported."""
    copy = tmp_path / "checkout"
    shutil.copytree(
        Path(vnehr.__file__).parent, copy / "vnehr", ignore=shutil.ignore_patterns("__pycache__")
    )
    with (copy / "vnehr" / "submissions" / "_fast.pyx").open("a") as source:
        source.write("\n# changed after the module was built\n")
    return copy


def _vnehr(checkout: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "VNEHR_DATABASE_URL": url}
    env["VNEHR_LOG_JSON"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "vnehr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(rules._fast is None, reason="no compiled reader to be stale")
def test_a_log_line_at_import_stays_off_stdout(
    sqlite_url: str, stale_checkout: Path, tmp_path: Path
) -> None:
    """`vnehr validate --json | jq` and a script reading `vnehr import`'s totals: the warning
    logged when the intake's module is imported (in the command, and in each process that
    reads the files) came out on stdout, before the JSON, because nothing had configured
    logging yet."""
    folder = tmp_path / "files"
    write_files(folder, 2, seed=3, facility_code="01001")
    (folder / "manifest.json").unlink()
    validated = _vnehr(stale_checkout, sqlite_url, "validate", "--json", str(folder))
    assert validated.returncode in (0, 1), validated.stderr
    assert len(json.loads(validated.stdout)) == 2  # the reports, and nothing else
    assert "compiled_reader_stale" in validated.stderr
    for line in validated.stderr.strip().splitlines():  # (VNEHR_LOG_JSON honoured)
        assert json.loads(line)["event"] == "compiled_reader_stale"

    # on SQLite the reading processes are spawned: they import the intake afresh
    imported = _vnehr(stale_checkout, sqlite_url, "import", str(folder), "--processes", "1")
    assert imported.returncode in (0, 1, 2), imported.stderr
    assert imported.stdout.splitlines() == [imported.stdout.splitlines()[-1]], imported.stdout
    assert imported.stdout.startswith("files "), imported.stdout  # (the totals line)
    assert "refused 2" in imported.stdout  # (the facility is not registered: read, refused)
    assert imported.stderr.count("compiled_reader_stale") == 2  # the command's and the reader's
    # each reading process imported Alembic, which listed its plugins at INFO (7 lines each)
    assert "setup plugin" not in imported.stderr, imported.stderr
    # a facility never registered is named in words, not by a state it does not have
    assert '"unknown"' not in imported.stderr, imported.stderr


@pytest.mark.e2e
@pytest.mark.skipif(rules._fast is None, reason="no compiled reader to be stale")
@pytest.mark.skipif(not serving.reuse_port_supported(), reason="a socket per worker: Linux")
@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_serve_workers_log_from_their_first_line_as_configured(
    sqlite_url: str, stale_checkout: Path, level: str
) -> None:
    """`vnehr serve --workers 2` outside development (JSON lines for a log collector): each
    worker imports the application, whose intake logs ``compiled_reader_stale`` when imported
    (D123), before anything had configured its logging. The line came out on stdout, in the
    console format, and whatever VNEHR_LOG_LEVEL said."""
    env = {**os.environ, "PYTHONPATH": str(stale_checkout), "VNEHR_DATABASE_URL": sqlite_url,
           "VNEHR_ENV": "test", "VNEHR_LOG_LEVEL": level}  # fmt: skip
    env.pop("VNEHR_LOG_JSON", None)  # (outside development: JSON by default)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vnehr", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        supervisor = psutil.Process(server.pid)

        def listening() -> int:
            """The workers that have started their app and listen on the port."""
            started = 0
            for child in supervisor.children():
                try:
                    sockets = child.net_connections("tcp")
                except psutil.NoSuchProcess:  # (a worker uvicorn replaces)
                    continue
                started += any(
                    c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in sockets
                )
            return started

        deadline = time.monotonic() + 60
        while listening() < 2 and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        assert listening() == 2, "both workers started"
    finally:
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr[-2000:]
    assert stdout.startswith(f"vnehr {vnehr.__version__}: open "), stdout  # the banner alone
    assert stdout.count("\n") == 1, stdout
    lines = [json.loads(line) for line in stderr.splitlines()]  # (every line is JSON)
    shown = {"warning", "error", "critical"} if level == "WARNING" else {"error", "critical"}
    assert {line["level"] for line in lines} <= shown, stderr
    stale = [line for line in lines if line["event"] == "compiled_reader_stale"]
    if level == "WARNING":  # one from each worker (and from any uvicorn replaced)
        assert len(stale) >= 2, stderr
    else:
        assert stale == [], stderr
