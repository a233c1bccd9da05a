"""Writing through FHIR, for facility systems (``submission.write``).

- A transaction Bundle holding a visit (an Encounter of a Patient with the personal ID) becomes
  national tables (``intake``) and goes through the XML intake itself: the same checks, storage,
  idempotency, versions, receipt and outbox. Its other entries are stored as sent.
- Any other resource is stored as sent (validated against the R4 definitions), versioned, with
  conditional create on identifiers (``If-None-Exist: identifier=system|value``, comma-separated
  alternatives; several matches are refused with 412).
All of one request commits together or not at all; the answer is given after the commit.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, identity, records, submissions
from vnehr.fhir import intake, mapping
from vnehr.fhir.errors import UnknownResource
from vnehr.fhir.models import StoredIdentifier, StoredResource
from vnehr.fhir.spec import SPEC
from vnehr.fhir.store import Scope, canonical_reference, number, visit_person
from vnehr.fhir.stored import current, keeps_patient
from vnehr.fhir.validate import Issue, validate
from vnehr.kit.auth import Subject
from vnehr.kit.clock import utcnow
from vnehr.kit.db import TURNS_FHIR, take_turns
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
#: Writable types whose create may be conditional (``If-None-Exist: identifier=...``): those
#: with an ``identifier`` to be found by. A condition on the others (AuditEvent, Provenance)
#: could never match, so it is refused (``NoCondition``) rather than ignored (a second create).
CONDITIONAL = frozenset(t for t in WRITABLE if "identifier" in SPEC["elements"].get(t, {}))


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


class NotThisPatientsVisit(VnehrError):
    """A resource names as its visit (``where``) one that is not a visit of its own patient
    that the writer may read: another person's, another facility's the writer does not read,
    or none at all. One answer for all of them, so nobody learns that a visit exists."""

    status_code = 422
    code = "FHIR-0015"


class NotYourPatient(VnehrError):
    """A resource is about one of our persons (``subject``/``patient`` naming ``Patient/{id}``)
    who is not a patient of the writer's facility: it sent no visit of theirs and keeps no
    Patient with their personal ID (nor writes one in this transaction). One answer whether the
    person exists or not, so that nobody learns which ids do (D32)."""

    status_code = 422
    code = "FHIR-0021"


class TwoForOneCondition(VnehrError):
    """A transaction would leave two resources that one of its conditional creates matches:
    an entry written without that ``ifNoneExist`` carries the identifier it looks for."""

    status_code = 422
    code = "FHIR-0016"


class SeveralMatches(VnehrError):
    """A conditional create's criteria find more than one stored resource (R4 http.html#ccreate:
    "not selective enough", 412 Precondition Failed); none of them is taken."""

    status_code = 412
    code = "FHIR-0018"


class NotTheHolder(VnehrError):
    """A Patient names a personal ID whose holder has signed in with VNeID, with a name or a
    birth date that is not what VNeID confirmed of them: most likely someone else's data under
    a mistyped ID. Refused whole, so that none of it reaches the holder's record (D150, as
    amended for FHIR). ``where``: the elements that differ, as the writer sent them (never what
    VNeID has); ``elements``: their names; ``person_id``: the holder, for the audit trace."""

    status_code = 422
    code = "FHIR-0019"

    def __init__(self, where: list[str], elements: list[str], person_id: int) -> None:
        super().__init__(element=", ".join(where))
        self.where = where
        self.elements = elements
        self.person_id = person_id


class NoCondition(VnehrError):
    """A conditional create of a type without an identifier: nothing it could look for."""

    status_code = 400
    code = "FHIR-0020"


class SameFullUrl(VnehrError):
    """Two entries of a transaction have one fullUrl (R4 bdl-7: a fullUrl names one entry)."""

    status_code = 422
    code = "FHIR-0017"


class PatientUnnamed(VnehrError):
    """A Patient names a personal ID without a name or a birthDate (``element``: where, as
    sent). It would stand for the ID's holder, and make its writer's facility theirs (D181),
    on the ID alone: the XML intake asks HO_TEN and NGAY_SINH of every visit, and compares
    them with what VNeID confirmed (D150, D152). Refused whoever holds the ID, or nobody."""

    status_code = 422
    code = "FHIR-0022"


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


#: The longest identifier system and value ``StoredIdentifier`` keeps (its columns): a longer
#: one is refused, not cut, so that a conditional create finds what it stored (D126).
SYSTEM_LIMIT, VALUE_LIMIT = 300, 200


def _identifiers(resource: Resource) -> Iterable[tuple[str, str]]:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("value"):
            yield str(identifier.get("system") or ""), str(identifier["value"])


def _check_identifiers(resource: Resource, path: str) -> None:
    """Refuse (``Invalid``) an identifier longer than ``StoredIdentifier`` keeps."""
    problems = []
    for position, identifier in enumerate(resource.get("identifier") or []):
        if not isinstance(identifier, dict):
            continue
        for key, limit in (("system", SYSTEM_LIMIT), ("value", VALUE_LIMIT)):
            text = str(identifier.get(key) or "")
            if len(text) > limit:
                problems.append(
                    Issue(
                        f"{path}.identifier[{position}].{key}",
                        f"{len(text)} characters; an identifier {key} is kept up to {limit}",
                    )
                )
    if problems:
        raise Invalid(problems)


#: ``[Type?]identifier=[system|]value[,...]``, the query part of a search URL (R4
#: http.html#ccreate)
_CONDITION = re.compile(r"^(?:(?P<type>[A-Za-z]+)\?)?identifier=(?P<token>[^&]+)$")
_CONDITION_FORM = (
    "a condition (If-None-Exist, ifNoneExist) [Type?]identifier=[system|]value[,[system|]value]"
)
#: R4 search escaping: ``\\|``, ``\\,``, ``\\$`` and ``\\\\`` are those characters; a lone ``,``
#: separates alternatives, a lone ``|`` divides the system from the value.
_TOKEN_PART = re.compile(r"\\[\\|,$]|[|,]|[^\\|,]+|\\")
#: One identifier a condition looks for: (system, or None for any system; value).
Criterion = tuple[str | None, str]
#: What a condition looks for: any of these identifiers (FHIR search: comma is OR).
Criteria = frozenset[Criterion]


def _criteria(type_: str, condition: str, where: str) -> Criteria:
    """The alternatives (system or None, value) of a conditional create
    ``[Type?]identifier=[system|]value[,[system|]value...]`` (``where``: the element or header it
    came in, for the message). The condition is a URL query: percent-decoded, split into
    alternatives on each ``,`` and each of them into system and value on its first ``|``, where
    R4 search escaping does not make them part of a value (``\\,``, ``\\|``); the escapes are
    undone. An empty value (``identifier=a,``) is refused, and so is any condition on a type
    without an identifier (``NoCondition``)."""
    if type_ in WRITABLE and type_ not in CONDITIONAL:  # (another type is refused by store)
        raise NoCondition(type=type_, where=where)
    found = _CONDITION.match(condition.strip())
    if found is None:
        raise Unsupported(method=_CONDITION_FORM, type=type_)
    if found["type"] is not None and found["type"] != type_:
        raise Invalid([Issue(where, f"searches {found['type']}, but the resource is a {type_}")])
    alternatives: list[list[str]] = [[""]]
    for piece in _TOKEN_PART.findall(unquote(found["token"])):
        parts = alternatives[-1]
        if piece == ",":
            alternatives.append([""])
        elif piece == "|" and len(parts) == 1:
            parts.append("")
        else:
            parts[-1] += piece[1] if len(piece) == 2 and piece[0] == "\\" else piece
    criteria: set[Criterion] = set()
    for parts in alternatives:
        system, value = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        if not value:
            raise Unsupported(method=_CONDITION_FORM, type=type_)
        criteria.add((system, value))
    return frozenset(criteria)


def _shown_one(criterion: Criterion) -> str:
    system, value = criterion
    return value if system is None else f"{system}|{value}"


def _shown(criteria: Criteria) -> str:
    """The criteria as a search value, for messages."""
    return ",".join(sorted(_shown_one(c) for c in criteria))


async def _find(
    session: AsyncSession, type_: str, criteria: Criteria, facility_code: str, where: str
) -> StoredResource | None:
    """The current stored resource matching any of ``criteria`` (``_criteria``) written by this
    facility (conditional create looks at what the caller may see); ``SeveralMatches`` when they
    find more than one (``where``: the element or header the condition came in)."""
    matches = or_(
        *(
            and_(StoredIdentifier.value == value, StoredIdentifier.system == system)
            if system is not None
            else StoredIdentifier.value == value
            for system, value in sorted(criteria, key=_shown_one)
        )
    )
    stmt = (
        select(StoredIdentifier.resource_id)
        .where(
            StoredIdentifier.resource_type == type_,
            StoredIdentifier.facility_code == facility_code,
            matches,
        )
        .distinct()
    )
    resource_ids = sorted(await session.scalars(stmt))
    if len(resource_ids) > 1:
        raise SeveralMatches(
            where=where,
            type=type_,
            condition=_shown(criteria),
            count=len(resource_ids),
            ids=", ".join(f"{type_}/{i}" for i in resource_ids[:5])
            + (", ..." if len(resource_ids) > 5 else ""),
        )
    if not resource_ids:
        return None
    return await current(session, type_, resource_ids[0])


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


#: What ``PatientMatch.differs`` names, as the Patient's elements.
_ELEMENTS = {"full_name": "name", "birth": "birthDate"}
#: The fields of XML1 the intake compares with VNeID (its warning SUB-0170), as the Patient's
#: elements they are made from (``intake.tables_of``).
_XML_ELEMENTS = {"HO_TEN": "name", "NGAY_SINH": "birthDate"}
#: The intake's warning that a visit is held out of the book of the person SO_CCCD names.
_HELD = "SUB-0170"


def _birth(patient: Resource) -> tuple[date | None, str | None]:
    """Patient.birthDate as (a day, or the year or month alone: "1985", "1985-03")."""
    born = str(patient.get("birthDate") or "")
    if len(born) < 10:
        return None, born or None
    try:
        return date.fromisoformat(born[:10]), None
    except ValueError:  # 1985-02-30 has the form of a date: nothing to compare
        return None, None


async def _check_holder(session: AsyncSession, patient: Resource, path: str) -> None:
    """Refuse (``NotTheHolder``) a Patient whose personal ID is held by someone who signed
    in with VNeID, when its name (the one HO_TEN takes) or birthDate is not what VNeID
    confirmed of them, compared as the intake compares a visit file's (D150). An element the
    Patient leaves out is not compared; a person not yet signed in has nothing confirmed."""
    personal_id = intake.personal_id_of(patient)
    if not personal_id:
        return
    found = await identity.confirmed_patient(session, personal_id)
    if found is None:
        return
    differs = differing(found, patient)
    if differs:
        raise NotTheHolder([f"{path}.{e}" for e in differs], differs, found.person_id)


def differing(found: identity.PatientMatch, patient: Resource) -> list[str]:
    """The elements of a Patient (name, birthDate) that are not what VNeID confirmed of the
    person its personal ID names, compared as the intake compares a visit (D150); an element
    the Patient leaves out is not compared, and nothing is while the person is pending."""
    name = intake.full_name_of(patient)
    return [_ELEMENTS[d] for d in found.differs(name, *_birth(patient)) if name or d != "full_name"]


def refusal_trace(subject: Subject, refused: NotTheHolder) -> audit.AuditEvent:
    """The audit row of a write refused as ``NotTheHolder``, written although nothing else of
    the request is: who tried which ID with which elements differing. It is about no one's
    record (like a visit held out of the book): the holder's person id is its object."""
    return audit.audit_event(
        actor=subject.label,
        action="patient.not_confirmed",
        object_type="person",
        object_id=str(refused.person_id),
        person_id=None,
        detail={"fields": refused.elements, "via": "fhir"},
    )


