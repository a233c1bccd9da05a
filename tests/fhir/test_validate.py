"""The structural validator against the official R4 examples, and against broken resources."""

from __future__ import annotations

import copy
from collections import Counter

from tests.fhir.examples import SERVED, example, examples
from vnehr.fhir.validate import validate


def test_every_official_example_of_the_served_types_is_valid() -> None:
    counts: Counter[str] = Counter()
    failures = []
    for name, resource in examples():
        counts[resource["resourceType"]] += 1
        issues = validate(resource)
        if issues:
            failures.append((name, [str(i) for i in issues[:3]]))
    assert not failures
    assert set(counts) == set(SERVED)
    assert sum(counts.values()) >= 200


def test_broken_resources_are_reported_with_their_paths() -> None:
    patient = example("Patient-example.json")
    broken = copy.deepcopy(patient)
    broken["gender"] = 5
    broken["birthDate"] = "1974-13-40"
    broken["nickname"] = "Jim"
    broken["name"] = {"text": "Peter"}
    broken["contact"][0]["relationship"][0]["coding"] = []
    found = {str(i) for i in validate(broken)}
    assert found == {
        "Patient.gender: a non-empty JSON string (code)",
        "Patient.birthDate: not a valid date: '1974-13-40'",
        "Patient.nickname: unknown element",
        "Patient.name: an array is required",
        "Patient.contact[0].relationship[0].coding: empty arrays are not allowed",
    }


def test_required_elements_and_choice_types() -> None:
    observation = example("Observation-example.json")
    del observation["status"]
    observation["valueQuantity"]["value"] = "185"
    observation["valueBoolean"] = "yes"
    found = {str(i) for i in validate(observation)}
    assert "Observation.status: required" in found
    assert "Observation.valueQuantity.value: a JSON number (decimal)" in found
    assert "Observation.valueBoolean: true or false" in found


def test_a_bundle_names_the_entry_at_fault() -> None:
    good = example("Patient-example.json")
    bad = copy.deepcopy(good)
    bad["active"] = "true"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": good, "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:2", "resource": bad, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Basic"}, "request": {"method": "POST", "url": "Basic"}},
        ],
    }  # fmt: skip
    found = [str(i) for i in validate(bundle)]
    assert found == [
        "Bundle.entry[1].resource.active: true or false",
        "Bundle.entry[2].resource: resource type 'Basic' is not supported here",
    ]
