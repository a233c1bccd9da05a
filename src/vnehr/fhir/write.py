"""Writing through FHIR, for facility systems (``submission.write``).

- A transaction Bundle holding a visit (an Encounter of a Patient with the personal ID) becomes
  national tables (``intake``) and goes through the XML intake itself: the same checks, storage,
  idempotency, versions, receipt and outbox. Its other entries are stored as sent.
- Any other resource is stored as sent (validated against the R4 definitions), versioned, with
  conditional create on identifiers (``If-None-Exist: identifier=system|value``).
All of one request commits together or not at all; the answer is given after the commit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, identity, records, submissions
from vnehr.fhir import intake, mapping
from vnehr.fhir.errors import UnknownResource
from vnehr.fhir.models import StoredIdentifier, StoredResource
from vnehr.fhir.store import canonical_reference, number
from vnehr.fhir.stored import current
from vnehr.fhir.validate import Issue, validate
from vnehr.kit.auth import Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.errors import VnehrError

Resource = dict[str, Any]
#: Types a facility may store as sent (a visit's own resources go through intake instead).
WRITABLE = frozenset(
    {
        "Patient", "Encounter", "Condition", "Observation", "MedicationRequest", "Procedure",
        "DiagnosticReport", "Organization", "Practitioner", "Location", "DocumentReference",
        "Consent", "AuditEvent", "Provenance", "AllergyIntolerance",
    }
)  # fmt: skip


class Invalid(VnehrError):
    """The resource or Bundle breaks the R4 definitions; ``problems`` lists where."""

    status_code = 422
    code = "FHIR-0011"

    def __init__(self, problems: list[Issue], **params: Any) -> None:
        super().__init__(reason=f"{len(problems)} structural errors", **params)
        self.problems = problems


class VisitRejected(VnehrError):
    status_code = 422
    code = "FHIR-0012"

    def __init__(self, receipt: dict[str, Any]) -> None:
        issues = [i for v in receipt["visits"] for i in v["issues"] if i["severity"] == "error"]
        super().__init__(count=len(issues))
        self.receipt = receipt
        self.issues = issues


class Unsupported(VnehrError):
    status_code = 405
    code = "FHIR-0013"


class NotTheWriter(VnehrError):
    status_code = 403
    code = "FHIR-0014"


def require_writer(subject: Subject) -> str:
    submissions.require_sender(subject)
    return subject.facility_code or ""


def check(resource: Any) -> None:
    problems = validate(resource)
    if problems:
        raise Invalid(problems)


@dataclass(frozen=True, slots=True)
class Written:
    resource: Resource
    created: bool  # False: an existing resource matched the conditional create


# ------------------------------------------------------------------ stored resources


#: The references whose record (``subject``, ``patient``) and visit (``encounter``) a resource
#: kept as sent is judged by.
_JUDGED = ("subject", "patient", "encounter")


def _canonical(resource: Resource, base: str) -> Resource:
    """The references access is judged by, when they point at this server's resources, as
    ``Type/id`` (``canonical_reference``): an absolute or versioned reference to a visit is
    that visit, and the sharing rules find it (D35); another server's is kept as sent."""
    out = dict(resource)
    for key in _JUDGED:
        element = out.get(key)
        if isinstance(element, dict) and isinstance(element.get("reference"), str):
            out[key] = {**element, "reference": canonical_reference(element["reference"], base)}
    return out


def _identifiers(resource: Resource) -> Iterable[tuple[str, str]]:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("value"):
            yield str(identifier.get("system") or ""), str(identifier["value"])[:200]


_CONDITION = re.compile(r"^identifier=(?:(?P<system>[^|]*)\|)?(?P<value>.+)$")


async def _find(
    session: AsyncSession, type_: str, condition: str, facility_code: str
) -> StoredResource | None:
    """The current stored resource matching ``identifier=[system|]value`` written by this
    facility (conditional create looks at what the caller may see)."""
    found = _CONDITION.match(condition.strip())
    if found is None:
        raise Unsupported(method="If-None-Exist other than identifier=system|value", type=type_)
    stmt = select(StoredIdentifier.resource_id).where(
        StoredIdentifier.resource_type == type_,
        StoredIdentifier.value == found["value"],
        StoredIdentifier.facility_code == facility_code,
    )
    if found["system"] is not None:
        stmt = stmt.where(StoredIdentifier.system == found["system"])
    resource_id = (await session.scalars(stmt)).first()
    if resource_id is None:
        return None
    return await current(session, type_, resource_id)


async def _person_of(session: AsyncSession, resource: Resource) -> int | None:
    """The person a resource is about, when it points at one of our Patients."""
    for key in ("subject", "patient"):
        reference = str((resource.get(key) or {}).get("reference") or "")
        person_id = number(reference[8:]) if reference.startswith("Patient/") else None
        if person_id is not None and await identity.persons(session, [person_id]):
            return person_id
    if resource.get("resourceType") == "Patient":
        personal_id = intake.personal_id_of(resource)
        if personal_id:
            return await identity.person_id_of(session, personal_id)
    return None


