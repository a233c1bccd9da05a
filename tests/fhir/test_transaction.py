"""Entries of a transaction Bundle that point at each other (by their ``urn:uuid`` fullUrl) are
stored pointing at the ids the answer gives, whatever their order and whether a conditional
create made a resource or found one (FHIR R4 http.html#trules)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fhir.examples import example
from tests.fhir.test_api import FHIR, check_model, outcome
from tests.fhir.test_write import WRITER
from tests.submissions.test_intake import facility_with_token
from vnehr.kit.settings import Settings

ORG = "urn:uuid:22222222-2222-2222-2222-222222222222"
LOCATION = "urn:uuid:11111111-1111-1111-1111-111111111111"
ENCOUNTER = "urn:uuid:33333333-3333-3333-3333-333333333333"


def _entries(organization_request: dict[str, Any]) -> list[dict[str, Any]]:
    """A Location and an Encounter pointing at an Organization that comes after them."""
    return [
        {
            "fullUrl": LOCATION,
            "resource": {
                "resourceType": "Location",
                "name": "Phòng khám Nội 1",
                "managingOrganization": {"reference": ORG},
            },
            "request": {"method": "POST", "url": "Location"},
        },
        {
            "fullUrl": ENCOUNTER,
            "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "serviceProvider": {"reference": ORG},
                "location": [{"location": {"reference": LOCATION}}],
            },
            "request": {"method": "POST", "url": "Encounter"},
        },
        {
            "fullUrl": ORG,
            "resource": {
                "resourceType": "Organization",
                "name": "Khoa Nội",
                "identifier": [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NOI"}],
            },
            "request": organization_request,
        },
    ]


async def _send(
    client: httpx.AsyncClient, headers: dict[str, str], entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = await client.post(FHIR, json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    check_model(answer)
    assert answer["type"] == "transaction-response"
    return [e["response"] for e in answer["entry"]]


async def _read(
    client: httpx.AsyncClient, headers: dict[str, str], location: str
) -> dict[str, Any]:
    """The resource at a response's location (``Type/id/_history/n``), read as a user would."""
    response = await client.get(f"{FHIR}/{location.split('/_history')[0]}", headers=headers)
    assert response.status_code == 200, (location, response.text)
    body: dict[str, Any] = response.json()
    return body


