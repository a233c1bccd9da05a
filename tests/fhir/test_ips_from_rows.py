"""``Patient/$summary`` (the IPS) reads what each visit's timeline row keeps and maps only the
visits whose resources it may show (D233): the document is exactly the one the patient's whole
compartment makes for the same reader (a citizen, the parent of a 17-year-old, a facility
system under the patient's consent, with or without a sensitive category)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.healthbook.test_access import born_years_ago
from tests.healthbook.test_confided import FHIR, _young_person_with_two_visits
from tests.healthbook.test_summaries_from_rows import (
    old_visits,
    opened,
    patient_with_results,
    statements,  # noqa: F401  (the fixture)
)
from tests.submissions.test_intake import facility_with_token
from vnehr import identity, records
from vnehr.fhir import ips, store
from vnehr.kit.auth import Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings


def _comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A document without what differs between two makings of it (ids, times)."""
    composition = document["entry"][0]["resource"]
    return {
        "composition": {k: v for k, v in composition.items() if k not in ("id", "date")},
        "rest": document["entry"][1:],
        "type": document["type"],
    }


async def _from_compartment(
    session: AsyncSession, settings: Settings, subject: Subject, person_id: int
) -> dict[str, Any]:
    """The IPS as the patient's whole compartment makes it for ``subject``."""
    base = f"{settings.public_url}/fhir/R4"
    scope = await store.scope_of(session, subject, base=base)
    pool = await store.patient_compartment(session, scope, str(person_id))
    return _comparable(ips.document(base, pool, str(person_id), now=utcnow()))


async def _ips(
    client: httpx.AsyncClient, person_id: int, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    answer = await client.get(f"{FHIR}/Patient/{person_id}/$summary", headers=headers)
    assert answer.status_code == 200, answer.text
    return _comparable(answer.json())


def _person(personal_id: str) -> Subject:
    return Subject(kind="person", id=personal_id, name="x", assurance_level=2)


def _system(code: str) -> Subject:
    return Subject(
        kind="facility_system",
        id=f"system-{code}",
        name="x",
        scopes=frozenset({"record.read"}),
        facility_code=code,
    )


def _shown(document: dict[str, Any]) -> dict[str, int]:
    return {
        section["title"]: len(section.get("entry", []))
        for section in document["composition"]["section"]
    }


async def test_the_citizens_ips_is_what_the_whole_compartment_makes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    person, person_id, _, _ = await patient_with_results(client, session, settings)
    given = await _ips(client, person_id)
    assert given == await _from_compartment(session, settings, _person(person[0]), person_id)
    # (every section has entries: the comparison compares something)
    assert all(_shown(given).values()), _shown(given)
    assert _shown(given)["Kết quả xét nghiệm (Results)"] == ips.MAX_ENTRIES


async def test_a_parents_ips_of_a_seventeen_year_old_is_what_the_compartment_makes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    young, _, _, _ = await _young_person_with_two_visits(client, session, settings)
    await born_years_ago(session, young[0], 17)
    person_id = await identity.person_id_of(session, young[0])
    assert person_id is not None
    as_person(client, settings, AN[0])
    given = await _ips(client, person_id)
    assert given == await _from_compartment(session, settings, _person(AN[0]), person_id)
    assert "F32" not in str(given)
    assert "Sertraline" not in str(given)
    as_person(client, settings, young[0])
    assert "Sertraline" in str(await _ips(client, person_id))


@pytest.mark.parametrize("shared", [[], ["mental"]])
async def test_a_facility_systems_ips_under_consent_is_what_the_compartment_makes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, shared: list[str]
) -> None:
    _, person_id, sender, sender_headers = await patient_with_results(client, session, settings)
    reader, reader_headers = await facility_with_token(
        client, session, settings, scopes=("record.read",)
    )
    made = await client.post(
        "/api/v1/me/consents", json={"facility": reader, "scope": "full", "sensitive": shared}
    )
    assert made.status_code == 201, made.text
    client.cookies.clear()
    given = await _ips(client, person_id, reader_headers)
    assert given == await _from_compartment(session, settings, _system(reader), person_id)
    assert ("Sertraline" in str(given)) == bool(shared)
    # the facility that sent the visits reads its own (and the rest under no consent: none)
    own = await _ips(client, person_id, sender_headers)
    assert own == await _from_compartment(session, settings, _system(sender), person_id)
    assert "F32" not in str(own)


async def test_the_ips_maps_only_the_visits_it_may_show(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[tuple[str, Any]],  # noqa: F811
) -> None:
    """25 visits before the last 90 days, each with ten results and services and the same
    diagnoses, none with a weight: the newest twenty results, services and the problems are
    in the newest few visits, and only those are opened."""
    person, _, _ = await old_visits(client, session, settings, 25)
    person_id = await identity.person_id_of(session, person[0])
    assert person_id is not None
    rows = await records.entries_of(session, [person_id])  # newest first
    statements.clear()
    given = await _ips(client, person_id)
    seen = opened(statements)
    assert 1 <= len(seen) <= 3, seen
    assert seen == {row.version_id for row in rows[: len(seen)]}
    assert _shown(given)["Kết quả xét nghiệm (Results)"] == ips.MAX_ENTRIES
    assert given == await _from_compartment(session, settings, _person(person[0]), person_id)


def test_a_row_keeps_the_times_of_as_many_results_as_a_section_shows() -> None:
    assert ips.MAX_ENTRIES <= records.NEWEST


async def test_rows_that_do_not_know_their_visit_have_it_mapped(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    statements: list[tuple[str, Any]],  # noqa: F811
) -> None:
    """Rows stored before 0030 (no facts) or of an older form have their visits mapped, and
    the IPS is still the whole compartment's."""
    from sqlalchemy import update

    from vnehr.records.models import TimelineEntry

    person, _, _ = await old_visits(client, session, settings, 6)
    person_id = await identity.person_id_of(session, person[0])
    assert person_id is not None
    rows = await records.entries_of(session, [person_id])
    t = TimelineEntry
    await session.execute(update(t).where(t.id == rows[-1].id).values(summary_facts=None))
    await session.execute(
        update(t).where(t.id == rows[-2].id).values(summary_version=rows[-2].version_id + 99)
    )
    await session.flush()
    statements.clear()
    given = await _ips(client, person_id)
    assert {rows[-1].version_id, rows[-2].version_id} <= opened(statements)
    assert given == await _from_compartment(session, settings, _person(person[0]), person_id)
