"""A fast structural validator for FHIR R4 JSON, driven by the official StructureDefinitions
(generated into data/r4.json): unknown elements, cardinality (min/max, arrays where the element
repeats), primitive types and their official regexes, choice types (``value[x]``), nested
backbone elements, contained resources and bundle entries.

It checks structure, not profiles or terminology bindings: that is what an exchange needs to
store a resource safely and read it back; the national rules are checked on the visit itself.
Written for speed (a 100-entry Bundle in a few milliseconds): the element tables are indexed
once, and the walk is one pass with no allocation beyond the issue list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vnehr.fhir.spec import SPEC

_ALIASES = {"SimpleQuantity": "Quantity", "MoneyQuantity": "Quantity", "xhtml": "string"}
_NUMBERS = frozenset({"integer", "positiveInt", "unsignedInt", "decimal"})
_FREE_TEXT = frozenset({"string", "markdown"})


# How a value is checked, decided once per element when the tables are indexed.
RESOURCE, BOOLEAN, NUMBER, STRING, TEXT, OBJECT, BACKBONE, REPEAT = range(8)


@dataclass(frozen=True, slots=True)
class Child:
    key: str  # the element's key in the definitions (``value[x]`` for a choice)
    minimum: int
    many: bool
    kind: str  # one type (a choice is expanded to one Child per variant)
    content_ref: str | None  # for contentReference: the element path it repeats
    check: int = OBJECT
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


REGEX = {name: re.compile(pattern) for name, pattern in SPEC["regex"].items()}


def _child(key: str, minimum: int, many: bool, kind: str, content_ref: str | None) -> Child:
    if kind == "Resource":
        check = RESOURCE
    elif kind == "boolean":
        check = BOOLEAN
    elif kind in _NUMBERS:
        check = NUMBER
    elif kind in _FREE_TEXT:
        check = TEXT
    elif kind[0].islower():
        check = STRING
    elif content_ref is not None:
        check = REPEAT
    elif kind in ("BackboneElement", "Element"):
        check = BACKBONE
    else:
        check = OBJECT
    pattern = REGEX.get(kind) if check == STRING else None
    return Child(key, minimum, many, kind, content_ref, check, pattern)


def _index() -> tuple[dict[tuple[str, str], dict[str, Child]], dict[tuple[str, str], list[str]]]:
    children: dict[tuple[str, str], dict[str, Child]] = {}
    required: dict[tuple[str, str], list[str]] = {}
    for type_name, elements in SPEC["elements"].items():
        for key, (minimum, maximum, types, content_ref) in elements.items():
            parent, _, name = key.rpartition(".")
            slot = children.setdefault((type_name, parent), {})
            many = maximum != "1"
            if name.endswith("[x]"):
                base = name[:-3]
                for variant in types:
                    json_name = base + variant[0].upper() + variant[1:]
                    kind = _ALIASES.get(variant, variant)
                    slot[json_name] = _child(key, minimum, many, kind, None)
            else:
                kind = _ALIASES.get(types[0], types[0]) if types else "BackboneElement"
                slot[name] = _child(key, minimum, many, kind, content_ref)
            if minimum > 0:
                required.setdefault((type_name, parent), []).append(name)
    return children, required


CHILDREN, REQUIRED = _index()
RESOURCE_TYPES = frozenset(SPEC["served"]) | frozenset(SPEC["also"])


def validate(resource: Any, *, path: str = "") -> list[Issue]:
    """Every structural problem of ``resource`` (empty: valid)."""
    issues: list[Issue] = []
    _resource(resource, path, issues)
    return issues


def _resource(value: Any, path: str, issues: list[Issue]) -> None:
    if not isinstance(value, dict):
        issues.append(Issue(path or "$", "a resource is a JSON object"))
        return
    type_name = value.get("resourceType")
    if not isinstance(type_name, str) or type_name not in RESOURCE_TYPES:
        issues.append(Issue(path or "$", f"resource type {type_name!r} is not supported here"))
        return
    _object(value, type_name, "", path or type_name, issues, root=True)


def _object(
    value: dict[str, Any], type_name: str, prefix: str, path: str, issues: list[Issue],
    *, root: bool = False,
) -> None:  # fmt: skip
    slot = CHILDREN.get((type_name, prefix))
    if slot is None:
        issues.append(Issue(path, f"no definition for {type_name}.{prefix}"))
        return
    if not value:
        issues.append(Issue(path, "empty objects are not allowed"))
    for key, item in value.items():
        child = slot.get(key)
        if child is None:
            if root and key == "resourceType":
                continue
            if key.startswith("_"):
                base = slot.get(key[1:])
                if base is None or base.check in (OBJECT, BACKBONE, REPEAT, RESOURCE):
                    issues.append(Issue(f"{path}.{key}", "unknown element"))
                elif not isinstance(item, dict | list):
                    issues.append(Issue(f"{path}.{key}", "primitive extensions are objects"))
                continue
            issues.append(Issue(f"{path}.{key}", "unknown element"))
            continue
        if type(item) is list:
            if not child.many:
                issues.append(Issue(f"{path}.{key}", "a single value, not an array"))
                continue
            if not item:
                issues.append(Issue(f"{path}.{key}", "empty arrays are not allowed"))
            for position, element in enumerate(item):
                _value(element, child, type_name, path, key, position, issues)
        elif child.many:
            issues.append(Issue(f"{path}.{key}", "an array is required"))
        else:
            _value(item, child, type_name, path, key, -1, issues)
    for name in REQUIRED.get((type_name, prefix), ()):
        if name.endswith("[x]"):
            stem = name[:-3]
            if not any(
                k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper() for k in value
            ):
                issues.append(Issue(f"{path}.{name}", "required"))
        elif name not in value:
            issues.append(Issue(f"{path}.{name}", "required"))


def _where(path: str, key: str, position: int) -> str:
    return f"{path}.{key}[{position}]" if position >= 0 else f"{path}.{key}"


def _value(
    item: Any, child: Child, type_name: str, path: str, key: str, position: int,
    issues: list[Issue],
) -> None:  # fmt: skip
    check = child.check
    if check == STRING:
        if type(item) is not str or not item.strip():
            issues.append(
                Issue(_where(path, key, position), f"a non-empty JSON string ({child.kind})")
            )
        elif child.pattern is not None and not child.pattern.fullmatch(item):
            issues.append(
                Issue(_where(path, key, position), f"not a valid {child.kind}: {item[:40]!r}")
            )
        return
    if check in (OBJECT, BACKBONE, REPEAT):
        if type(item) is not dict:
            issues.append(Issue(_where(path, key, position), f"a {child.kind} is a JSON object"))
            return
        where = _where(path, key, position)
        if check == OBJECT:
            _object(item, child.kind, "", where, issues)
        elif check == BACKBONE:
            _object(item, type_name, child.key, where, issues)
        else:
            _object(item, type_name, child.content_ref or "", where, issues)
        return
    if check == TEXT:
        if type(item) is not str or not item.strip():
            issues.append(
                Issue(_where(path, key, position), f"a non-empty JSON string ({child.kind})")
            )
        return
    if check == BOOLEAN:
        if type(item) is not bool:
            issues.append(Issue(_where(path, key, position), "true or false"))
        return
    if check == NUMBER:
        kind = child.kind
        if type(item) is bool or not isinstance(item, int | float | Decimal):
            issues.append(Issue(_where(path, key, position), f"a JSON number ({kind})"))
        elif kind != "decimal" and type(item) is not int:
            issues.append(Issue(_where(path, key, position), f"a whole number ({kind})"))
        elif (kind == "positiveInt" and item < 1) or (kind == "unsignedInt" and item < 0):
            issues.append(Issue(_where(path, key, position), f"out of range for {kind}"))
        return
    _resource(item, _where(path, key, position), issues)
