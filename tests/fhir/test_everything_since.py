"""``Patient/$everything`` takes the operation's ``_since``, ``start`` / ``end`` and ``_type``
(FHIR R4 Patient-everything): an app that keeps a copy of the record asks for what changed since its
last read, and only the kinds it shows. What changed since: the visits received since (the
others are not even mapped), the papers, allergies and accesses since; with the Patient they are
about, and the facilities and practitioners they name."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.test_api import FHIR, outcome
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def _kinds(bundle: dict[str, object]) -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle["entry"]]  # type: ignore[index,union-attr]


async def test_an_app_reads_what_changed_since_its_last_read(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    first = visit_of(code, 1, datetime(2026, 9, 1, 8, 0))  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([first], code))).status_code == 201
    await asyncio.sleep(0.05)
    read_at = utcnow()
    await asyncio.sleep(0.05)
    second = visit_of(code, 2, datetime(2026, 10, 1, 8, 0), like=first)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([second], code))).status_code == 201
    await sign_in_as(client, session, settings, who(first))
    patient = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    path = f"{FHIR}/Patient/{patient}/$everything"

    whole = (await client.get(path, params={"_count": 500})).json()
    assert _kinds(whole).count("Encounter") == 2

    since = read_at.isoformat().replace("+00:00", "Z")
    changed = await client.get(path, params={"_count": 500, "_since": since})
    assert changed.status_code == 200, changed.text
    resources = [e["resource"] for e in changed.json()["entry"]]
    assert resources[0]["resourceType"] == "Patient"  # what they are about, first
    [encounter] = [r for r in resources if r["resourceType"] == "Encounter"]
    assert encounter["period"]["end"].startswith("2026-10-01")
    for resource in resources[1:]:
        if resource["resourceType"] in ("Organization", "Practitioner", "Location"):
            continue
        assert resource["meta"]["lastUpdated"] >= since, resource["resourceType"]
    # the facility the new visit names is there, as in the whole record
    assert [r["id"] for r in resources if r["resourceType"] == "Organization"] == [code]
    assert len(resources) < len(whole["entry"])
    # nothing changed since now
    later = utcnow().isoformat().replace("+00:00", "Z")
    nothing = (await client.get(path, params={"_since": later})).json()
    assert _kinds(nothing) == ["Patient"]

    # only some kinds, repeated or comma-separated
    some = await client.get(path, params=[("_type", "Encounter,Condition"), ("_count", "500")])
    assert set(_kinds(some.json())) == {"Encounter", "Condition"}
    assert _kinds(some.json()).count("Encounter") == 2
    both = await client.get(
        path, params=[("_type", "Encounter"), ("_type", "Patient"), ("_since", since)]
    )
    assert _kinds(both.json()) == ["Patient", "Encounter"]

    # refused with an OperationOutcome, never a 500
    outcome(await client.get(path, params={"_type": "Medication"}), 400, "FHIR-0001")
    outcome(await client.get(path, params={"_since": "hôm qua"}), 400, "FHIR-0001")


async def test_a_doctor_reads_the_care_given_in_some_days(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """``start`` and ``end`` are dates of care, not of the record: the visit of September and
    what it recorded, not October's, though both were sent today."""
    code, headers = await facility_with_token(client, session, settings)
    first = visit_of(code, 3, datetime(2026, 9, 1, 8, 0))  # noqa: DTZ001
    second = visit_of(code, 4, datetime(2026, 10, 1, 8, 0), like=first)  # noqa: DTZ001
    for one in (first, second):
        assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    await sign_in_as(client, session, settings, who(first))
    patient = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    path = f"{FHIR}/Patient/{patient}/$everything"
    whole = (await client.get(path, params={"_count": 500})).json()

    def encounter_days(bundle: dict[str, object]) -> list[str]:
        return sorted(
            e["resource"]["period"]["start"][:10]  # type: ignore[index]
            for e in bundle["entry"]  # type: ignore[union-attr]
            if e["resource"]["resourceType"] == "Encounter"  # type: ignore[index]
        )

    september = await client.get(
        path, params={"_count": 500, "start": "2026-09-01", "end": "2026-09-30"}
    )
    assert september.status_code == 200, september.text
    got = september.json()
    assert encounter_days(got) == ["2026-09-01"]
    assert _kinds(got)[0] == "Patient"
    assert 1 < len(got["entry"]) < len(whole["entry"])
    for entry in got["entry"]:
        resource = entry["resource"]
        for name in ("effectiveDateTime", "authoredOn", "recordedDate", "onsetDateTime"):
            if isinstance(resource.get(name), str):
                assert resource[name][:7] == "2026-09", (resource["resourceType"], name)
    assert encounter_days((await client.get(path, params={"start": "2026-10"})).json()) == [
        "2026-10-01"
    ]
    assert encounter_days((await client.get(path, params={"end": "2026-09"})).json()) == [
        "2026-09-01"
    ]
    assert encounter_days((await client.get(path, params={"end": "2026-08-31"})).json()) == []
    outcome(await client.get(path, params={"start": "2026-10", "end": "2026-09"}), 400, "FHIR-0001")
    outcome(await client.get(path, params={"start": "tháng 9"}), 400, "FHIR-0001")
