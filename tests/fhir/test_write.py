"""Writing through FHIR: official examples kept as sent and returned equal; conditional create
and versions; a visit sent as a transaction Bundle goes through the XML intake and ends up as the
very same stored visit as its XML twin."""

from __future__ import annotations

import base64
import copy
import random
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.examples import examples
from tests.fhir.test_api import FHIR, ICD10, check_model, outcome
from tests.healthbook.test_api import who
from tests.identity.test_api import sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr.fhir import mapping
from vnehr.fhir.intake import XML_FIELD, XML_TABLE
from vnehr.kit.settings import Settings
from vnehr.records.models import VisitVersion
from vnehr.submissions import synth

WRITER = ("submission.write", "record.read")


def strip(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


async def test_official_examples_are_kept_and_returned_equal(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    sent = refused = 0
    for name, resource in examples():
        response = await client.post(
            f"{FHIR}/{resource['resourceType']}", json=resource, headers=headers
        )
        if _names_a_person(resource):
            # Patient/727127 and the like would be persons here, not this facility's patients
            outcome(response, 422, "FHIR-0021")
            refused += 1
            resource = _names_a_person(resource, replace=True)
            response = await client.post(
                f"{FHIR}/{resource['resourceType']}", json=resource, headers=headers
            )
        if _names_an_encounter(resource):
            # Encounter/f001 and the like are no visits here: refused, then sent without it
            outcome(response, 422, "FHIR-0015")
            refused += 1
            resource = _names_an_encounter(resource, drop=True)
            response = await client.post(
                f"{FHIR}/{resource['resourceType']}", json=resource, headers=headers
            )
        assert response.status_code == 201, (name, response.text)
        created = response.json()
        assert response.headers["location"].endswith(f"/{created['id']}/_history/1")
        again = await client.get(
            f"{FHIR}/{resource['resourceType']}/{created['id']}", headers=headers
        )
        assert again.status_code == 200, (name, again.text)
        assert strip(again.json()) == strip(resource), name
        sent += 1
    assert sent >= 200
    assert refused >= 36


def _names_a_person(resource: dict[str, Any], *, replace: bool = False) -> Any:
    """Whether an official example is about a person of this server by id (``Patient/72``);
    with ``replace``, the example about a Patient kept as sent instead (``Patient/example``)."""
    copy_ = copy.deepcopy(resource)
    named = False
    for key in ("subject", "patient"):
        reference = (copy_.get(key) or {}).get("reference")
        if isinstance(reference, str) and re.fullmatch(r"Patient/\d+", reference):
            named = True
            copy_[key]["reference"] = "Patient/example"
    return copy_ if replace else named


def _names_an_encounter(resource: dict[str, Any], *, drop: bool = False) -> Any:
    """Whether an official example names an encounter of this server (``Encounter/f001``);
    with ``drop``, the example without it."""
    copy_ = copy.deepcopy(resource)
    named = False
    for holder, key in ((copy_, "encounter"), (copy_.get("context") or {}, "encounter"),
                        (copy_ if copy_["resourceType"] == "Encounter" else {}, "partOf")):  # fmt: skip
        value = holder.get(key)
        references = value if isinstance(value, list) else [value] if value else []
        if any(isinstance(r, dict) and "reference" in r for r in references):
            named = True
            holder.pop(key)
    return copy_ if drop else named


async def test_conditional_create_versions_and_writers(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    _, other = await facility_with_token(client, session, settings, scopes=WRITER)
    practitioner = {
        "resourceType": "Practitioner",
        "identifier": [{"system": mapping.PRACTITIONER, "value": "000123/HNO-CCHN"}],
        "name": [{"text": "BS. Nguyễn Thị Mai"}],
    }
    condition = {"If-None-Exist": f"identifier={mapping.PRACTITIONER}|000123/HNO-CCHN"}
    first = await client.post(
        f"{FHIR}/Practitioner", json=practitioner, headers={**headers, **condition}
    )
    second = await client.post(
        f"{FHIR}/Practitioner", json=practitioner, headers={**headers, **condition}
    )
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    pid = first.json()["id"]
    changed = {**practitioner, "id": pid, "name": [{"text": "PGS. Nguyễn Thị Mai"}]}
    updated = await client.put(f"{FHIR}/Practitioner/{pid}", json=changed, headers=headers)
    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2"
    history = (await client.get(f"{FHIR}/Practitioner/{pid}/_history", headers=headers)).json()
    assert [e["resource"]["name"][0]["text"] for e in history["entry"]] == [
        "PGS. Nguyễn Thị Mai",
        "BS. Nguyễn Thị Mai",
    ]
    old = await client.get(f"{FHIR}/Practitioner/{pid}/_history/1", headers=headers)
    assert old.json()["name"][0]["text"] == "BS. Nguyễn Thị Mai"
    outcome(
        await client.put(f"{FHIR}/Practitioner/{pid}", json=changed, headers=other),
        403,
        "FHIR-0014",
    )
    outcome(await client.get(f"{FHIR}/Practitioner/{pid}", headers=other), 404, "FHIR-0002")
    found = (
        await client.get(
            f"{FHIR}/Practitioner", params={"name:contains": "nguyen thi mai"}, headers=headers
        )
    ).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [pid]


async def test_structural_errors_are_422_with_paths_and_nothing_is_stored(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    bad = {"resourceType": "Patient", "gender": "M", "birthDate": "20-01-1990", "nickname": "x"}
    response = await client.post(f"{FHIR}/Patient", json=bad, headers=headers)
    assert response.status_code == 422
    body = response.json()
    check_model(body)
    assert {i["expression"][0] for i in body["issue"]} == {"Patient.birthDate", "Patient.nickname"}
    outcome(
        await client.post(f"{FHIR}/Patient", content=b"{not json", headers=headers),
        400,
        "FHIR-0007",
    )
    outcome(
        await client.post(f"{FHIR}/Patient", json={"resourceType": "Patient"}), 401, "AUTH-0001"
    )


# ------------------------------------------------------------------ a visit as FHIR


def _number(text: str) -> tuple[float | int, bool]:
    """A national number as a JSON number, and whether the JSON number writes back the same."""
    value = Decimal(text)
    plain: float | int = int(value) if "." not in text else float(value)
    return plain, str(plain) == text


def _ext(fields: dict[str, str], mapped: set[str]) -> list[dict[str, Any]]:
    return [
        {"url": f"{XML_FIELD}{name}", "valueString": value}
        for name, value in fields.items()
        if value and name not in mapped
    ]


def bundle_of(visit: synth.SynthVisit, code: str) -> dict[str, Any]:
    """The visit as a HIS would send it in FHIR, following docs/fhir-mapping.md: FHIR elements
    where the mapping has them, xml/{FIELD} extensions for the other national fields, whole
    tables with no resource here embedded in the Encounter."""
    tables = {
        k: [{f: v for f, v in r.items() if v} for r in rows] for k, rows in visit.tables.items()
    }
    xml1 = tables["XML1"][0]
    born = xml1["NGAY_SINH"]
    assert born.endswith("0000")
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {"system": mapping.PERSONAL_ID, "value": xml1["SO_CCCD"]},
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "value": xml1["MA_BN"],
            },
            *[
                {"system": mapping.INSURANCE_CARD, "value": c}
                for c in xml1.get("MA_THE_BHYT", "").split(";")
                if c
            ],
        ],
        "name": [{"text": xml1["HO_TEN"]}],
        "gender": {"1": "male", "2": "female"}[xml1["GIOI_TINH"]],
        "birthDate": f"{born[:4]}-{born[4:6]}-{born[6:8]}",
        "address": [{"text": xml1["DIA_CHI"]}],
    }

    def when(moment: str) -> str:
        return f"{moment[:4]}-{moment[4:6]}-{moment[6:8]}T{moment[8:10]}:{moment[10:12]}:00+07:00"

    entries: list[dict[str, Any]] = []
    members: list[tuple[str, dict[str, Any]]] = []
    codes = [xml1["MA_BENH_CHINH"], *[c for c in xml1.get("MA_BENH_KT", "").split(";") if c]]
    for rank, icd in enumerate(codes, start=1):
        members.append(
            (
                f"urn:uuid:c{rank}",
                {
                    "resourceType": "Condition",
                    "code": {"coding": [{"system": ICD10, "code": icd}]},
                    "subject": {"reference": "urn:uuid:patient"},
                    "encounter": {"reference": "urn:uuid:encounter"},
                },
            )
        )
    mapped1 = {
        "MA_LK",
        "MA_BN",
        "HO_TEN",
        "SO_CCCD",
        "NGAY_SINH",
        "GIOI_TINH",
        "MA_THE_BHYT",
        "DIA_CHI",
        "LY_DO_VV",
        "MA_BENH_CHINH",
        "MA_BENH_KT",
        "NGAY_VAO",
        "NGAY_RA",
        "MA_LOAI_RV",
        "MA_LOAI_KCB",
        "MA_CSKCB",
        "CAN_NANG",
    }
    weight, exact = _number(xml1["CAN_NANG"])
    if not exact:
        mapped1.discard("CAN_NANG")
    members.append(
        (
            "urn:uuid:weight",
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": mapping.LOINC, "code": "29463-7"}]},
                "subject": {"reference": "urn:uuid:patient"},
                "encounter": {"reference": "urn:uuid:encounter"},
                "valueQuantity": {"value": weight, "unit": "kg"},
            },
        )
    )
    for row in tables.get("XML2", []):
        quantity, exact = _number(row["SO_LUONG"])
        mapped = {
            "MA_LK",
            "MA_THUOC",
            "TEN_THUOC",
            "LIEU_DUNG",
            "CACH_DUNG",
            "DUONG_DUNG",
            "DON_VI_TINH",
            "NGAY_YL",
            "MA_BAC_SI",
        } | ({"SO_LUONG"} if exact else set())
        members.append(
            (
                f"urn:uuid:m{row['STT']}",
                {
                    "resourceType": "MedicationRequest",
                    "status": "completed",
                    "intent": "order",
                    "extension": _ext(row, mapped),
                    "medicationCodeableConcept": {
                        "coding": [
                            {
                                "system": mapping.DRUG,
                                "code": row["MA_THUOC"],
                                "display": row["TEN_THUOC"],
                            }
                        ]
                    },
                    "subject": {"reference": "urn:uuid:patient"},
                    "encounter": {"reference": "urn:uuid:encounter"},
                    "authoredOn": when(row["NGAY_YL"]),
                    "requester": {
                        "identifier": {"system": mapping.PRACTITIONER, "value": row["MA_BAC_SI"]}
                    },
                    "dosageInstruction": [
                        {
                            "text": row["LIEU_DUNG"],
                            **(
                                {"patientInstruction": row["CACH_DUNG"]}
                                if row.get("CACH_DUNG")
                                else {}
                            ),
                            "route": {
                                "coding": [{"system": mapping.ROUTE, "code": row["DUONG_DUNG"]}]
                            },
                        }
                    ],
                    "dispenseRequest": {
                        "quantity": {"value": quantity, "unit": row["DON_VI_TINH"]}
                    },
                },
            )
        )
    supplies = []
    for row in tables.get("XML3", []):
        if row.get("MA_VAT_TU") or not row.get("MA_DICH_VU") or not row.get("NGAY_TH_YL"):
            supplies.append(row)
            continue
        mapped = {"MA_LK", "MA_DICH_VU", "TEN_DICH_VU", "NGAY_TH_YL", "MA_BAC_SI"}
        members.append(
            (
                f"urn:uuid:p{row['STT']}",
                {
                    "resourceType": "Procedure",
                    "status": "completed",
                    "extension": _ext(row, mapped),
                    "code": {
                        "coding": [
                            {
                                "system": mapping.SERVICE,
                                "code": row["MA_DICH_VU"],
                                "display": row["TEN_DICH_VU"],
                            }
                        ]
                    },
                    "subject": {"reference": "urn:uuid:patient"},
                    "encounter": {"reference": "urn:uuid:encounter"},
                    "performedDateTime": when(row["NGAY_TH_YL"]),
                    **(
                        {
                            "performer": [
                                {
                                    "actor": {
                                        "identifier": {
                                            "system": mapping.PRACTITIONER,
                                            "value": row["MA_BAC_SI"],
                                        }
                                    }
                                }
                            ]
                        }
                        if row.get("MA_BAC_SI")
                        else {}
                    ),
                },
            )
        )
    for row in tables.get("XML4", []):
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "text": row["TEN_CHI_SO"],
                **(
                    {"coding": [{"system": mapping.LAB_INDEX, "code": row["MA_CHI_SO"]}]}
                    if row.get("MA_CHI_SO")
                    else {}
                ),
            },
            "subject": {"reference": "urn:uuid:patient"},
            "encounter": {"reference": "urn:uuid:encounter"},
        }
        mapped = {"MA_LK", "MA_CHI_SO", "TEN_CHI_SO", "NGAY_KQ"}
        if row.get("NGAY_KQ"):
            observation["effectiveDateTime"] = when(row["NGAY_KQ"])
        if row.get("GIA_TRI"):
            observation["valueString"] = row["GIA_TRI"]
            mapped.add("GIA_TRI")
        observation["extension"] = _ext(row, mapped)
        members.append((f"urn:uuid:o{row['STT']}", observation))
    embedded = dict(tables)
    for name in ("XML1", "XML2", "XML4"):
        embedded.pop(name, None)
    embedded.pop("XML3", None)
    if supplies:
        embedded["XML3"] = supplies
    encounter = {
        "resourceType": "Encounter",
        "extension": _ext(xml1, mapped1)
        + [
            {
                "url": XML_TABLE,
                "extension": [
                    {"url": "name", "valueCode": name},
                    {
                        "url": "content",
                        "valueBase64Binary": base64.b64encode(
                            synth.table_document(name, rows)
                        ).decode(),
                    },
                ],
            }
            for name, rows in embedded.items()
        ],
        "identifier": [{"system": mapping.VISIT_KEY, "value": f"{code}/{xml1['MA_LK']}"}],
        "status": "finished",
        "class": {"system": mapping.ACT_CODE, "code": "AMB"},
        "type": [
            {"coding": [{"system": mapping.code_system("care-type"), "code": xml1["MA_LOAI_KCB"]}]}
        ],
        "subject": {"reference": "urn:uuid:patient"},
        "period": {"start": when(xml1["NGAY_VAO"]), "end": when(xml1["NGAY_RA"])},
        "reasonCode": [{"text": xml1["LY_DO_VV"]}],
        "diagnosis": [
            {"condition": {"reference": f"urn:uuid:c{r}"}, "rank": r}
            for r in range(1, len(codes) + 1)
        ],
        "hospitalization": {
            "dischargeDisposition": {
                "coding": [
                    {"system": mapping.code_system("discharge-type"), "code": xml1["MA_LOAI_RV"]}
                ]
            }
        },
    }
    for url, resource in [
        ("urn:uuid:patient", patient),
        ("urn:uuid:encounter", encounter),
        *members,
    ]:
        if resource.get("extension") == []:
            del resource["extension"]
        entries.append(
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def visit(code: str, seed: int) -> synth.SynthVisit:
    return synth.make_visit(
        random.Random(seed),
        facility_code=code,
        ended=datetime(2026, 10, 20, 10, 30),  # noqa: DTZ001
        insured=True,
        age_group=3,
        referral=False,
    )


async def test_a_visit_sent_as_fhir_is_the_same_visit_as_its_xml(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    one = visit(code, 61)
    bundle = bundle_of(one, code)
    check_model(bundle)
    response = await client.post(FHIR, json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    check_model(answer)
    assert answer["type"] == "transaction-response"
    receipt_id = answer["identifier"]["value"]
    receipt = (await client.get(f"/api/v1/submissions/{receipt_id}", headers=headers)).json()
    assert receipt["status"] in ("accepted", "accepted_with_warnings"), receipt
    [visit_receipt] = receipt["visits"]
    assert (visit_receipt["visit_key"], visit_receipt["outcome"]) == (one.ma_lk, "new")
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert locations[0].startswith("Patient/")
    assert locations[1].startswith("Encounter/")
    stored = (
        await session.scalars(select(VisitVersion).where(VisitVersion.visit_key == one.ma_lk))
    ).one()
    expected = {
        k: [{f: v for f, v in r.items() if v} for r in rows] for k, rows in one.tables.items()
    }
    assert stored.tables == expected
    # The same visit as the national XML is the same content: nothing new.
    again = await send(client, headers, synth.envelope([one], code))
    assert again.json()["visits"][0]["outcome"] == "unchanged"
    # ... and the citizen reads it like any visit.
    await sign_in_as(client, session, settings, who(one))
    encounter = (await client.get(f"{FHIR}/{locations[1]}")).json()
    assert encounter["identifier"][0]["value"] == f"{code}/{one.ma_lk}"


async def test_a_visit_the_national_checks_reject_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    one = visit(code, 62)
    bundle = bundle_of(one, code)
    encounter = bundle["entry"][1]["resource"]
    encounter["period"]["end"] = "2020-01-01T00:00:00+07:00"  # ends before it began
    extra = {"resourceType": "Organization", "name": "Phòng xét nghiệm vệ tinh"}
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:org",
            "resource": extra,
            "request": {"method": "POST", "url": "Organization"},
        }
    )
    before = await session.scalar(select(func.count()).select_from(VisitVersion))
    response = await client.post(FHIR, json=bundle, headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    check_model(body)
    codes = [i["details"]["coding"][0]["code"] for i in body["issue"]]
    assert codes[0] == "FHIR-0012"
    assert any(c.startswith("SUB-") for c in codes[1:])
    assert any("XML1.1.NGAY_RA" in i.get("expression", [""])[0] for i in body["issue"][1:])
    assert await session.scalar(select(func.count()).select_from(VisitVersion)) == before
    found = (
        await client.get(f"{FHIR}/Organization", params={"name": "vệ tinh"}, headers=headers)
    ).json()
    assert found["total"] == 0  # the whole transaction rolled back


async def test_a_bundle_with_a_broken_entry_is_refused_whole(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    bundle = bundle_of(visit(code, 63), code)
    broken = copy.deepcopy(bundle)
    broken["entry"][0]["resource"]["birthDate"] = "1990-13-01"
    response = await client.post(FHIR, json=broken, headers=headers)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.birthDate"]
    assert await session.scalar(select(func.count()).select_from(VisitVersion)) == 0


async def test_a_batch_does_each_entry_on_its_own(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A batch of reads, searches, creates and updates: each entry is answered as if sent
    alone (its status, location, resource or OperationOutcome); a bad entry fails alone."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    _, other = await facility_with_token(client, session, settings, scopes=WRITER)
    practitioner = {
        "resourceType": "Practitioner",
        "identifier": [{"system": mapping.PRACTITIONER, "value": "000777/HNO-CCHN"}],
        "name": [{"text": "BS. Trần Văn Bảy"}],
    }
    made = await client.post(f"{FHIR}/Practitioner", json=practitioner, headers=headers)
    pid = made.json()["id"]
    theirs = await client.post(
        f"{FHIR}/Practitioner",
        json={**practitioner, "identifier": [{"system": mapping.PRACTITIONER, "value": "9"}]},
        headers=other,
    )
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Practitioner/{pid}"}},
            {"request": {"method": "GET", "url": "Practitioner?name:contains=tran%20van%20bay"}},
            {
                "request": {
                    "method": "POST",
                    "url": "Practitioner",
                    "ifNoneExist": f"identifier={mapping.PRACTITIONER}|000777/HNO-CCHN",
                },
                "resource": practitioner,
            },
            {
                "request": {"method": "POST", "url": "Location"},
                "resource": {"resourceType": "Location", "name": "Phòng khám số 3"},
            },
            {
                "request": {"method": "PUT", "url": f"Practitioner/{pid}"},
                "resource": {**practitioner, "id": pid, "name": [{"text": "TS. Trần Văn Bảy"}]},
            },
            {
                "request": {"method": "POST", "url": "Location"},
                "resource": {"resourceType": "Location", "colour": "red"},
            },
            {"request": {"method": "GET", "url": f"Practitioner/{theirs.json()['id']}"}},
            {"request": {"method": "DELETE", "url": f"Practitioner/{pid}"}},
        ],
    }
    response = await client.post(FHIR, json=batch, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == [
        "200 OK",
        "200 OK",
        "200 OK",
        "201 Created",
        "200 OK",
        "422 Unprocessable Entity",
        "404 Not Found",
        "400 Bad Request",
    ]
    read, search, again, location, updated, bad, foreign, delete = answer["entry"]
    assert read["resource"]["id"] == pid
    assert [e["resource"]["id"] for e in search["resource"]["entry"]] == [pid]
    assert again["resource"]["id"] == pid  # conditional create found it
    assert "/fhir/R4/Location/" in location["response"]["location"]
    assert updated["resource"]["meta"]["versionId"] == "2"
    assert bad["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert foreign["response"]["outcome"]["issue"][0]["details"]["coding"][0]["code"] == "FHIR-0002"
    assert delete["response"]["outcome"]["issue"][0]["code"] == "not-supported"
    # the good entries were kept although others failed
    kept = await client.get(location["response"]["location"].split("/_history")[0], headers=headers)
    assert kept.json()["name"] == "Phòng khám số 3"
    check_model(answer)


async def test_a_facility_not_connected_writes_nothing_into_a_citizens_record(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    from tests.fhir.test_api import citizen_book
    from tests.submissions.test_intake import ADMIN
    from vnehr import facilities

    _, _, patient_id = await citizen_book(client, session, settings)
    before = await _observed(client)
    assert before > 0  # the visits' own lab results
    allergy = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Dị ứng penicillin (thử nghiệm)"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueString": "phát ban",
    }
    # onboarding (test mode): the write is kept apart, for the facility only
    trying, trial = await facility_with_token(client, session, settings, steps=2, scopes=WRITER)
    written = await client.post(f"{FHIR}/Observation", json=allergy, headers=trial)
    assert written.status_code == 201, written.text
    assert (
        await client.get(f"{FHIR}/Observation/{written.json()['id']}", headers=trial)
    ).status_code == 200
    kept = written.json()["id"]
    # the citizen sees nothing of it
    assert (await client.get(f"{FHIR}/Observation/{kept}")).status_code == 404
    assert await _observed(client) == before
    # suspended after its token was issued: the token stops working, nothing stored
    gone, suspended = await facility_with_token(client, session, settings, scopes=WRITER)
    await facilities.move(session, ADMIN, gone, facilities.State.suspended, "thu hồi")
    refused = await client.post(f"{FHIR}/Observation", json=allergy, headers=suspended)
    outcome(refused, 403, "AUTH-0007")
    assert await _observed(client) == before
    assert trying != gone


async def _observed(client: httpx.AsyncClient) -> int:
    """How many Observations the signed-in citizen's record holds."""
    found = (await client.get(f"{FHIR}/Observation", params={"_summary": "count"})).json()
    return int(found["total"])


async def test_a_reference_to_a_patient_number_out_of_range_links_no_one(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    for reference in ("Patient/99999999999999999999999", "Patient/²"):
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Mạch"},
            "subject": {"reference": reference},
            "valueString": "80 lần/phút",
        }
        written = await client.post(f"{FHIR}/Observation", json=observation, headers=headers)
        assert written.status_code == 201, (reference, written.text)


def _allergy(substance: str, verification: str, linked: bool) -> dict[str, Any]:
    system = "http://terminology.hl7.org/CodeSystem/allergyintolerance-"
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": f"{system}clinical", "code": "active"}]},
        "verificationStatus": {
            "coding": [{"system": f"{system}verification", "code": verification}]
        },
        "category": ["medication"],
        "criticality": "high",
        "code": {"text": substance},
        "reaction": [{"manifestation": [{"text": "Phát ban"}]}],
        "recordedDate": "2026-10-20T10:00:00+07:00",
        "patient": {"reference": "urn:uuid:patient"},
        **({"encounter": {"reference": "urn:uuid:encounter"}} if linked else {}),
    }


@pytest.mark.parametrize("linked", [True, False])
async def test_an_allergy_sent_with_a_visit_is_kept_and_shown_in_the_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, linked: bool
) -> None:
    """The national tables have no allergy field (D29): an AllergyIntolerance (in the visit,
    or beside it) is stored as sent and shown; nothing is answered 201 and thrown away."""
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    one = visit(code, 61)
    bundle = bundle_of(one, code)
    report = {  # a visit member no national table holds
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "Siêu âm ổ bụng"},
        "subject": {"reference": "urn:uuid:patient"},
        "encounter": {"reference": "urn:uuid:encounter"},
        "conclusion": "Gan nhiễm mỡ độ I",
    }
    bundle["entry"] += [
        {"fullUrl": f"urn:uuid:{name}", "resource": resource, "request": {"method": "POST",
         "url": resource["resourceType"]}}
        for name, resource in (
            ("allergy", _allergy("Penicillin", "confirmed", linked)),
            ("refuted", _allergy("Aspirin", "entered-in-error", linked)),
            ("report", report),
        )
    ]  # fmt: skip
    response = await client.post(FHIR, json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    answered = {
        e["fullUrl"]: a["response"]["location"]
        for e, a in zip(bundle["entry"], response.json()["entry"], strict=True)
    }
    encounter = answered["urn:uuid:encounter"]
    visit_id = encounter.split("/")[1]
    assert answered["urn:uuid:weight"] == f"Observation/{visit_id}-w"
    assert answered["urn:uuid:allergy"].startswith("AllergyIntolerance/")
    assert answered["urn:uuid:report"].startswith("DiagnosticReport/")

    await sign_in_as(client, session, settings, who(one))
    kept = await client.get(f"{FHIR}/{answered['urn:uuid:allergy'].split('/_history')[0]}")
    assert kept.status_code == 200, kept.text
    patient = answered["urn:uuid:patient"]
    assert kept.json()["patient"] == {"reference": patient}
    if linked:
        assert kept.json()["encounter"] == {"reference": encounter}
    report_kept = await client.get(f"{FHIR}/{answered['urn:uuid:report'].split('/_history')[0]}")
    assert report_kept.json()["conclusion"] == "Gan nhiễm mỡ độ I"
    found = (await client.get(f"{FHIR}/AllergyIntolerance", params={"patient": patient})).json()
    assert {e["resource"]["code"]["text"] for e in found["entry"]} == {"Penicillin", "Aspirin"}

    summary = (await client.get("/api/v1/me/summary")).json()
    [allergy] = summary["allergies"]  # the one entered in error is not shown
    assert (allergy["substance"], allergy["category"], allergy["criticality"]) == (
        "Penicillin",
        "medication",
        "high",
    )
    assert allergy["reaction"] == "Phát ban"
    assert allergy["facility"]["code"] == code
    assert allergy["visit_id"] == (int(visit_id) if linked else None)
    page = await client.get("/portal/book/summary")
    assert "Penicillin" in page.text
    assert "Aspirin" not in page.text

    ips = (await client.get(f"{FHIR}/{patient}/$summary")).json()
    check_model(ips)
    allergies = ips["entry"][0]["resource"]["section"][0]
    assert allergies["code"]["coding"][0]["code"] == "48765-2"
    [entry] = allergies["entry"]
    assert entry["reference"] == answered["urn:uuid:allergy"].split("/_history")[0]
    assert "Penicillin" in allergies["text"]["div"]
    assert "emptyReason" not in allergies


async def test_reference_ranges_and_units_sent_as_fhir_are_shown(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """XML4 has no range field; a range the sender gave is kept (in the reserve field
    DU_PHONG) and shown in the book and in FHIR; units carry their UCUM code (D30)."""
    code, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    one = visit(code, 61)
    bundle = bundle_of(one, code)
    labs = [e for e in bundle["entry"] if e["fullUrl"].startswith("urn:uuid:o")]
    assert len(labs) >= 3
    labs[0]["resource"]["referenceRange"] = [{"text": "4.0 - 10.0"}]
    labs[1]["resource"]["referenceRange"] = [{"low": {"value": 3.8}, "high": {"value": 5.5}}]
    response = await client.post(FHIR, json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    await sign_in_as(client, session, settings, who(one))
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]
    got = (await client.get(f"/api/v1/me/visits/{item['id']}")).json()
    ranges = {r["line"]: r["reference_range"] for r in got["results"]}
    first, second = (int(e["fullUrl"].removeprefix("urn:uuid:o")) for e in labs[:2])
    assert (ranges.pop(first), ranges.pop(second)) == ("4.0 - 10.0", "3.8 - 5.5")
    assert set(ranges.values()) == {None}
    page = await client.get(f"/portal/book/visits/{item['id']}")
    assert "4,0 - 10,0" in page.text  # (the page writes its numbers the Vietnamese way, D206)

    found = (
        await client.get(f"{FHIR}/Observation", params={"encounter": f"Encounter/{item['id']}"})
    ).json()
    observations = [e["resource"] for e in found["entry"]]
    with_range = [o for o in observations if "referenceRange" in o]
    assert [o["referenceRange"][0]["text"] for o in with_range] == ["4.0 - 10.0", "3.8 - 5.5"]
    low, high = (
        with_range[0]["referenceRange"][0]["low"],
        with_range[0]["referenceRange"][0]["high"],
    )
    assert (low["value"], high["value"]) == (4, 10)
    units = {
        (
            o["valueQuantity"]["unit"],
            o["valueQuantity"].get("system"),
            o["valueQuantity"].get("code"),
        )
        for o in observations
        if "valueQuantity" in o
    }
    assert ("G/L", mapping.UCUM, "10*9/L") in units  # giga cells per litre, not grams
    assert ("g/L", mapping.UCUM, "g/L") in units
    assert ("kg", mapping.UCUM, "kg") in units