async def store(
    session: AsyncSession,
    subject: Subject,
    resource: Resource,
    *,
    resource_id: str | None = None,
    planned_id: str | None = None,
    if_none_exist: str | None = None,
    base: str,
) -> Written:
    """Create (new id, or ``planned_id``: the id a transaction gave the entry, which its other
    entries already point at) or update (``resource_id``) a resource kept as sent, its references
    to this server's resources (``base``: its FHIR base) made relative and unversioned
    (``_canonical``). A facility still onboarding writes in test mode: kept for it, in no
    citizen's record (D67)."""
    code, test_mode = await submissions.admitted(session, subject)
    type_ = str(resource.get("resourceType"))
    if type_ not in WRITABLE:
        raise Unsupported(method="create and update", type=type_)
    if if_none_exist:
        existing = await _find(session, type_, if_none_exist, code)
        if existing is not None:
            return Written(existing.body, created=False)
    previous = await current(session, type_, resource_id) if resource_id else None
    if previous is not None and previous.facility_code != code:
        raise NotTheWriter(type=type_, id=resource_id)
    if resource_id is not None and previous is None and _looks_derived(resource_id):
        raise UnknownResource(type=type_, id=resource_id)  # visit data changes through intake
    new_id = resource_id or planned_id or uuid.uuid4().hex
    version = (previous.version + 1) if previous else 1
    now = utcnow()
    body = {
        **_canonical(resource, base),
        "id": new_id,
        "meta": {
            **(resource.get("meta") or {}),
            "versionId": str(version),
            "lastUpdated": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    }
    check(body)
    if previous is not None:
        await session.execute(
            update(StoredResource).where(StoredResource.id == previous.id).values(current=False)
        )
        await session.execute(
            delete(StoredIdentifier).where(
                StoredIdentifier.resource_type == type_, StoredIdentifier.resource_id == new_id
            )
        )
    person_id = None if test_mode else await _person_of(session, body)
    session.add(
        StoredResource(
            resource_type=type_,
            resource_id=new_id,
            version=version,
            current=True,
            facility_code=code,
            client_id=subject.id[:100],
            person_id=person_id,
            last_updated=now,
            body=body,
        )
    )
    session.add_all(
        StoredIdentifier(
            resource_type=type_, system=system[:300], value=value, resource_id=new_id,
            facility_code=code,
        )
        for system, value in _identifiers(body)
    )  # fmt: skip
    session.add(
        audit.audit_event(
            actor=subject.label,
            action="fhir.written",
            object_type=type_,
            object_id=f"{new_id}/_history/{version}",
            person_id=person_id,
        )
    )
    await session.flush()
    return Written(body, created=previous is None)


def _looks_derived(resource_id: str) -> bool:
    return resource_id.split("-", 1)[0].isdigit()


# ------------------------------------------------------------------ transactions


#: The order a transaction's entries are processed in (FHIR R4 http.html#trules).
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3}


