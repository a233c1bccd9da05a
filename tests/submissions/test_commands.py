"""The intake tools facility IT and operators run: `vnehr synth`, `vnehr validate`, `vnehr import`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vnehr.cli import app
from vnehr.kit.settings import get_settings

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    result = runner.invoke(
        app, ["synth", str(tmp_path / "out"), "--count", "6", "--seed", "4", "--defect-rate", "0.5"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "out"


def _split(files: Path) -> tuple[list[Path], list[Path]]:
    manifest = json.loads((files / "manifest.json").read_text(encoding="utf-8"))
    clean = [
        files / name
        for name, visits in manifest.items()
        if all(v["defect"] is None for v in visits)
    ]
    broken = [files / name for name, visits in manifest.items() if any(v["defect"] for v in visits)]
    return clean, broken


def test_validate_exits_0_when_every_visit_would_be_accepted(files: Path) -> None:
    clean, _ = _split(files)
    result = runner.invoke(app, ["validate", *map(str, clean), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert result.output.count(".xml: accepted\n") == len(clean)


def test_validate_exits_1_and_names_the_problem_in_the_chosen_language(files: Path) -> None:
    _, broken = _split(files)
    english = runner.invoke(app, ["validate", str(broken[0]), "--lang", "en"])
    assert english.exit_code == 1
    assert "error   SUB-" in english.output
    vietnamese = runner.invoke(app, ["validate", str(broken[0])])
    assert vietnamese.exit_code == 1
    assert (
        "Bảng" in vietnamese.output
        or "Thời điểm" in vietnamese.output
        or "Số định danh" in vietnamese.output
        or "Mã thẻ" in vietnamese.output
        or "T_" in vietnamese.output
    )


def test_validate_exits_2_when_a_file_is_refused_whole(files: Path, tmp_path: Path) -> None:
    clean, _ = _split(files)
    hostile = tmp_path / "xxe.xml"
    hostile.write_bytes(
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><GIAMDINHHS>&e;</GIAMDINHHS>'
    )
    result = runner.invoke(app, ["validate", str(clean[0]), str(hostile), "--json"])
    assert result.exit_code == 2
    reports = json.loads(result.output)
    assert reports[0]["status"] == "accepted"
    assert reports[1]["refused"]["code"] == "SUB-0003"


def test_validate_refuses_a_file_whose_declared_number_of_visits_is_not_what_it_holds(
    files: Path, tmp_path: Path
) -> None:
    clean, _ = _split(files)
    short = tmp_path / "short.xml"
    short.write_bytes(clean[0].read_bytes().replace(b"<SOLUONGHOSO>1<", b"<SOLUONGHOSO>5<", 1))
    result = runner.invoke(app, ["validate", str(short)])
    assert result.exit_code == 2, result.output
    assert "short.xml: SUB-0022 Tệp khai báo SOLUONGHOSO = 5 nhưng có 1 hồ sơ" in result.output


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'import.db'}"
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0  # facility 01001 is connected
    yield url
    get_settings.cache_clear()


def test_import_loads_a_folder_and_resumes_without_duplicates(files: Path, database: str) -> None:
    first = runner.invoke(app, ["import", str(files), "--batch-size", "4"])
    _, broken = _split(files)
    assert broken
    assert first.exit_code == 1, first.output  # (a visit rejected, as `vnehr validate` says)
    assert (
        f"files 6, skipped 0, refused 0, visits 6, accepted {6 - len(broken)}, "
        f"rejected {len(broken)}" in first.output
    )
    for path in broken:  # each rejected visit named, with its codes
        assert f"{path.name} HOSO 1 (" in first.output
    again = runner.invoke(app, ["import", str(files)])
    # files received before are skipped, but not those that had a visit rejected: checked
    # again (the catalogues or the clock may let them pass now), they are still rejected
    assert (
        f"files {len(broken)}, skipped {6 - len(broken)}, refused 0, visits {len(broken)}, "
        f"accepted 0, rejected {len(broken)}" in again.output
    ), again.output
    for path in broken:
        assert f"{path.name} HOSO 1 (" in again.output
    assert again.exit_code == 1


def test_import_skips_what_a_facility_in_onboarding_sent_until_it_is_connected(
    tmp_path: Path, database: str
) -> None:
    """A file imported for a facility in onboarding is stored in test mode; imported again it
    is skipped like any file received before (each run used to add a receipt per file, its
    visits "unchanged"), until the facility is connected: then it is loaded for real."""
    import asyncio

    from sqlalchemy import select

    from tests.submissions.test_intake import ADMIN
    from vnehr import facilities
    from vnehr.kit.db import Database
    from vnehr.submissions.models import Submission

    folder = tmp_path / "onboarding"
    made = runner.invoke(app, ["synth", str(folder), "--count", "3", "--facility", "01002"])
    assert made.exit_code == 0, made.output

    async def receipts(connect: bool = False) -> list[bool]:
        db = Database.from_urls(database)
        try:
            async with db.session() as session:
                if connect:
                    await facilities.move(session, ADMIN, "01002", facilities.State.connected, None)
                rows = await session.scalars(
                    select(Submission.test_mode).where(Submission.facility_code == "01002")
                )
                return sorted(rows)
        finally:
            await db.dispose()

    first = runner.invoke(app, ["import", str(folder)])
    assert "files 3, skipped 0, refused 0, visits 3, accepted 3" in first.output, first.output
    assert asyncio.run(receipts()) == [True] * 3
    for _ in range(2):
        again = runner.invoke(app, ["import", str(folder)])
        assert (again.exit_code, "files 0, skipped 3," in again.output) == (0, True), again.output
    assert asyncio.run(receipts(connect=True)) == [True] * 3
    real = runner.invoke(app, ["import", str(folder)])
    assert "files 3, skipped 0, refused 0, visits 3, accepted 3" in real.output, real.output
    assert asyncio.run(receipts()) == [False] * 3 + [True] * 3
    assert "files 0, skipped 3," in runner.invoke(app, ["import", str(folder)]).output


def test_import_speaks_the_configured_language(
    files: Path, tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files refused whole are explained in ``VNEHR_DEFAULT_LANGUAGE`` (Vietnamese unless set),
    or in the language ``--lang`` asks for, as ``vnehr validate`` does."""
    hostile = files / "xxe.xml"
    hostile.write_bytes(
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><GIAMDINHHS>&e;</GIAMDINHHS>'
    )
    clean, _ = _split(files)
    elsewhere = files / "elsewhere.xml"  # read well, refused when written: not its facility's
    elsewhere.write_bytes(clean[0].read_bytes().replace(b"01001", b"01005"))
    vietnamese = runner.invoke(app, ["import", str(files)])
    assert vietnamese.exit_code == 2, vietnamese.output
    assert "xxe.xml: SUB-0003 Tệp" in vietnamese.output, vietnamese.output
    assert "elsewhere.xml: SUB-0010 Cơ sở" in vietnamese.output, vietnamese.output
    monkeypatch.setenv("VNEHR_DEFAULT_LANGUAGE", "en")
    get_settings.cache_clear()
    english = runner.invoke(app, ["import", str(files)])
    assert "xxe.xml: SUB-0003 File" in english.output, english.output
    assert "elsewhere.xml: SUB-0010 Facility 01005" in english.output, english.output
    chosen = runner.invoke(app, ["import", str(files), "--lang", "vi"])
    assert "xxe.xml: SUB-0003 Tệp" in chosen.output, chosen.output
    get_settings.cache_clear()


