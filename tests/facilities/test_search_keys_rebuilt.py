"""A facility's search key holds its ward's names as the catalogue had them when the key was
made; loading another edition of the administrative units (`vnehr catalog load`, which takes
the installed `vietnamadminunits` package's lists) makes the keys again, in the same
transaction, so the citizen finds facilities by the names the catalogue has now."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.test_cli import sqlite_env  # noqa: F401  (the fixture)
from vnehr import demo, facilities
from vnehr.cli import app
from vnehr.facilities.models import Facility
from vnehr.kit.db import create_engine

#: The key of Bệnh viện Bạch Mai (ward 00229, Phường Kim Liên) as an earlier edition of the
#: ward list made it, when the ward had another name.
_OLD_KEY = " 01099 benh vien bach mai 78 giai phong phuong truoc day ha noi bv"


async def _found(session: AsyncSession, words: str) -> list[str]:
    return [f.code for f in (await facilities.receivers(session, words))[0]]


async def test_keys_made_under_an_earlier_ward_list_are_made_again(
    session: AsyncSession,
) -> None:
    made = await facilities.register(
        session,
        demo.OPERATOR,
        facilities.FacilityCreate(
            name="Bệnh viện Bạch Mai",
            kind=facilities.Kind.hospital,
            level=facilities.Level.specialised,
            ownership=facilities.Ownership.public,
            province_code="01",
            ward_code="00229",
            address="78 Giải Phóng",
        ),
    )
    stale = {"status": "connected", "search_key": _OLD_KEY.replace("01099", made.code)}
    await session.execute(update(Facility).where(Facility.code == made.code).values(**stale))
    assert await _found(session, "kim lien") == []
    assert await _found(session, "phuong truoc day") == [made.code]
    assert await facilities.rebuild_search_keys(session) == 1
    for words in ("kim lien", "dong da", "bach mai", "bv bach mai", "giai phong", made.code):
        assert await _found(session, words) == [made.code], words
    assert await _found(session, "phuong truoc day") == []
    # made as registering makes them: nothing more to do the second time
    assert await facilities.rebuild_search_keys(session) == 0


#: A facility as an earlier release registered it, with the key of an earlier ward list.
_BEFORE = (
    "INSERT INTO facility (code, name, kind, level, ownership, address, ward_code,"
    " province_code, status, issued, created_at, created_by, search_key) VALUES ('01099',"
    " 'Bệnh viện Bạch Mai', 'hospital', 'specialised', 'public', '78 Giải Phóng', '00229',"
    " '01', 'connected', 1, CURRENT_TIMESTAMP, 'person:001085004217', ?)"
)


def test_loading_the_administrative_units_makes_the_keys_again(sqlite_env: str) -> None:  # noqa: F811
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    with sqlite3.connect(sqlite_env.split("///", 1)[1]) as db:
        db.execute(_BEFORE, (_OLD_KEY,))
    # a list that names no place leaves the keys alone
    other = runner.invoke(app, ["catalog", "load", "gender"])
    assert other.exit_code == 0, other.output
    assert "search" not in other.output
    loaded = runner.invoke(app, ["catalog", "load", "province", "district", "ward"])
    assert loaded.exit_code == 0, loaded.output
    assert "facility search keys made again: 1" in loaded.output

    async def search() -> tuple[list[str], list[str]]:
        engine = create_engine(sqlite_env)
        try:
            async with AsyncSession(engine) as session:
                return await _found(session, "kim lien"), await _found(session, "truoc day")
        finally:
            await engine.dispose()

    assert asyncio.run(search()) == (["01099"], [])