def _visits_named(resource: Resource) -> list[tuple[str, Any]]:
    """Where a resource names the visit it belongs to (FHIRPath, Reference): the encounter it
    was recorded in (every writable clinical type has ``encounter``), a document's
    ``context.encounter``, the encounter an Encounter is ``partOf``."""
    type_ = resource.get("resourceType")
    found: list[tuple[str, Any]] = []
    if resource.get("encounter") is not None:
        found.append((f"{type_}.encounter", resource["encounter"]))
    context = resource.get("context")
    if type_ == "DocumentReference" and isinstance(context, dict):
        for position, reference in enumerate(context.get("encounter") or []):
            found.append((f"{type_}.context.encounter[{position}]", reference))
    if type_ == "Encounter" and resource.get("partOf") is not None:
        found.append((f"{type_}.partOf", resource["partOf"]))
    return found


def _patient_named(resource: Resource, base: str) -> str | None:
    """The patient a resource is about, as a reference (``Patient/12`` for ours)."""
    for key in ("subject", "patient"):
        element = resource.get(key)
        if isinstance(element, dict) and isinstance(element.get("reference"), str):
            return canonical_reference(element["reference"], base)
    return None


class _Elsewhere:
    """An encounter this server cannot resolve (another server's, contained, by name or by
    another system's identifier): kept as sent; readers other than its writer and its patient
    do not see the resource (D98)."""


