"""Another facility's system reads a patient through FHIR only under the patient's consent: a
directive for that facility with the full record; sensitive visits stay out unless named;
revocation counts at once; every read is audited with its basis and shows in the citizen's
"who viewed my record"."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange
from vnehr.audit import AuditEvent
from vnehr.fhir import mapping
from vnehr.fhir.models import StoredResource
from vnehr.fhir.validate import validate
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.records.models import TimelineEntry
from vnehr.submissions import synth

FHIR = "/fhir/R4"


def reader_client(reads: Any) -> str:
    """The reading system's client id, from its audit rows ("facility_system:{id}")."""
    return str(reads[0].actor).split(":", 1)[1]


READER = ("record.read",)


async def test_a_facility_system_reads_through_fhir_only_what_the_patient_shares(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    sender, headers = await facility_with_token(client, session, settings)
    ordinary = visit_of(sender, 91, datetime(2026, 9, 1, 9, 0), care_type="01")  # noqa: DTZ001
    mental = visit_of(sender, 92, datetime(2026, 10, 1, 9, 0), ordinary, care_type="01")  # noqa: DTZ001
    mental.tables["XML1"][0]["MA_BENH_CHINH"] = "F32.9"
    mental.tables["XML1"][0]["MA_BENH_KT"] = ""
    assert (await send(client, headers, synth.envelope([ordinary, mental], sender))).json()[
        "status"
    ] != "rejected"
    reader, reader_headers = await facility_with_token(client, session, settings, scopes=READER)
    patient = who(ordinary)

    person = await client.get(
        f"{FHIR}/Patient",
        params={"identifier": f"{mapping.PERSONAL_ID}|{patient[0]}"},
        headers=reader_headers,
    )
    assert person.status_code == 200
    assert person.json().get("entry", []) == []  # no consent: not even the Patient
    await sign_in_as(client, session, settings, patient)
    person_id = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    mine = (await client.get(f"{FHIR}/Encounter")).json()
    mine_by_id = {}
    for entry in mine["entry"]:
        mine_by_id[entry["resource"]["id"]] = entry["resource"]
    client.cookies.clear()

    def search(path: str, **params: str) -> Any:
        return client.get(f"{FHIR}/{path}", params=params, headers=reader_headers)

    assert (await search("Encounter", patient=person_id)).json().get("entry", []) == []

    # the patient shares the full record with the reading facility
    await sign_in_as(client, session, settings, patient)
    made = await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "full"})
    assert made.status_code == 201
    client.cookies.clear()
    seen = (await search("Encounter", patient=person_id)).json()
    ids = [e["resource"]["id"] for e in seen["entry"]]
    assert len(ids) == 1  # the mental-health visit stays out
    one = await client.get(f"{FHIR}/Encounter/{ids[0]}", headers=reader_headers)
    assert one.status_code == 200
    hidden = [i for i in mine_by_id if i not in ids]
    assert len(hidden) == 1
    gone = await client.get(f"{FHIR}/Encounter/{hidden[0]}", headers=reader_headers)
    assert gone.status_code == 404
    everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything", headers=reader_headers)
    assert everything.status_code == 200
    assert "F32.9" not in everything.text

    reads = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "fhir.read", AuditEvent.person_id == int(person_id)
            )
        )
    ).all()
    assert reads
    assert all(r.detail["basis"] == "consent" and r.detail["facility"] == reader for r in reads)

    # the citizen is told, once a day per facility however many reads there were
    told = (
        await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.topic == "record.viewed",
                OutboxEvent.payload["person_id"].as_integer() == int(person_id),
            )
        )
    ).all()
    assert len(told) == 1
    await exchange.event_notifier("viewed", exchange.LogPush())(session, told[0])

    # the citizen reads those reads as FHIR AuditEvents shaped after IHE BALP
    await sign_in_as(client, session, settings, patient)
    inbox = (await client.get("/api/v1/me/notifications")).json()["items"]
    assert [n["title"]["vi"] for n in inbox if n["kind"] == "viewed"] == [
        "Hồ sơ sức khỏe của bạn vừa được xem"
    ]
    events = (await client.get(f"{FHIR}/AuditEvent")).json()["entry"]
    theirs = [
        e["resource"]
        for e in events
        if e["resource"]["agent"][0]["who"]["display"] == f"facility_system:{reader_client(reads)}"
    ]
    assert theirs
    for event in theirs:
        assert event["meta"]["profile"] == [
            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
        ]
        assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
        assert {e["role"]["code"] for e in event["entity"]} == {"1", "4"}
        assert validate(event) == []
        get_fhir_model_class("AuditEvent").model_validate(event)
    client.cookies.clear()

    # naming the category lets it through; revoking stops everything at once
    await sign_in_as(client, session, settings, patient)
    directive = made.json()["id"]
    await client.delete(f"/api/v1/me/consents/{directive}")
    named = await client.post(
        "/api/v1/me/consents", json={"facility": reader, "scope": "full", "sensitive": ["mental"]}
    )
    log = (await client.get("/api/v1/me/access-log")).json()
    client.cookies.clear()
    assert len((await search("Encounter", patient=person_id)).json()["entry"]) == 2
    fhir_reads = [item for item in log if item["action"] == "fhir.read"]
    assert fhir_reads  # the citizen sees the system's reads in "who viewed my record"
    await sign_in_as(client, session, settings, patient)
    await client.delete(f"/api/v1/me/consents/{named.json()['id']}")
    client.cookies.clear()
    assert (await search("Encounter", patient=person_id)).json().get("entry", []) == []
    # a summary-only directive is the portal's: a system reads nothing through FHIR
    await sign_in_as(client, session, settings, patient)
    await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "summary"})
    client.cookies.clear()
    assert (await search("Encounter", patient=person_id)).json().get("entry", []) == []