async def test_entries_point_at_the_ids_the_answer_gives(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    answered = await _send(client, headers, _entries({"method": "POST", "url": "Organization"}))
    assert [r["status"] for r in answered] == ["201 Created"] * 3
    location, encounter, organization = [
        await _read(client, headers, r["location"]) for r in answered
    ]
    org_ref = f"Organization/{organization['id']}"
    assert answered[2]["location"].startswith(f"{org_ref}/_history/")
    assert location["managingOrganization"]["reference"] == org_ref
    assert encounter["serviceProvider"]["reference"] == org_ref
    assert encounter["location"][0]["location"]["reference"] == f"Location/{location['id']}"
    pointed = await _read(client, headers, location["managingOrganization"]["reference"])
    assert pointed["name"] == "Khoa Nội"
    assert (await _read(client, headers, f"Location/{location['id']}"))[
        "name"
    ] == "Phòng khám Nội 1"


async def test_a_conditional_create_that_finds_a_resource_is_what_earlier_entries_point_at(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    conditional = {
        "method": "POST",
        "url": "Organization",
        "ifNoneExist": "identifier=urn:oid:1.2.3.4|KHOA-NOI",
    }
    first = await _send(client, headers, _entries(conditional))
    assert first[2]["status"] == "201 Created"
    made = first[2]["location"].split("/_history")[0]
    again = await _send(client, headers, _entries(conditional))
    assert [r["status"] for r in again] == ["201 Created", "201 Created", "200 OK"]
    assert again[2]["location"].split("/_history")[0] == made  # found, not made twice
    for answered in (first, again):
        location = await _read(client, headers, answered[0]["location"])
        encounter = await _read(client, headers, answered[1]["location"])
        assert location["managingOrganization"]["reference"] == made
        assert encounter["serviceProvider"]["reference"] == made
        assert (await _read(client, headers, made))["name"] == "Khoa Nội"
    found = await client.get(
        f"{FHIR}/Organization", params={"identifier": "urn:oid:1.2.3.4|KHOA-NOI"}, headers=headers
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [made.split("/")[1]]


async def test_two_conditional_creates_of_the_same_resource_make_it_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Two entries of one transaction with the same ``ifNoneExist`` (a HIS sending the ward of
    two observations, once per observation) are one resource: the first creates it, the second
    finds it, and what points at either points at it (the Bundle is processed as one)."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    conditional = {
        "method": "POST",
        "url": "Organization",
        "ifNoneExist": "identifier=urn:oid:1.2.3.4|KHOA-NOI",
    }
    twin = "urn:uuid:44444444-4444-4444-4444-444444444444"
    entries = _entries(conditional)
    entries += [
        {
            "fullUrl": twin,
            "resource": {**entries[2]["resource"], "name": "Khoa Nội (bản sao)"},
            "request": conditional,
        },
        {
            "fullUrl": "urn:uuid:55555555-5555-5555-5555-555555555555",
            "resource": {
                "resourceType": "Location",
                "name": "Phòng khám Nội 2",
                "managingOrganization": {"reference": twin},
            },
            "request": {"method": "POST", "url": "Location"},
        },
    ]
    first = await _send(client, headers, entries)
    assert [r["status"] for r in first] == ["201 Created"] * 3 + ["200 OK", "201 Created"]
    made = first[2]["location"].split("/_history")[0]
    assert first[3]["location"].split("/_history")[0] == made
    for answered in (first[0], first[4]):
        location = await _read(client, headers, answered["location"])
        assert location["managingOrganization"]["reference"] == made
    assert (await _read(client, headers, made))["name"] == "Khoa Nội"  # the first one's
    again = await _send(client, headers, entries)
    assert [r["status"] for r in again] == ["201 Created", "201 Created", "200 OK", "200 OK", "201 Created"]  # fmt: skip
    assert {again[2]["location"], again[3]["location"]} == {first[2]["location"]}
    found = await client.get(
        f"{FHIR}/Organization", params={"identifier": "urn:oid:1.2.3.4|KHOA-NOI"}, headers=headers
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [made.split("/")[1]]


# ------------------------------------------------------------------ one resource per condition

#: The official R4 transaction example (Bundle-bundle-transaction.json): its first entry creates
#: a Patient, its second creates one only if none has this identifier.
_CONDITION = "identifier=http:/example.org/fhir/ids|234234"


def _official_patients() -> tuple[dict[str, Any], dict[str, Any]]:
    """The example's plain and conditional Patient entries, the plain one made to carry the
    identifier the conditional one looks for (a HIS sending its Patient twice)."""
    plain, conditional = copy.deepcopy(example("Bundle-bundle-transaction.json")["entry"][:2])
    assert conditional["request"]["ifNoneExist"] == _CONDITION
    assert "ifNoneExist" not in plain["request"]
    plain["resource"]["identifier"] = conditional["resource"]["identifier"]
    return plain, conditional


async def _patients_with_the_identifier(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> list[str]:
    found = await client.get(
        f"{FHIR}/Patient", params={"identifier": _CONDITION.split("=", 1)[1]}, headers=headers
    )
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


@pytest.mark.parametrize("plain_first", [True, False], ids=["plain-first", "conditional-first"])
async def test_a_plain_create_of_what_a_conditional_create_looks_for_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, plain_first: bool
) -> None:
    """A Bundle that creates a resource with an identifier and also creates one "if none has
    it" would leave two resources the condition matches: refused whole, whatever the order of
    the entries and whether the identifier is stored already; nothing is written."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    plain, conditional = _official_patients()
    ward = {  # written with them, so the test sees whether anything was
        "fullUrl": "urn:uuid:66666666-6666-6666-6666-666666666666",
        "resource": {
            "resourceType": "Organization",
            "identifier": [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}],
            "name": "Khoa Ngoại",
        },
        "request": {"method": "POST", "url": "Organization"},
    }
    entries = [plain, conditional] if plain_first else [conditional, plain]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [*entries, ward]}
    refused = await client.post(FHIR, json=bundle, headers=headers)
    outcome(refused, 422, "FHIR-0016")
    issue = refused.json()["issue"][0]
    assert issue["code"] == "duplicate"
    where = (1, 0) if plain_first else (0, 1)  # (the conditional entry, the plain one)
    for text in (issue["details"]["text"], issue["diagnostics"]):
        assert f"Bundle.entry[{where[0]}]" in text
        assert f"Bundle.entry[{where[1]}]" in text
        assert "234234" in text
    assert await _patients_with_the_identifier(client, headers) == []
    assert await _wards(client, headers) == []
    # the conditional create alone makes the Patient; the same Bundle is still refused, as a
    # second Patient with the identifier would be made beside the one found
    alone = await _send(client, headers, [conditional])
    assert [r["status"] for r in alone] == ["201 Created"]
    kept = alone[0]["location"].split("/")[1]
    outcome(await client.post(FHIR, json=bundle, headers=headers), 422, "FHIR-0016")
    assert await _patients_with_the_identifier(client, headers) == [kept]
    assert await _wards(client, headers) == []
    # without the plain entry the Bundle is accepted: the Patient found, the ward made
    await _send(client, headers, [conditional, ward])
    assert await _patients_with_the_identifier(client, headers) == [kept]
    assert await _wards(client, headers) == ["Khoa Ngoại"]


async def _wards(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    found = await client.get(
        f"{FHIR}/Organization", params={"identifier": "urn:oid:1.2.3.4|KHOA-NGOAI"}, headers=headers
    )
    assert found.status_code == 200, found.text
    return [e["resource"]["name"] for e in found.json().get("entry", [])]


async def test_an_update_of_the_resource_a_conditional_create_finds_is_one_resource(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """An entry that updates the very resource a conditional create finds leaves one resource
    with the identifier: accepted; an update of another resource to carry it is refused."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    plain, conditional = _official_patients()
    [made] = await _send(client, headers, [conditional])
    kept = made["location"].split("/")[1]
    update = {
        "fullUrl": f"Patient/{kept}",
        "resource": {**plain["resource"], "id": kept, "gender": "other"},
        "request": {"method": "PUT", "url": f"Patient/{kept}"},
    }
    answered = await _send(client, headers, [conditional, update])
    assert [r["status"] for r in answered] == ["200 OK", "200 OK"]
    assert {r["location"].split("/")[1] for r in answered} == {kept}
    assert (await _read(client, headers, f"Patient/{kept}"))["gender"] == "other"
    unnamed = {k: v for k, v in plain["resource"].items() if k != "identifier"}
    [other] = await _send(client, headers, [{**plain, "resource": unnamed}])
    elsewhere = other["location"].split("/")[1]
    moved = {
        "fullUrl": f"Patient/{elsewhere}",
        "resource": {**plain["resource"], "id": elsewhere},
        "request": {"method": "PUT", "url": f"Patient/{elsewhere}"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [conditional, moved]}
    outcome(await client.post(FHIR, json=bundle, headers=headers), 422, "FHIR-0016")
    assert await _patients_with_the_identifier(client, headers) == [kept]


# ------------------------------------------------------------------ conditions as URL queries

_KHOA = {"system": "urn:oid:1.2.3.4", "value": "KHOA-NOI"}


def _ward(
    condition: str | None, *, full_url: str | None = None, name: str = "Khoa Nội"
) -> dict[str, Any]:
    request = {"method": "POST", "url": "Organization"}
    if condition is not None:
        request["ifNoneExist"] = condition
    entry: dict[str, Any] = {
        "resource": {"resourceType": "Organization", "name": name, "identifier": [_KHOA]},
        "request": request,
    }
    if full_url is not None:
        entry["fullUrl"] = full_url
    return entry


async def _organizations(
    client: httpx.AsyncClient, headers: dict[str, str], identifier: str
) -> list[str]:
    found = await client.get(
        f"{FHIR}/Organization", params={"identifier": identifier}, headers=headers
    )
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


@pytest.mark.parametrize(
    "condition",
    [
        "identifier=urn%3Aoid%3A1.2.3.4%7CKHOA-NOI",  # a URL query, percent-encoded
        "identifier=urn:oid:1.2.3.4|KHOA%2DNOI",
        "Organization?identifier=urn:oid:1.2.3.4|KHOA-NOI",  # as Bundle-xds.json writes it
        "Organization?identifier=KHOA-NOI",
    ],
)
async def test_a_condition_written_as_a_url_query_finds_what_it_looks_for(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, condition: str
) -> None:
    """``ifNoneExist`` is the query part of a search URL: percent-encoded, perhaps with the
    type in front. A retried transaction finds the resource its first try made, and a plain
    entry carrying the identifier is still refused (D126)."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    [first] = await _send(client, headers, [_ward(condition, full_url=ORG)])
    [again] = await _send(client, headers, [_ward(condition, full_url=ORG)])
    assert (first["status"], again["status"]) == ("201 Created", "200 OK")
    assert again["location"] == first["location"]
    made = first["location"].split("/")[1]
    assert await _organizations(client, headers, "urn:oid:1.2.3.4|KHOA-NOI") == [made]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_ward(condition, full_url=ORG), _ward(None, name="Khoa Nội (bản sao)")],
    }
    outcome(await client.post(FHIR, json=bundle, headers=headers), 422, "FHIR-0016")
    assert await _organizations(client, headers, "urn:oid:1.2.3.4|KHOA-NOI") == [made]


async def test_an_if_none_exist_header_is_percent_decoded(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    ward = _ward(None)["resource"]
    header = {**headers, "If-None-Exist": "Organization?identifier=urn%3Aoid%3A1.2.3.4%7CKHOA-NOI"}
    first = await client.post(f"{FHIR}/Organization", json=ward, headers=header)
    second = await client.post(f"{FHIR}/Organization", json=ward, headers=header)
    assert (first.status_code, second.status_code) == (201, 200), second.text
    assert first.json()["id"] == second.json()["id"]


async def test_an_escaped_bar_is_part_of_the_value(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """FHIR search escapes a ``|`` inside a value as ``\\|``: the value is split only on the
    bar that is not escaped."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    entry = _ward(r"identifier=urn:oid:1.2.3.4|A\|B", full_url=ORG)
    entry["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "A|B"}]
    [first] = await _send(client, headers, [entry])
    [again] = await _send(client, headers, [copy.deepcopy(entry)])
    assert (first["status"], again["status"]) == ("201 Created", "200 OK")
    assert again["location"] == first["location"]


async def test_a_condition_on_another_type_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    condition = "Patient?identifier=urn:oid:1.2.3.4|KHOA-NOI"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_ward(condition)]}
    refused = await client.post(FHIR, json=bundle, headers=headers)
    outcome(refused, 422, "FHIR-0011")
    issue = refused.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[0].request.ifNoneExist"]
    assert "Patient" in issue["diagnostics"]
    assert "Organization" in issue["diagnostics"]
    header = {**headers, "If-None-Exist": condition}
    plain = await client.post(f"{FHIR}/Organization", json=_ward(None)["resource"], headers=header)
    outcome(plain, 422, "FHIR-0011")
    assert plain.json()["issue"][0]["expression"] == ["If-None-Exist"]
    assert await _organizations(client, headers, "urn:oid:1.2.3.4|KHOA-NOI") == []


# ------------------------------------------------------------------ identifiers kept whole


@pytest.mark.parametrize(
    ("identifier", "where"),
    [
        ({"system": "urn:oid:1.2.3.4", "value": "L" * 201}, "value"),
        ({"system": "urn:s:" + "y" * 300, "value": "KHOA-NOI"}, "system"),
    ],
    ids=["value", "system"],
)
async def test_an_identifier_longer_than_kept_is_refused_not_cut(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    identifier: dict[str, str],
    where: str,
) -> None:
    """An identifier value is kept up to 200 characters, a system up to 300: a longer one is
    refused, not stored cut (a conditional create would never find it again)."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    system, value = identifier["system"], identifier["value"]
    entry = _ward(f"identifier={system}|{value}", full_url=ORG)
    entry["resource"]["identifier"] = [{"system": "urn:other", "value": "X"}, identifier]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    refused = await client.post(FHIR, json=bundle, headers=headers)
    outcome(refused, 422, "FHIR-0011")
    issue = refused.json()["issue"][0]
    assert issue["expression"] == [f"Bundle.entry[0].resource.identifier[1].{where}"]
    plain = await client.post(f"{FHIR}/Organization", json=entry["resource"], headers=headers)
    outcome(plain, 422, "FHIR-0011")
    assert plain.json()["issue"][0]["expression"] == [f"Organization.identifier[1].{where}"]
    assert await _organizations(client, headers, "urn:other|X") == []


async def test_an_identifier_of_the_longest_kept_length_is_found_again(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    system, value = "urn:s:" + "y" * 294, "L" * 200
    entry = _ward(f"identifier={system}|{value}", full_url=ORG)
    entry["resource"]["identifier"] = [{"system": system, "value": value}]
    [first] = await _send(client, headers, [entry])
    [again] = await _send(client, headers, [copy.deepcopy(entry)])
    assert (first["status"], again["status"]) == ("201 Created", "200 OK")
    assert again["location"] == first["location"]


# ------------------------------------------------------------------ fullUrl names one entry


async def test_two_entries_with_one_full_url_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """R4 bdl-7: a fullUrl is unique in a Bundle. Two entries with the same one were both
    answered 201 while the second was dropped; the Bundle is refused, naming both."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    first = _ward(None, full_url=ORG)
    second = _ward(None, full_url=ORG, name="Khoa Ngoại")
    second["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entries({"method": "POST", "url": "Organization"})[0], first, second],
    }
    refused = await client.post(FHIR, json=bundle, headers=headers)
    outcome(refused, 422, "FHIR-0017")
    issue = refused.json()["issue"][0]
    assert issue["code"] == "invariant"
    for text in (issue["details"]["text"], issue["diagnostics"]):
        assert "Bundle.entry[1]" in text
        assert "Bundle.entry[2]" in text
        assert ORG in text
    assert await _organizations(client, headers, "urn:oid:1.2.3.4|KHOA-NOI") == []
    assert await _wards(client, headers) == []


async def test_an_entry_without_full_url_is_not_taken_for_another(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """An entry without fullUrl is its own entry, whatever fullUrl the others have (one may be
    ``urn:entry:1``), and nothing points at it."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    named = _ward(None, full_url="urn:entry:1")
    unnamed = _ward(None, name="Khoa Ngoại")
    unnamed["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}]
    location = {
        "resource": {
            "resourceType": "Location",
            "name": "Phòng khám Nội 1",
            "managingOrganization": {"reference": "urn:entry:1"},
            "partOf": {"reference": "urn:entry:2"},
        },
        "request": {"method": "POST", "url": "Location"},
    }
    answered = await _send(client, headers, [named, unnamed, location])
    assert [r["status"] for r in answered] == ["201 Created"] * 3
    assert len({r["location"] for r in answered}) == 3
    ward = await _read(client, headers, answered[0]["location"])
    other = await _read(client, headers, answered[1]["location"])
    assert (ward["name"], other["name"]) == ("Khoa Nội", "Khoa Ngoại")
    room = await _read(client, headers, answered[2]["location"])
    assert room["managingOrganization"]["reference"] == f"Organization/{ward['id']}"
    assert room["partOf"]["reference"] == "urn:entry:2"  # no entry has that fullUrl


# ------------------------------------------------------------------ several matches, alternatives

#: R4 http.html#ccreate: "Multiple matches: The server returns a 412 Precondition Failed error".
SEVERAL = "FHIR-0018"


async def _two_stored_patients(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """The official example's Patient stored twice with its identifier, by plain creates (a HIS
    that registered the same person twice before it used conditional creates)."""
    _, conditional = _official_patients()
    for _ in range(2):
        made = await client.post(f"{FHIR}/Patient", json=conditional["resource"], headers=headers)
        assert made.status_code == 201, made.text
    stored = await _patients_with_the_identifier(client, headers)
    assert len(stored) == 2
    return sorted(stored)


def _several(response: httpx.Response, where: str) -> None:
    outcome(response, 412, SEVERAL)
    issue = response.json()["issue"][0]
    assert issue["code"] == "multiple-matches"
    for text in (issue["details"]["text"], issue["diagnostics"]):
        assert where in text
        assert " 2 " in text


async def test_a_conditional_create_that_finds_several_resources_refuses_the_transaction(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A condition that finds two stored resources is not selective enough: the transaction is
    refused whole with 412 (nothing written, neither Patient taken), and so is a plain create
    with that ``If-None-Exist``."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    stored = await _two_stored_patients(client, headers)
    _, conditional = _official_patients()
    ward = _ward(None, full_url=ORG, name="Khoa Ngoại")
    ward["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [ward, conditional]}
    _several(await client.post(FHIR, json=bundle, headers=headers), "Bundle.entry[1]")
    assert await _wards(client, headers) == []
    header = {**headers, "If-None-Exist": _CONDITION}
    alone = await client.post(f"{FHIR}/Patient", json=conditional["resource"], headers=header)
    _several(alone, "If-None-Exist")
    assert sorted(await _patients_with_the_identifier(client, headers)) == stored


async def test_in_a_batch_only_the_entry_whose_condition_finds_several_fails(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    stored = await _two_stored_patients(client, headers)
    _, conditional = _official_patients()
    ward = _ward(None, name="Khoa Ngoại")
    ward["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}]
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [conditional, ward]}
    response = await client.post(FHIR, json=batch, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    check_model(answer)
    refused, made = (e["response"] for e in answer["entry"])
    assert (refused["status"], made["status"]) == ("412 Precondition Failed", "201 Created")
    [issue] = refused["outcome"]["issue"]
    assert issue["details"]["coding"][0]["code"] == SEVERAL
    assert issue["code"] == "multiple-matches"
    assert sorted(await _patients_with_the_identifier(client, headers)) == stored
    assert await _wards(client, headers) == ["Khoa Ngoại"]


_NOI = "urn:oid:1.2.3.4|KHOA-NOI"
_NGOAI = "urn:oid:1.2.3.4|KHOA-NGOAI"


async def test_comma_separated_values_are_alternatives(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """``identifier=a,b`` finds a resource with either identifier (FHIR search: comma is OR); a
    condition whose alternatives find nothing creates; the same alternatives in another order
    are the same condition (one resource, D108)."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    [made] = await _send(client, headers, [_ward(f"identifier={_NOI}", full_url=ORG)])
    [found] = await _send(client, headers, [_ward(f"identifier={_NGOAI},{_NOI}", full_url=ORG)])
    assert (found["status"], found["location"]) == ("200 OK", made["location"])
    header = {**headers, "If-None-Exist": f"Organization?identifier=KHOA-NGOAI,{_NOI}"}
    again = await client.post(f"{FHIR}/Organization", json=_ward(None)["resource"], headers=header)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == made["location"].split("/")[1]
    other = _ward(f"identifier=urn:oid:1.2.3.4|KHOA-SAN,{_NGOAI}", full_url=ORG, name="Khoa Sản")
    other["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-SAN"}]
    twin = _ward(f"identifier={_NGOAI},urn:oid:1.2.3.4|KHOA-SAN", name="Khoa Sản (bản sao)")
    twin["resource"]["identifier"] = other["resource"]["identifier"]
    created, same = await _send(client, headers, [other, twin])
    assert (created["status"], same["status"]) == ("201 Created", "200 OK")
    assert same["location"] == created["location"]
    assert await _organizations(client, headers, "urn:oid:1.2.3.4|KHOA-SAN") == [
        created["location"].split("/")[1]
    ]
    assert await _organizations(client, headers, _NOI) == [made["location"].split("/")[1]]


async def test_alternatives_that_find_two_resources_are_several_matches(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Each alternative finding a different resource is two matches: 412, nothing written; a
    resource carrying both identifiers is one match."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    noi = _ward(f"identifier={_NOI}", full_url=ORG)
    ngoai = _ward(f"identifier={_NGOAI}", name="Khoa Ngoại")
    ngoai["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}]
    await _send(client, headers, [noi, ngoai])
    either = _ward(f"identifier={_NOI},{_NGOAI}", full_url=ORG, name="Khoa Nội - Ngoại")
    room = {
        "resource": {
            "resourceType": "Location",
            "name": "Phòng khám Nội 1",
            "managingOrganization": {"reference": ORG},
        },
        "request": {"method": "POST", "url": "Location"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [either, room]}
    _several(await client.post(FHIR, json=bundle, headers=headers), "Bundle.entry[0]")
    rooms = await client.get(f"{FHIR}/Location", params={"name": "Phòng"}, headers=headers)
    assert rooms.json().get("entry", []) == []
    header = {**headers, "If-None-Exist": f"identifier={_NOI},{_NGOAI}"}
    alone = await client.post(f"{FHIR}/Organization", json=either["resource"], headers=header)
    _several(alone, "If-None-Exist")
    # one resource with both identifiers matches once
    both = [{"system": "urn:oid:1.2.3.4", "value": v} for v in ("KHOA-A", "KHOA-B")]
    whole = _ward(None, name="Khoa A-B")
    whole["resource"]["identifier"] = both
    [kept] = await _send(client, headers, [whole])
    ab = _ward("identifier=KHOA-A,urn:oid:1.2.3.4|KHOA-B", full_url=ORG, name="Khoa A-B")
    ab["resource"]["identifier"] = both
    [found] = await _send(client, headers, [ab])
    assert (found["status"], found["location"]) == ("200 OK", kept["location"])


async def test_an_alternative_met_by_another_entry_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """D126 holds for each alternative: a plain entry carrying the second alternative would be
    a second resource the condition matches."""
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    ngoai = _ward(None, name="Khoa Ngoại")
    ngoai["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": "KHOA-NGOAI"}]
    either = _ward(f"identifier={_NOI},{_NGOAI}", full_url=ORG)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [either, ngoai]}
    refused = await client.post(FHIR, json=bundle, headers=headers)
    outcome(refused, 422, "FHIR-0016")
    assert "KHOA-NGOAI" in refused.json()["issue"][0]["diagnostics"]
    assert await _organizations(client, headers, _NOI) == []
    assert await _wards(client, headers) == []


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        (r"identifier=urn:oid:1.2.3.4|A\,B", "A,B"),
        (r"identifier=urn:oid:1.2.3.4|A\|B,urn:oid:1.2.3.4|C", "A|B"),
        (r"identifier=urn:oid:1.2.3.4|C,urn:oid:1.2.3.4|A\,B\\", "A,B\\"),
    ],
    ids=["comma", "bar-and-alternative", "comma-backslash"],
)
async def test_escaped_commas_and_bars_are_part_of_a_value(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    condition: str,
    value: str,
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    entry = _ward(condition, full_url=ORG)
    entry["resource"]["identifier"] = [{"system": "urn:oid:1.2.3.4", "value": value}]
    [first] = await _send(client, headers, [entry])
    [again] = await _send(client, headers, [copy.deepcopy(entry)])
    assert (first["status"], again["status"]) == ("201 Created", "200 OK")
    assert again["location"] == first["location"]


@pytest.mark.parametrize("condition", ["identifier=urn:oid:1.2.3.4|KHOA-NOI,", "identifier=,X"])
async def test_an_empty_alternative_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, condition: str
) -> None:
    _, headers = await facility_with_token(client, session, settings, scopes=WRITER)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [_ward(condition)]}
    outcome(await client.post(FHIR, json=bundle, headers=headers), 405, "FHIR-0013")
    assert await _organizations(client, headers, _NOI) == []
