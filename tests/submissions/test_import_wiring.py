"""`vnehr import` runs in its own process, without the app: the hooks through which a lower
context calls back into a higher one (a correction taking its notice out of the first holder's
inbox, D171; a first sign-in's re-check, D167; the book's readers) were registered only by the
app. A correction loaded by the import left the first holder told of a visit that is someone
else's. Every command now wires them as the app does (D183). The import runs here as a
facility's IT staff run it: a fresh process, so nothing this test process registered helps it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tests.exchange.test_inbox import signed_in
from tests.healthbook.test_api import visit_of
from tests.papers.test_api import local_now
from tests.papers.test_holder_moved import CUONG, HOA, as_patient
from tests.submissions.test_holder_first_sign_in import tell
from vnehr import identity
from vnehr.exchange.models import Notification
from vnehr.kit.db import Database
from vnehr.submissions import synth

FACILITY = "01001"  # the demo's, connected


def _vnehr(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "vnehr", *args], env=env, capture_output=True, timeout=600, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _visit_notices(db: Database, who: tuple[str, ...]) -> list[str]:
    async with db.read_session() as session:
        person = await identity.person_id_of(session, who[0])
        found = await session.scalars(
            select(Notification.params).where(
                Notification.person_id == person, Notification.kind == "visit"
            )
        )
        return sorted(p["visit_key"] for p in found)


def test_a_correction_loaded_by_the_import_leaves_the_first_holder_s_inbox(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    env = {**os.environ, "VNEHR_ENV": "development", "VNEHR_DATABASE_URL": url}
    _vnehr(env, "db", "upgrade")
    _vnehr(env, "demo", "load")
    one = visit_of(FACILITY, 91, local_now() - timedelta(days=3), care_type="01", insured=True)
    kept = visit_of(FACILITY, 92, local_now() - timedelta(days=2), care_type="01", insured=True)
    as_patient(one, HOA)
    as_patient(kept, HOA)
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "a.xml").write_bytes(synth.envelope([one, kept], FACILITY))
    as_patient(one, CUONG)  # the facility finds the first was Cường's
    (tmp_path / "fixed").mkdir()
    (tmp_path / "fixed" / "a.xml").write_bytes(synth.envelope([one], FACILITY))

    async def main() -> None:
        db = Database.from_urls(url)
        try:
            async with db.session() as session:
                await signed_in(session, HOA)
                await signed_in(session, CUONG)
            await asyncio.to_thread(_vnehr, env, "import", str(tmp_path / "first"))
            await tell(db)
            assert await _visit_notices(db, HOA) == sorted([one.ma_lk, kept.ma_lk])

            await asyncio.to_thread(_vnehr, env, "import", str(tmp_path / "fixed"))
            await tell(db)
            assert await _visit_notices(db, HOA) == [kept.ma_lk]
            assert await _visit_notices(db, CUONG) == [one.ma_lk]
        finally:
            await db.dispose()

    asyncio.run(main())