async def shared_without_mental(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, dict[str, str], dict[str, str], synth.SynthVisit, str, str, str]:
    """An ordinary and a mental-health visit of one patient, who shares the full record with
    another facility without naming "mental": (sender, its headers, the reader's headers, the
    mental-health visit, the patient's id, the ordinary and the hidden Encounter ids)."""
    sender, headers = await facility_with_token(client, session, settings)
    ordinary = visit_of(sender, 91, datetime(2026, 9, 1, 9, 0), care_type="01")  # noqa: DTZ001
    mental = visit_of(sender, 92, datetime(2026, 10, 1, 9, 0), ordinary, care_type="01")  # noqa: DTZ001
    mental.tables["XML1"][0]["MA_BENH_CHINH"] = "F32.9"
    mental.tables["XML1"][0]["MA_BENH_KT"] = ""
    sent = await send(client, headers, synth.envelope([ordinary, mental], sender))
    assert sent.json()["status"] != "rejected", sent.text
    reader, reader_headers = await facility_with_token(client, session, settings, scopes=READER)
    await sign_in_as(client, session, settings, who(ordinary))
    person_id = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    conditions = (await client.get(f"{FHIR}/Condition")).json()["entry"]
    hidden = next(
        e["resource"]["encounter"]["reference"].split("/")[1]
        for e in conditions
        if e["resource"]["code"]["coding"][0]["code"] == "F32.9"
    )
    encounters = (await client.get(f"{FHIR}/Encounter")).json()["entry"]
    [shown] = [e["resource"]["id"] for e in encounters if e["resource"]["id"] != hidden]
    made = await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "full"})
    assert made.status_code == 201
    client.cookies.clear()
    return sender, headers, reader_headers, mental, person_id, shown, hidden


