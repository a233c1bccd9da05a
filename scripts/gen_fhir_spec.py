"""Generate src/vnehr/fhir/data/r4.json from the official FHIR R4 (4.0.1) definitions.

The npm package ``hl7.fhir.r4.examples@4.0.1`` carries the StructureDefinitions of every
resource and datatype and the SearchParameter definitions. From them we keep, in one compact
file the server loads at start:

- ``elements``: for each resource type we serve and each datatype, every element path with its
  cardinality and types (what the validator checks);
- ``regex``: the pattern of every primitive type;
- ``search``: the search parameters of the types we serve, with their FHIRPath expression and
  the JSON paths it names (parameters whose expression is not a plain path are left out).

Usage: ``npm install --prefix .cache/fhir hl7.fhir.r4.examples@4.0.1`` then
``python scripts/gen_fhir_spec.py .cache/fhir/node_modules/hl7.fhir.r4.examples``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

SERVED = [
    "Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Procedure",
    "DiagnosticReport", "Organization", "Practitioner", "Location", "DocumentReference",
    "Consent", "AuditEvent", "Provenance", "AllergyIntolerance",
]  # fmt: skip
#: Resource types the validator also knows (bundles in, outcomes out).
ALSO = [
    "Bundle", "OperationOutcome", "Composition", "Medication", "Specimen",
    "ServiceRequest", "Appointment",  # in the SMART Health Cards of the papers
]  # fmt: skip
OUT = Path(__file__).resolve().parents[1] / "src" / "vnehr" / "fhir" / "data" / "r4.json"
FHIRPATH_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


def load(folder: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / f"StructureDefinition-{name}.json").read_text())
    return data


def elements_of(definition: dict[str, Any]) -> dict[str, list[Any]]:
    root = definition["type"]
    found: dict[str, list[Any]] = {}
    for element in definition["snapshot"]["element"]:
        path: str = element["path"]
        if path == root:
            continue
        relative = path[len(root) + 1 :]
        types = []
        for entry in element.get("type", []):
            code = FHIRPATH_TYPES.get(entry["code"], entry["code"])
            if relative == "id" and definition["kind"] == "resource":
                code = "id"
            if relative == "url" and root == "Extension":
                code = "uri"
            types.append(code)
        reference = element.get("contentReference")
        found[relative] = [
            element.get("min", 0),
            element.get("max", "*"),
            types,
            reference[len(root) + 2 :] if reference else None,
        ]
    return found


def regex_of(definition: dict[str, Any]) -> str | None:
    for element in definition["snapshot"]["element"]:
        if element["path"].endswith(".value"):
            for entry in element.get("type", []):
                for ext in entry.get("extension", []):
                    if ext["url"] == "http://hl7.org/fhir/StructureDefinition/regex":
                        return str(ext["valueString"])
    return None


def paths_of(type_: str, expression: str, elements: dict[str, list[Any]]) -> list[str]:
    """The JSON paths an expression names for ``type_``; [] if it is not a plain path."""
    found: list[str] = []
    for part in (p.strip() for p in expression.split("|")):
        part = re.sub(r"\.where\(resolve\(\) is [A-Za-z]+\)$", "", part)
        cast = re.fullmatch(rf"\(?{type_}\.([A-Za-z.]+) as ([A-Za-z]+)\)?", part) or re.fullmatch(
            rf"{type_}\.([A-Za-z.]+)\.as\(([A-Za-z]+)\)", part
        )
        if cast:
            found.append(cast[1] + cast[2][0].upper() + cast[2][1:])
            continue
        plain = re.fullmatch(rf"{type_}\.([A-Za-z.]+)", part)
        if not plain:
            continue
        path = plain[1]
        if f"{path}[x]" in elements:  # a choice element: every variant
            variants = elements[f"{path}[x]"][2]
            found += [path + t[0].upper() + t[1:] for t in variants]
        elif path in elements:
            found.append(path)
    return found


def main(folder: Path) -> None:
    definitions = {}
    for file in sorted(folder.glob("StructureDefinition-*.json")):
        data = json.loads(file.read_text())
        if data.get("derivation") == "specialization" or data.get("kind") == "primitive-type":
            definitions[data["type"]] = data
    elements: dict[str, dict[str, list[Any]]] = {}
    regex: dict[str, str] = {}
    for name, definition in definitions.items():
        if definition["kind"] == "primitive-type":
            pattern = regex_of(definition)
            if pattern:
                regex[name] = pattern
            continue
        if definition["kind"] == "complex-type" or name in SERVED or name in ALSO:
            if definition.get("abstract") and name not in ("Element", "BackboneElement"):
                continue
            elements[name] = elements_of(definition)
    search: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVED}
    for file in sorted(folder.glob("SearchParameter-*.json")):
        data = json.loads(file.read_text())
        for base in data.get("base", []):
            if base not in search and base != "Resource":
                continue
            for type_ in SERVED if base == "Resource" else [base]:
                if data["code"] not in ("_id", "_lastUpdated") and base == "Resource":
                    continue
                if base == "Resource":
                    paths = {"_id": ["id"], "_lastUpdated": ["meta.lastUpdated"]}[data["code"]]
                else:
                    paths = paths_of(type_, data.get("expression", ""), elements[type_])
                if not paths or data["type"] not in ("token", "date", "reference", "string"):
                    continue
                if any(p["code"] == data["code"] for p in search[type_]):
                    continue
                search[type_].append(
                    {
                        "code": data["code"],
                        "type": data["type"],
                        "expression": data.get("expression", ""),
                        "url": data["url"],
                        "target": data.get("target", []),
                        "paths": paths,
                    }
                )
    for params in search.values():
        params.sort(key=lambda p: p["code"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "source": "hl7.fhir.r4.examples 4.0.1 (StructureDefinition, SearchParameter)",
                "served": SERVED,
                "also": ALSO,
                "elements": elements,
                "regex": regex,
                "search": search,
            },
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
        )
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(elements)} types, "
          f"{sum(len(v) for v in search.values())} search parameters")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
