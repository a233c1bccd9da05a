"""The `vnehr` command as a newcomer and an operator use it."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner, Result

from tests.conftest import free_port, wait_for_port
from vnehr import __version__
from vnehr.cli import app
from vnehr.kit import serving
from vnehr.kit.migrate import head_revisions
from vnehr.kit.settings import get_settings

runner = CliRunner()


@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_help_names_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "worker", "db", "catalog", "demo", "version"):
        assert command in result.output


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.output.strip() == __version__


def test_upgrade_load_and_show_a_code(sqlite_env: str) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    current = runner.invoke(app, ["db", "current"])
    head = ", ".join(sorted(head_revisions()))
    assert f"current: {head}\n" in current.output
    loaded = runner.invoke(app, ["catalog", "load", "care-type", "province"])
    assert loaded.exit_code == 0, loaded.output
    assert "care-type" in loaded.output
    assert "province" in loaded.output
    shown = runner.invoke(app, ["catalog", "show", "MA_LOAI_KCB", "03", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["title_vi"] == "Điều trị nội trú"
    listed = runner.invoke(app, ["catalog", "list"])
    assert "care-type" in listed.output
    assert "icd10" not in listed.output


def test_an_unknown_code_exits_1_with_the_coded_message(sqlite_env: str) -> None:
    runner.invoke(app, ["db", "upgrade"])
    runner.invoke(app, ["catalog", "load", "gender"])
    result = runner.invoke(app, ["catalog", "show", "gender", "9"])
    assert result.exit_code == 1
    assert "CAT-0002" in result.output


def test_report_refuses_a_bad_period_or_province(sqlite_env: str) -> None:
    """A mistyped period or province gets the coded message, not a traceback or an empty
    report that looks real."""
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    for args, code in [
        (["report", "check", "--period", "9999H2"], "REP-0001"),
        (["report", "--period", "0001H1", "--province", "01"], "REP-0001"),
        (["report", "--period", "2026H2", "--province", "1"], "REP-0004"),
        (["report", "check", "--period", "2026H2", "--province", "zz"], "REP-0004"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert code in result.output


def test_a_default_secret_in_production_stops_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VNEHR_ENV", "production")
    monkeypatch.delenv("VNEHR_SECRET_KEY")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["worker"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "VNEHR_SECRET_KEY" in result.output


SECRET_TAIL = "TOPSECRET-TAIL-1234567890"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"VNEHR_SECRET_KEY": f"AAAA-{SECRET_TAIL}"}, "VNEHR_SECRET_KEY must be at least 32"),
        ({"VNEHR_SECRET_KEY": "A" * 48 + SECRET_TAIL}, "VNEHR_OIDC_CLIENT_SECRET must be set"),
        (
            {"VNEHR_SECRET_KEY": "A" * 48 + SECRET_TAIL, "VNEHR_DB_POOL_SIZE": SECRET_TAIL},
            "VNEHR_DB_POOL_SIZE: Input should be a valid integer",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_refused_configuration_names_the_setting_and_never_prints_a_value(
    command: str, variables: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal said which setting was wrong and then printed the whole environment it
    read, secrets included (a short key whole, a long one's tail)."""
    monkeypatch.setenv("VNEHR_ENV", "production")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, [command])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert f"configuration error: {named}" in result.output
    assert "TOPSECRET" not in result.output
    assert "1234567890" not in result.output
    assert "input_value" not in result.output


def test_demo_load_if_empty_runs_once(sqlite_env: str) -> None:
    runner.invoke(app, ["db", "upgrade"])
    runner.invoke(app, ["catalog", "load", "gender"])
    again = runner.invoke(app, ["demo", "load", "--if-empty"])
    assert "already has data" in again.output


