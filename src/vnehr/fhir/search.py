"""FHIR search over a set of resources: the parameters we support (names, types and paths from
the official R4 SearchParameter definitions), with token, date, reference and string semantics
as the specification states them, ``:missing``/``:not``/``:exact``/``:contains``/``:text``
modifiers, comma = OR, repeated parameter = AND, and ``_sort``.

The set searched is always one caller's compartment (a citizen's visits, or a facility's visits
of one patient), so matching runs in memory on resources mapped from the stored tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from vnehr.fhir.errors import BadSearch
from vnehr.fhir.spec import SPEC
from vnehr.kit.clock import VIETNAM
from vnehr.kit.text import fold

Kind = Literal["token", "date", "reference", "string"]
Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Param:
    """One search parameter: its official name, type and FHIRPath (as a dotted path here)."""

    name: str
    kind: Kind
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # for references: the resource types it may point to
    expression: str = ""  # the official expression, shown in the CapabilityStatement
    url: str = ""  # the official SearchParameter it comes from

    def values(self, resource: Resource) -> list[Any]:
        found: list[Any] = []
        for path in self.paths:
            found += list(_walk(resource, path.split(".")))
        return found


def _walk(value: Any, steps: list[str]) -> Iterator[Any]:
    if not steps:
        if isinstance(value, list):
            yield from value
        elif value is not None:
            yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _walk(item, steps)
        return
    if isinstance(value, dict):
        yield from _walk(value.get(steps[0]), steps[1:])


def _load() -> dict[str, list[Param]]:
    """The search parameters of the official R4 definitions (generated into data/r4.json by
    scripts/gen_fhir_spec.py) for the types we serve."""
    spec = SPEC["search"]
    return {
        type_: [
            Param(
                p["code"],
                p["type"],
                tuple(p["paths"]),
                tuple(p["target"]),
                p["expression"],
                p["url"],
            )
            for p in params
        ]
        for type_, params in spec.items()
    }


PARAMS: dict[str, list[Param]] = _load()
SUPPORTED = tuple(PARAMS)
#: Control parameters: understood here or by the router, never filters.
CONTROL = frozenset(
    {
        "_count", "_offset", "_sort", "_include", "_revinclude", "_format", "_pretty", "_total",
        "_summary",
    }
)  # fmt: skip


def param(type_: str, name: str) -> Param | None:
    return next((c for c in PARAMS.get(type_, []) if c.name == name), None)


# ------------------------------------------------------------------ values


def _tokens(value: Any) -> list[tuple[str | None, str, str]]:
    """(system, code, text) triples of a token-typed element."""
    if isinstance(value, bool):
        return [(None, "true" if value else "false", "")]
    if isinstance(value, str):
        return [(None, value, value)]
    if not isinstance(value, dict):
        return []
    if "coding" in value or "text" in value:  # CodeableConcept
        text = value.get("text") or ""
        found = [(c.get("system"), c.get("code") or "", text or c.get("display") or "")
                 for c in value.get("coding") or []]  # fmt: skip
        return found or [(None, "", text)]
    if "value" in value:  # Identifier
        return [(value.get("system"), str(value["value"]), value.get("value") or "")]
    if "code" in value:  # Coding
        return [(value.get("system"), value["code"], value.get("display") or "")]
    return []


def _match_token(param_value: str, modifier: str, element: Any) -> bool:
    triples = _tokens(element)
    if modifier == "text":
        wanted = fold(param_value)
        return any(wanted in fold(text) for _, _, text in triples)
    system: str | None
    if "|" in param_value:
        system, _, code = param_value.partition("|")
        for have_system, have_code, _ in triples:
            if system == "" and have_system is None and have_code == code:
                return True
            if system and have_system == system and (code == "" or have_code == code):
                return True
        return False
    return any(have_code == param_value for _, have_code, _ in triples)


_DATE = re.compile(
    r"^(?P<y>[0-9]{4})(-(?P<m>[0-9]{2})(-(?P<d>[0-9]{2})(T(?P<t>[0-9]{2}:[0-9]{2}"
    r"(:[0-9]{2}(\.[0-9]+)?)?)(?P<z>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)
_MIN = datetime(1, 1, 2, tzinfo=UTC)
_MAX = datetime(9999, 12, 30, tzinfo=UTC)


def date_range(text: str) -> tuple[datetime, datetime]:
    """A FHIR date/dateTime as the half-open range it stands for (by its precision); a value
    without a zone is in Vietnam time. One whose range ends after year 9999 is refused like
    an invalid one (Python's datetimes end there)."""
    found = _DATE.match(text.strip())
    if not found:
        raise BadSearch(reason=f"not a FHIR date: {text[:40]}")
    year, month, day = int(found["y"]), found["m"], found["d"]
    try:
        if month is None:
            start = datetime(year, 1, 1, tzinfo=VIETNAM)
            return start, datetime(year + 1, 1, 1, tzinfo=VIETNAM)
        if day is None:
            start = datetime(year, int(month), 1, tzinfo=VIETNAM)
            following = (start + timedelta(days=32)).replace(day=1)
            return start, following
        if found["t"] is None:
            first = date(year, int(month), int(day))
            start = datetime(first.year, first.month, first.day, tzinfo=VIETNAM)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=VIETNAM)
        step = timedelta(minutes=1) if len(found["t"]) == 5 else timedelta(seconds=1)
        if "." in found["t"]:
            step = timedelta(microseconds=1)
        return moment, moment + step
    except (ValueError, OverflowError) as exc:
        raise BadSearch(reason=f"not a FHIR date: {text[:40]}") from exc


