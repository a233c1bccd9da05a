"""A facility system that lost the answers to some files (an outage, a dropped connection:
D49) finds their receipts again with ``GET /api/v1/submissions``: from ``since``, oldest
first, page after page, however many receipts came after them; each says whether it is a
check-in's or a visit file's."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from tests.conftest import new_database_on
from tests.healthbook.test_api import visit_of
from tests.submissions.test_intake import ENDED, checkin_row, facility_with_token, send
from vnehr import catalogs, identity
from vnehr.cli import app
from vnehr.kit.auth import SESSION_COOKIE, Subject, make_session_cookie
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings, get_settings
from vnehr.submissions import synth
from vnehr.submissions.service import (
    IntakeOptions,
    accept,
    accept_many,
    check_in,
    listing,
    prepare,
)
from vnehr.submissions.xmlio import Limits, write_table

BINH = "079162003581"  # a facility's administrator, signed in on the portal
AN = "001085004217"  # the Hanoi health department's administrator


async def every_page(
    client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> tuple[list[dict[str, Any]], int]:
    """Every receipt the listing gives, following ``next_cursor``; and how many pages."""
    found: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        params = f"{query}&cursor={cursor}" if cursor else query
        response = await client.get(f"/api/v1/submissions?{params}", headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        found += page["items"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return found, pages
        assert pages < 50, "the cursor goes round in circles"


async def test_a_lost_receipt_is_found_however_many_came_after_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    sent = []
    for seed in range(5):
        answer = await send(
            client, headers, synth.envelope([visit_of(code, 40 + seed, ENDED)], code)
        )
        assert answer.status_code == 201, answer.text
        sent.append(answer.json())
    checkin = await client.post(
        "/api/v1/checkins",
        content=write_table("XML0", [checkin_row(code, "LK-LIST")]),
        headers={**headers, "Content-Type": "application/xml"},
    )
    assert checkin.status_code == 201, checkin.text
    since = datetime.fromisoformat(sent[1]["received_at"]).isoformat()

    # two at a time, from the second file on: the oldest first, each once, up to the newest
    found, pages = await every_page(client, headers, f"since={since.replace('+', '%2B')}&limit=2")

    assert [r["id"] for r in found] == [r["id"] for r in sent[1:]] + [checkin.json()["id"]]
    assert pages == 3
    assert [r["kind"] for r in found] == ["visit_file"] * 4 + ["checkin"]
    assert found[0] == {"kind": "visit_file", **sent[1]}  # the receipt as it was given
    only_files, _ = await every_page(client, headers, "kind=visit_file&limit=4")
    assert [r["id"] for r in only_files] == [r["id"] for r in sent]


async def test_receipts_written_in_one_transaction_are_each_listed_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # Files written together by the group commit (D49) share their received-at moment: the
    # cursor must tell them apart.
    code, headers = await facility_with_token(client, session, settings)
    sender = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=code
    )
    codes = await catalogs.codebook(session)
    files = [
        (sender, data, prepare(data, codes=codes, limits=Limits()))
        for data in (synth.envelope([visit_of(code, 50 + n, ENDED)], code) for n in range(4))
    ]
    receipts = await accept_many(session, files, IntakeOptions(limits=Limits()))
    await session.flush()
    assert len({r["received_at"] for r in receipts}) == 1

    found, pages = await every_page(client, headers, "limit=1")

    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in receipts)
    assert pages == 4


async def test_a_forged_cursor_is_a_coded_error(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    # not base64 JSON; a list of the wrong types; not a moment
    for cursor in ("not-a-cursor!", "WyJ4IiwxXQ", "WyJub3QgYSBtb21lbnQiLCJ4Il0"):
        response = await client.get(f"/api/v1/submissions?cursor={cursor}", headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "KIT-0001"), cursor
    later = (datetime.now().astimezone() + timedelta(days=1)).isoformat().replace("+", "%2B")
    empty = await client.get(f"/api/v1/submissions?since={later}", headers=headers)
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_whoever_may_not_read_a_receipt_or_listing_is_told_what_it_is_about(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Each refusal names what it is about (a facility) and what to do: a person signed in (a
    facility's administrator) names the facility with ``?facility=``; no text calls a facility
    code a "submission". (Another facility's receipt is answered as a missing one: below.)"""
    code, headers = await facility_with_token(client, session, settings)
    sent = (await send(client, headers, synth.envelope([visit_of(code, 70, ENDED)], code))).json()
    other, other_headers = await facility_with_token(client, session, settings)

    listing = await client.get(f"/api/v1/submissions?facility={code}", headers=other_headers)
    assert (listing.status_code, listing.json()["code"]) == (403, "SUB-0023")
    assert listing.json()["message"] == {
        "vi": f"Bạn không được xem dữ liệu của cơ sở {code}: chỉ quản trị viên, hệ thống phần "
        "mềm của cơ sở này và Sở Y tế của tỉnh được xem.",
        "en": f"You may not read the data of facility {code}: only its administrators, its own "
        "systems and its province's health department may.",
    }
    awaiting = await client.get(
        "/api/v1/checkins/awaiting-visits", params={"facility": code}, headers=other_headers
    )
    assert (awaiting.status_code, awaiting.json()["message"]) == (403, listing.json()["message"])
    assert other != code

    # the facility's administrator, signed in on the portal: says which facility, then reads
    await identity.bootstrap_grant(session, BINH, "facility_admin", facility_code=code)
    await session.flush()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(
            settings, {"personal_id": BINH, "name": "Trần Thị Bình", "assurance_level": 2}
        ),
    )
    unnamed = await client.get("/api/v1/submissions")
    assert (unnamed.status_code, unnamed.json()["code"]) == (422, "SUB-0025")
    assert unnamed.json()["message"] == {
        "vi": "Hãy cho biết cơ sở cần xem: thêm ?facility=MÃ_CƠ_SỞ (mã cơ sở KCB 5 chữ số) vào "
        "địa chỉ. Chỉ hệ thống phần mềm của cơ sở được bỏ qua tham số này (khi xem dữ liệu của "
        "chính cơ sở).",
        "en": "Say which facility: add ?facility=CODE (the 5-digit facility code) to the "
        "address. Only a facility's own system may leave it out (for its own facility).",
    }
    unnamed_awaiting = await client.get("/api/v1/checkins/awaiting-visits")
    assert (unnamed_awaiting.status_code, unnamed_awaiting.json()["code"]) == (422, "SUB-0025")
    named = await client.get(f"/api/v1/submissions?facility={code}")
    assert named.status_code == 200, named.text
    assert [r["id"] for r in named.json()["items"]] == [sent["id"]]