_ELSEWHERE = _Elsewhere()
#: An Encounter of this server, as ``canonical_reference`` writes it.
_ENCOUNTER = re.compile(r"Encounter/(?P<id>[A-Za-z0-9\-.]{1,64})")
#: A Patient of this server, as ``canonical_reference`` writes it.
_PATIENT = re.compile(r"Patient/(?P<id>[A-Za-z0-9\-.]{1,64})")


async def _as_person(
    session: AsyncSession, scope: Scope, patient: str | None, patients: Mapping[str, str]
) -> str | None:
    """A patient reference as the person it stands for: a Patient the writer keeps as sent
    (its HIS's own record of the citizen, found by the personal ID as ``_person_of`` finds
    it) is ``Patient/{person id}``; ``patients``: the Patients a transaction writes, so
    mapped. Another facility's kept Patient is its writer's alone; anything else is as it is."""
    if patient is None:
        return None
    if patient in patients:
        return patients[patient]
    kept = _PATIENT.fullmatch(patient)
    if kept is None or number(kept["id"]) is not None:
        return patient
    row = await current(session, "Patient", kept["id"])
    if row is None or row.facility_code != scope.facility_code:
        return patient
    person_id = await _person_of(session, row.body)
    return patient if person_id is None else f"Patient/{person_id}"