def _element_range(element: Any) -> tuple[datetime, datetime] | None:
    if isinstance(element, str):
        try:
            return date_range(element)
        except BadSearch:
            return None
    if isinstance(element, dict) and ("start" in element or "end" in element):
        start = date_range(element["start"])[0] if element.get("start") else _MIN
        end = date_range(element["end"])[1] if element.get("end") else _MAX
        return start, end
    return None


_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def _match_date(param_value: str, element: Any) -> bool:
    prefix = param_value[:2] if param_value[:2] in _PREFIXES else "eq"
    text = param_value[2:] if param_value[:2] in _PREFIXES else param_value
    lo, hi = date_range(text)
    found = _element_range(element)
    if found is None:
        return False
    rlo, rhi = found
    inside = rlo >= lo and rhi <= hi
    overlaps = rlo < hi and rhi > lo
    return {
        "eq": inside,
        "ne": not inside,
        "gt": rhi > hi,
        "lt": rlo < lo,
        "ge": rhi > hi or inside,
        "le": rlo < lo or inside,
        "sa": rlo >= hi,
        "eb": rhi <= lo,
        "ap": overlaps,
    }[prefix]


def _match_reference(param_value: str, targets: tuple[str, ...], element: Any) -> bool:
    if not isinstance(element, dict):
        return False
    have = element.get("reference") or ""
    if not have and isinstance(element.get("identifier"), dict):
        return False
    wanted = param_value.rstrip("/")
    if "/" not in wanted:  # a bare id: the parameter's only target type
        return any(have == f"{t}/{wanted}" for t in targets)
    parts = wanted.split("/")
    if len(parts) > 2 and "_history" not in parts:  # an absolute URL: compare Type/id
        wanted = "/".join(parts[-2:])
    return have == wanted or have.split("/_history")[0] == wanted


def _strings(element: Any) -> list[str]:
    if isinstance(element, str):
        return [element]
    if isinstance(element, dict):  # HumanName, Address: every part
        found: list[str] = []
        for key in ("text", "family", "given", "prefix", "suffix", "line", "city", "district"):
            value = element.get(key)
            found += value if isinstance(value, list) else [value] if value else []
        return found
    return []


def _match_string(param_value: str, modifier: str, element: Any) -> bool:
    wanted = fold(param_value)
    for text in _strings(element):
        if modifier == "exact":
            if text == param_value:
                return True
        elif modifier == "contains":
            if wanted in fold(text):
                return True
        elif any(word.startswith(wanted) for word in [fold(text), *fold(text).split()]):
            return True
    return False