async def test_a_hidden_visit_stays_out_of_history_and_vread(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """D35/D44: a visit touching a category the patient did not name is left out whole, also
    its earlier versions: one that carried the category hides the visit's history."""
    sender, headers, reader, mental, _, shown, hidden = await shared_without_mental(
        client, session, settings
    )

    async def status(path: str) -> int:
        return (await client.get(f"{FHIR}/{path}", headers=reader)).status_code

    assert await status(f"Encounter/{hidden}") == 404
    for path in (
        f"Encounter/{hidden}/_history",
        f"Encounter/{hidden}/_history/1",
        f"Condition/{hidden}-c1/_history",
        f"Condition/{hidden}-c1/_history/1",
        f"MedicationRequest/{hidden}-m1/_history",
    ):
        answer = await client.get(f"{FHIR}/{path}", headers=reader)
        assert answer.status_code == 404, (path, answer.text)
        assert "F32" not in answer.text
    assert await status(f"Encounter/{shown}/_history") == 200
    assert await status(f"Condition/{shown}-c1/_history/1") == 200

    # the facility corrects the diagnosis: the visit shows, its first version does not
    mental.tables["XML1"][0]["MA_BENH_CHINH"] = "K29.7"
    assert (await send(client, headers, synth.envelope([mental], sender))).status_code == 201
    assert await status(f"Encounter/{hidden}") == 200
    assert await status(f"Encounter/{hidden}/_history") == 404
    assert await status(f"Condition/{hidden}-c1/_history/1") == 404


async def test_the_provenance_of_a_hidden_visit_is_hidden_and_provenance_reads_are_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    *_, reader, _, person_id, shown, hidden = await shared_without_mental(client, session, settings)
    versions = dict(
        (
            await session.execute(
                select(TimelineEntry.id, TimelineEntry.version_id).where(
                    TimelineEntry.id.in_([int(shown), int(hidden)])
                )
            )
        ).all()
    )

    async def reads() -> int:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "fhir.read", AuditEvent.person_id == int(person_id)
            )
        )
        return len(rows.all())

    before = await reads()
    gone = await client.get(f"{FHIR}/Provenance/{versions[int(hidden)]}", headers=reader)
    assert gone.status_code == 404
    assert f"Encounter/{hidden}" not in gone.text
    assert await reads() == before
    seen = await client.get(f"{FHIR}/Provenance/{versions[int(shown)]}", headers=reader)
    assert seen.status_code == 200
    assert seen.json()["target"][0]["reference"].startswith(f"Encounter/{shown}/")
    assert await reads() == before + 1  # the patient sees who read where their data came from


