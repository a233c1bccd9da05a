"""`vnehr import` writes a folder with COPY on PostgreSQL (the bulk path, D48): what it stores
must be exactly what the same files sent one by one through the intake store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.healthbook.test_api import visit_of
from vnehr import catalogs, papers
from vnehr.cli import app
from vnehr.kit.auth import Subject
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.kit.db import Database, unpack_json
from vnehr.kit.settings import get_settings
from vnehr.submissions import IntakeOptions, Limits, analyse, synth
from vnehr.submissions.service import accept

runner = CliRunner()
FACILITY = "01001"  # connected in the demo data


def _files(directory: Path) -> list[Path]:
    """New visits (a third inpatient, so discharge papers; some defective), two visits in one
    file, a file sent twice, and a correction of an earlier file's visit."""
    synth.write_files(directory, 24, seed=31, facility_code=FACILITY, defect_rate=0.25)
    rng = random.Random(8)
    pair = [synth.make_visit(rng, facility_code=FACILITY, sequence=900 + n) for n in range(2)]
    (directory / "GIAMDINHHS_01001_00900.xml").write_bytes(synth.envelope(pair, FACILITY))
    first = directory / "GIAMDINHHS_01001_00001.xml"
    (directory / "GIAMDINHHS_01001_00950.xml").write_bytes(first.read_bytes())
    again = dataclasses.replace(pair[0], tables=dict(pair[0].tables))
    again.tables.pop("XML8", None)
    (directory / "GIAMDINHHS_01001_00990.xml").write_bytes(synth.envelope([again], FACILITY))
    for sequence, visit in enumerate(_appointments(), start=801):
        name = f"GIAMDINHHS_01001_{sequence:05d}.xml"
        (directory / name).write_bytes(synth.envelope([visit], FACILITY))
    return sorted(p for p in directory.iterdir() if p.suffix == ".xml")


def _appointments() -> list[synth.SynthVisit]:
    """Papers that meet in one batch, in file order: an appointment and the visit that uses it;
    a visit citing an appointment that a later file issues (one by one it was not there yet);
    two appointments of two visits with one number (the second visit is refused, D69)."""
    now = utcnow().astimezone(VIETNAM).replace(tzinfo=None, second=0, microsecond=0)
    booked = (now - timedelta(days=3)).replace(hour=7, minute=30)
    kw: dict[str, Any] = {"care_type": "01", "insured": True}

    def appointment(seed: int, ended: datetime, number: str, like: Any = None) -> Any:
        made = visit_of(FACILITY, seed, ended, like, appointment=True, **kw)
        made.tables["XML14"][0]["NGAY_HEN_KL"] = booked.strftime("%Y%m%d%H%M")
        made.tables["XML14"][0]["SO_GIAYHEN_KL"] = number
        return made

    def citing(seed: int, ended: datetime, number: str, like: Any) -> Any:
        made = visit_of(FACILITY, seed, ended, like, appointment=False, **kw)
        made.tables["XML1"][0]["GIAY_CHUYEN_TUYEN"] = number
        return made

    issued = appointment(41, now - timedelta(days=20), "7001/2026/GHKL")
    used = citing(42, booked + timedelta(hours=2), "7001/2026/GHKL", issued)
    later = appointment(43, now - timedelta(days=25), "7002/2026/GHKL")
    too_early = citing(44, now - timedelta(days=6), "7002/2026/GHKL", later)
    twice = [appointment(45 + n, now - timedelta(days=15), "7003/2026/GHKL") for n in range(2)]
    return [issued, used, too_early, later, *twice]