async def _patient_of_visit(
    session: AsyncSession, scope: Scope, entry: Any
) -> str | _Elsewhere | None:
    """The patient of one of this server's visits (its timeline row, None: no such visit), as
    ``_patient_of_encounter`` answers."""
    if entry is None:
        return None
    if entry.person_id is None:
        # a visit of a patient without a personal ID (blank SO_CCCD: a foreigner, a newborn):
        # no person to compare the subject with. Its own facility may name it, kept as sent
        # and hidden from other readers like any encounter that cannot be judged (D98);
        # to anyone else it is a visit they may not read.
        return _ELSEWHERE if entry.facility_code == scope.facility_code else None
    person_id = await visit_person(session, scope, entry.id)
    return None if person_id is None else f"Patient/{person_id}"


async def _patient_of_encounter(
    session: AsyncSession,
    scope: Scope,
    reference: Any,
    known: Mapping[str, str],
    *,
    test_mode: bool = False,
) -> str | _Elsewhere | None:
    """The patient (as a reference) of the encounter a Reference names, when it is one of this
    server's that the writer may read; None when it names one of ours that is not (or none);
    ``_ELSEWHERE`` when it is not this server's to judge. ``known``: the encounters this
    transaction writes, with their patients. ``test_mode``: the writer is onboarding, its
    visits are test visits (D67), with no person: it may name its own, by their visit key."""
    if not isinstance(reference, dict):
        return _ELSEWHERE
    target = reference.get("reference")
    identifier = reference.get("identifier")
    if isinstance(target, str):
        local = canonical_reference(target, scope.base)
        if local in known:
            return known[local]
        ours = _ENCOUNTER.fullmatch(local)
        if ours is None:
            return _ELSEWHERE
        id_ = ours["id"]
        visit_id = number(id_)
        if visit_id is not None:
            return await _patient_of_visit(session, scope, await records.entry(session, visit_id))
        row = await current(session, "Encounter", id_)
        if row is None or row.facility_code != scope.facility_code:
            return None  # an Encounter kept as sent is its writer's alone
        return _patient_named(row.body, scope.base) or ""
    if isinstance(identifier, dict) and identifier.get("system") == mapping.VISIT_KEY:
        facility_code, _, visit_key = str(identifier.get("value") or "").partition("/")
        entry = await records.entry_by_key(session, facility_code, visit_key)
        if entry is None and test_mode and facility_code == scope.facility_code:
            # a test visit has no timeline row; the current version is then a test one
            found = await records.current_version(session, facility_code, visit_key)
            return None if found is None else _ELSEWHERE
        return await _patient_of_visit(session, scope, entry)
    return _ELSEWHERE