async def test_another_facilitys_receipt_is_answered_as_an_id_that_does_not_exist(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility asking for a receipt id of another facility learns nothing from the answer:
    it is the answer to an id nobody was given (404 SUB-0015, the same body but for the id),
    so ids cannot be tried to learn which exist. The sender and its province's department
    still read the receipt."""
    code, headers = await facility_with_token(client, session, settings)
    sent = (await send(client, headers, synth.envelope([visit_of(code, 71, ENDED)], code))).json()
    _, other_headers = await facility_with_token(client, session, settings)
    nobodys = str(uuid.uuid4())

    theirs = await client.get(f"/api/v1/submissions/{sent['id']}", headers=other_headers)
    missing = await client.get(f"/api/v1/submissions/{nobodys}", headers=other_headers)

    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json()["code"] == "SUB-0015"
    assert theirs.text.replace(sent["id"], "ID") == missing.text.replace(nobodys, "ID")
    assert theirs.json()["message"] == {
        "vi": f"Không có lượt gửi mã {sent['id']} trong số biên nhận bạn được xem. Hãy kiểm tra "
        "lại mã, hoặc tìm biên nhận của cơ sở tại GET /api/v1/submissions?since=....",
        "en": f"There is no submission {sent['id']} among the receipts you may read. Check the "
        "id, or find your facility's receipts with GET /api/v1/submissions?since=....",
    }
    own = await client.get(f"/api/v1/submissions/{sent['id']}", headers=headers)
    assert (own.status_code, own.json()) == (200, sent)
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await session.flush()
    client.cookies.set(
        SESSION_COOKIE,
        make_session_cookie(
            settings, {"personal_id": AN, "name": "Nguyễn Văn An", "assurance_level": 2}
        ),
    )
    department = await client.get(f"/api/v1/submissions/{sent['id']}")
    assert (department.status_code, department.json()) == (200, sent)


_SENDER = Subject(
    "facility_system",
    "his",
    "HIS",
    scopes=frozenset({"submission.write", "checkin.write"}),
    facility_code="01001",
)


def _demo_database(
    store: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A database of its own with the demo (facility 01001, connected)."""
    if store == "postgresql":
        url = new_database_on(postgres_url, "receipts")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'receipts.db'}"
    monkeypatch.setenv("VNEHR_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo", "load"]).exit_code == 0
    get_settings.cache_clear()
    return url