def test_import_refuses_unsigned_files_when_the_api_would(
    files: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same validation as the API: with signatures required and a certificate registered,
    # an unsigned file is refused (SUB-0012), by the import as by POST /submissions.
    import asyncio

    from tests.submissions.test_intake import ADMIN
    from tests.submissions.test_signature import certificate
    from vnehr import facilities
    from vnehr.kit.db import Database

    async def register() -> None:
        db = Database.from_urls(database)
        async with db.session() as session:
            await facilities.add_certificate(session, ADMIN, "01001", certificate("BV 01001")[1])
        await db.dispose()

    asyncio.run(register())
    monkeypatch.setenv("VNEHR_REQUIRE_SIGNATURE", "true")
    get_settings.cache_clear()
    result = runner.invoke(app, ["import", str(files)])
    assert result.exit_code == 2, result.output
    assert "files 0, skipped 0, refused 6, visits 0, accepted 0" in result.output
    assert "SUB-0012" in result.output


def test_import_reads_subfolders_and_reports_what_it_cannot_read(
    files: Path, database: str
) -> None:
    nested = files / "2026" / "11"
    nested.mkdir(parents=True)
    clean, _ = _split(files)
    (nested / "copy.xml").write_bytes(clean[0].read_bytes())  # the same bytes twice
    clean[0].rename(nested / clean[0].name)
    (files / "a-folder.xml").mkdir()  # not a file: not read
    (files / "gone.xml").symlink_to(files / "nowhere.xml")  # a broken link: not a file either
    result = runner.invoke(app, ["import", str(files)])
    assert "Traceback" not in result.output
    assert "files 6, skipped 1," in result.output, result.output  # copy.xml: skipped


def test_import_explains_a_database_not_set_up(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VNEHR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    missing = runner.invoke(app, ["import", str(files)])
    assert (missing.exit_code, "vnehr db upgrade" in missing.output) == (2, True), missing.output
    assert not (tmp_path / "none.db").exists()  # not created by asking
    (tmp_path / "none.db").touch()  # a file, but no schema in it
    empty = runner.invoke(app, ["import", str(files)])
    assert (empty.exit_code, "vnehr db upgrade" in empty.output) == (2, True), empty.output
    not_a_folder = runner.invoke(app, ["import", str(tmp_path / "nope")])
    assert (not_a_folder.exit_code, "is not a folder" in not_a_folder.output) == (2, True)
    get_settings.cache_clear()


def test_validate_goes_on_past_a_file_it_cannot_read(files: Path, tmp_path: Path) -> None:
    clean, broken = _split(files)
    result = runner.invoke(
        app,
        ["validate", "--lang", "en", str(clean[0]), str(tmp_path / "missing.xml"), str(files),
         str(broken[0])],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "missing.xml: SUB-0020 File" in result.output
    assert result.output.count(f"{broken[0].name}: rejected") == 2  # alone, and in its folder
    french = runner.invoke(app, ["validate", "--lang", "fr", str(clean[0])])
    assert french.exit_code == 2  # a usage error, before anything is read
    assert "accepted" not in french.output


def test_validate_refuses_a_huge_file_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.xml"
    with huge.open("wb") as handle:
        handle.truncate(3 * 1024**3)  # 3 GB, sparse: read whole it would take 3 GB of memory
    result = runner.invoke(app, ["validate", "--lang", "en", "--json", str(huge)])
    assert result.exit_code == 2
    assert json.loads(result.output)[0]["refused"]["code"] == "SUB-0001"


def test_validate_needs_none_of_the_servers_settings(
    files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, _ = _split(files)
    monkeypatch.setenv("VNEHR_ENV", "production")  # no secret key set: the server would refuse
    get_settings.cache_clear()
    assert runner.invoke(app, ["validate", str(clean[0])]).exit_code == 0
    monkeypatch.setenv("VNEHR_MAX_BODY_BYTES", "abc")
    bad = runner.invoke(app, ["validate", str(clean[0])])
    assert (bad.exit_code, "configuration error" in bad.output) == (2, True)
    get_settings.cache_clear()


def test_validate_reads_the_body_cap_from_dot_env_as_the_server_does(
    files: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A `.env` with a 2 KB cap: the server refuses a 40 KB file (SUB-0001); validate said
    it would be accepted, reading only the environment."""
    clean, _ = _split(files)
    monkeypatch.delenv("VNEHR_MAX_BODY_BYTES", raising=False)
    (tmp_path / ".env").write_text("VNEHR_MAX_BODY_BYTES=2048\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", "--json", str(clean[0].resolve())])
    assert result.exit_code == 2, result.output
    assert json.loads(result.output)[0]["refused"]["code"] == "SUB-0001"


def test_synth_refuses_impossible_options(tmp_path: Path) -> None:
    for options in (["--defect-rate", "1.5"], ["--count", "-1"], ["--facility", "XYZ"]):
        result = runner.invoke(app, ["synth", str(tmp_path / "s"), *options])
        assert result.exit_code == 2, (options, result.output)
        assert "Traceback" not in result.output
    made = runner.invoke(app, ["synth", str(tmp_path / "v"), "--count", "2", "--variant", "3176"])
    assert made.exit_code == 0, made.output
    checked = runner.invoke(app, ["validate", str(tmp_path / "v")])
    assert checked.exit_code == 0, checked.output


def test_a_killed_import_leaves_no_process_behind(tmp_path: Path, database: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    many = tmp_path / "many"
    assert runner.invoke(app, ["synth", str(many), "--count", "400", "--seed", "9"]).exit_code == 0
    env = {**os.environ, "VNEHR_DATABASE_URL": database, "VNEHR_ENV": "development"}
    importer = subprocess.Popen(
        [sys.executable, "-m", "vnehr", "import", str(many), "--batch-size", "20"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    parent = psutil.Process(importer.pid)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in
                   " ".join(c.cmdline())]  # fmt: skip
        time.sleep(0.1)
    assert workers, "the import started no reading process"
    os.kill(importer.pid, signal.SIGKILL)
    importer.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