async def _check_visits(
    session: AsyncSession,
    scope: Scope,
    body: Resource,
    *,
    path: str = "",
    known: Mapping[str, str] | None = None,
    patients: Mapping[str, str] | None = None,
    test_mode: bool = False,
) -> None:
    """Refuse a resource naming as its visit one of this server's encounters that is not of
    its own patient or that the writer may not read (``NotThisPatientsVisit``). ``path``: where
    the resource is (``Bundle.entry[3].resource``), for the message. Both patients are
    compared as the persons they stand for (``_as_person``; ``patients``: the Patients a
    transaction writes, with their persons)."""
    patients = patients or {}
    patient = await _as_person(session, scope, _patient_named(body, scope.base), patients)
    for where, reference in _visits_named(body):
        found = await _patient_of_encounter(
            session, scope, reference, known or {}, test_mode=test_mode
        )
        if isinstance(found, _Elsewhere):
            continue
        if found is not None:
            found = await _as_person(session, scope, found, patients)
        if found is None or found != patient:
            named = reference.get("reference") or (reference.get("identifier") or {}).get("value")
            shown = f"{path}.{where.split('.', 1)[1]}" if path else where
            raise NotThisPatientsVisit(where=shown, reference=str(named)[:100])


async def _check_own_patient(
    session: AsyncSession,
    code: str,
    body: Resource,
    *,
    path: str = "",
    patients: Mapping[str, str] | None = None,
) -> None:
    """Refuse (``NotYourPatient``) a resource about one of our persons, by their Patient id
    (``Patient/{person id}``, what puts it in their record), when the writer's facility does not
    have them as its own patient: it sent a visit now in their record, it keeps a Patient with
    their personal ID, or this transaction writes one (``patients``: its Patients, with the
    persons they stand for). The personal ID is what the XML intake asks for too; the
    sequential id alone is not. A Patient kept as sent is its writer's and in no one's record
    (D117): not judged here."""
    patients = patients or {}
    rewritten = [target.split("/", 1)[1] for target in patients]
    for key in ("subject", "patient"):
        element = body.get(key)
        reference = element.get("reference") if isinstance(element, dict) else None
        if not isinstance(reference, str) or not reference.startswith("Patient/"):
            continue
        person_id = number(reference[8:])
        if person_id is None:
            continue
        if (
            f"Patient/{person_id}" in patients.values()
            or await records.filed_a_visit_of(session, code, person_id)
            or await keeps_patient(session, code, person_id, rewritten)
        ):
            continue
        where = f"{path}.{key}" if path else f"{body.get('resourceType')}.{key}"
        raise NotYourPatient(where=where, reference=reference[:100])