async def test_papers_of_a_hidden_visit_stay_hidden(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A paper of a visit left out (here the re-exam appointment of a mental-health visit)
    says what kind of care the patient had: it is left out with its visit."""
    sender, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "paper.write", *READER)
    )
    now = utcnow().astimezone(VIETNAM).replace(tzinfo=None, second=0, microsecond=0)
    ordinary = visit_of(
        sender, 93, now - timedelta(days=4), care_type="01", insured=True, appointment=True
    )
    mental = visit_of(
        sender,
        94,
        now - timedelta(days=2),
        ordinary,
        care_type="01",
        insured=True,
        appointment=True,
    )
    for table in ("XML1", "XML14"):
        mental.tables[table][0]["MA_BENH_CHINH"] = "F32.9"
        mental.tables[table][0]["MA_BENH_KT"] = ""
    sent = await send(client, headers, synth.envelope([ordinary, mental], sender))
    assert sent.json()["status"] == "accepted", sent.text
    issued = {
        p.visit_key: f"paper-{p.id}"
        for p in await session.scalars(select(Paper).where(Paper.facility_code == sender))
    }
    assert set(issued) == {ordinary.ma_lk, mental.ma_lk}
    reader, reader_headers = await facility_with_token(client, session, settings, scopes=READER)
    await sign_in_as(client, session, settings, who(ordinary))
    person_id = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    made = await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "full"})
    assert made.status_code == 201
    client.cookies.clear()

    found = await client.get(
        f"{FHIR}/DocumentReference", params={"patient": person_id}, headers=reader_headers
    )
    listed = {e["resource"]["id"] for e in found.json()["entry"]}
    assert issued[ordinary.ma_lk] in listed
    assert issued[mental.ma_lk] not in listed
    everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything", headers=reader_headers)
    assert issued[mental.ma_lk] not in everything.text
    for paper in (issued[mental.ma_lk], f"{issued[mental.ma_lk]}/_history"):
        answer = await client.get(f"{FHIR}/DocumentReference/{paper}", headers=reader_headers)
        assert answer.status_code == 404, answer.text
    shown = await client.get(
        f"{FHIR}/DocumentReference/{issued[ordinary.ma_lk]}", headers=reader_headers
    )
    assert shown.status_code == 200
    # the issuing facility still reads its own paper
    own = await client.get(f"{FHIR}/DocumentReference/{issued[mental.ma_lk]}", headers=headers)
    assert own.status_code == 200


async def test_under_consent_a_system_reads_the_allergies_every_facility_recorded(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Allergies are part of the record the patient shares in full (D44, D79): a system
    reading under the consent sees those every facility recorded, not only its own; one
    recorded in a visit the consent leaves out stays out with it (D35, D74); without a consent
    none; each read is audited under the consent."""
    sender, headers, reader, mental, person_id, shown, hidden = await shared_without_mental(
        client, session, settings
    )
    ids = {}
    for substance, visit in (("Penicillin", None), ("Aspirin", shown), ("Sertralin", hidden)):
        allergy = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": substance},
            "category": ["medication"],
            "patient": {"reference": f"Patient/{person_id}"},
            **({"encounter": {"reference": f"Encounter/{visit}"}} if visit else {}),
        }
        written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=headers)
        assert written.status_code == 201, written.text
        ids[substance] = written.json()["id"]

    async def seen(extra: dict[str, str]) -> set[str]:
        found = await client.get(
            f"{FHIR}/AllergyIntolerance", params={"patient": person_id}, headers=extra
        )
        assert found.status_code == 200, found.text
        return {e["resource"]["code"]["text"] for e in found.json().get("entry", [])}

    async def status(path: str, extra: dict[str, str]) -> int:
        return (await client.get(f"{FHIR}/{path}", headers=extra)).status_code

    # another facility without a consent: nothing
    _, stranger = await facility_with_token(client, session, settings, scopes=READER)
    assert await seen(stranger) == set()
    for substance in ids.values():
        assert await status(f"AllergyIntolerance/{substance}", stranger) == 404
        assert await status(f"AllergyIntolerance/{substance}/_history", stranger) == 404

    # under the consent: every facility's, but not the one of the visit left out
    assert await seen(reader) == {"Penicillin", "Aspirin"}
    for substance, expected in (("Penicillin", 200), ("Aspirin", 200), ("Sertralin", 404)):
        for path in (f"AllergyIntolerance/{ids[substance]}", f"AllergyIntolerance/{ids[substance]}/_history"):  # fmt: skip
            assert await status(path, reader) == expected, (substance, path)
    everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything", headers=reader)
    listed = {
        e["resource"]["code"]["text"]
        for e in everything.json()["entry"]
        if e["resource"]["resourceType"] == "AllergyIntolerance"
    }
    assert listed == {"Penicillin", "Aspirin"}
    ips = (await client.get(f"{FHIR}/Patient/{person_id}/$summary", headers=reader)).json()
    section = ips["entry"][0]["resource"]["section"][0]
    assert {r["reference"] for r in section["entry"]} == {
        f"AllergyIntolerance/{ids['Penicillin']}",
        f"AllergyIntolerance/{ids['Aspirin']}",
    }
    [read] = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "fhir.read",
                AuditEvent.object_id == f"AllergyIntolerance/{ids['Penicillin']}",
            )
        )
    ).all()
    assert read.person_id == int(person_id)
    assert read.detail["basis"] == "consent"
    assert read.detail["facility"] != sender

    # naming the category in the full consent lets that allergy through too
    await sign_in_as(client, session, settings, who(mental))
    for directive in (await client.get("/api/v1/me/consents")).json():
        await client.delete(f"/api/v1/me/consents/{directive['id']}")
    named = await client.post(
        "/api/v1/me/consents",
        json={"facility": read.detail["facility"], "scope": "full", "sensitive": ["mental"]},
    )
    assert named.status_code == 201, named.text
    client.cookies.clear()
    assert await seen(reader) == {"Penicillin", "Aspirin", "Sertralin"}
    assert await status(f"AllergyIntolerance/{ids['Sertralin']}", reader) == 200


