"""The downloaded book's summary (D209, amended): the PDF prints the same allergies, long-term
conditions, current medicines, risk factors, blood group and weight as the book's summary
reads from every visit in full, while it reads only what it prints: what each visit's
timeline row keeps, and the stored visits of the last 90 days (their medicines)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_api import visit_of, who
from tests.healthbook.test_confided import FHIR, _young_person_with_two_visits
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import identity
from vnehr.healthbook import book, service
from vnehr.kit.auth import Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

PDF = "/api/v1/me/book.pdf"


def _person(personal_id: str) -> Subject:
    return Subject(kind="person", id=personal_id, name="x", assurance_level=2)


def _section(html: str) -> str:
    """The summary as the PDF prints it: from its heading to the visits' heading."""
    found = re.search(r"<h2>[^<]*</h2>\s*<h3>.*?(?=<h2>)", html, re.S)
    assert found is not None, html[:2000]
    return found[0]


async def _printed_and_full(
    db: Database, reader: str, personal_id: str | None = None
) -> tuple[str, str]:
    """The summary section of the downloaded book of ``personal_id`` (default the reader's
    own), and the same section made from the book's summary, which reads every visit."""
    subject = _person(reader)
    printed = (await book.book(db, subject, personal_id=personal_id)).value
    async with db.read_session() as session:
        full = (await service.summary(session, subject, personal_id=personal_id)).value
    at = utcnow()
    made = book.book_html(printed, printed_at=at, portal="p", most=1)
    reference = book.book_html(
        book.Book(printed.holder, full, printed.visits, printed.more),
        printed_at=at,
        portal="p",
        most=1,
    )
    return _section(made), _section(reference)


async def _chronic_patient(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[tuple[str, str, str, str], dict[str, str], str]:
    """An adult with visits over two years at one facility (chronic care among them, a
    discharge diagnosis whose words do not match its codes, one visit without a blood group,
    drugs within and before the last 90 days) and an allergy sent through FHIR; signed in."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    first = visit_of(code, 31, now - timedelta(days=480), care_type="01", age_group=3)
    visits = [first]
    for seed, days, care in ((32, 300, "07"), (33, 200, "02"), (34, 95, "01"), (35, 60, "07"),
                             (36, 20, "01"), (37, 3, "03")):  # fmt: skip
        visits.append(
            visit_of(code, seed, now - timedelta(days=days), first, care_type=care, age_group=3)
        )
    for rows in visits[2].tables.values():  # one part for several codes: pinned to none
        for row in rows:
            if "CHAN_DOAN_RV" in row:
                row["CHAN_DOAN_RV"] = "Một chẩn đoán bằng lời"
    visits[-1].tables["XML1"][0]["NHOM_MAU"] = ""
    visits[-2].tables["XML1"][0]["CAN_NANG"] = "0"
    answer = await send(client, headers, synth.envelope(visits, code))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "accepted", answer.text
    person = who(first)
    await sign_in_as(client, session, settings, person)
    person_id = await identity.person_id_of(session, person[0])
    allergy = {
        "resourceType": "AllergyIntolerance",
        "code": {"text": "Penicillin"},
        "criticality": "high",
        "patient": {"reference": f"Patient/{person_id}"},
    }
    cookies = dict(client.cookies)
    client.cookies.clear()
    written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=headers)
    assert written.status_code == 201, written.text
    client.cookies.update(cookies)
    return person, headers, code


async def test_the_pdf_prints_the_summary_the_whole_book_makes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    person, _, _ = await _chronic_patient(client, session, settings)
    printed, full = await _printed_and_full(db, person[0])
    assert printed == full
    # (a summary with something in every part: the comparison above compares something)
    assert "Penicillin" in printed
    for heading in ("Bệnh mạn tính", "Thuốc đang dùng", "Yếu tố nguy cơ", "Nhóm máu", "Cân nặng"):
        assert heading in printed
    assert printed.count("<li>") >= 8, printed


async def test_a_parent_of_a_seventeen_year_old_gets_the_summary_the_book_gives_them(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    young, _, _, _ = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 17)
    printed, full = await _printed_and_full(db, AN[0], young[0])
    assert printed == full
    assert "Hapacol" in printed  # the ordinary visit's medicines
    assert "Sertraline" not in printed
    own, own_full = await _printed_and_full(db, young[0])
    assert own == own_full
    assert "Sertraline" in own
    assert own.count("<li>") > printed.count("<li>")  # the withheld visit's medicines too


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the database receives, with its parameters (the app runs on the
    test's connection)."""
    seen: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        seen.append((str(args[2]), args[3]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


def _opened(seen: list[tuple[str, Any]]) -> list[Any]:
    """The parameters of each statement that read stored visits (their tables)."""
    return [
        params
        for statement, params in seen
        if statement.lstrip().upper().startswith("SELECT") and "FROM visit_version" in statement
    ]


async def test_the_pdf_opens_only_the_visits_whose_medicines_it_prints(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[tuple[str, Any]],
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    first = visit_of(code, 41, now - timedelta(days=400), care_type="07", age_group=3)
    old = [first] + [
        visit_of(code, 42 + n, now - timedelta(days=100 + 20 * n), first, care_type="07",
                 age_group=3)
        for n in range(12)
    ]  # fmt: skip
    assert (await send(client, headers, synth.envelope(old, code))).status_code == 201
    person = who(first)
    await sign_in_as(client, session, settings, person)
    statements.clear()
    text = await client.get(PDF)
    assert text.status_code == 200, text.text
    assert _opened(statements) == []  # no medicine of the last 90 days: no visit opened

    recent = visit_of(code, 60, now - timedelta(days=5), first, care_type="01", age_group=3)
    assert (await send(client, headers, synth.envelope([recent], code))).status_code == 201
    as_person(client, settings, person[0])
    statements.clear()
    assert (await client.get(PDF)).status_code == 200
    [opened] = _opened(statements)
    assert len(opened) == 1, opened  # that visit alone


async def test_rows_that_do_not_know_their_visit_are_read_by_opening_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    db: Database,
    statements: list[tuple[str, Any]],
) -> None:
    """A row stored before 0030 (nothing kept) or corrected by the previous release (kept for
    an older version) has its visit opened, and the summary is still the whole book's."""
    from sqlalchemy import update

    from vnehr.records.models import TimelineEntry

    person, _, _ = await _chronic_patient(client, session, settings)
    person_id = await identity.person_id_of(session, person[0])
    rows = sorted(
        (await session.execute(
            TimelineEntry.__table__.select().where(TimelineEntry.person_id == person_id)
        )).all(),
        key=lambda r: r.id,
    )  # fmt: skip
    assert all(r.summary_facts and r.summary_version == r.version_id for r in rows)
    t = TimelineEntry
    await session.execute(update(t).where(t.id == rows[0].id).values(summary_facts=None))
    await session.execute(update(t).where(t.id == rows[1].id).values(summary_version=None))
    await session.execute(
        update(t).where(t.id == rows[2].id).values(summary_version=rows[2].version_id + 1000)
    )
    await session.flush()
    statements.clear()
    printed, full = await _printed_and_full(db, person[0])
    assert printed == full
    assert "Penicillin" in printed
    assert _opened(statements)