async def store(
    session: AsyncSession,
    subject: Subject,
    resource: Resource,
    *,
    resource_id: str | None = None,
    planned_id: str | None = None,
    if_none_exist: str | None = None,
    base: str,
    path: str = "",
    known: Mapping[str, str] | None = None,
    patients: Mapping[str, str] | None = None,
) -> Written:
    """Create (new id, or ``planned_id``: the id a transaction gave the entry, which its other
    entries already point at) or update (``resource_id``) a resource kept as sent, its references
    to this server's resources (``base``: its FHIR base) made relative and unversioned
    (``_canonical``). The visit it names must be one of its own patient's that the writer may
    read (``_check_visits``; ``known``: the encounters a transaction writes, with their
    patients; ``patients``: its Patients, with their persons; ``path``: where the resource is
    in it). A resource about one of our persons comes from a facility that has them as its own
    patient (``_check_own_patient``). A facility still onboarding writes in test mode: kept for
    it, in no citizen's record (D67)."""
    code, test_mode = await submissions.admitted(session, subject)
    type_ = str(resource.get("resourceType"))
    if type_ not in WRITABLE:
        raise Unsupported(method="create and update", type=type_)
    # a facility's writes take turns (PostgreSQL; one lock, so no two writers wait on each
    # other's): a conditional create sent twice at once made two resources (and every later
    # one then matched several, 412), an update of one id sent twice met its version key (500)
    await take_turns(session, TURNS_FHIR, code)
    if if_none_exist:
        criteria = _criteria(type_, if_none_exist, "If-None-Exist")
        existing = await _find(session, type_, criteria, code, "If-None-Exist")
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
    _check_identifiers(body, path or type_)
    if type_ == "Patient" and intake.personal_id_of(body) and intake.lacking(body):
        # first, and in test mode too: it tells nothing of the holder (D152's check does)
        where = path or type_
        raise PatientUnnamed(element=", ".join(f"{where}.{e}" for e in intake.lacking(body)))
    if type_ == "Patient" and not test_mode:  # a test write is in no one's record (D67)
        await _check_holder(session, body, path or type_)
    if not test_mode:  # a test write is in no one's record (D67)
        await _check_own_patient(session, code, body, path=path, patients=patients)
    scope = Scope(subject, facility_code=code, base=base)
    await _check_visits(
        session, scope, body, path=path, known=known, patients=patients, test_mode=test_mode
    )
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
            resource_type=type_, system=system, value=value, resource_id=new_id,
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