async def test_under_consent_the_patient_shows_only_with_a_visit_the_consent_keeps(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """``GET Patient/{id}`` and ``Patient?identifier=`` for a facility reading under consent
    (D44): the Patient shows once the consent keeps one of the patient's visits; a record of
    only a visit it leaves out (D35) is as if it did not exist. Each read is audited with the
    consent as its basis."""
    sender, headers = await facility_with_token(client, session, settings)
    mental = visit_of(sender, 93, datetime(2026, 9, 1, 9, 0), care_type="01")  # noqa: DTZ001
    mental.tables["XML1"][0]["MA_BENH_CHINH"] = "F32.9"
    mental.tables["XML1"][0]["MA_BENH_KT"] = ""
    sent = await send(client, headers, synth.envelope([mental], sender))
    assert sent.json()["status"] != "rejected", sent.text
    reader, reader_headers = await facility_with_token(client, session, settings, scopes=READER)
    await sign_in_as(client, session, settings, who(mental))
    person_id = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    made = await client.post("/api/v1/me/consents", json={"facility": reader, "scope": "full"})
    assert made.status_code == 201
    client.cookies.clear()
    by_id = {"identifier": f"{mapping.PERSONAL_ID}|{who(mental)[0]}"}

    async def reads() -> tuple[int, int]:
        one = await client.get(f"{FHIR}/Patient/{person_id}", headers=reader_headers)
        found = await client.get(f"{FHIR}/Patient", params=by_id, headers=reader_headers)
        return one.status_code, found.json()["total"]

    assert await reads() == (404, 0)
    ordinary = visit_of(sender, 94, datetime(2026, 10, 1, 9, 0), mental, care_type="01")  # noqa: DTZ001
    sent = await send(client, headers, synth.envelope([ordinary], sender))
    assert sent.json()["status"] != "rejected", sent.text
    assert await reads() == (200, 1)
    rows = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "fhir.read", AuditEvent.person_id == int(person_id)
            )
        )
    ).all()
    assert sorted(r.object_id.partition("?")[0] for r in rows) == [
        "Patient",
        f"Patient/{person_id}",
    ]
    assert all(r.detail["basis"] == "consent" and r.detail["facility"] == reader for r in rows)


async def test_an_allergy_of_a_left_out_visit_stays_out_however_its_encounter_is_written(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A reference to the visit an allergy was recorded in may be versioned or absolute (valid
    FHIR): stored, it points at the visit itself (``Encounter/{id}``), and one left out of the
    consent (D35) takes the allergy with it. An encounter that cannot be told to be a visit the
    reader sees (another server's, contained, by identifier, by name only) keeps it out too,
    also for allergies stored before references were normalised. A patient named in this
    server's absolute form is that patient."""
    sender, headers, reader, mental, person_id, shown, hidden = await shared_without_mental(
        client, session, settings
    )
    ours = settings.public_url + FHIR
    encounters: dict[str, dict[str, Any]] = {
        "hidden-versioned": {"reference": f"Encounter/{hidden}/_history/1"},
        "hidden-absolute": {"reference": f"{ours}/Encounter/{hidden}"},
        "hidden-absolute-versioned": {"reference": f"{ours}/Encounter/{hidden}/_history/1"},
        "foreign": {"reference": f"https://fhir.other.example/R4/Encounter/{shown}"},
        "contained": {"reference": "#visit"},
        "by-identifier": {
            "identifier": {"system": mapping.VISIT_KEY, "value": f"{sender}/{mental.ma_lk}"}
        },
        "by-name": {"display": "Khám tâm thần"},
        "shown-versioned": {"reference": f"Encounter/{shown}/_history/1"},
        "shown-absolute": {"reference": f"{ours}/Encounter/{shown}"},
    }
    visible = {"shown-versioned", "shown-absolute", "no-visit"}
    ids: dict[str, str] = {}
    for substance in [*encounters, "no-visit"]:
        allergy: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": substance},
            "patient": {"reference": f"Patient/{person_id}"},
        }
        if substance == "no-visit":  # whose it is, in this server's absolute form
            allergy["patient"] = {"reference": f"{ours}/Patient/{person_id}/_history/1"}
        if substance in encounters:
            allergy["encounter"] = encounters[substance]
        if substance == "contained":
            allergy["contained"] = [
                {"resourceType": "Encounter", "id": "visit", "status": "finished",
                 "class": {"code": "AMB"}}
            ]  # fmt: skip
        written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=headers)
        assert written.status_code == 201, written.text
        ids[substance] = written.json()["id"]
        stored = written.json().get("encounter")
        if substance.startswith(("hidden", "shown")):  # ours: stored as the visit itself
            visit = hidden if substance.startswith("hidden") else shown
            assert stored == {"reference": f"Encounter/{visit}"}, substance
        elif substance in encounters:  # not ours: kept as sent
            assert stored == encounters[substance], substance
        assert written.json()["patient"] == {"reference": f"Patient/{person_id}"}

    async def seen() -> dict[str, set[str]]:
        """The allergies the reader gets, by the way it asks."""
        found = await client.get(
            f"{FHIR}/AllergyIntolerance", params={"patient": person_id}, headers=reader
        )
        everything = await client.get(f"{FHIR}/Patient/{person_id}/$everything", headers=reader)
        ips = (await client.get(f"{FHIR}/Patient/{person_id}/$summary", headers=reader)).json()
        section = ips["entry"][0]["resource"]["section"][0]
        by_id = {f"AllergyIntolerance/{i}": s for s, i in ids.items()}
        answers: dict[str, set[str]] = {
            "search": {e["resource"]["code"]["text"] for e in found.json().get("entry", [])},
            "$everything": {
                e["resource"]["code"]["text"]
                for e in everything.json()["entry"]
                if e["resource"]["resourceType"] == "AllergyIntolerance"
            },
            "$summary": {by_id[r["reference"]] for r in section.get("entry", [])},
            "read": set(),
            "_history": set(),
        }
        for substance, id_ in ids.items():
            for way, path in (("read", id_), ("_history", f"{id_}/_history")):
                got = await client.get(f"{FHIR}/AllergyIntolerance/{path}", headers=reader)
                assert got.status_code in (200, 404), got.text
                if got.status_code == 200:
                    answers[way].add(substance)
        return answers

    assert await seen() == dict.fromkeys(("search", "$everything", "$summary", "read", "_history"), visible)  # fmt: skip

    # allergies stored as sent before references were normalised
    for substance, encounter in encounters.items():
        row = await session.scalar(
            select(StoredResource).where(StoredResource.resource_id == ids[substance])
        )
        assert row is not None
        await session.execute(
            update(StoredResource)
            .where(StoredResource.id == row.id)
            .values(body={**row.body, "encounter": encounter})
        )
    await session.flush()
    assert await seen() == dict.fromkeys(("search", "$everything", "$summary", "read", "_history"), visible)  # fmt: skip
    # the patient still reads every one of them
    await sign_in_as(client, session, settings, who(mental))
    assert (await client.get(f"{FHIR}/AllergyIntolerance")).json()["total"] == len(ids)