# ------------------------------------------------------------------ filtering and sorting


@dataclass(frozen=True, slots=True)
class Criterion:
    param: Param
    modifier: str
    values: tuple[str, ...]  # OR-ed

    def test(self, resource: Resource) -> bool:
        elements = self.param.values(resource)
        if self.modifier == "missing":
            missing = self.values[0] == "true"
            return (not elements) == missing
        if self.modifier == "not":  # token: no element matches any value
            return not any(_match_token(v, "", e) for v in self.values for e in elements)
        return any(self._one(value, element) for value in self.values for element in elements)

    def _one(self, value: str, element: Any) -> bool:
        kind = self.param.kind
        if kind == "token":
            return _match_token(value, self.modifier, element)
        if kind == "date":
            return _match_date(value, element)
        if kind == "reference":
            return _match_reference(value, self.param.targets, element)
        return _match_string(value, self.modifier, element)


_MODIFIERS: Mapping[Kind, frozenset[str]] = {
    "token": frozenset({"", "missing", "not", "text"}),
    "date": frozenset({"", "missing"}),
    "reference": frozenset({"", "missing"}),
    "string": frozenset({"", "missing", "exact", "contains"}),
}


def criteria(type_: str, query: Iterable[tuple[str, str]]) -> tuple[list[Criterion], list[str]]:
    """The filters of a query string, and the names of parameters we do not support (which
    the caller reports and otherwise ignores, as the specification's lenient handling says)."""
    found: list[Criterion] = []
    unknown: list[str] = []
    for key, raw in query:
        if key in CONTROL:
            continue
        name, _, modifier = key.partition(":")
        definition = param(type_, name)
        if definition is None or "." in name:
            unknown.append(key)
            continue
        if modifier not in _MODIFIERS[definition.kind]:
            if definition.kind == "reference" and modifier in definition.targets:
                modifier = ""  # subject:Patient=123 is subject=Patient/123
                raw = ",".join(
                    v if "/" in v else f"{key.partition(':')[2]}/{v}" for v in raw.split(",")
                )
            else:
                raise BadSearch(reason=f"modifier :{modifier} is not supported on {name}")
        if modifier == "missing" and raw not in ("true", "false"):
            raise BadSearch(reason=f"{key} takes true or false")
        values = tuple(v for v in (part.strip() for part in _split(raw)) if v)
        if not values:
            continue
        if definition.kind == "date":
            for value in values:
                date_range(value[2:] if value[:2] in _PREFIXES else value)  # validates
        found.append(Criterion(definition, modifier, values))
    return found, unknown


def _split(raw: str) -> list[str]:
    """Comma-separated values; ``\\,`` is a literal comma."""
    return [part.replace("\\,", ",") for part in re.split(r"(?<!\\),", raw)]


def sort_key(type_: str, spec: str) -> Callable[[Resource], Any]:
    """A key function for ``_sort`` (``date``, ``-date``, ``_lastUpdated``...)."""
    keys: list[tuple[Param, bool]] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        descending = part.startswith("-")
        definition = param(type_, part.lstrip("-"))
        if definition is None:
            raise BadSearch(reason=f"cannot sort {type_} by {part}")
        keys.append((definition, descending))

    def key(resource: Resource) -> Any:
        out = []
        for definition, descending in keys:
            values = definition.values(resource)
            value: Any = None
            if values:
                first = values[0]
                if definition.kind == "date":
                    found = _element_range(first)
                    value = found[0].timestamp() if found else None
                elif definition.kind == "string":
                    value = fold(" ".join(_strings(first)))
                else:
                    tokens = _tokens(first)
                    value = tokens[0][1] if tokens else str(first)
            out.append(_Ordered(value, descending))
        return tuple(out)

    return key


@dataclass(frozen=True, slots=True)
class _Ordered:
    """A sort value: missing values last, either direction."""

    value: Any
    descending: bool

    def __lt__(self, other: _Ordered) -> bool:
        if self.value is None or other.value is None:
            return self.value is not None and other.value is None
        if self.descending:
            return bool(self.value > other.value)
        return bool(self.value < other.value)