def _files(count: int) -> list[bytes]:
    return [
        synth.envelope(
            [synth.make_visit(random.Random(n), facility_code="01001", sequence=6100 + n)],
            "01001",
        )
        for n in range(count)
    ]


async def _page(
    reader: Database, since: datetime, cursor: str | None, limit: int = 1
) -> tuple[list[str], str | None]:
    """One page of 01001's receipts, on the sessions of GET /api/v1/submissions."""
    async with reader.read_session() as session, reader.session() as primary:
        found = await listing(
            session,
            _SENDER,
            primary=primary,
            facility=None,
            since=since,
            limit=limit,
            cursor=cursor,
        )
    return [r["id"] for r in found.items], found.next_cursor


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_receipt_committed_after_a_listing_is_still_reached_by_its_cursor(
    store: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's receipt is stamped before its transaction commits. Two API workers write the
    same facility's files: the first (A) is stamped, then a file and a check-in (B, C) sent
    meanwhile to the other worker are written; a system asks for one receipt a page while A is
    not committed yet, and reads on with the page's ``next_cursor``. It must reach A: before,
    B and C committed first, the page gave B and a cursor past it (B was received after A),
    and A was never listed. On PostgreSQL B and C are still written while A is (a facility's
    writers go side by side), and the page stops before A's start; on SQLite writers take
    turns. (The cursor a page gives is followed; a last page gives none, and the system asks
    again from where it began.)"""
    url = _demo_database(store, postgres_url, tmp_path, monkeypatch)
    options = IntakeOptions(limits=Limits())
    files = _files(2)
    checkin = write_table("XML0", [checkin_row("01001", "LK-LATE")])

    async def main() -> None:
        one, other, reader = (Database.from_urls(url) for _ in range(3))  # two API workers
        try:
            async with reader.read_session() as session:
                codes = await catalogs.codebook(session)
            a, second = (prepare(f, codes=codes, limits=options.limits) for f in files)
            since = utcnow()

            async def meanwhile() -> list[str]:  # a file, then a check-in
                async with other.session() as theirs:
                    b = await accept(theirs, _SENDER, files[1], second, options)
                async with other.session() as theirs:
                    c = await check_in(theirs, _SENDER, checkin, options, codes)
                return [b["id"], c["id"]]

            async with one.session() as session:
                first = await accept(session, _SENDER, files[0], a, options)  # stamped ...
                writing = asyncio.create_task(meanwhile())
                # ... B and C arrive meanwhile: on PostgreSQL written beside A, on SQLite after
                await asyncio.wait([writing], timeout=30 if store == "postgresql" else 1.5)
                assert writing.done() == (store == "postgresql")
                reading = asyncio.create_task(_page(reader, since, None))  # one receipt
                await asyncio.wait([reading], timeout=1)
            later = await asyncio.wait_for(writing, 30)  # A committed (then B and C)
            listed, cursor = await asyncio.wait_for(reading, 30)
            while True:  # ... and reads on from where it was
                found, cursor = await _page(reader, since, cursor)
                listed += found
                if cursor is None:
                    break
            assert set(listed) == {first["id"], *later}
        finally:
            for db in (one, other, reader):
                await db.dispose()

    asyncio.run(main())


def test_a_listing_holds_back_none_of_the_facility_s_writers(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a listing asked for while one of the facility's files is being written (a
    long import batch, a large FHIR bundle) answers at once, without that file, and a file
    sent meanwhile is written without waiting for either; the next listing has both. Before,
    the listing queued for the facility's lock behind the open write, and every new file of
    the facility queued behind the listing (D172)."""
    url = _demo_database("postgresql", postgres_url, tmp_path, monkeypatch)
    options = IntakeOptions(limits=Limits())
    files = _files(3)

    async def main() -> None:
        one, other, reader = (Database.from_urls(url) for _ in range(3))
        try:
            async with reader.read_session() as session:
                codes = await catalogs.codebook(session)
            a, b, c = (prepare(f, codes=codes, limits=options.limits) for f in files)
            since = utcnow()
            async with other.session() as theirs:
                before = await accept(theirs, _SENDER, files[2], c, options)
            async with one.session() as session:
                first = await accept(session, _SENDER, files[0], a, options)  # still open
                listed, cursor = await asyncio.wait_for(_page(reader, since, None, 50), 30)
                assert (listed, cursor) == ([before["id"]], None)  # not the one being written
                async with other.session() as theirs:  # not held back by the listing
                    meanwhile = await asyncio.wait_for(
                        accept(theirs, _SENDER, files[1], b, options), 30
                    )
            listed, _ = await _page(reader, since, None, 50)
            assert listed[0] == before["id"]
            assert set(listed) == {before["id"], first["id"], meanwhile["id"]}
        finally:
            for db in (one, other, reader):
                await db.dispose()

    asyncio.run(main())


def test_the_horizon_finds_the_writers_of_each_facility_whatever_the_sign_of_its_key(
    postgres_url: str,
) -> None:
    """The listing finds a facility's writers in ``pg_locks`` from the two 32-bit halves of
    the lock's 64-bit key: right for keys of either sign, and for that facility only."""
    from sqlalchemy import text

    from vnehr.submissions.service import _RECEIPTS_PG, _horizon

    url = new_database_on(postgres_url, "horizon")

    async def main() -> None:
        writer, reader = Database.from_urls(url), Database.from_urls(url)
        try:
            async with reader.session() as session:
                keys = {
                    code: int(
                        await session.scalar(text("SELECT hashtextextended(:c, 151)"), {"c": code})
                        or 0
                    )
                    for code in (f"01{n:03d}" for n in range(1, 40))
                }
            assert {k < 0 for k in keys.values()} == {True, False}  # both signs are met
            for code in (min(keys, key=keys.get), max(keys, key=keys.get)):
                other = next(c for c in keys if c != code)
                async with writer.session() as session:
                    await session.execute(_RECEIPTS_PG, {"codes": [code]})
                    started = await session.scalar(text("SELECT now()"))
                    async with reader.session() as look:
                        horizon = await _horizon(look, code)
                        elsewhere = await _horizon(look, other)
                    assert horizon == started
                    assert elsewhere > started  # another facility's listing is not held at it
        finally:
            for db in (writer, reader):
                await db.dispose()

    asyncio.run(main())


#: The facility's writers, played by the database at a busy facility's pace: each round takes
#: the facility's lock and the clock with the intake's own statement (``_RECEIPTS_PG``), writes
#: a receipt stamped with it, ends its transaction after a moment, and pauses a moment before
#: the next (Python could not write fast enough on a test machine to meet the race often).
_WRITER_PG = """
CREATE PROCEDURE write_receipts(code text, deadline timestamptz, hold float8, pause float8)
LANGUAGE plpgsql AS $$
DECLARE at timestamptz; made text;
BEGIN
  WHILE clock_timestamp() < deadline LOOP
    PERFORM pg_sleep(random() * pause);
    EXECUTE '{receipts}' INTO at USING ARRAY[code];
    made := gen_random_uuid()::text;
    INSERT INTO submission (id, kind, facility_code, client_id, received_at, status, test_mode,
      visits, accepted, rejected, raw_sha256, raw_size, raw_zstd, receipt)
    VALUES (made, 'checkin', code, 'his', at, 'accepted', false, 1, 1, 0, '', 0, '\\x',
      jsonb_build_object('id', made, 'received_at', at));
    PERFORM pg_sleep(random() * hold);
    COMMIT;
  END LOOP;
END $$
"""


async def _migrated(postgres_url: str, prefix: str) -> str:
    from vnehr.kit.migrate import upgrade

    url = await asyncio.to_thread(new_database_on, postgres_url, prefix)
    await upgrade(url)
    return url


def _connect(url: str) -> Any:
    import asyncpg

    database = url.split("@/")[1].split("?")[0]
    return asyncpg.connect(user="postgres", database=database, host=url.split("host=")[-1])


def test_a_system_following_the_listing_misses_no_receipt_of_a_busy_facility(
    postgres_url: str,
) -> None:
    """PostgreSQL: three writers of facility 01001 write receipts without pause for a few
    seconds while a system follows its listing (``next_cursor``, then again from the last
    receipt it saw), and another transaction holds 8,000 visit locks (an import batch: the
    listing's look at the locks takes milliseconds). Afterwards the system has seen every
    receipt. Before, a listing read the clock after the locks: a writer that took the lock
    just after that look stamped its receipt below the page's end while it was not yet
    committed, a receipt stamped after it was shown, and the cursor went past it for good."""
    from vnehr.submissions.service import _RECEIPTS_PG

    assert "CAST(:codes AS text[])" in _RECEIPTS_PG.text
    receipts = _RECEIPTS_PG.text.replace("CAST(:codes AS text[])", "$1").replace("'", "''")

    async def main() -> None:
        url = await _migrated(postgres_url, "follow")
        reader = Database.from_urls(url)
        setup, holder = await _connect(url), await _connect(url)
        writers = [await _connect(url) for _ in range(3)]
        try:
            await setup.execute(_WRITER_PG.replace("{receipts}", receipts))
            await holder.execute("BEGIN")
            await holder.execute(
                "SELECT count(pg_advisory_xact_lock(130, g)) FROM generate_series(1, 8000) AS g"
            )
            since = utcnow()
            deadline = await setup.fetchval("SELECT clock_timestamp() + interval '6 seconds'")
            seen: set[str] = set()
            pages = 0

            async def follow() -> None:
                nonlocal pages
                at, cursor = since, None
                while utcnow() < deadline:
                    async with reader.read_session() as session, reader.session() as primary:
                        page = await listing(
                            session, _SENDER, primary=primary, facility=None, since=at,
                            limit=100, cursor=cursor,
                        )  # fmt: skip
                    pages += 1
                    seen.update(r["id"] for r in page.items)
                    if page.next_cursor:
                        cursor = page.next_cursor
                    elif page.items:  # the last page: ask again from the last receipt seen
                        at = datetime.fromisoformat(page.items[-1]["received_at"])
                        cursor = None
                await asyncio.sleep(0.2)  # every writer has ended
                while True:  # ... and the system reads on from where it was
                    found, cursor = await _page(reader, at, cursor, 1000)
                    seen.update(found)
                    if cursor is None:
                        return

            await asyncio.gather(
                follow(),
                *(
                    w.execute("CALL write_receipts('01001', $1, 0.002, 0.01)", deadline)
                    for w in writers
                ),
            )
            rows = await setup.fetch("SELECT id FROM submission WHERE received_at >= $1", since)
            written = {r["id"] for r in rows}
            assert pages > 50  # the race was run
            assert len(written) > 300
            missed = written - seen
            assert not missed, f"{len(missed)} of {len(written)} receipts never listed"
        finally:
            for connection in (setup, holder, *writers):
                await connection.close()
            await reader.dispose()

    asyncio.run(main())


def test_a_listing_is_not_refused_for_a_writer_that_has_just_finished(
    postgres_url: str,
) -> None:
    """PostgreSQL: while two writers of facility 01001 take its lock in short transactions
    (the shortest: the lock alone, then commit), listings all answer: a writer seen holding
    the lock that has finished by the time its activity is read is no writer any more. Before,
    a holder whose activity showed no transaction made the listing refuse with SUB-0026,
    telling the operator to change database roles though every writer was visible."""
    from vnehr.submissions import errors
    from vnehr.submissions.service import _RECEIPTS_PG

    statement = _RECEIPTS_PG.text.replace("CAST(:codes AS text[])", "$1::text[]")

    async def main() -> None:
        url = await _migrated(postgres_url, "unsure")
        reader = Database.from_urls(url)
        writers = [await _connect(url) for _ in range(2)]
        try:
            since = utcnow()
            stop = asyncio.get_running_loop().time() + 5
            refused = listed = 0

            async def write(connection: Any) -> None:
                while asyncio.get_running_loop().time() < stop:
                    await connection.fetchval(statement, ["01001"])

            async def look() -> None:
                nonlocal refused, listed
                while asyncio.get_running_loop().time() < stop:
                    try:
                        await _page(reader, since, None, 10)
                    except errors.ReceiptsUnsure:
                        refused += 1
                    listed += 1

            await asyncio.gather(look(), *(write(w) for w in writers))
            assert listed > 100  # the race was run
            assert refused == 0, f"{refused} of {listed} listings refused (SUB-0026)"
        finally:
            for connection in writers:
                await connection.close()
            await reader.dispose()

    asyncio.run(main())


def test_a_listing_refuses_only_when_it_cannot_see_a_writer(postgres_url: str) -> None:
    """PostgreSQL: SUB-0026 is for a writer the listing's database role may not see. A
    session that holds the facility's lock but runs no transaction (as a writer seen holding
    it that has just committed) writes nothing: the listing answers. A writer in a
    transaction of another role makes a role without ``pg_read_all_stats`` refuse; with it,
    the listing answers, without what was stamped after that writer's start."""
    from vnehr.submissions import errors
    from vnehr.submissions.service import _RECEIPTS_PG

    insert = (
        "INSERT INTO submission (id, kind, facility_code, client_id, received_at, status,"
        " test_mode, visits, accepted, rejected, raw_sha256, raw_size, raw_zstd, receipt)"
        " VALUES ($1::text, 'checkin', '01001', 'his', clock_timestamp(), 'accepted', false, 1, 1, 0,"
        " '', 0, '\\x', jsonb_build_object('id', $1::text))"
    )

    async def main() -> None:
        url = await _migrated(postgres_url, "roles")
        setup, idle, writer = await _connect(url), await _connect(url), await _connect(url)
        await setup.execute(
            "CREATE ROLE lister LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO lister"
        )
        as_lister = Database.from_urls(url.replace("postgres@", "lister@"))
        reader = Database.from_urls(url)
        try:
            since = utcnow()
            await setup.execute(insert, "r-1")
            await idle.execute("SELECT pg_advisory_lock_shared(hashtextextended('01001', 151))")
            assert await _page(reader, since, None, 10) == (["r-1"], None)

            await writer.execute("BEGIN")
            await writer.execute(_RECEIPTS_PG.text.replace(":codes", "ARRAY['01001']"))
            await setup.execute(insert, "r-2")  # stamped after the writer's start
            with pytest.raises(errors.ReceiptsUnsure):
                await _page(as_lister, since, None, 10)
            await setup.execute("GRANT pg_read_all_stats TO lister")
            assert await _page(as_lister, since, None, 10) == (["r-1"], None)
            await writer.execute("COMMIT")
            assert await _page(as_lister, since, None, 10) == (["r-1", "r-2"], None)
        finally:
            for connection in (setup, idle, writer):
                await connection.close()
            for db in (as_lister, reader):
                await db.dispose()

    asyncio.run(main())


async def test_a_person_reads_the_receipts_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The facility administrator's page lists the latest receipts first; its cursor goes on
    to the older ones, each once, also among receipts written in one transaction."""
    code, headers = await facility_with_token(client, session, settings)
    sender = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=code
    )
    codes = await catalogs.codebook(session)
    together = [
        (sender, data, prepare(data, codes=codes, limits=Limits()))
        for data in (synth.envelope([visit_of(code, 60 + n, ENDED)], code) for n in range(3))
    ]
    sent = [r["id"] for r in await accept_many(session, together, IntakeOptions(limits=Limits()))]
    await session.flush()
    last = await send(client, headers, synth.envelope([visit_of(code, 70, ENDED)], code))
    assert last.status_code == 201, last.text
    await identity.bootstrap_grant(session, BINH, "facility_admin", facility_code=code)
    await session.flush()
    admin = Subject("person", BINH, "Bình", await identity.grants_for(session, BINH))
    found: list[str] = []
    cursor = None
    for _ in range(5):
        page = await listing(
            session, admin, primary=session, facility=code, since=None, limit=2,
            cursor=cursor, newest_first=True,
        )  # fmt: skip
        found += [r["id"] for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert found[0] == last.json()["id"]  # the newest first
    assert len(found) == 4
    assert sorted(found[1:]) == sorted(sent)  # each of the others once
    oldest_first = await listing(
        session, admin, primary=session, facility=code, since=None, limit=10
    )
    assert [r["id"] for r in oldest_first.items] == found[::-1]
