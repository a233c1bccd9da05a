"""FHIR R4 at /fhir/R4: a citizen reads their compartment; a facility system reads what it sent;
everything else gets an OperationOutcome. What we return validates against independent models
(fhir.resources R4B)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import STRANGER, book, visit_of, who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.audit import AuditEvent
from vnehr.fhir import PERSONAL_ID
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

FHIR = "/fhir/R4"
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def check_model(resource: dict[str, Any]) -> None:
    """The resource parses with an independent FHIR model library (R4B is R4 for these types)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def outcome(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert issue["details"]["coding"][0]["code"] == code
    assert issue["details"]["text"]
    assert issue["diagnostics"]
    check_model(body)


async def citizen_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, list[synth.SynthVisit], str]:
    code, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    found = (
        await client.get(
            f"{FHIR}/Patient", params={"identifier": f"{PERSONAL_ID}|{who(visits[0])[0]}"}
        )
    ).json()
    assert found["total"] == 1, found
    return code, visits, found["entry"][0]["resource"]["id"]


async def test_metadata_states_what_is_supported(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{FHIR}/metadata")
    assert response.status_code == 200
    statement = response.json()
    check_model(statement)
    assert statement["fhirVersion"] == "4.0.1"
    types = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for type_ in ("Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
                  "Procedure", "DiagnosticReport", "Organization", "Practitioner", "Location",
                  "DocumentReference", "Consent", "AuditEvent", "Provenance"):  # fmt: skip
        assert {i["code"] for i in types[type_]["interaction"]} == {
            "read", "vread", "history-instance", "search-type", "create", "update"
        }  # fmt: skip
    assert {p["name"] for p in types["Encounter"]["searchParam"]} >= {"patient", "date", "_id"}
    assert [o["name"] for o in types["Patient"]["operation"]] == ["everything", "summary"]


async def test_a_citizen_searches_and_reads_their_compartment(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, visits, patient_id = await citizen_book(client, session, settings)
    patient = (await client.get(f"{FHIR}/Patient/{patient_id}")).json()
    check_model(patient)
    xml1 = visits[0].tables["XML1"][0]
    assert patient["name"][0]["text"] == xml1["HO_TEN"]
    assert {"system": PERSONAL_ID, "value": xml1["SO_CCCD"]}.items() <= patient["identifier"][
        0
    ].items()

    encounters = (
        await client.get(f"{FHIR}/Encounter", params={"patient": patient_id, "_sort": "-date"})
    ).json()
    assert encounters["total"] == 3
    ends = [e["resource"]["period"]["end"] for e in encounters["entry"]]
    assert ends == sorted(ends, reverse=True)
    newest = encounters["entry"][0]["resource"]
    check_model(newest)
    assert newest["serviceProvider"]["reference"] == f"Organization/{code}"
    assert newest["identifier"][0]["value"] == f"{code}/{visits[2].ma_lk}"

    # token: system|code on the main diagnosis of the newest visit
    main = visits[2].tables["XML1"][0]["MA_BENH_CHINH"]
    dotted = main if "." in main or len(main) <= 3 else f"{main[:3]}.{main[3:]}"
    conditions = (
        await client.get(f"{FHIR}/Condition", params={"code": f"{ICD10}|{dotted}"})
    ).json()
    assert conditions["total"] >= 1
    assert all(e["resource"]["code"]["coding"][0]["code"] == dotted for e in conditions["entry"])
    wrong_system = (
        await client.get(f"{FHIR}/Condition", params={"code": f"http://snomed.info/sct|{dotted}"})
    ).json()
    assert wrong_system["total"] == 0

    # reference + _revinclude + _include
    bundle = (
        await client.get(
            f"{FHIR}/Encounter",
            params=[
                ("_id", newest["id"]),
                ("_revinclude", "MedicationRequest:encounter"),
                ("_include", "Encounter:service-provider"),
            ],
        )
    ).json()
    modes: dict[str, list[str]] = {}
    for entry in bundle["entry"]:
        modes.setdefault(entry["search"]["mode"], []).append(entry["resource"]["resourceType"])
    assert modes["match"] == ["Encounter"]
    assert modes["include"].count("MedicationRequest") == len(visits[2].tables.get("XML2", []))
    assert "Organization" in modes["include"]
    drugs = (
        await client.get(
            f"{FHIR}/MedicationRequest", params={"encounter": f"Encounter/{newest['id']}"}
        )
    ).json()
    assert sorted(e["resource"]["medicationCodeableConcept"]["text"].split()[0] for e in drugs["entry"]) == sorted(
        r["TEN_THUOC"].split()[0] for r in visits[2].tables.get("XML2", [])
    )  # fmt: skip


async def test_dates_paging_and_everything_validate(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, patient_id = await citizen_book(client, session, settings)
    encounters = (await client.get(f"{FHIR}/Encounter", params={"_sort": "date"})).json()
    middle_end = encounters["entry"][1]["resource"]["period"]["end"][:10]
    after = (await client.get(f"{FHIR}/Encounter", params={"date": f"gt{middle_end}"})).json()
    # eb: ends before the day (lt would also match the middle visit if it began a day earlier)
    before = (await client.get(f"{FHIR}/Encounter", params={"date": f"eb{middle_end}"})).json()
    on = (await client.get(f"{FHIR}/Encounter", params={"date": middle_end[:7]})).json()
    assert (after["total"], before["total"]) == (1, 1)
    assert on["total"] >= 1
    # paging: one per page, following next links to the end
    seen: list[str] = []
    url: str | None = f"{FHIR}/Observation?_count=5"
    pages = 0
    while url:
        page = (await client.get(url)).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        pages += 1
    assert len(seen) == len(set(seen)) == page["total"]
    assert pages == -(-page["total"] // 5)

    everything = await client.get(
        f"{FHIR}/Patient/{patient_id}/$everything", params={"_count": 500}
    )
    assert everything.status_code == 200
    bundle = everything.json()
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert types >= {"Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
                     "Procedure", "DocumentReference", "Provenance", "Organization"}  # fmt: skip
    for entry in bundle["entry"]:
        check_model(entry["resource"])
    check_model(bundle)


async def test_summary_is_an_ips_document(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, patient_id = await citizen_book(client, session, settings)
    response = await client.get(f"{FHIR}/Patient/{patient_id}/$summary")
    assert response.status_code == 200, response.text
    document = response.json()
    check_model(document)
    assert document["type"] == "document"
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    codes = [s["code"]["coding"][0]["code"] for s in composition["section"]]
    assert codes[:3] == ["48765-2", "10160-0", "11450-4"]  # allergies, medicines, problems
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in document["entry"]}
    for section in composition["section"]:
        for reference in section.get("entry", []):
            assert reference["reference"] in present
    medicines = composition["section"][1]
    assert medicines.get("entry"), "visits 30 and 60 days ago prescribed medicines"
    # the results' narrative gives each value with its unit and day, not the names alone
    [results] = [s for s in composition["section"] if s["code"]["coding"][0]["code"] == "30954-2"]
    first = next(e["resource"] for e in document["entry"]
                 if f"Observation/{e['resource']['id']}" == results["entry"][0]["reference"])  # fmt: skip
    quantity = first["valueQuantity"]
    shown = f"{quantity['value']} {quantity['unit']} ({first['effectiveDateTime'][:10]})"
    assert shown in results["text"]["div"]


async def test_a_correction_is_a_new_version_with_history(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    from datetime import datetime

    one = visit_of(code, 41, datetime(2026, 10, 5, 9, 0))  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    one.tables["XML1"][0]["LY_DO_VV"] = "Sốt cao"  # the correction
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    await sign_in_as(client, session, settings, who(one))
    [entry] = (await client.get(f"{FHIR}/Encounter")).json()["entry"]
    encounter = entry["resource"]
    assert encounter["meta"]["versionId"] == "2"
    assert encounter["reasonCode"][0]["text"] == "Sốt cao"
    history = (await client.get(f"{FHIR}/Encounter/{encounter['id']}/_history")).json()
    check_model(history)
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    first = await client.get(f"{FHIR}/Encounter/{encounter['id']}/_history/1")
    assert first.headers["etag"] == 'W/"1"'
    original = first.json().get("reasonCode", [{}])[0].get("text")
    assert original != "Sốt cao"
    outcome(await client.get(f"{FHIR}/Encounter/{encounter['id']}/_history/7"), 404, "FHIR-0005")


async def test_reads_of_a_record_open_only_each_visits_current_version(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A visit corrected twice shows once, as corrected last, in $everything and $summary; the
    whole record is read without opening its earlier versions (a person with hundreds of
    corrected visits would pay for each): here their stored bytes are made unreadable and
    every read of the record still answers. Only _history opens them."""
    from datetime import datetime

    import zstandard
    from sqlalchemy import update

    from vnehr.kit.db import Packed
    from vnehr.records.models import VisitVersion

    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 42, datetime(2026, 10, 5, 9, 0))  # noqa: DTZ001
    for reason in (None, "Sốt cao", "Sốt cao, ho"):
        if reason is not None:
            one.tables["XML1"][0]["LY_DO_VV"] = reason
        assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    await sign_in_as(client, session, settings, who(one))
    [entry] = (await client.get(f"{FHIR}/Encounter")).json()["entry"]
    visit = entry["resource"]["id"]
    history = (await client.get(f"{FHIR}/Encounter/{visit}/_history")).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]

    earlier = VisitVersion.visit_key == one.ma_lk, VisitVersion.current.is_(False)
    await session.execute(update(VisitVersion).where(*earlier).values(tables=Packed(b"broken")))
    with pytest.raises(zstandard.ZstdError):  # they are unreadable indeed
        (await session.scalars(select(VisitVersion.tables).where(*earlier))).all()

    patient = (await client.get(f"{FHIR}/Patient")).json()["entry"][0]["resource"]["id"]
    everything = await client.get(f"{FHIR}/Patient/{patient}/$everything", params={"_count": 500})
    assert everything.status_code == 200, everything.text
    resources = [e["resource"] for e in everything.json()["entry"]]
    [encounter] = [r for r in resources if r["resourceType"] == "Encounter"]
    assert encounter["meta"]["versionId"] == "3"
    assert encounter["reasonCode"][0]["text"] == "Sốt cao, ho"
    [provenance] = [r for r in resources if r["resourceType"] == "Provenance"]
    assert provenance["target"][0]["reference"] == f"Encounter/{visit}/_history/3"
    ips = await client.get(f"{FHIR}/Patient/{patient}/$summary")
    assert ips.status_code == 200, ips.text
    problems = [e["resource"] for e in ips.json()["entry"][1:]]
    assert {r["meta"]["versionId"] for r in problems if r["resourceType"] == "Condition"} == {"3"}
    for path in (f"{FHIR}/Encounter/{visit}", "/api/v1/me/summary", f"/api/v1/me/visits/{visit}"):
        assert (await client.get(path)).status_code == 200, path


async def test_the_patient_is_read_without_mapping_the_visits(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """GET Patient/{id} and Patient?identifier= decide who reaches the patient from the
    timeline index and build the Patient without mapping a visit: a visit without an insurance
    card is not even opened (its stored bytes are made unreadable here, and the Patient still
    answers, with the card of the other visit). A facility that sent no visit of the patient
    and holds no consent still gets 404."""
    from datetime import datetime

    import zstandard
    from sqlalchemy import update

    from vnehr.fhir import mapping
    from vnehr.kit.db import Packed
    from vnehr.records.models import VisitVersion

    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    insured = visit_of(code, 61, datetime(2026, 10, 5, 9, 0), insured=True)  # noqa: DTZ001
    uninsured = visit_of(code, 62, datetime(2026, 10, 9, 9, 0), insured, insured=False)  # noqa: DTZ001
    sent = await send(client, headers, synth.envelope([insured, uninsured], code))
    assert sent.json()["status"] != "rejected", sent.text
    card = insured.tables["XML1"][0]["MA_THE_BHYT"]
    assert card
    assert not uninsured.tables["XML1"][0].get("MA_THE_BHYT")
    personal_id = who(insured)[0]
    by_id = {"identifier": f"{PERSONAL_ID}|{personal_id}"}
    [entry] = (await client.get(f"{FHIR}/Patient", params=by_id, headers=headers)).json()["entry"]
    patient_id = entry["resource"]["id"]
    _, reader = await facility_with_token(client, session, settings, scopes=("record.read",))

    broken = VisitVersion.visit_key == uninsured.ma_lk
    await session.execute(update(VisitVersion).where(broken).values(tables=Packed(b"broken")))
    with pytest.raises(zstandard.ZstdError):  # unreadable indeed
        (await session.scalars(select(VisitVersion.tables).where(broken))).all()

    def cards(patient: dict[str, Any]) -> list[str]:
        return [i["value"] for i in patient["identifier"] if i["system"] == mapping.INSURANCE_CARD]

    async def reads(extra: dict[str, str]) -> None:
        read = await client.get(f"{FHIR}/Patient/{patient_id}", headers=extra)
        assert read.status_code == 200, read.text
        check_model(read.json())
        assert read.json()["identifier"][0]["value"] == personal_id
        assert cards(read.json()) == [card]
        found = (await client.get(f"{FHIR}/Patient", params=by_id, headers=extra)).json()
        assert [e["resource"] for e in found["entry"]] == [read.json()]

    await reads(headers)  # the sending facility's system
    audited = await session.scalars(
        select(AuditEvent.object_id).where(
            AuditEvent.person_id == int(patient_id), AuditEvent.action == "fhir.read"
        )
    )
    assert f"Patient/{patient_id}" in audited.all()
    # a facility that sent no visit of the patient and holds no consent: as if none existed
    outcome(await client.get(f"{FHIR}/Patient/{patient_id}", headers=reader), 404, "FHIR-0002")
    found = (await client.get(f"{FHIR}/Patient", params=by_id, headers=reader)).json()
    assert found["total"] == 0
    await sign_in_as(client, session, settings, who(insured))
    await reads({})  # the citizen


async def test_a_facility_reads_what_it_sent_one_patient_at_a_time_and_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    personal_id = who(visits[0])[0]
    _, reader = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    # another facility with record.read sees nothing of the first facility's visits
    found = (
        await client.get(f"{FHIR}/Patient", params={"identifier": f"{PERSONAL_ID}|{personal_id}"},
                         headers=reader)
    ).json()  # fmt: skip
    assert found["total"] == 0
    await sign_in_as(client, session, settings, who(visits[0]))
    encounter_id = (await client.get(f"{FHIR}/Encounter")).json()["entry"][0]["resource"]["id"]
    client.cookies.clear()
    outcome(await client.get(f"{FHIR}/Encounter/{encounter_id}", headers=reader), 404, "FHIR-0002")
    outcome(await client.get(f"{FHIR}/Encounter", headers=reader), 400, "FHIR-0004")


async def test_the_sending_facility_reads_and_each_read_leaves_an_audit_row(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    from datetime import datetime

    one = visit_of(code, 51, datetime(2026, 10, 7, 9, 0))  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    personal_id = one.tables["XML1"][0]["SO_CCCD"]
    found = (
        await client.get(f"{FHIR}/Patient", params={"identifier": personal_id}, headers=headers)
    ).json()
    assert found["total"] == 1
    patient_id = found["entry"][0]["resource"]["id"]
    encounters = (
        await client.get(f"{FHIR}/Encounter", params={"subject": f"Patient/{patient_id}"},
                         headers=headers)
    ).json()  # fmt: skip
    assert encounters["total"] == 1
    read = await client.get(
        f"{FHIR}/Encounter/{encounters['entry'][0]['resource']['id']}", headers=headers
    )
    assert read.status_code == 200
    rows = list(
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.person_id == int(patient_id), AuditEvent.action == "fhir.read"
            )
        )
    )
    assert len(rows) == 3  # Patient search, Encounter search, Encounter read
    assert all(r.actor.startswith("facility_system:") for r in rows)


async def test_nobody_else_reads_and_errors_are_operation_outcomes(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, _, patient_id = await citizen_book(client, session, settings)
    encounter_id = (await client.get(f"{FHIR}/Encounter")).json()["entry"][0]["resource"]["id"]
    await sign_in_as(client, session, settings, STRANGER)
    outcome(await client.get(f"{FHIR}/Patient/{patient_id}"), 404, "FHIR-0002")
    outcome(await client.get(f"{FHIR}/Encounter/{encounter_id}"), 404, "FHIR-0002")
    outcome(await client.get(f"{FHIR}/Condition/{encounter_id}-c1"), 404, "FHIR-0002")
    outcome(await client.get(f"{FHIR}/Patient/{patient_id}/$everything"), 404, "FHIR-0002")
    assert (await client.get(f"{FHIR}/Encounter")).json()["total"] == 0
    outcome(await client.get(f"{FHIR}/Encounter", params={"date": "yesterday"}), 400, "FHIR-0001")
    outcome(await client.get(f"{FHIR}/Basic"), 404, "FHIR-0003")
    client.cookies.clear()
    outcome(await client.get(f"{FHIR}/Encounter/{encounter_id}"), 401, "AUTH-0001")


@pytest.mark.parametrize(
    ("query", "period", "expected"),
    [
        ("2026-10", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), True),
        ("2026-10-06", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), False),
        ("ge2026-10-05", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), True),
        ("gt2026-10-05", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), False),
        ("lt2026-10-05T09:30", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), True),
        ("sa2026-10-04", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), True),
        ("eb2026-10-05", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), False),
        ("ne2026", ("2026-10-05T09:00:00+07:00", "2026-10-05T10:00:00+07:00"), False),
        ("2026-10-05T02:30:00Z", ("2026-10-05T09:30:00+07:00", "2026-10-05T09:30:00+07:00"), True),
        (
            "2026-10-05T02:30:00+07:00",
            ("2026-10-05T09:30:00+07:00", "2026-10-05T09:30:00+07:00"),
            False,
        ),
    ],
)
def test_date_search_semantics(query: str, period: tuple[str, str], expected: bool) -> None:
    from vnehr.fhir.search import criteria

    [criterion], _ = criteria("Encounter", [("date", query)])
    resource = {"resourceType": "Encounter", "period": {"start": period[0], "end": period[1]}}
    assert criterion.test(resource) is expected


async def test_a_facilitys_test_submission_is_no_provenance_of_anyones_record(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A visit key first used in test mode, while onboarding, then for a real visit: the
    citizen reads the real version's Provenance, never the test one (D60)."""
    from datetime import timedelta

    from tests.submissions.test_intake import connect
    from vnehr.kit.clock import utcnow
    from vnehr.records.models import VisitVersion

    code, headers = await facility_with_token(client, session, settings, steps=2)
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    tried = visit_of(code, 71, now - timedelta(days=3), care_type="01", age_group=3)
    assert (await send(client, headers, synth.envelope([tried], code))).json()["test_mode"]
    await connect(session, code)
    real = visit_of(code, 72, now - timedelta(days=1), care_type="01", age_group=3)
    for rows in real.tables.values():
        for row in rows:
            if "MA_LK" in row:
                row["MA_LK"] = tried.ma_lk
    assert not (await send(client, headers, synth.envelope([real], code))).json()["test_mode"]
    versions = await session.execute(
        select(VisitVersion.id, VisitVersion.test_mode).where(VisitVersion.visit_key == tried.ma_lk)
    )
    ids = {test_mode: number for number, test_mode in versions}
    await sign_in_as(client, session, settings, who(real))
    assert (await client.get(f"/fhir/R4/Provenance/{ids[False]}")).status_code == 200
    hidden = await client.get(f"/fhir/R4/Provenance/{ids[True]}")
    assert hidden.status_code == 404, hidden.text


async def test_a_visit_moved_to_another_patient_shows_only_that_patients_versions(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility sent a visit under the wrong patient (X) and corrected it to the right one
    (Y): the earlier version is X's data, not part of Y's record, through any read."""
    from datetime import datetime

    from tests.healthbook.test_api import PERSON_FIELDS
    from vnehr.identity.models import Person
    from vnehr.records.models import VisitVersion

    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = visit_of(code, 31, datetime(2026, 10, 5, 9, 0))  # noqa: DTZ001
    other = visit_of(code, 77, datetime(2026, 10, 6, 9, 0))  # noqa: DTZ001 (Y's identity)
    right = other.tables["XML1"][0]
    wrong = one.tables["XML1"][0]["SO_CCCD"]
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    for rows in one.tables.values():
        for row in rows:
            for name in PERSON_FIELDS:
                if row.get(name):
                    row[name] = right[name]
    one.tables["XML1"][0]["MA_BENH_CHINH"] = "J00"
    one.tables["XML1"][0]["MA_BENH_KT"] = ""
    corrected = await send(client, headers, synth.envelope([one], code))
    assert corrected.json()["status"] == "accepted", corrected.text
    x = (await session.scalars(select(Person.id).where(Person.personal_id == wrong))).one()
    first = (
        await session.scalars(
            select(VisitVersion.id).where(
                VisitVersion.visit_key == one.ma_lk, VisitVersion.version == 1
            )
        )
    ).one()

    await sign_in_as(client, session, settings, who(other))
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]
    visit = item["id"]

    async def check(extra: dict[str, str]) -> None:
        history = (await client.get(f"{FHIR}/Encounter/{visit}/_history", headers=extra)).json()
        assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2"]
        assert {e["resource"]["subject"]["reference"] for e in history["entry"]} != {f"Patient/{x}"}
        conditions = await client.get(f"{FHIR}/Condition/{visit}-c1/_history", headers=extra)
        codes = [e["resource"]["code"]["coding"][0]["code"] for e in conditions.json()["entry"]]
        assert codes == ["J00"]
        for path in (f"Encounter/{visit}/_history/1", f"Provenance/{first}"):
            assert (await client.get(f"{FHIR}/{path}", headers=extra)).status_code == 404, path

    await check({})  # the right patient
    client.cookies.clear()
    await check(headers)  # the sending facility's system
    about_x = await session.scalars(
        select(AuditEvent).where(AuditEvent.person_id == x, AuditEvent.action == "fhir.read")
    )
    assert about_x.all() == []


async def test_ids_and_dates_out_of_range_are_refused_not_failed(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Ids beyond 64 bits, digits that are not 0-9 and dates at the end of the calendar are a
    client's mistake (or probing): 404 or 400, never a server error."""
    _, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    huge = "9" * 23
    await sign_in_as(client, session, settings, STRANGER)
    for who_, extra in (("citizen", {}), ("system", headers)):
        for path, status, error in (
            (f"Encounter/{huge}", 404, "FHIR-0002"),
            (f"Encounter/{huge}/_history", 404, "FHIR-0002"),
            (f"Encounter/{huge}/_history/1", 404, "FHIR-0002"),
            (f"Condition/{huge}-c1", 404, "FHIR-0002"),
            (f"Provenance/{huge}", 404, "FHIR-0002"),
            (f"Patient/{huge}", 404, "FHIR-0002"),
            (f"Patient/{huge}/$everything", 404, "FHIR-0002"),
            ("Encounter/²", 400, "KIT-0422"),  # not a FHIR id
            (f"Encounter?patient={huge}", 400, "FHIR-0001"),
            ("Encounter?patient=Patient/%C2%B2", 400, "FHIR-0001"),
            ("Encounter?patient=1&date=9999-12", 400, "FHIR-0001"),
            ("Encounter?patient=1&date=9999-12-31", 400, "FHIR-0001"),
            ("Encounter?patient=1&date=9999-12-31T23:59:59Z", 400, "FHIR-0001"),
            ("Encounter?patient=1&date=gt9999-12-31T23:59:59.999999", 400, "FHIR-0001"),
        ):
            outcome(await client.get(f"{FHIR}/{path}", headers=extra), status, error)
        for path in (f"Encounter?_id={huge}", "Encounter?_id=%C2%B2", "Patient?_id=%C2%B2",
                     f"Patient?_id={huge}", "Patient?identifier=%C2%B2"):  # fmt: skip
            found = await client.get(f"{FHIR}/{path}", headers=extra)
            assert found.status_code == 200, (who_, path, found.text)
            assert found.json()["total"] == 0
        client.cookies.clear()


async def test_summary_count_answers_the_total_alone_and_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """``_summary=count``: a searchset Bundle with the total of every match and no entries,
    whatever the paging; a read like any search (D98). Other ``_summary`` values are not
    supported: ignored with a warning, like any parameter we do not support, or refused with
    ``Prefer: handling=strict``; a value FHIR does not define is refused."""
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    from datetime import datetime

    first = visit_of(code, 51, datetime(2026, 10, 7, 9, 0))  # noqa: DTZ001
    second = visit_of(code, 52, datetime(2026, 10, 9, 9, 0), first)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([first, second], code))).status_code == 201
    found = await client.get(
        f"{FHIR}/Patient", params={"identifier": who(first)[0]}, headers=headers
    )
    patient_id = found.json()["entry"][0]["resource"]["id"]

    async def reads() -> int:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.person_id == int(patient_id), AuditEvent.action == "fhir.read"
            )
        )
        return len(rows.all())

    full = (
        await client.get(f"{FHIR}/Observation", params={"patient": patient_id}, headers=headers)
    ).json()
    assert full["total"] > 2
    for params in (
        {},
        {"_count": 1},
        {"_count": 1, "_offset": 1},
        {"_count": 0},
        {"_offset": 1000},
        {"_sort": "-date", "_include": "Observation:encounter"},
    ):
        before = await reads()
        counted = await client.get(
            f"{FHIR}/Observation",
            params={"patient": patient_id, "_summary": "count", **params},
            headers=headers,
        )
        assert counted.status_code == 200, (params, counted.text)
        bundle = counted.json()
        check_model(bundle)
        assert (bundle["type"], bundle["total"]) == ("searchset", full["total"]), params
        assert not bundle.get("entry"), params
        assert [link["relation"] for link in bundle["link"]] == ["self"], params
        assert await reads() == before + 1, params  # a count is a read (D98)
    posted = await client.post(
        f"{FHIR}/Encounter/_search",
        data={"patient": patient_id, "_summary": "count"},
        headers=headers,
    )
    assert (posted.json()["total"], posted.json().get("entry")) == (2, None)
    # the compartment: a citizen's own search and $everything
    await sign_in_as(client, session, settings, who(first))
    mine = (await client.get(f"{FHIR}/Condition", params={"_summary": "count"})).json()
    listed = (await client.get(f"{FHIR}/Condition")).json()
    assert (mine["total"], mine.get("entry")) == (listed["total"], None)
    assert listed["total"] > 0
    whole = (await client.get(f"{FHIR}/Patient/{patient_id}/$everything")).json()
    counted_whole = (
        await client.get(f"{FHIR}/Patient/{patient_id}/$everything", params={"_summary": "count"})
    ).json()
    assert (counted_whole["total"], counted_whole.get("entry")) == (whole["total"], None)
    client.cookies.clear()

    # values we do not support: ignored and said so, or refused when the client asks for strict
    plain = {"patient": patient_id}
    for value in ("true", "text", "data"):
        lenient = (
            await client.get(
                f"{FHIR}/Encounter", params={**plain, "_summary": value}, headers=headers
            )
        ).json()
        assert lenient["total"] == 2
        [warning] = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
        assert f"_summary={value}" in warning["resource"]["issue"][0]["diagnostics"]
        strict = await client.get(
            f"{FHIR}/Encounter",
            params={**plain, "_summary": value},
            headers={**headers, "Prefer": "handling=strict"},
        )
        outcome(strict, 400, "FHIR-0001")
    same = (
        await client.get(
            f"{FHIR}/Encounter", params={**plain, "_summary": "false"}, headers=headers
        )
    ).json()
    assert [e["search"]["mode"] for e in same["entry"]] == ["match", "match"]
    outcome(
        await client.get(
            f"{FHIR}/Encounter", params={**plain, "_summary": "counts"}, headers=headers
        ),
        400,
        "FHIR-0001",
    )
    # strict handling refuses any parameter it would otherwise ignore
    outcome(
        await client.get(
            f"{FHIR}/Encounter",
            params={**plain, "colour": "blue"},
            headers={**headers, "Prefer": "return=minimal, handling=strict"},
        ),
        400,
        "FHIR-0001",
    )
    lenient = await client.get(
        f"{FHIR}/Encounter",
        params={**plain, "colour": "blue"},
        headers={**headers, "Prefer": "handling=lenient"},
    )
    assert lenient.json()["total"] == 2