def _rewrite(value: Any, targets: dict[str, str]) -> Any:
    """References to entries of the Bundle (by fullUrl) made to point at their new ids."""
    if isinstance(value, dict):
        out = {k: _rewrite(v, targets) for k, v in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference in targets:
            out["reference"] = targets[reference]
        return out
    if isinstance(value, list):
        return [_rewrite(v, targets) for v in value]
    return value


async def transaction(
    session: AsyncSession,
    subject: Subject,
    bundle: Resource,
    options: submissions.IntakeOptions,
    *,
    base: str,
) -> Resource:
    """Process a transaction Bundle; returns the transaction-response Bundle. ``base`` is this
    server's FHIR base (``store``)."""
    code = require_writer(subject)
    check(bundle)
    if bundle.get("type") != "transaction":
        raise Unsupported(method="Bundle type transaction", type=f"Bundle ({bundle.get('type')})")
    entries: list[tuple[str, Resource, Resource]] = []
    for position, entry in enumerate(bundle.get("entry") or []):
        request = entry.get("request") or {}
        resource = entry.get("resource")
        if request.get("method") not in ("POST", "PUT") or not isinstance(resource, dict):
            raise Unsupported(method="POST and PUT entries", type="Bundle.entry")
        entries.append((entry.get("fullUrl") or f"urn:entry:{position}", resource, request))
    visit = intake.find_visit([(url, resource) for url, resource, _ in entries])
    targets: dict[str, str] = {}
    responses: dict[str, Resource] = {}
    receipt: dict[str, Any] | None = None
    if visit is not None:
        receipt, visit_targets = await _visit(session, subject, visit, code, options)
        targets.update(visit_targets)
        for url in [visit.patient_url, visit.encounter_url, *visit.members]:
            if url in visit_targets:  # the others are stored as sent, below
                responses[url] = {"status": "201 Created", "location": visit_targets[url]}
    # FHIR R4 transaction rules (http.html#trules): conditional creates are resolved first,
    # against what was stored before this Bundle; then every entry gets its id (the one found,
    # the PUT's, or a new one that its create will take); only then are references rewritten,
    # so an entry may point at any other whatever their order.
    found: dict[str, StoredResource] = {}
    for url, resource, request in entries:
        condition = request.get("ifNoneExist")
        if url in responses or request["method"] != "POST" or not condition:
            continue
        existing = await _find(session, str(resource.get("resourceType")), condition, code)
        if existing is not None:
            found[url] = existing
    planned: dict[str, str] = {}
    for url, resource, request in entries:
        if url in responses:
            continue
        type_ = str(resource.get("resourceType"))
        if url in found:
            planned[url] = found[url].resource_id
        elif request["method"] == "PUT":
            planned[url] = str(request.get("url") or "").split("?")[0].split("/")[-1]
        else:
            planned[url] = uuid.uuid4().hex
        targets[url] = f"{type_}/{planned[url]}"
    # stored in the rules' order (POST before PUT), Bundle order within a method (stable sort)
    for url, resource, request in sorted(entries, key=lambda e: _ORDER[e[2]["method"]]):
        if url in responses:
            continue
        if url in found:
            written = Written(found[url].body, created=False)
        elif request["method"] == "PUT":
            written = await store(
                session, subject, _rewrite(resource, targets), resource_id=planned[url], base=base
            )
        else:
            written = await store(
                session, subject, _rewrite(resource, targets), planned_id=planned[url], base=base
            )
        body = written.resource
        responses[url] = {
            "status": "201 Created" if written.created else "200 OK",
            "location": f"{body['resourceType']}/{body['id']}/_history/{body['meta']['versionId']}",
            "etag": f'W/"{body["meta"]["versionId"]}"',
            "lastModified": body["meta"]["lastUpdated"],
        }
    result: Resource = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "transaction-response",
        "entry": [{"response": responses[url]} for url, _, _ in entries],
    }
    if receipt is not None:
        result["identifier"] = {"system": mapping.SUBMISSION, "value": receipt["id"]}
        warnings = [i for v in receipt["visits"] for i in v["issues"]]
        if warnings:
            responses[visit.encounter_url]["outcome"] = outcome_of(warnings, "warning")  # type: ignore[union-attr]
    return result


async def _visit(
    session: AsyncSession,
    subject: Subject,
    visit: intake.VisitBundle,
    code: str,
    options: submissions.IntakeOptions,
) -> tuple[dict[str, Any], dict[str, str]]:
    tables = intake.tables_of(visit, code, options.limits)
    data = submissions.render_visit(code, tables, utcnow())
    receipt = await submissions.submit(session, subject, data, options)
    if receipt["status"] == "rejected":
        raise VisitRejected(receipt)
    visit_key = tables["XML1"][0].get("MA_LK", "")
    entry = await records.entry_by_key(session, code, visit_key)
    person_id = await identity.person_id_of(session, visit.personal_id)
    encounter = f"Encounter/{entry.id}" if entry is not None else f"Encounter/{visit_key}"
    targets = {visit.patient_url: f"Patient/{person_id}", visit.encounter_url: encounter}
    counters: dict[str, int] = {}
    prefix = {"Condition": "c", "MedicationRequest": "m", "Procedure": "p", "Observation": "o"}
    weight = intake.weight_of(visit.members.values())
    for url, member in visit.members.items():
        type_ = member["resourceType"]
        if type_ not in intake.TABLED:
            continue  # no national table holds it: stored as sent by the caller, not dropped
        if member is weight and entry is not None:
            targets[url] = f"Observation/{entry.id}-w"  # XML1 CAN_NANG, not an XML4 row
            continue
        counters[type_] = counters.get(type_, 0) + 1
        if entry is not None and type_ in prefix:
            targets[url] = f"{type_}/{entry.id}-{prefix[type_]}{counters[type_]}"
        else:
            targets[url] = encounter
    return receipt, targets


def outcome_of(issues: list[dict[str, Any]], severity: str | None = None) -> Resource:
    """Intake issues (table, row, field, code, texts) as an OperationOutcome."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity or issue["severity"],
                "code": "business-rule" if issue["severity"] == "error" else "informational",
                "details": {
                    "coding": [
                        {"system": f"{mapping.BASE}/CodeSystem/error-code", "code": issue["code"]}
                    ],
                    "text": issue["message"]["vi"],
                },
                "diagnostics": issue["message"]["en"],
                "expression": [
                    ".".join(
                        str(p)
                        for p in (issue.get("table"), issue.get("row"), issue.get("field"))
                        if p is not None
                    )
                ]
                if issue.get("table")
                else [],
            }
            for issue in issues
        ],
    }
