"""The FHIR Patient lists the insurance cards seen in the visits its reader may see, read from
the timeline index: no visit is opened (D114). A person with visits at two facilities, several
cards (two on one visit), a visit without a card, and a correction that changes a card."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, check_model
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.fhir import PERSONAL_ID, mapping
from vnehr.kit.db import Packed
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry, VisitVersion
from vnehr.submissions import synth


def cards(patient: dict[str, Any]) -> list[str]:
    return [i["value"] for i in patient["identifier"] if i["system"] == mapping.INSURANCE_CARD]


def other_card(card: str, n: int) -> str:
    """Another valid card of the same kind (the last digits changed)."""
    return card[:-3] + f"{n:03d}"


def with_card(visit: synth.SynthVisit, card: str) -> None:
    """The visit's card replaced in every table that names it (they must agree)."""
    old = visit.tables["XML1"][0]["MA_THE_BHYT"]
    for rows in visit.tables.values():
        for row in rows:
            if row.get("MA_THE_BHYT") == old:
                row["MA_THE_BHYT"] = card


async def test_the_patient_lists_the_same_cards_without_opening_a_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    scopes = ("submission.write", "record.read")
    first, first_headers = await facility_with_token(client, session, settings, scopes=scopes)
    second, second_headers = await facility_with_token(client, session, settings, scopes=scopes)
    one = visit_of(first, 81, datetime(2026, 9, 5, 9, 0), insured=True)  # noqa: DTZ001
    card = one.tables["XML1"][0]["MA_THE_BHYT"]
    assert card
    two = visit_of(first, 82, datetime(2026, 9, 20, 9, 0), one, insured=True)  # noqa: DTZ001
    with_card(two, other_card(card, 2))
    xml1 = two.tables["XML1"][0]
    xml1["MA_THE_BHYT"] = f"{other_card(card, 2)}; {other_card(card, 3)}"  # two cards, spaced
    for field in ("GT_THE_TU", "GT_THE_DEN"):
        xml1[field] = f"{xml1[field]};{xml1[field]}"
    three = visit_of(first, 83, datetime(2026, 10, 1, 9, 0), one, insured=False)  # noqa: DTZ001
    four = visit_of(second, 84, datetime(2026, 10, 9, 9, 0), one, insured=True)  # noqa: DTZ001
    with_card(four, other_card(card, 4))
    sent = await send(client, first_headers, synth.envelope([one, two, three], first))
    assert "rejected" not in {v["status"] for v in sent.json()["visits"]}, sent.text
    sent = await send(client, second_headers, synth.envelope([four], second))
    assert sent.json()["status"] != "rejected", sent.text
    # the first visit corrected: its card is now another one
    corrected = copy.deepcopy(one)
    with_card(corrected, other_card(card, 5))
    sent = await send(client, first_headers, synth.envelope([corrected], first))
    assert sent.json()["visits"][0]["outcome"] == "changed", sent.text

    personal_id = who(one)[0]
    by_id = {"identifier": f"{PERSONAL_ID}|{personal_id}"}
    [entry] = (await client.get(f"{FHIR}/Patient", params=by_id,
                                headers=first_headers)).json()["entry"]  # fmt: skip
    patient_id = entry["resource"]["id"]
    ours = sorted({other_card(card, n) for n in (2, 3, 5)})
    everyone = sorted([*ours, other_card(card, 4)])

    async def read(headers: dict[str, str]) -> list[str]:
        answer = await client.get(f"{FHIR}/Patient/{patient_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        check_model(answer.json())
        found = (await client.get(f"{FHIR}/Patient", params=by_id, headers=headers)).json()
        assert [e["resource"] for e in found["entry"]] == [answer.json()]
        return cards(answer.json())

    async def everything(headers: dict[str, str]) -> list[str]:
        """The Patient of $everything, which maps every visit (the cards as they always were)."""
        bundle = await client.get(f"{FHIR}/Patient/{patient_id}/$everything", headers=headers)
        assert bundle.status_code == 200, bundle.text
        [patient] = [e["resource"] for e in bundle.json()["entry"]
                     if e["resource"]["resourceType"] == "Patient"]  # fmt: skip
        return cards(patient)

    # before: the Patient's cards are those $everything shows, each facility its own visits'
    assert await everything(first_headers) == await read(first_headers) == ours
    assert await everything(second_headers) == await read(second_headers) == [other_card(card, 4)]
    await sign_in_as(client, session, settings, who(one))
    assert await everything({}) == await read({}) == everyone

    # every stored visit of the person made unreadable: the Patient does not open them
    keys = [v.ma_lk for v in (one, two, three, four)]
    await session.execute(
        update(VisitVersion)
        .where(VisitVersion.visit_key.in_(keys))
        .values(tables=Packed(b"unreadable"))
    )
    assert await read({}) == everyone  # the citizen
    assert await read(first_headers) == ours
    assert await read(second_headers) == [other_card(card, 4)]
    kept = await session.scalars(
        select(TimelineEntry.insurance_cards).where(TimelineEntry.visit_key.in_(keys))
    )
    assert sorted(c or "" for c in kept) == sorted(
        [
            "",
            other_card(card, 4),
            other_card(card, 5),
            f"{other_card(card, 2)};{other_card(card, 3)}",
        ]
    )


#: The timeline columns the previous release writes (before 0024): its upsert of a new or
#: corrected version sets these and leaves every other column as it was.
OLD_RELEASE_COLUMNS = frozenset(
    {"id", "person_id", "facility_code", "visit_key", "version_id", "care_type",
     "main_diagnosis", "outcome", "insured", "started_at", "ended_at", "version", "updated_at"}
)  # fmt: skip


async def row_of(session: AsyncSession, code: str, key: str) -> dict[str, Any]:
    t = TimelineEntry.__table__
    found = await session.execute(select(t).where(t.c.facility_code == code, t.c.visit_key == key))
    return dict(found.one()._mapping)


async def set_newer_columns(
    session: AsyncSession, code: str, key: str, values: dict[str, Any] | None
) -> None:
    """The columns the previous release does not know set to ``values``' (None: NULL, as 0024
    leaves the rows stored before it)."""
    t = TimelineEntry.__table__
    newer = {c.name: (values or {}).get(c.name) for c in t.c if c.name not in OLD_RELEASE_COLUMNS}
    assert newer  # (the cards are among them)
    await session.execute(
        update(t).where(t.c.facility_code == code, t.c.visit_key == key).values(newer)
    )


async def insured_person(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, dict[str, str], synth.SynthVisit, synth.SynthVisit, str]:
    """A facility and two insured visits of one person it sent (one with two cards); the
    Patient's id."""
    scopes = ("submission.write", "record.read")
    code, headers = await facility_with_token(client, session, settings, scopes=scopes)
    one = visit_of(code, 91, datetime(2026, 9, 5, 9, 0), insured=True)  # noqa: DTZ001
    card = one.tables["XML1"][0]["MA_THE_BHYT"]
    two = visit_of(code, 92, datetime(2026, 9, 20, 9, 0), one, insured=True)  # noqa: DTZ001
    with_card(two, other_card(card, 2))
    xml1 = two.tables["XML1"][0]
    xml1["MA_THE_BHYT"] = f"{other_card(card, 2)};{other_card(card, 3)}"
    for field in ("GT_THE_TU", "GT_THE_DEN"):
        xml1[field] = f"{xml1[field]};{xml1[field]}"
    sent = await send(client, headers, synth.envelope([one, two], code))
    assert "rejected" not in {v["status"] for v in sent.json()["visits"]}, sent.text
    by_id = {"identifier": f"{PERSONAL_ID}|{who(one)[0]}"}
    [entry] = (await client.get(f"{FHIR}/Patient", params=by_id, headers=headers)).json()["entry"]
    return code, headers, one, two, entry["resource"]["id"]


async def test_rows_stored_before_0024_still_list_their_cards(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """0024 only adds the columns: a row stored before it has no cards kept, and the Patient
    opens its visit for them (as before D114) instead of losing them."""
    code, headers, one, two, patient_id = await insured_person(client, session, settings)
    card = one.tables["XML1"][0]["MA_THE_BHYT"]
    expected = sorted([card, other_card(card, 2), other_card(card, 3)])
    for visit in (one, two):
        await set_newer_columns(session, code, visit.ma_lk, None)
    answer = await client.get(f"{FHIR}/Patient/{patient_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    assert sorted(cards(answer.json())) == expected
    await sign_in_as(client, session, settings, who(one))
    answer = await client.get(f"{FHIR}/Patient/{patient_id}")
    assert sorted(cards(answer.json())) == expected


async def test_a_correction_by_the_previous_release_shows_the_new_card(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """During a rolling upgrade a process of the previous release stores a correction: it
    points the timeline row at the new version and leaves the cards of the old one. The
    Patient shows the corrected card, not the old one."""
    code, headers, one, _, patient_id = await insured_person(client, session, settings)
    card = one.tables["XML1"][0]["MA_THE_BHYT"]
    before = await row_of(session, code, one.ma_lk)
    corrected = copy.deepcopy(one)
    with_card(corrected, other_card(card, 7))
    sent = await send(client, headers, synth.envelope([corrected], code))
    assert sent.json()["visits"][0]["outcome"] == "changed", sent.text
    after = await row_of(session, code, one.ma_lk)
    assert after["version_id"] != before["version_id"]
    # what the previous release would have left: its own columns of the new version, the
    # newer ones as the earlier version had them
    await set_newer_columns(session, code, one.ma_lk, before)
    expected = sorted([other_card(card, n) for n in (2, 3, 7)])
    answer = await client.get(f"{FHIR}/Patient/{patient_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    assert sorted(cards(answer.json())) == expected
    await sign_in_as(client, session, settings, who(one))
    assert sorted(cards((await client.get(f"{FHIR}/Patient/{patient_id}")).json())) == expected