async def test_a_search_that_tells_only_a_count_is_audited_and_told_to_the_patient(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A total says as much as the entries (an allergy to penicillin, a diagnosis exists): a
    search is audited for every patient it matched, whichever page it returns, none
    (``_count=0``) or one past the end, and the patient is told the record was viewed. Still
    one audit row per patient per request, however many resources matched."""
    _, headers, reader, _, person_id, shown, _ = await shared_without_mental(
        client, session, settings
    )
    for substance in ("Penicillin", "Aspirin"):
        allergy = {
            "resourceType": "AllergyIntolerance",
            "code": {"text": substance},
            "patient": {"reference": f"Patient/{person_id}"},
        }
        written = await client.post(f"{FHIR}/AllergyIntolerance", json=allergy, headers=headers)
        assert written.status_code == 201, written.text

    async def rows() -> list[AuditEvent]:
        found = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "fhir.read", AuditEvent.person_id == int(person_id))
            .order_by(AuditEvent.id)
        )
        return list(found.all())

    async def counted(type_: str, params: dict[str, str | int], total: int) -> None:
        before = len(await rows())
        found = await client.get(
            f"{FHIR}/{type_}", params={"patient": person_id, **params}, headers=reader
        )
        assert found.status_code == 200, found.text
        assert found.json()["total"] == total
        after = await rows()
        assert len(after) == before + 1, (type_, params)
        assert after[-1].detail["basis"] == "consent"
        assert after[-1].object_id.startswith(f"{type_}?")

    # the first thing the reader asks: how many penicillin allergies
    await counted("AllergyIntolerance", {"code:text": "Penicillin", "_count": 0}, 1)
    told = await session.scalars(
        select(OutboxEvent).where(
            OutboxEvent.topic == "record.viewed",
            OutboxEvent.payload["person_id"].as_integer() == int(person_id),
        )
    )
    assert len(told.all()) == 1
    await counted("AllergyIntolerance", {"_count": 0}, 2)
    await counted("AllergyIntolerance", {"_count": 1, "_offset": 5}, 2)
    await counted("AllergyIntolerance", {"_summary": "count"}, 2)
    condition = await client.get(f"{FHIR}/Condition/{shown}-c1", headers=reader)
    code = condition.json()["code"]["coding"][0]["code"]
    await counted("Condition", {"code": code, "_count": 0}, 1)
    # nothing matched: nothing audited
    before = len(await rows())
    none = {"patient": person_id, "code:text": "Latex", "_count": 0}
    latex = await client.get(f"{FHIR}/AllergyIntolerance", params=none, headers=reader)
    assert latex.json()["total"] == 0
    assert len(await rows()) == before
