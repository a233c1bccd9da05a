"""The official HL7 FHIR R4 examples (npm hl7.fhir.r4.examples@4.0.1, fetched into .cache/fhir
by scripts/fetch-npm-tools.sh, which `make test` runs)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FOLDER = Path(
    os.environ.get(
        "VNEHR_FHIR_EXAMPLES", ROOT / ".cache" / "fhir" / "node_modules" / "hl7.fhir.r4.examples"
    )
)
SERVED = (
    "Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Procedure",
    "DiagnosticReport", "Organization", "Practitioner", "Location", "DocumentReference",
    "Consent", "AuditEvent", "Provenance",
)  # fmt: skip


def examples(*types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, resource) of every official example of these types."""
    if not (FOLDER / "package.json").exists():
        raise RuntimeError(f"{FOLDER} is missing: run scripts/fetch-npm-tools.sh")
    for type_ in types or SERVED:
        for file in sorted(FOLDER.glob(f"{type_}-*.json")):
            resource = json.loads(file.read_text(encoding="utf-8"))
            if resource.get("resourceType") == type_:
                yield file.name, resource


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FOLDER / name).read_text(encoding="utf-8"))
    return data
