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
    assert first.exit_code == 0, first.output
    _, broken = _split(files)
    assert (
        "files 6, skipped 0, refused 0, visits 6, accepted " + str(6 - len(broken)) in first.output
    )
    again = runner.invoke(app, ["import", str(files)])
    assert "files 0, skipped 6" in again.output


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
    assert result.exit_code == 0, result.output
    assert "files 0, skipped 0, refused 6, visits 0, accepted 0" in result.output
    assert "SUB-0012" in result.output
