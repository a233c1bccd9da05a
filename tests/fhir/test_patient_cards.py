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