def _prepare(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0


async def _one_by_one(url: str, paths: list[Path]) -> None:
    """Each file as a facility system sends it over HTTP: its own transaction, ``accept``."""
    db = Database.from_urls(url)
    options = IntakeOptions(limits=Limits(), papers=papers.keys_for(get_settings()))
    sender = Subject("facility_system", "import", "vnehr import",
                     scopes=frozenset({"submission.write"}), facility_code=FACILITY)  # fmt: skip
    seen: set[bytes] = set()
    try:
        for path in paths:
            data = path.read_bytes()
            if data in seen:
                continue  # `vnehr import` skips bytes it has received
            seen.add(data)
            async with db.read_session() as session:
                codes = await catalogs.codebook(session)
            async with db.session() as session:
                await accept(session, sender, data, analyse(data, codes=codes, limits=Limits()),
                             options)  # fmt: skip
    finally:
        await db.dispose()


_VOLATILE = {"submission_id", "version_id", "person_id", "received_at", "id", "event_id",
             "paper_id", "issued_at", "replaces",
             # the import adds its visits to the report itself (D113; the same counts:
             # tests/reporting/test_intake_counts.py)
             "counted"}  # fmt: skip


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def _contents(url: str) -> dict[str, Any]:
    host = url.split("host=")[-1]
    name = url.split("@/")[1].split("?")[0]
    c = await asyncpg.connect(user="postgres", database=name, host=host)
    try:
        versions = [
            (*r[:-2], unpack_json(r[-2]), json.loads(r[-1]) if r[-1] else None)
            for r in await c.fetch(
                "SELECT v.facility_code, v.visit_key, v.version, v.current, v.test_mode,"
                " v.content_sha256, v.personal_id, p.personal_id, v.care_type, v.insured,"
                " v.main_diagnosis, v.outcome, v.started_at, v.ended_at, v.total_hospital_cost,"
                " v.has_summary, v.tables, v.warnings::text FROM visit_version v"
                " LEFT JOIN person p ON p.id = v.person_id WHERE v.facility_code = $1"
                " ORDER BY v.visit_key, v.version", FACILITY)
        ]  # fmt: skip
        timeline = [tuple(r) for r in await c.fetch(
            "SELECT t.visit_key, p.personal_id, t.care_type, t.main_diagnosis, t.outcome,"
            " t.insured, t.started_at, t.ended_at, t.version, v.version, v.current"
            " FROM timeline_entry t JOIN visit_version v ON v.id = t.version_id"
            " LEFT JOIN person p ON p.id = t.person_id WHERE t.facility_code = $1"
            " ORDER BY t.visit_key", FACILITY)]  # fmt: skip
        persons = [tuple(r) for r in await c.fetch(
            "SELECT personal_id, full_name, birth_date, sex, provisional, created_by FROM person"
            " WHERE created_by LIKE 'intake:%' ORDER BY personal_id")]  # fmt: skip
        events = sorted(
            (r[0], r[1], json.dumps(_stable(json.loads(r[2])), sort_keys=True))
            for r in await c.fetch("SELECT topic, key, payload::text FROM outbox_event"
                                   " WHERE key LIKE $1", FACILITY + ":%")
        )  # fmt: skip
        by_key: dict[str, list[str]] = {}  # each key's events in the order they are delivered
        for r in await c.fetch("SELECT key, topic FROM outbox_event WHERE key LIKE $1"
                               " ORDER BY id", FACILITY + ":%"):  # fmt: skip
            by_key.setdefault(r[0], []).append(r[1])
        audit = sorted(
            (r[0], r[1], r[2], json.loads(r[3])["outcome"])
            for r in await c.fetch("SELECT actor, action, object_type, detail::text"
                                   " FROM audit_event WHERE action = 'visit.received'")
        )  # fmt: skip
        submissions = sorted(
            (r[0], r[1], r[2], r[3], r[4], r[5], r[6],
             json.dumps(_stable(json.loads(r[7])), sort_keys=True))
            for r in await c.fetch(
                "SELECT raw_sha256, raw_size, status, test_mode, visits, accepted, rejected,"
                " receipt::text FROM submission WHERE facility_code = $1", FACILITY)
        )  # fmt: skip
        issued = sorted(tuple(r) for r in await c.fetch(
            "SELECT a.kind, a.number, a.status, a.version, a.visit_key, a.used_by,"
            " a.revoke_reason, a.personal_id, h.personal_id, a.valid_until, a.content::text"
            " FROM paper a LEFT JOIN person h ON h.id = a.person_id"
            " WHERE a.facility_code = $1", FACILITY))  # fmt: skip
        paper_events = sorted(
            json.dumps(_stable(json.loads(r[0])), sort_keys=True)
            for r in await c.fetch("SELECT payload::text FROM outbox_event"
                                   " WHERE topic = 'paper.issued'")
        )  # fmt: skip
        paper_audit = sorted(
            (r[0], json.dumps(_stable(json.loads(r[1])), sort_keys=True))
            for r in await c.fetch("SELECT actor, detail::text FROM audit_event"
                                   " WHERE action = 'paper.issued'")
        )  # fmt: skip
    finally:
        await c.close()
    return {"versions": versions, "timeline": timeline, "persons": persons, "events": events,
            "order": by_key, "audit": audit, "submissions": submissions,
            "papers": issued, "paper_events": paper_events,
            "paper_audit": paper_audit}  # fmt: skip


def test_the_bulk_import_stores_what_one_by_one_intake_stores(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _files(tmp_path / "files")
    # the demo dates its visits from the clock, to the minute: both databases get the same ones
    moment = utcnow()
    monkeypatch.setattr("vnehr.demo.utcnow", lambda: moment)
    bulk, single = new_database_on(postgres_url, "bulk"), new_database_on(postgres_url, "one")
    _prepare(bulk, monkeypatch)
    result = runner.invoke(app, ["import", str(tmp_path / "files"), "--processes", "2"])
    assert result.exit_code == 1, result.output  # the folder holds rejected visits
    assert f"files {len(paths) - 1}, skipped 1, refused 0" in result.output
    _prepare(single, monkeypatch)
    asyncio.run(_one_by_one(single, paths))
    ours, theirs = asyncio.run(_contents(bulk)), asyncio.run(_contents(single))
    # the folder holds what the test says it holds
    assert len(ours["submissions"]) >= len(paths) - 1  # and the demo's own
    assert {v[1] for v in ours["versions"] if v[2] == 2}, "a corrected visit has a version 2"
    assert ours["papers"], "inpatient visits carry discharge papers"
    numbered = {p[1]: p for p in ours["papers"] if p[1].startswith("700")}
    assert numbered["7001/2026/GHKL"][2] == "used", "an appointment used in its own batch"
    assert numbered["7002/2026/GHKL"][2] == "valid", "not used by a visit before it"
    assert sorted(p[2:4] for p in ours["papers"] if p[1] == "7003/2026/GHKL") == [
        ("valid", 1)], "the second visit naming the number takes no paper over"  # fmt: skip
    assert any(e[0] == "visit.rejected" for e in ours["events"]), "some visits are defective"
    for part in ours:
        assert ours[part] == theirs[part], part
    get_settings.cache_clear()