def _references(value: Any) -> set[str]:
    """Every ``reference`` string in a JSON value."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            found.add(value["reference"])
        for item in value.values():
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


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
    # one facility's FHIR writes one at a time (``store``): its conditional creates and
    # updates of one id sent twice at once are found by the second, not written twice
    await take_turns(session, TURNS_FHIR, code)
    if bundle.get("type") != "transaction":
        raise Unsupported(method="Bundle type transaction", type=f"Bundle ({bundle.get('type')})")
    sent = bundle.get("entry") or []
    # every entry is known by its fullUrl, one per entry (bdl-7); one without gets a key that is
    # no fullUrl and no reference of the Bundle, so it is taken for no other entry and nothing
    # points at it
    taken = {str(e.get("fullUrl")) for e in sent if e.get("fullUrl")} | _references(sent)
    entries: list[tuple[str, Resource, Resource]] = []
    positions: dict[str, int] = {}
    for position, entry in enumerate(sent):
        request = entry.get("request") or {}
        resource = entry.get("resource")
        if request.get("method") not in ("POST", "PUT") or not isinstance(resource, dict):
            raise Unsupported(method="POST and PUT entries", type="Bundle.entry")
        url = entry.get("fullUrl")
        if url in positions:
            raise SameFullUrl(
                first=f"Bundle.entry[{positions[url]}]", other=f"Bundle.entry[{position}]", url=url
            )
        if not url:
            url = f"urn:entry:{position}"
            while url in taken:
                url += "'"
        entries.append((url, resource, request))
        positions[url] = position
    visit = intake.find_visit([(url, resource) for url, resource, _ in entries])
    targets: dict[str, str] = {}
    responses: dict[str, Resource] = {}
    receipt: dict[str, Any] | None = None
    # the persons its Patients name are matched one by one (the visit's through the intake,
    # then each Patient kept as sent compared with what VNeID confirmed of the holder): their
    # writer's locks first, all at once (after the visit's own, in the intake's order), so
    # that two transactions naming them in other orders take turns (D200)
    named = {
        personal_id
        for _, resource, _ in entries
        if resource.get("resourceType") == "Patient"
        and (personal_id := intake.personal_id_of(resource))
    }
    # (one Patient is matched in one step; in test mode nobody is matched, D67)
    if visit is None and len(named) > 1 and not (await submissions.admitted(session, subject))[1]:
        await identity.lock_patients(session, named)
    if visit is not None:
        where = f"Bundle.entry[{positions[visit.patient_url]}].resource"
        receipt, visit_targets = await _visit(
            session, subject, visit, code, options, where, persons=named
        )
        targets.update(visit_targets)
        for url in [visit.patient_url, visit.encounter_url, *visit.members]:
            if url in visit_targets:  # the others are stored as sent, below
                responses[url] = {"status": "201 Created", "location": visit_targets[url]}
    # FHIR R4 transaction rules (http.html#trules): conditional creates are resolved first,
    # against what was stored before this Bundle; then every entry gets its id (the one found,
    # the PUT's, or a new one that its create will take); only then are references rewritten,
    # so an entry may point at any other whatever their order.
    # A transaction is processed as one (http.html#trules): two entries with the same
    # conditional create are one resource, made by the first (in Bundle order) and found by
    # the others, as if the first had been stored before them.
    found: dict[str, StoredResource] = {}
    same_as: dict[str, str] = {}  # entry -> the earlier entry with the same condition
    first_with: dict[tuple[str, Criteria], str] = {}
    for url, resource, request in entries:
        condition = request.get("ifNoneExist")
        if url in responses or request["method"] != "POST" or not condition:
            continue
        type_ = str(resource.get("resourceType"))
        where = f"Bundle.entry[{positions[url]}].request.ifNoneExist"
        criteria = _criteria(type_, condition, where)
        if (type_, criteria) in first_with:
            same_as[url] = first_with[type_, criteria]
            continue
        first_with[type_, criteria] = url
        existing = await _find(session, type_, criteria, code, f"Bundle.entry[{positions[url]}]")
        if existing is not None:
            found[url] = existing
    planned: dict[str, str] = {}
    for url, resource, request in entries:
        if url in responses:
            continue
        type_ = str(resource.get("resourceType"))
        if url in same_as:
            planned[url] = planned[same_as[url]]
        elif url in found:
            planned[url] = found[url].resource_id
        elif request["method"] == "PUT":
            planned[url] = str(request.get("url") or "").split("?")[0].split("/")[-1]
        else:
            planned[url] = uuid.uuid4().hex
        targets[url] = f"{type_}/{planned[url]}"
    # a condition met by an entry written without it is refused, not merged, whatever the
    # entries' order (R4: the outcome does not depend on it; HAPI refuses too, HAPI-0542)
    _one_per_condition(entries, positions, first_with, planned, found, same_as)
    # the encounters this Bundle writes, with their patients: what its other entries may name
    known: dict[str, str] = {}
    if visit is not None and visit.encounter_url in targets:
        known[targets[visit.encounter_url]] = targets.get(visit.patient_url, "")
    for url, resource, _ in entries:
        made = url in planned and url not in found and url not in same_as
        if made and resource.get("resourceType") == "Encounter":
            known[targets[url]] = _patient_named(_rewrite(resource, targets), base) or ""
    # the Patients this Bundle writes, with the persons they stand for (their personal ID): an
    # entry about one of them is about that person, whatever their order (``_as_person``); one
    # without a personal ID stands for no one, whatever an earlier version of it said
    patients: dict[str, str] = {}
    for url, resource, _ in entries:
        made = url in planned and url not in found and url not in same_as
        if made and resource.get("resourceType") == "Patient":
            person_id = await _person_of(session, resource)
            patients[targets[url]] = targets[url] if person_id is None else f"Patient/{person_id}"
    # stored in the rules' order (POST before PUT), Bundle order within a method (stable sort)
    done: dict[str, Written] = {}
    for url, resource, request in sorted(entries, key=lambda e: _ORDER[e[2]["method"]]):
        if url in responses:
            continue
        where = f"Bundle.entry[{positions[url]}].resource"
        if url in same_as:
            written = Written(done[same_as[url]].resource, created=False)
        elif url in found:
            written = Written(found[url].body, created=False)
        elif request["method"] == "PUT":
            written = await store(
                session, subject, _rewrite(resource, targets), resource_id=planned[url],
                base=base, path=where, known=known, patients=patients,
            )  # fmt: skip
        else:
            written = await store(
                session, subject, _rewrite(resource, targets), planned_id=planned[url],
                base=base, path=where, known=known, patients=patients,
            )  # fmt: skip
        done[url] = written
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


def _one_per_condition(
    entries: list[tuple[str, Resource, Resource]],
    positions: Mapping[str, int],
    conditions: Mapping[tuple[str, Criteria], str],
    planned: Mapping[str, str],
    found: Mapping[str, StoredResource],
    same_as: Mapping[str, str],
) -> None:
    """Refuse a Bundle that would leave two resources one of its conditional creates matches
    (``TwoForOneCondition``): an entry it writes (a create or an update, not one of that
    condition's own entries) carrying the identifier the condition looks for, stored as another
    resource than the one the condition finds or makes; any of the condition's alternatives
    counts. ``conditions``: each criteria with the first entry that has it; ``planned``: the
    id every entry is stored under."""
    for (type_, criteria), first in conditions.items():
        for url, resource, _ in entries:
            writes = url in planned and url not in found and url not in same_as
            if not writes or resource.get("resourceType") != type_:
                continue
            if planned[url] == planned[first]:
                continue  # the condition's own resource (its create, or an update of it)
            for system, value in sorted(criteria, key=_shown_one):
                if any(v == value and system in (None, s) for s, v in _identifiers(resource)):
                    raise TwoForOneCondition(
                        conditional=f"Bundle.entry[{positions[first]}]",
                        other=f"Bundle.entry[{positions[url]}]",
                        type=type_,
                        identifier=_shown_one((system, value)),
                    )


async def _visit(
    session: AsyncSession,
    subject: Subject,
    visit: intake.VisitBundle,
    code: str,
    options: submissions.IntakeOptions,
    where: str,
    *,
    persons: Collection[str] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """The visit through the intake; (its receipt, the ids its entries get). A visit the
    intake would hold out of the book of the person its personal ID names (SUB-0170) is
    refused instead (``NotTheHolder``; ``where``: the Patient's entry): its Patient and the
    resources beside it would otherwise be stored as that person's. In test mode the Patient
    gets no target here: it is stored as sent (D67). ``persons``: the personal IDs of the
    transaction's Patients, locked with the visit's patient (``submissions.accept``)."""
    tables = intake.tables_of(visit, code, options.limits)
    data = submissions.render_visit(code, tables, utcnow())
    receipt = await submissions.submit(session, subject, data, options, persons=persons)
    if receipt["status"] == "rejected":
        raise VisitRejected(receipt)
    held = [
        _XML_ELEMENTS[i["field"]]
        for v in receipt["visits"]
        for i in v["issues"]
        if i["code"] == _HELD and i.get("table") == "XML1" and i.get("field") in _XML_ELEMENTS
    ]
    if held:
        holder = await identity.person_id_of(session, visit.personal_id)
        raise NotTheHolder([f"{where}.{e}" for e in held], held, holder or 0)
    visit_key = tables["XML1"][0].get("MA_LK", "")
    entry = await records.entry_by_key(session, code, visit_key)
    encounter = f"Encounter/{entry.id}" if entry is not None else f"Encounter/{visit_key}"
    targets = {visit.encounter_url: encounter}
    if not receipt["test_mode"]:
        person_id = await identity.person_id_of(session, visit.personal_id)
        targets[visit.patient_url] = f"Patient/{person_id}"
    # (a test visit is no one's, D67: its Patient is kept as sent for the facility, like one
    # written alone in test mode, and the answer names no person of ours)
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