@pytest.mark.e2e
def test_make_run_path_serves_asthma_over_http(tmp_path: Path) -> None:
    """What `make run` does, in a separate process: migrate, demo data, serve, answer."""
    env = {
        **os.environ,
        "VNEHR_ENV": "development",
        "VNEHR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
    }
    env.pop("VNEHR_SECRET_KEY", None)
    env.pop("VNEHR_PUBLIC_URL", None)  # as on a newcomer's machine
    vnehr = [sys.executable, "-m", "vnehr"]
    subprocess.run([*vnehr, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        [*vnehr, "demo", "load", "--if-empty"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    port = free_port()
    server = subprocess.Popen(
        [*vnehr, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=90)
        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/catalogs/icd10/J45", timeout=10)
        assert response.status_code == 200
        assert response.json()["title_en"] == "Asthma"
        assert response.headers["x-request-id"]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        # VNeID's simulator sends people back to the port served, not the default 8000
        login = httpx.get(f"http://127.0.0.1:{port}/auth/login", timeout=10)
        assert login.status_code in (302, 303, 307), login.text[:300]
        assert login.headers["location"].startswith(f"http://localhost:{port}/sim/vneid/")
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=15)
    assert server.returncode == 0
    access = [line for line in stderr.decode().splitlines() if "icd10/J45" in line]
    assert access, stderr.decode()[-2000:]
    assert "request_id=" in access[0]
    assert "status=200" in access[0]


@pytest.mark.e2e
@pytest.mark.skipif(not serving.reuse_port_supported(), reason="SO_REUSEPORT balancing: Linux")
def test_several_workers_each_take_their_share_of_connections(tmp_path: Path) -> None:
    """D54: with --workers 2, a burst of 32 keep-alive connections is spread over both
    workers (each listens on its own socket), and every connection is answered."""
    env = {
        **os.environ,
        "VNEHR_ENV": "development",
        "VNEHR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "VNEHR_WORKER_IN_PROCESS": "false",
    }
    vnehr = [sys.executable, "-m", "vnehr"]
    subprocess.run([*vnehr, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=600)
    port = free_port()
    server = subprocess.Popen(
        [*vnehr, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients: list[socket.socket] = []
    try:
        supervisor = psutil.Process(server.pid)

        def listening() -> set[int]:
            """The listening sockets on the port (their inodes), over all workers."""
            return {
                os.stat(f"/proc/{child.pid}/fd/{c.fd}").st_ino
                for child in supervisor.children()
                for c in child.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            }

        deadline = time.monotonic() + 60
        while len(listening()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(listening()) == 2, "both workers listen, each on a socket of its own"
        wait_for_port(port)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(32)]
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        for client in clients:
            assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
        held = Counter(
            child.pid
            for child in supervisor.children()
            for c in child.net_connections("tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
        assert sum(held.values()) == 32
        assert len(held) == 2, held
        assert min(held.values()) >= 4, held
    finally:
        for client in clients:
            client.close()
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert server.returncode == 0


def test_serve_gives_its_workers_time_to_start_on_a_busy_host(
    sqlite_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn kills a worker that has not answered its health check within 5 s; a worker
    importing everything afresh on a loaded host took longer, so `serve --workers 4` killed
    and restarted its workers in a loop and none served. The workers get 60 s, or
    VNEHR_WORKERS_HEALTHCHECK_SECONDS."""
    import uvicorn.supervisors

    started: list[uvicorn.Config] = []

    class Supervisor:  # stands in for uvicorn's: what the workers would be started with
        def __init__(self, config: uvicorn.Config, sockets: list[object]) -> None:
            started.append(config)

        def run(self) -> None:
            return None

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", Supervisor)
    monkeypatch.delenv("VNEHR_PORT", raising=False)  # `serve --port` sets it for the workers
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    for configured, expected in ((None, 60), ("120", 120)):
        if configured is not None:
            monkeypatch.setenv("VNEHR_WORKERS_HEALTHCHECK_SECONDS", configured)
        get_settings.cache_clear()
        result = runner.invoke(app, ["serve", "--port", str(free_port()), "--workers", "2"])
        assert result.exit_code == 0, result.output
        assert started.pop().timeout_worker_healthcheck == expected
    get_settings.cache_clear()


def test_a_worker_process_answers_its_supervisor_before_importing_the_service() -> None:
    """Each process of `serve --workers N` imports the command module (the program it was
    started as) and the serving module before it can answer uvicorn's health check, and the
    app only after. The command module imported the whole service (4.6 s here, 6.6 s on a
    loaded host); it imports settings and logging, and each command the rest it needs."""
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys, vnehr.cli, vnehr.kit.serving; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    loaded = set(done.stdout.split())
    heavy = {"sqlalchemy", "fastapi", "alembic", "vnehr.kit.db", "vnehr.app"}
    contexts = {"vnehr.catalogs", "vnehr.identity", "vnehr.papers", "vnehr.submissions"}
    assert loaded & (heavy | contexts) == set()


@pytest.mark.skipif(not serving.reuse_port_supported(), reason="SO_REUSEPORT balancing: Linux")
@pytest.mark.parametrize("holder_shares", [False, True])
def test_several_workers_refuse_a_port_already_taken(tmp_path: Path, holder_shares: bool) -> None:
    """Another program on the port, or another vnehr whose workers share it: the new server
    stops at once (uvicorn's start-up failure code) instead of taking half the connections."""
    env = {**os.environ, "VNEHR_ENV": "development",
           "VNEHR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"}  # fmt: skip
    # (a database it can use: serve checks that first)
    subprocess.run([sys.executable, "-m", "vnehr", "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    holder = serving.listen("127.0.0.1", 0, share=holder_shares)
    holder.listen(8)
    try:
        port = holder.getsockname()[1]
        started = subprocess.run(
            [sys.executable, "-m", "vnehr", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    finally:
        holder.close()
    assert started.returncode == serving.STARTUP_FAILURE, started.stderr.decode()[-2000:]
    assert b"bind_failed" in started.stdout + started.stderr


def test_audit_seal_and_verify_find_a_forged_row(sqlite_env: str) -> None:
    import sqlite3

    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    loaded = runner.invoke(app, ["demo", "load"])  # intake writes audit rows
    assert loaded.exit_code == 0, loaded.output
    sealed = runner.invoke(app, ["audit", "seal"])
    assert sealed.exit_code == 0, sealed.output
    count = int(sealed.output.split()[-1])
    assert count > 0
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert f"{count} sealed rows" in verified.output
    assert verified.output.strip().endswith("intact")
    key = runner.invoke(app, ["audit", "key"]).output.split()
    assert len(key) == 2
    assert len(key[1]) == 44  # a base64 Ed25519 public key
    # Someone with the database file drops the guard and rewrites who did something.
    path = sqlite_env.split("///", 1)[1]
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TRIGGER audit_event_sealed")
        raw.execute("UPDATE audit_event SET actor = 'person:000000000000' WHERE seq = 2")
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN: position 2 (row" in broken.output
    assert "content changed after sealing" in broken.output


# ------------------------------------------------------------------ plain failures


NEEDS_SCHEMA = [
    ["outbox", "list"],
    ["outbox", "list", "--dead"],
    ["outbox", "replay"],
    ["catalog", "list"],
    ["catalog", "show", "icd10", "J45"],
    ["grant", "001085004217", "department_admin"],
    ["audit", "verify"],
    ["audit", "seal"],
    ["report", "check", "--period", "2026H1"],
    ["report", "rebuild"],
    ["demo", "load", "--if-empty"],
    ["outbox", "prune"],
]


def _one_line(result: Result, code: int, text: str) -> None:
    """The command failed with ``code`` and one line naming ``text``: no traceback. (Only
    log lines may come before it: Alembic's, which say what it was doing.)"""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    *before, last = result.output.strip().splitlines()
    assert text in last, result.output
    assert all('"logger": "alembic.' in line for line in before), result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error


def test_commands_on_a_missing_or_empty_database_say_what_to_run(sqlite_env: str) -> None:
    path = Path(sqlite_env.split("///", 1)[1])
    for args in [*NEEDS_SCHEMA, ["db", "current"], ["db", "downgrade", "base"]]:
        _one_line(runner.invoke(app, args), 2, "run `vnehr db upgrade`")
        assert not path.exists(), args  # not created by asking
    path.touch()  # a file, but no schema in it
    for args in NEEDS_SCHEMA:
        _one_line(runner.invoke(app, args), 2, "run `vnehr db upgrade`")
    assert "current: (empty)" in runner.invoke(app, ["db", "current"]).output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0  # db upgrade makes the schema
    assert runner.invoke(app, ["outbox", "list"]).output == "empty\n"


#: One-shot commands that read, or only add what any release understands (a replay, a seal, an
#: import, a grant): they run on a later release's schema as serve and worker do (D119)
ON_A_LATER_SCHEMA = [
    ["outbox", "list"],
    ["outbox", "list", "--dead"],
    ["outbox", "replay"],
    ["outbox", "prune"],
    ["catalog", "list"],
    ["catalog", "show", "MA_LOAI_KCB", "03"],
    ["audit", "verify"],
    ["audit", "seal"],
    ["report", "check", "--period", "2026H1"],
]
#: Commands that replace or recount what a later release owns (its lists, the report's counts,
#: the timeline's cards): left to that release's own command
NOT_ON_A_LATER_SCHEMA = [
    ["catalog", "load", "province"],
    ["report", "rebuild"],
    ["demo", "load", "--if-empty"],
    ["db", "backfill-cards"],
    ["db", "backfill-papers"],
    ["db", "backfill-fhir"],
]


def test_one_shot_commands_that_read_or_add_run_on_a_later_releases_schema(
    sqlite_env: str, tmp_path: Path
) -> None:
    """During a rolling upgrade the next release's `vnehr db upgrade` has run: an operator of
    this release still replays the outbox, imports, reads the report; before, every one-shot
    command refused a schema it did not know. Those that would replace or recount what the later
    release owns refuse, in one line naming the release to use."""
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["catalog", "load", "care-type"]).exit_code == 0
    [head] = head_revisions()
    newer = f"{int(head) + 1:04d}"
    database = sqlite_env.removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (newer,))
    for args in ON_A_LATER_SCHEMA:
        done = runner.invoke(app, args)
        assert done.exit_code == 0, (args, done.output)
        assert "migration" not in done.output, (args, done.output)
    assert "Điều trị nội trú" in runner.invoke(app, ["catalog", "show", "MA_LOAI_KCB", "03"]).output
    (tmp_path / "files").mkdir()
    imported = runner.invoke(app, ["import", str(tmp_path / "files")])
    assert imported.exit_code == 0, imported.output
    for args in NOT_ON_A_LATER_SCHEMA:
        _one_line(runner.invoke(app, args), 2, f"a later release's ({newer})")
    listed = runner.invoke(app, ["catalog", "list"]).output
    assert "care-type" in listed
    assert "province" not in listed  # (not loaded by the refused command)
    # an older schema is still refused by every command, reading ones too
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    for args in [*ON_A_LATER_SCHEMA, *NOT_ON_A_LATER_SCHEMA]:
        _one_line(runner.invoke(app, args), 2, "run `vnehr db upgrade`")


def test_db_upgrade_creates_a_missing_sqlite_file(sqlite_env: str) -> None:
    upgraded = runner.invoke(app, ["db", "upgrade"])  # what `make run` relies on
    assert upgraded.exit_code == 0, upgraded.output
    assert Path(sqlite_env.split("///", 1)[1]).is_file()


def test_an_unreachable_database_is_one_line_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://vnehr:s3cret-pw@127.0.0.1:{port}/vnehr"
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        for args in [["db", "current"], ["db", "upgrade"], ["outbox", "list"], NEEDS_SCHEMA[5]]:
            result = runner.invoke(app, args)
            _one_line(result, 2, f"cannot connect to the database at 127.0.0.1:{port}/vnehr")
            assert "s3cret" not in result.output
    finally:
        get_settings.cache_clear()


def test_a_missing_postgresql_database_is_one_line(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VNEHR_DATABASE_URL", postgres_url.replace("/vnehr_test?", "/nosuch?"))
    get_settings.cache_clear()
    try:
        _one_line(runner.invoke(app, ["catalog", "list"]), 2, 'database "nosuch" does not exist')
    finally:
        get_settings.cache_clear()


def _start(args: list[str], url: str, language: str | None = None) -> tuple[int, list[str]]:
    """``vnehr ARGS`` as an operator starts it, in a process of its own: its exit code and the
    lines it printed (stdout and stderr)."""
    env = {**os.environ, "VNEHR_DATABASE_URL": url, "VNEHR_LOG_JSON": "false"}
    env.pop("VNEHR_DEFAULT_LANGUAGE", None)
    if language is not None:
        env["VNEHR_DEFAULT_LANGUAGE"] = language
    done = subprocess.run(
        [sys.executable, "-m", "vnehr", *args], env=env, capture_output=True, timeout=30
    )
    return done.returncode, (done.stdout + done.stderr).decode().strip().splitlines()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_a_database_they_cannot_use_in_one_line(
    command: str, tmp_path: Path
) -> None:
    """Unreachable, missing or not migrated: the service does not start (and log a traceback
    every half second); one line in the configured language with a stable code, exit 2."""
    port = free_port()  # nothing listens there
    args = ["serve", "--port", str(free_port())] if command == "serve" else ["worker"]
    unreachable = f"postgresql+asyncpg://vnehr:s3cret-pw@127.0.0.1:{port}/vnehr"
    code, lines = _start(args, unreachable)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"KIT-0003: Không kết nối được cơ sở dữ liệu tại 127.0.0.1:{port}")
    assert "s3cret" not in lines[0]
    code, lines = _start(args, unreachable, language="en")
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0].startswith(f"KIT-0003: Cannot connect to the database at 127.0.0.1:{port}")

    missing_dir = tmp_path / "nowhere" / "vnehr.db"  # a SQLite path in a missing folder
    code, lines = _start(args, f"sqlite+aiosqlite:///{missing_dir}", language="en")
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0].startswith(f"KIT-0004: There is no database at {missing_dir}")
    assert "run `vnehr db upgrade`" in lines[0]
    assert not missing_dir.parent.exists()  # not created by asking

    empty = tmp_path / "empty.db"
    empty.touch()  # a file, but never migrated
    code, lines = _start(args, f"sqlite+aiosqlite:///{empty}")
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0].startswith(f"KIT-0004: Chưa có cơ sở dữ liệu tại {empty}")


def test_serve_refuses_a_schema_behind_the_code(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    env = {**os.environ, "VNEHR_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "vnehr", "db", "upgrade", "0001"], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    code, lines = _start(["serve", "--port", str(free_port())], url, language="en")
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0].startswith("KIT-0005: The database schema at ")
    assert "run `vnehr db upgrade`" in lines[0]


def test_serve_refuses_a_port_or_a_worker_count_it_cannot_honour_in_one_line(
    tmp_path: Path,
) -> None:
    """``--port 0`` served on 8000 (0 read as "not given"), ``--workers 0`` on one worker, a
    port past 65535 on one the kernel picked (while the log named 65536). The public URL
    (VNeID's redirect, the token audience) names the port, so a port the kernel picks cannot
    be served: on a migrated database, one line with a code in the configured language, exit 2,
    nothing started."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'vnehr.db'}"
    env = {**os.environ, "VNEHR_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "vnehr", "db", "upgrade"], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    code, lines = _start(["serve", "--port", "0"], url)
    assert (code, len(lines)) == (2, 1), lines
    assert lines[0] == "KIT-0006: Tùy chọn --port nhận một số nguyên từ 1 đến 65535, không phải 0."
    for option, value, bounds in (
        ("--port", "0", "1 to 65535"),
        ("--port", "65536", "1 to 65535"),
        ("--workers", "0", "1 to 64"),
    ):
        code, lines = _start(["serve", option, value], url, language="en")
        assert (code, len(lines)) == (2, 1), (option, value, lines)
        assert (
            lines[0]
            == f"KIT-0006: Option {option} takes a whole number from {bounds}, not {value}."
        )


def test_an_unknown_revision_or_file_is_one_line(sqlite_env: str, tmp_path: Path) -> None:
    for args in (["db", "upgrade", "nosuchrev"], ["db", "downgrade", "nosuchrev"]):
        _one_line(runner.invoke(app, args), 2, "migration error: Can't locate revision")
    missing = runner.invoke(app, ["report", "population", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2, missing.output
    assert "does not exist" in missing.output
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    _one_line(runner.invoke(app, ["report", "population", str(binary)]), 2, "not UTF-8 text")


# ------------------------------------------------------------------ grants and the outbox


def test_a_grant_needs_a_scope_that_exists(sqlite_env: str) -> None:
    runner.invoke(app, ["db", "upgrade"])
    assert runner.invoke(app, ["catalog", "load", "province", "ward"]).exit_code == 0
    pid = "001085004217"
    for args, code in [
        (["facility_admin"], "ID-0107"),  # no facility: it could never match a request
        (["clinician", "--facility", "1"], "FAC-0001"),
        (["facility_admin", "--facility", "01999"], "FAC-"),  # no such facility registered
        (["department_admin", "--province", "99"], "ID-0107"),
        (["department_admin", "--ward", "00070"], "ID-0107"),  # not a national admin
        (["ward_officer"], "ID-0107"),
        (["ward_officer", "--ward", "99999"], "ID-0110"),
    ]:
        result = runner.invoke(app, ["grant", pid, *args])
        _one_line(result, 1, code)
    for args in (["department_admin", "--province", "01"], ["ward_officer", "--ward", "00070"]):
        given = runner.invoke(app, ["grant", pid, *args])
        assert given.exit_code == 0, given.output
        assert given.output.startswith("grant ")


def test_outbox_list_dead_shows_the_counts_and_how_many_more(sqlite_env: str) -> None:
    import asyncio

    from vnehr.kit.db import Database
    from vnehr.kit.outbox import new_event

    runner.invoke(app, ["db", "upgrade"])

    async def bury(count: int) -> None:
        db = Database.from_urls(sqlite_env)
        async with db.session() as session:
            for n in range(count):
                event = new_event("visit.accepted", f"visit:{n}", {})
                event.status, event.last_error = "dead", f"portal said no {n}"
                session.add(event)
        await db.dispose()

    asyncio.run(bury(6))
    listed = runner.invoke(app, ["outbox", "list", "--dead", "--limit", "3"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "dead 6"
    assert [line.split()[-1] for line in lines[1:4]] == ["0", "1", "2"]
    assert lines[4] == "… and 3 more (--limit 3 shown)"
    everything = runner.invoke(app, ["outbox", "list", "--dead"]).output.splitlines()
    assert len(everything) == 7
    assert runner.invoke(app, ["outbox", "list"]).output == "dead 6\n"
    assert runner.invoke(app, ["outbox", "list", "--dead", "--limit", "0"]).exit_code == 2
