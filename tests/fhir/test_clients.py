"""Two FHIR client libraries not written here run a scenario against a live `vnehr serve`: the
SMART client `fhirclient` (models generated from FHIR 4.0.1) and the async `fhirpy`. The citizen
is the demo's Nguyễn Văn An, signed in (a portal session cookie)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fhirclient import client as smart_client
from fhirclient.models.condition import Condition
from fhirclient.models.encounter import Encounter
from fhirclient.models.patient import Patient
from fhirpy import AsyncFHIRClient

from tests.live import demo_server
from vnehr.fhir import PERSONAL_ID
from vnehr.kit.auth import SESSION_COOKIE, make_session_cookie
from vnehr.kit.settings import Settings

pytestmark = pytest.mark.e2e
AN = "001085004217"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo_server(tmp_path_factory, keep_secret=True) as base:
        yield base


def session_cookie() -> str:
    return make_session_cookie(
        Settings(), {"personal_id": AN, "name": "Nguyễn Văn An", "assurance_level": 2}
    )


def smart_scenario(base: str) -> dict[str, Any]:
    """Find An by personal ID, list his encounters, read their conditions (fhirclient)."""
    smart = smart_client.FHIRClient(
        settings={"app_id": "vnehr-test", "api_base": f"{base}/fhir/R4/"}
    )
    smart.server.session.cookies.set(SESSION_COOKIE, session_cookie())
    patients = list(
        Patient.where(struct={"identifier": f"{PERSONAL_ID}|{AN}"}).perform_resources_iter(
            smart.server
        )
    )
    assert len(patients) == 1
    patient = patients[0]
    encounters = list(
        Encounter.where(struct={"patient": patient.id}).perform_resources_iter(smart.server)
    )
    conditions = []
    for encounter in encounters:
        conditions += Condition.where(
            struct={"encounter": f"Encounter/{encounter.id}"}
        ).perform_resources_iter(smart.server)
    again = Encounter.read(encounters[0].id, smart.server)
    return {
        "patient": patient.id,
        "name": patient.name[0].text,
        "birth": patient.birthDate.isostring,
        "encounters": sorted(e.id for e in encounters),
        "classes": {e.class_fhir.code for e in encounters},
        "conditions": len(conditions),
        "reread": again.id == encounters[0].id and again.period.end is not None,
    }


async def fhirpy_scenario(base: str) -> dict[str, Any]:
    """The same questions through the async client, plus paging and $everything."""
    fhir = AsyncFHIRClient(
        f"{base}/fhir/R4", extra_headers={"Cookie": f"{SESSION_COOKIE}={session_cookie()}"}
    )
    patient = await fhir.resources("Patient").search(identifier=f"{PERSONAL_ID}|{AN}").get()
    encounters = (
        await fhir.resources("Encounter").search(patient=patient["id"]).sort("-date").fetch_all()
    )
    observations = (
        await fhir.resources("Observation").search(patient=patient["id"]).limit(3).fetch_all()
    )
    everything = await fhir.execute(
        f"Patient/{patient['id']}/$everything", method="get", params={"_count": 1000}
    )
    summary = await fhir.execute(f"Patient/{patient['id']}/$summary", method="get")
    return {
        "patient": patient["id"],
        "encounters": sorted(e["id"] for e in encounters),
        "ends": [e["period"]["end"] for e in encounters],
        "observations": len(observations),
        "everything_types": {e["resource"]["resourceType"] for e in everything["entry"]},
        "summary_type": summary["type"],
    }  # fmt: skip


async def test_two_real_clients_agree_on_a_citizens_record(server: str) -> None:
    smart = await asyncio.to_thread(smart_scenario, server)
    async_result = await fhirpy_scenario(server)
    assert smart["name"] == "Nguyễn Văn An"
    assert smart["birth"] == "1985-03-14"
    assert len(smart["encounters"]) == 3  # the demo's three visits for An
    assert smart["classes"] <= {"AMB", "IMP", "SS"}
    assert "IMP" in smart["classes"]  # one inpatient stay
    assert smart["conditions"] >= 3  # at least a main diagnosis per visit
    assert smart["reread"] is True
    assert async_result["patient"] == smart["patient"]
    assert async_result["encounters"] == smart["encounters"]
    assert async_result["ends"] == sorted(async_result["ends"], reverse=True)
    assert async_result["observations"] > 3  # fetch_all followed the next links
    assert async_result["everything_types"] >= {"Patient", "Encounter", "Condition", "Organization"}
    assert async_result["summary_type"] == "document"
