"""Two FHIR transactions naming the same pending persons in other orders, on PostgreSQL where
they really run side by side (D200). A transaction's visit matches its Patient through the
intake, and each other Patient it keeps as sent is compared with what VNeID confirmed of the
holder of its personal ID, the holder's row read locked while pending (D176): [X's visit with
Y's Patient] and [Y's visit with X's Patient], or [Patient X, Patient Y] and [Patient Y,
Patient X], could each hold the person the other waits for, and PostgreSQL ended one."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.fhir.test_write import bundle_of
from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_concurrent_writers import OPTIONS, SENDER, _prepared, url
from vnehr.fhir import mapping
from vnehr.fhir.write import transaction
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Database
from vnehr.submissions import synth
from vnehr.submissions.service import accept

__all__ = ["url"]  # the fixture: a database of its own, migrated, with the demo facility

FACILITY = "01001"
BASE = "http://localhost:8000/fhir/R4"


def _patient_entry(person: tuple[str, str, str, str], url: str) -> dict[str, Any]:
    """A Patient kept as sent: the facility's own record of someone (a parent who brought the
    child, a relative to call), named by personal ID."""
    personal_id, name, born, sex = person
    return {
        "fullUrl": url,
        "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": mapping.PERSONAL_ID, "value": personal_id}],
            "name": [{"text": name}],
            "birthDate": born,
            "gender": sex,
        },
        "request": {"method": "POST", "url": "Patient"},
    }


def _with_visit(visit: synth.SynthVisit, other: tuple[str, str, str, str]) -> dict[str, Any]:
    """A transaction holding the visit (its Patient, its Encounter, ...) and another
    person's Patient."""
    bundle = bundle_of(visit, FACILITY)
    bundle["entry"].append(_patient_entry(other, "urn:uuid:other"))
    return bundle


def _patients(*persons: tuple[str, str, str, str]) -> dict[str, Any]:
    """A transaction of Patients alone, in this order."""
    entries = [_patient_entry(p, f"urn:uuid:p{n}") for n, p in enumerate(persons)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.mark.parametrize("shape", ["visit_and_patient", "patients"])
def test_two_transactions_naming_two_pending_persons_in_other_orders_both_land(
    url: str, shape: str
) -> None:
    ended = utcnow().replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=3)
    x_visit, y_visit = (visit_of(FACILITY, s, ended, care_type="01", age_group=3) for s in (61, 62))
    x, y = who(x_visit), who(y_visit)
    assert x[0] != y[0]
    known = synth.envelope([x_visit, y_visit], FACILITY)
    if shape == "visit_and_patient":
        # other visits of X and of Y, each with the other person's Patient
        x_again, y_again = (
            visit_of(FACILITY, s, ended, like, care_type="01", age_group=3)
            for s, like in ((63, x_visit), (64, y_visit))
        )
        bundle_a = _with_visit(x_again, y)  # X (the visit), then Y
        bundle_b = _with_visit(y_again, x)  # Y (the visit), then X
    else:
        bundle_a, bundle_b = _patients(x, y), _patients(y, x)

    async def main() -> None:
        a, b, other = (Database.from_urls(url) for _ in range(3))
        try:
            [analysis] = await _prepared(a, [known])
            async with a.session() as session:  # X and Y become known, pending (no sign-in)
                receipt = await accept(session, SENDER, known, analysis, OPTIONS)
            assert [v["outcome"] for v in receipt["visits"]] == ["new", "new"]

            async def write(db: Database, bundle: dict[str, Any]) -> dict[str, Any]:
                async with db.session() as session:
                    return await transaction(session, SENDER, bundle, OPTIONS, base=BASE)

            async with other.session() as holding:  # someone holds X's row for a moment ...
                await holding.execute(
                    text("SELECT id FROM person WHERE personal_id = :p FOR UPDATE"), {"p": x[0]}
                )
                one = asyncio.create_task(write(a, bundle_a))  # X, then Y
                await asyncio.sleep(0.5)
                two = asyncio.create_task(write(b, bundle_b))  # Y, then X
                await asyncio.sleep(0.5)
                assert not one.done()
                assert not two.done()
            # ... and lets go: A takes X and goes on to Y, whom B holds while it waits for X
            done = await asyncio.wait_for(asyncio.gather(one, two, return_exceptions=True), 30)
            for result in done:
                assert not isinstance(result, BaseException), repr(result)
            for result, bundle in zip(done, (bundle_a, bundle_b), strict=True):
                assert [e["response"]["status"] for e in result["entry"]] == ["201 Created"] * len(
                    bundle["entry"]
                )
        finally:
            for db in (a, b, other):
                await db.dispose()

    asyncio.run(main())
