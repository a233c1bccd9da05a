"""Where FHIR resources come from: the stored visits, mapped on read, within the caller's reach.

Who reaches what (D32):
- a citizen (portal session): their own compartment and those of the people they represent;
- a facility system with ``record.read``: the visits it sent, one patient at a time, and the
  records of patients who share them in full with its facility (D44; their allergies whoever
  recorded them, D79);
- anyone else: refused.
Registry resources (Organization, Practitioner, Location) are public directory data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, catalogs, facilities, healthbook, identity, papers, records, sharing
from vnehr.fhir import mapping, stored
from vnehr.fhir.errors import BadSearch, NotForYou, UnknownResource, UnknownVersion
from vnehr.fhir.search import date_range
from vnehr.kit.auth import Subject, require_scope
from vnehr.kit.clock import today_in_vietnam, utcnow

Resource = dict[str, Any]
#: A number in an id or a reference: ASCII digits only, small enough for a 64-bit column.
_NUMBER = re.compile(r"[0-9]{1,18}")
#: A relative reference to a resource of this server, perhaps to one version of it.
_LOCAL = re.compile(
    r"(?P<type>[A-Z][A-Za-z]{1,40})/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)
VISIT_TYPES = (
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
    "DiagnosticReport",
    "DocumentReference",
)
COMPARTMENT_TYPES = (*VISIT_TYPES, "Provenance", "AuditEvent", "Consent")
REGISTRY_TYPES = ("Organization", "Practitioner", "Location")
#: Resources kept as sent that a facility reading under the patient's consent (D44) sees
#: whoever wrote them (other kept resources stay their writer's): allergies, which the
#: national tables cannot carry, are part of the record the patient shares (D79).
SHARED_STORED = ("AllergyIntolerance",)


@dataclass(frozen=True, slots=True)
class Scope:
    subject: Subject
    holders: dict[int, identity.Holder] = field(default_factory=dict)  # citizens
    facility_code: str | None = None  # facility systems
    #: facility systems: patients who share their full record with this facility (a consent
    #: directive in force), with the basis (D44); filled by ``share``
    shared: dict[int, Any] = field(default_factory=dict)
    #: this server's FHIR base (``{public URL}/fhir/R4``): its absolute references are its own
    base: str = ""

    @property
    def is_citizen(self) -> bool:
        return self.subject.kind == "person"

    def may_see_stored(self, row: Any) -> bool:
        """A resource kept as sent: its writer, the citizen whose compartment it is in, or (for
        the types in ``SHARED_STORED``) a facility the patient shares the full record with;
        whether the visit it was recorded in is left out is ``_visit_kept``'s."""
        if self.is_citizen:
            return bool(row.person_id is not None and row.person_id in self.holders)
        return bool(
            row.facility_code == self.facility_code
            or (row.resource_type in SHARED_STORED and row.person_id in self.shared)
        )

    def may_see_entry(self, entry: Any) -> bool:
        if self.is_citizen:
            return bool(entry.person_id in self.holders)
        return bool(entry.facility_code == self.facility_code or entry.person_id in self.shared)

    def may_see_paper(self, paper: Any) -> bool:
        """A paper: its holder (or their representative), its issuing facility, or a facility
        the holder shares the full record with."""
        if self.is_citizen:
            return bool(paper.person_id in self.holders)
        return bool(paper.facility_code == self.facility_code or paper.person_id in self.shared)

    def confided(self, person_id: int | None) -> bool:
        """Whether a citizen reads this person's compartment as the representative of a
        person who may be 16 or more (``records.confiding``): no visit touching a sensitive
        category, and of the resources kept as sent only allergies not recorded in one."""
        holder = self.holders.get(person_id or 0) if self.is_citizen else None
        return holder is not None and records.confiding(holder, today_in_vietnam())

    def keeps(self, source: mapping.VisitSource) -> bool:
        """A visit of another facility reached through consent leaves out the sensitive
        categories the patient did not name (D35); a representative of a person who may be
        16 or more reads none of them (``records.withheld``)."""
        if not self.judges(source.person_id, source.facility_code):
            return True
        tables = source.tables
        touched = sharing.categories(tables) if isinstance(tables, dict) else None
        return self.keeps_touching(source.person_id, source.facility_code, touched)

    def judges(self, person_id: int | None, facility_code: str) -> bool:
        """Whether the sensitive categories a visit of this person at this facility touches
        decide whether the scope reads it (``keeps``): a representative's reading of a person
        who may be 16 or more, a facility's reading of another facility's visit."""
        if self.is_citizen:
            return self.confided(person_id)
        return facility_code != self.facility_code

    def keeps_touching(
        self, person_id: int | None, facility_code: str, touched: Collection[str] | None
    ) -> bool:
        """``keeps`` for a visit known to touch these sensitive categories (a timeline row
        keeps them, ``records.row_categories``); None for one that cannot be judged, without
        stored tables (D98)."""
        if not self.judges(person_id, facility_code):
            return True
        if touched is None:
            return False
        if self.is_citizen:
            return not touched
        found = self.shared.get(person_id or 0)
        return found is not None and set(touched) <= found.sensitive


def number(text: str) -> int | None:
    """The record number an id stands for, or None (then nothing has that id): ``str.isdigit``
    also takes "²", which ``int`` refuses, and any length, which the database refuses."""
    return int(text) if _NUMBER.fullmatch(text) else None


async def share(session: AsyncSession, scope: Scope, person_ids: Iterable[int]) -> None:
    """Which of these patients a facility system reaches through their consent: a directive in
    force for this facility (or every facility) with the full record. The summary scope, the
    treatment default and break-glass are the clinician portal's, not a system's (D44). A
    facility still onboarding reaches nobody through consent: real patients' records go only
    to connected facilities (its systems hold tokens for their test files, D10)."""
    if scope.is_citizen or scope.facility_code is None:
        return
    wanted = [p for p in person_ids if p not in scope.shared]
    if not wanted:
        return
    if await facilities.state_of(session, scope.facility_code) != facilities.State.connected:
        return
    for person_id in wanted:
        try:
            found = await sharing.basis(
                session, person_id, scope.facility_code, scope.subject.label, "none"
            )
        except sharing.NoConsent:
            continue
        if found.kind == "consent" and found.scope == "full":
            scope.shared[person_id] = found


async def scope_of(session: AsyncSession, subject: Subject, *, base: str) -> Scope:
    """What the caller reaches; ``base`` is this server's FHIR base."""
    if subject.kind == "person":
        try:
            holders = await identity.book_holders(session, subject)
        except identity.UnknownPerson:
            holders = []
        return Scope(subject, {h.id: h for h in holders}, base=base)
    if subject.kind == "facility_system" and subject.facility_code:
        require_scope(subject, "record.read")
        return Scope(subject, facility_code=subject.facility_code, base=base)
    raise NotForYou(who=subject.label)


@dataclass(slots=True)
class Pool:
    """Resources mapped for one request, by (type, id), in the order they were added."""

    resources: dict[tuple[str, str], Resource] = field(default_factory=dict)
    person_ids: set[int] = field(default_factory=set)

    def add(self, resource: Resource) -> None:
        self.resources.setdefault((resource["resourceType"], resource["id"]), resource)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for (t, _), r in self.resources.items() if t == type_]

    def get(self, type_: str, id_: str) -> Resource | None:
        return self.resources.get((type_, id_))


async def _sources(session: AsyncSession, entries: list[Any]) -> list[mapping.VisitSource]:
    versions = await records.versions_by_ids(session, [e.version_id for e in entries])
    names = await facilities.directory(session, {e.facility_code for e in entries})
    found = []
    for e in entries:
        version = versions.get(e.version_id)
        if version is None:
            continue
        found.append(_source(e, version, names.get(e.facility_code)))
    return found


def _source(entry: Any, version: Any, facility: Any) -> mapping.VisitSource:
    return mapping.VisitSource(
        visit_id=entry.id,
        version=version.version,
        version_id=version.id,
        facility_code=entry.facility_code,
        facility_name=facility.name if facility else None,
        visit_key=entry.visit_key,
        person_id=version.person_id,
        tables=version.tables,
        received_at=version.received_at,
        started_at=version.started_at,
        ended_at=version.ended_at,
        submission_id=version.submission_id,
        first_version=version.version == 1,
    )


def _cards(sources: Iterable[mapping.VisitSource]) -> dict[int, set[str]]:
    cards: dict[int, set[str]] = {}
    for src in sources:
        if src.person_id is None:
            continue
        xml1 = (src.tables.get("XML1") or [{}])[0]
        for card in (xml1.get("MA_THE_BHYT") or "").split(";"):
            if card.strip():
                cards.setdefault(src.person_id, set()).add(card.strip())
    return cards


async def compartment(
    session: AsyncSession,
    scope: Scope,
    person_ids: list[int],
    *,
    maps: Callable[[mapping.VisitSource], bool] | None = None,
) -> Pool:
    """Every resource of these persons' records that the scope reaches, with the registry
    resources they point to; ``maps``: of the visits it reaches, those whose resources are
    mapped (``$everything?_since=``: the visits not received since are left unmapped; what
    the scope reaches, and what that decides of papers and the Patient, is judged on all)."""
    pool = Pool()
    if scope.is_citizen:
        person_ids = [p for p in person_ids if p in scope.holders]
    await share(session, scope, person_ids)
    entries = [e for e in await records.entries_of(session, person_ids) if scope.may_see_entry(e)]
    visits = await _sources(session, entries)
    sources = [src for src in visits if scope.keeps(src)]
    left_out = {(src.facility_code, src.visit_key) for src in visits if not scope.keeps(src)}
    titles = await catalogs.codebook(session)
    for src in sources:
        if maps is not None and not maps(src):
            continue
        for resource in mapping.visit_resources(src, titles):
            pool.add(resource)
    reached = {src.person_id for src in sources if src.person_id is not None}
    await _add_patients(session, pool, scope, person_ids, reached, _cards(sources))
    today = today_in_vietnam()
    kept_keys = {(src.facility_code, src.visit_key) for src in sources}
    for paper in await papers.of_persons(session, person_ids):
        if scope.confided(paper.person_id) and (
            paper.kind == "birth"
            or (
                paper.visit_key is not None
                and (paper.facility_code, paper.visit_key) not in kept_keys
            )
        ):
            continue  # as ``_paper_left_out`` judges it for one paper
        if scope.may_see_paper(paper) and (paper.facility_code, paper.visit_key) not in left_out:
            pool.add(mapping.paper_document(paper, today))
    visits_of: dict[int | None, set[int]] = {}
    for src in sources:
        visits_of.setdefault(src.person_id, set()).add(src.visit_id)
    await _add_kept_as_sent(session, pool, scope, person_ids, visits_of)
    if scope.is_citizen:
        # a representative of a person of 16 or more reads who looked as the access log says;
        # of a minor's (``confided``), reads only (a visit's arrival, a paper, an allergy
        # written would count and date the visits left out), each object by its type (its id
        # may be of a visit left out)
        confiding = {
            p: h for p, h in scope.holders.items() if h.relation is not None and h.confides(today)
        }
        for row in await audit.events_about(session, sorted(pool.person_ids)):
            holder = confiding.get(row.person_id or 0)
            bare = scope.confided(row.person_id)
            if bare and row.action not in audit.READS:
                continue
            unnamed = holder is not None and not healthbook.names_reader(row, holder)
            pool.add(mapping.audit_event(row, unnamed=unnamed, bare=bare))
        now = utcnow()
        for directive in await sharing.directives_of(session, sorted(pool.person_ids)):
            # whom a person of 16 or more shares with is as confided as who looked (D116)
            unnamed = directive.person_id in confiding
            pool.add(mapping.consent(directive, now, unnamed=unnamed))
    await add_registry(session, pool)
    return pool


async def _add_kept_as_sent(
    session: AsyncSession,
    pool: Pool,
    scope: Scope,
    person_ids: list[int],
    visits_of: dict[int | None, set[int]],
) -> None:
    """The resources kept as sent of these persons that the scope reads, given the visits it
    reads of each person (``visits_of``): an allergy recorded in a visit left out is left out
    with it."""
    writer = None if scope.is_citizen else scope.facility_code
    shared = [p for p in person_ids if p in scope.shared]
    for kept in await stored.of_persons(session, person_ids, writer, shared, SHARED_STORED):
        if scope.confided(kept.person_id) and not (
            kept.resource_type in SHARED_STORED
            and recorded_in_kept(
                kept.body, scope.base, visits_of.get(kept.person_id, set()).__contains__
            )
        ):
            # to a representative of a person of 16 or more, what a facility wrote is read as
            # by a facility the person shares with: allergies, out with a visit left out
            continue
        if writer is not None and kept.facility_code != writer:
            # another facility's allergy: out with the visit it was recorded in (D35, D79)
            seen = visits_of.get(kept.person_id, set())
            if not recorded_in_kept(kept.body, scope.base, seen.__contains__):
                continue
        pool.add(kept.body)
        if kept.person_id is not None:
            pool.person_ids.add(kept.person_id)


async def _add_patients(
    session: AsyncSession,
    pool: Pool,
    scope: Scope,
    person_ids: list[int],
    reached: set[int],
    cards: dict[int, set[str]],
) -> None:
    """The Patients of these persons (already narrowed to a citizen's holders): every one for
    a citizen; for a facility system, those of whom it reads a visit (``reached``)."""
    persons = dict(scope.holders) if scope.is_citizen else {}
    missing = [p for p in person_ids if p not in persons and p in reached]
    if missing and not scope.is_citizen:
        persons.update(await identity.persons(session, missing))
    for person_id in person_ids:
        holder = persons.get(person_id)
        if holder is not None:
            pool.add(mapping.patient(holder, cards.get(person_id, ())))
            pool.person_ids.add(person_id)


async def patients(
    session: AsyncSession, scope: Scope, person_ids: list[int], *, kept_as_sent: bool = True
) -> Pool:
    """The Patients of these persons the scope reaches, as ``compartment`` has them (the same
    reach, the same insurance cards, the same resources kept as sent), without mapping a visit
    (``GET Patient/{id}``, ``Patient?identifier=``). The reach and the insurance cards (the
    Patient lists those seen in the visits it may see) come from the timeline index (D114,
    ``_read_rows``); a visit is opened only when its content counts: an insured visit whose
    row does not keep the cards of the version it points to (stored before migration 0024 and
    not yet filled, or corrected by the previous release), and one whose row does not know the
    sensitive categories that decide whether the scope reads it (D35, D132)."""
    pool = Pool()
    if scope.is_citizen:
        person_ids = [p for p in person_ids if p in scope.holders]
    await share(session, scope, person_ids)
    rows, sources = await _read_rows(session, scope, person_ids, _cards_unknown, named=False)
    reached, cards = _reach(rows, sources)
    await _add_patients(session, pool, scope, person_ids, reached, cards)
    if kept_as_sent:
        writer = None if scope.is_citizen else scope.facility_code
        for kept in await stored.of_persons(session, person_ids, writer, types=("Patient",)):
            pool.add(kept.body)
            if kept.person_id is not None:
                pool.person_ids.add(kept.person_id)
    return pool


def _cards_unknown(rows: list[Any]) -> set[int]:
    """The versions of insured visits whose rows do not keep their cards (D114)."""
    return {e.version_id for e in rows if e.insured and e.insurance_cards_version != e.version_id}


async def _read_rows(
    session: AsyncSession,
    scope: Scope,
    person_ids: list[int],
    opening: Callable[[list[Any]], set[int]],
    *,
    named: bool,
) -> tuple[list[Any], list[mapping.VisitSource]]:
    """The timeline rows of these persons whose visits the scope reads, newest first, and of
    those the visits opened, as sources in the same order (with their facilities' names when
    ``named``): the versions ``opening`` names given the rows, and those whose row does not
    know the sensitive categories that decide whether the scope reads it (opened to judge: a
    visit left out is in neither list). The rest is judged from the rows (D35, D132)."""
    rows: list[Any] = []
    opened: set[int] = set()
    for e in await records.summary_rows(session, person_ids):
        if not scope.may_see_entry(e):
            continue
        if scope.judges(e.person_id, e.facility_code):
            touched = records.row_categories(e)  # (None: not known; frozenset(): none)
            if touched is None:
                opened.add(e.version_id)
            elif not scope.keeps_touching(e.person_id, e.facility_code, touched):
                continue
        rows.append(e)
    opened |= opening(rows)
    versions = await records.versions_by_ids(session, sorted(opened))
    codes = {e.facility_code for e in rows if e.version_id in opened}
    names = await facilities.directory(session, codes) if named and codes else {}
    read: list[Any] = []
    sources = []
    for e in rows:
        if e.version_id not in opened:
            read.append(e)
            continue
        version = versions.get(e.version_id)
        if version is None:
            continue
        src = _source(e, version, names.get(e.facility_code))
        if scope.keeps(src):
            read.append(e)
            sources.append(src)
    return read, sources


def _reach(
    rows: list[Any], sources: list[mapping.VisitSource]
) -> tuple[set[int], dict[int, set[str]]]:
    """The persons of whom these rows (read by ``_read_rows``) are visits, and the insurance
    cards of each: from the rows, or from the visits opened."""
    opened = {src.visit_id for src in sources}
    reached = {src.person_id for src in sources if src.person_id is not None}
    cards: dict[int, set[str]] = {}
    for e in rows:
        if e.id in opened or e.person_id is None:
            continue
        reached.add(e.person_id)
        for card in (e.insurance_cards or "").split(";"):
            if card:
                cards.setdefault(e.person_id, set()).add(card)
    for person_id, found in _cards(sources).items():
        cards.setdefault(person_id, set()).update(found)
    return reached, cards


#: What the IPS shows of a person's visits, given what their timeline rows keep: the visits
#: (ids) whose resources it may show (``ips.visits_shown``).
Shown = Callable[[list[tuple[int, datetime | None, datetime | None, records.Facts]]], set[int]]


async def summary_compartment(
    session: AsyncSession, scope: Scope, patient_id: str, shown: Shown
) -> Pool:
    """What ``$summary`` reads of one patient's compartment as the scope reaches it, or
    ``UnknownResource`` when the scope does not reach the patient: the Patient, the resources
    kept as sent, and the resources of the visits ``shown`` names given what their timeline
    rows keep (``records.row_facts``; a visit whose row does not know them is mapped too),
    rather than of every visit (D233). The IPS it makes is the whole compartment's: a section
    shows the newest entries of its kind, and none of those is in a visit left unmapped."""
    person_id = number(patient_id)
    person_ids = [person_id] if person_id is not None else []
    if scope.is_citizen:
        person_ids = [p for p in person_ids if p in scope.holders]
    await share(session, scope, person_ids)

    def opening(rows: list[Any]) -> set[int]:
        known = [(e, records.row_facts(e, trends=False)) for e in rows]
        wanted = shown([(e.id, e.started_at, e.ended_at, f) for e, f in known if f is not None])
        unknown = {e.version_id for e, found in known if found is None}
        return unknown | {e.version_id for e in rows if e.id in wanted} | _cards_unknown(rows)

    rows, sources = await _read_rows(session, scope, person_ids, opening, named=True)
    pool = Pool()
    titles = await catalogs.codebook(session)
    for src in sources:
        for resource in mapping.visit_resources(src, titles):
            pool.add(resource)
    reached, cards = _reach(rows, sources)
    await _add_patients(session, pool, scope, person_ids, reached, cards)
    visits_of: dict[int | None, set[int]] = {}
    for e in rows:
        visits_of.setdefault(e.person_id, set()).add(e.id)
    await _add_kept_as_sent(session, pool, scope, person_ids, visits_of)
    if pool.get("Patient", patient_id) is None:
        raise UnknownResource(type="Patient", id=patient_id)
    return pool


async def written_by(session: AsyncSession, scope: Scope, type_: str) -> Pool:
    """What a facility system wrote through FHIR, of one type."""
    pool = Pool()
    if scope.facility_code is not None:
        for row in await stored.by_writer(session, scope.facility_code, type_):
            pool.add(row.body)
            if row.person_id is not None:
                pool.person_ids.add(row.person_id)
    return pool


def _referenced(pool: Pool, types: tuple[str, ...]) -> dict[str, set[str]]:
    """The ids of these types the pool's resources point to, by type: one walk of the pool
    (a person's compartment holds thousands of resources)."""
    found: dict[str, set[str]] = {type_: set() for type_ in types}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str):
                parts = reference.split("/")
                if len(parts) > 1 and parts[0] in found:
                    found[parts[0]].add(parts[1])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for resource in list(pool.resources.values()):
        walk(resource)
    return found


async def add_registry(session: AsyncSession, pool: Pool) -> None:
    """Organizations, Practitioners and Locations the pool's resources point to."""
    referenced = _referenced(pool, ("Organization", "Location", "Practitioner"))
    codes = referenced["Organization"]
    location_ids = referenced["Location"]
    for location_id in location_ids:
        codes.add(location_id.split("-")[0])
    directory = await facilities.directory(session, codes)
    for facility in directory.values():
        pool.add(mapping.organization(facility))
    for location_id in location_ids:
        code = location_id.split("-")[0]
        owner = directory.get(code)
        pool.add(mapping.location(location_id, code, owner.name if owner else None))
    practitioner_ids = referenced["Practitioner"]
    names = await facilities.practitioner_names(session, practitioner_ids)
    for pid in practitioner_ids:
        pool.add(mapping.practitioner(pid, names.get(pid)))


# ------------------------------------------------------------------ one resource


def _derived(type_: str, id_: str) -> bool:
    """Ids the mapping makes (visit and person numbers, facility codes, practitioner ids...);
    resources kept as sent have 32-hex-digit ids."""
    if type_ in REGISTRY_TYPES:
        return not (len(id_) == 32 and all(c in "0123456789abcdef" for c in id_))
    if type_ == "Consent" and id_[:1] == "c" and number(id_[1:]) is not None:
        return True  # a sharing directive
    return number(id_.split("-", 1)[0]) is not None


def visit_of(type_: str, id_: str) -> int | None:
    """The visit (Encounter id) a visit-derived resource id belongs to."""
    head = id_.split("-", 1)[0]
    if type_ == "Encounter" and head != id_:
        return None
    return number(head)


async def _entry(session: AsyncSession, scope: Scope, type_: str, id_: str) -> Any:
    visit_id = visit_of(type_, id_)
    entry = await records.entry(session, visit_id) if visit_id is not None else None
    if entry is not None and entry.person_id is not None:
        await share(session, scope, [entry.person_id])
    if entry is None or not scope.may_see_entry(entry):
        raise UnknownResource(type=type_, id=id_)
    return entry


async def read(session: AsyncSession, scope: Scope, type_: str, id_: str) -> tuple[Resource, Pool]:
    """The current version of one resource the caller may read (with the pool it came from,
    for audit)."""
    pool = Pool()
    if type_ == "DocumentReference" and id_.startswith("paper-"):
        paper = await papers.by_id(session, id_.removeprefix("paper-"))
        if paper is not None and paper.person_id is not None:
            await share(session, scope, [paper.person_id])
        if (
            paper is None
            or not scope.may_see_paper(paper)
            or await _paper_left_out(session, scope, paper)
        ):
            raise UnknownResource(type=type_, id=id_)
        if paper.person_id is not None:
            pool.person_ids.add(paper.person_id)
        return mapping.paper_document(paper, today_in_vietnam()), pool
    if not _derived(type_, id_):
        row = await stored.current(session, type_, id_)
        if row is None or not await _may_read_stored(session, scope, [row]):
            raise UnknownResource(type=type_, id=id_)
        if row.person_id is not None:
            pool.person_ids.add(row.person_id)
        return row.body, pool
    if type_ in VISIT_TYPES:
        entry = await _entry(session, scope, type_, id_)
        titles = await catalogs.codebook(session)
        for src in await _sources(session, [entry]):
            if not scope.keeps(src):
                raise UnknownResource(type=type_, id=id_)
            for resource in mapping.visit_resources(src, titles):
                pool.add(resource)
        if entry.person_id is not None:
            pool.person_ids.add(entry.person_id)
    elif type_ == "Provenance":
        version_id = number(id_)
        version = (
            await records.version_by_id(session, version_id) if version_id is not None else None
        )
        entry = (
            await records.entry_by_key(session, version.facility_code, version.visit_key)
            if version is not None
            else None
        )
        if entry is not None and entry.person_id is not None:
            await share(session, scope, [entry.person_id])
        if version is None or entry is None or not scope.may_see_entry(entry):
            raise UnknownResource(type=type_, id=id_)
        names = await facilities.directory(session, [entry.facility_code])
        src = _source(entry, version, names.get(entry.facility_code))
        # where a visit left out came from says it exists and what it holds (D35); a version
        # sent for another patient before a correction is that patient's
        if version.person_id != entry.person_id or not scope.keeps(src):
            raise UnknownResource(type=type_, id=id_)
        if entry.version_id != version.id:
            # nor an earlier version of a visit left out as it stands now (as ``history``)
            current = await records.version_by_id(session, entry.version_id)
            if current is None or not scope.keeps(
                _source(entry, current, names.get(entry.facility_code))
            ):
                raise UnknownResource(type=type_, id=id_)
        for resource in mapping.visit_resources(src, await catalogs.codebook(session)):
            pool.add(resource)
        if entry.person_id is not None:
            pool.person_ids.add(entry.person_id)
    elif type_ in ("Patient", "AuditEvent", "Consent"):
        return await _read_in_compartment(session, scope, type_, id_)
    elif type_ in REGISTRY_TYPES:
        await _registry_entry(session, pool, type_, id_)
    found = pool.get(type_, id_)
    if found is None:
        raise UnknownResource(type=type_, id=id_)
    return found, pool


async def patient_compartment(
    session: AsyncSession,
    scope: Scope,
    patient_id: str,
    *,
    maps: Callable[[mapping.VisitSource], bool] | None = None,
) -> Pool:
    """One patient's compartment as the scope reaches it (``$everything``, ``$summary``), or
    ``UnknownResource`` when the scope does not reach the patient. Built once: the reach is
    whether the Patient is in it (reading the Patient first built the whole of it twice).
    ``maps``: as ``compartment``."""
    person_id = number(patient_id)
    pool = await compartment(
        session, scope, [person_id] if person_id is not None else [], maps=maps
    )
    if pool.get("Patient", patient_id) is None:
        raise UnknownResource(type="Patient", id=patient_id)
    return pool


def everything_of(
    pool: Pool,
    patient_id: str,
    *,
    since: datetime | None = None,
    types: Collection[str] | None = None,
    care: tuple[datetime, datetime] | None = None,
) -> list[Resource]:
    """A patient's compartment as ``$everything`` (and the book's data file) lists it: the
    Patient first, then the rest in the order they were mapped. ``since``
    (``$everything?_since=``): the resources changed at or after it (``meta.lastUpdated``),
    the Patient always (what they are about), and the registry's resources they point to;
    ``care`` (``start`` / ``end``): likewise, the resources of care given in that half-open
    range (``_care_meets``); ``types`` (``_type``): of these types only."""
    rest = [r for (t, i), r in pool.resources.items() if not (t == "Patient" and i == patient_id)]
    if since is not None or care is not None:
        if since is not None:
            rest = [r for r in rest if r["resourceType"] in REGISTRY_TYPES or _changed(r, since)]
        if care is not None:
            rest = [r for r in rest if r["resourceType"] in REGISTRY_TYPES or _care_meets(r, care)]
        wanted = _referenced_by(rest, REGISTRY_TYPES)
        rest = [
            r
            for r in rest
            if r["resourceType"] not in REGISTRY_TYPES or r["id"] in wanted[r["resourceType"]]
        ]
    found = [pool.get("Patient", patient_id) or {}, *rest]
    if types is not None:
        found = [r for r in found if r.get("resourceType") in types]
    return found


#: Where a resource says when the care it records was given, first found first: a period,
#: or a moment (a date stands for its whole day).
_CARE_DATES = (
    "period", "effectivePeriod", "performedPeriod", "effectiveDateTime", "performedDateTime",
    "occurrenceDateTime", "onsetDateTime", "authoredOn", "recordedDate", "date", "issued",
)  # fmt: skip


def stay_meets(
    started: datetime | None, ended: datetime | None, care: tuple[datetime, datetime]
) -> bool:
    """Whether a stay from ``started`` to ``ended`` (either may be unknown) meets ``care``;
    one with neither is kept."""
    first, last = started or ended, ended or started
    if first is None or last is None:
        return True
    return first < care[1] and last >= care[0]


def _care_meets(resource: Resource, care: tuple[datetime, datetime]) -> bool:
    """Whether the care ``resource`` records was given in ``care`` (``_CARE_DATES``); one
    that says no date of care (a Provenance, a Consent, ...) or an unreadable one is kept."""
    if resource.get("resourceType") == "Provenance":
        return True  # (when the record was made, not the care: its visit is mapped or not)
    for name in _CARE_DATES:
        value = resource.get(name)
        if isinstance(value, dict):
            started = _care_moment(value.get("start"), first=True)
            ended = _care_moment(value.get("end"), first=False)
            if started is not None or ended is not None:
                return stay_meets(started, ended, care)
        elif isinstance(value, str):
            started, ended = _care_moment(value, first=True), _care_moment(value, first=False)
            if started is not None and ended is not None:
                return started < care[1] and ended >= care[0]
    return True


def _care_moment(value: object, *, first: bool) -> datetime | None:
    """A FHIR date or dateTime's first (or last) moment; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        start, end = date_range(value)
    except BadSearch:
        return None
    return start if first else end - timedelta(microseconds=1)


def _changed(resource: Resource, since: datetime) -> bool:
    """Whether ``resource`` was changed at or after ``since`` (one without a time: kept)."""
    updated = (resource.get("meta") or {}).get("lastUpdated")
    if not isinstance(updated, str):
        return True
    try:
        return datetime.fromisoformat(updated.replace("Z", "+00:00")) >= since
    except ValueError:
        return True


def _referenced_by(resources: list[Resource], types: tuple[str, ...]) -> dict[str, set[str]]:
    """The ids of these types that ``resources`` point to, by type."""
    pool = Pool()
    for resource in resources:
        if resource.get("resourceType") not in types:
            pool.add(resource)
    return _referenced(pool, types)


async def _read_in_compartment(
    session: AsyncSession, scope: Scope, type_: str, id_: str
) -> tuple[Resource, Pool]:
    if type_ == "Patient":
        person_id = number(id_)
        pool = await patients(
            session, scope, [person_id] if person_id is not None else [], kept_as_sent=False
        )
        found = pool.get("Patient", id_)
        if found is None:
            raise UnknownResource(type=type_, id=id_)
        return found, pool
    person_ids = sorted(scope.holders) if scope.is_citizen else []
    pool = await compartment(session, scope, person_ids)
    found = pool.get(type_, id_)
    if found is None:
        raise UnknownResource(type=type_, id=id_)
    return found, pool


def canonical_reference(reference: str, base: str) -> str:
    """A reference to a resource of this server as ``Type/id``: without this server's base
    (``base``, its absolute form) and without a version (``/_history/n``: a visit's id stands
    for all its versions). Anything else (another server's, contained ``#id``, a URN) is
    returned as it is."""
    local = reference
    if base and reference.startswith(base.rstrip("/") + "/"):
        local = reference[len(base.rstrip("/")) + 1 :]
    found = _LOCAL.fullmatch(local)
    return f"{found['type']}/{found['id']}" if found else reference


def linked_visit(resource: Resource, base: str) -> int | None:
    """The visit (Encounter id) a resource kept as sent was recorded in, if it names one of
    this server's visits: ``Encounter/{id}``, versioned or not, relative or under ``base``."""
    encounter = resource.get("encounter")
    reference = encounter.get("reference") if isinstance(encounter, dict) else None
    if not isinstance(reference, str):
        return None
    local = canonical_reference(reference, base)
    return number(local[10:]) if local.startswith("Encounter/") else None


def recorded_in_kept(resource: Resource, base: str, kept: Callable[[int], bool]) -> bool:
    """Whether a resource kept as sent goes with the visits a reader sees: it names no
    encounter, or one of this server's visits that ``kept`` lets through. An encounter named
    any other way (another server's, contained, by identifier or by name only) cannot be judged
    by the sharing rules, and its reference would tell of it: the resource stays out (D35)."""
    if not resource.get("encounter"):
        return True
    visit_id = linked_visit(resource, base)
    return visit_id is not None and kept(visit_id)


async def _may_read_stored(session: AsyncSession, scope: Scope, rows: list[Any]) -> bool:
    """Whether the scope reads these versions of a resource kept as sent (newest first, all of
    one patient). Another facility's, under the patient's consent (D44, D79): none when one of
    them was recorded in a visit the consent leaves out (D35), as for a visit's history (D73)."""
    newest = rows[0]
    if scope.is_citizen and scope.confided(newest.person_id):
        if newest.resource_type not in SHARED_STORED or not scope.may_see_stored(newest):
            return False
        return await _recorded_in_kept_visits(session, scope, rows)
    if scope.is_citizen or newest.facility_code == scope.facility_code:
        return scope.may_see_stored(newest)
    if newest.resource_type not in SHARED_STORED or newest.person_id is None:
        return False
    await share(session, scope, [newest.person_id])
    if not scope.may_see_stored(newest):
        return False
    return await _recorded_in_kept_visits(session, scope, rows)


async def _recorded_in_kept_visits(session: AsyncSession, scope: Scope, rows: list[Any]) -> bool:
    """Whether no version of a resource kept as sent names a visit the scope leaves out, or
    one it cannot judge (D35, D98)."""
    for row in rows:
        if not row.body.get("encounter"):
            continue
        visit_id = linked_visit(row.body, scope.base)
        if visit_id is None or not await _visit_kept(session, scope, visit_id, row.person_id):
            return False
    return True


async def _visit_kept(session: AsyncSession, scope: Scope, visit_id: int, person_id: int) -> bool:
    """Whether this visit of this patient is one the scope reads (not left out, D35)."""
    entry = await records.entry(session, visit_id)
    if entry is None or entry.person_id != person_id or not scope.may_see_entry(entry):
        return False
    return all(scope.keeps(src) for src in await _sources(session, [entry]))


async def visit_person(session: AsyncSession, scope: Scope, visit_id: int) -> int | None:
    """The patient of a visit the scope reads (its own, or another facility's under the
    patient's consent and not left out, D35, D44), or None: no such visit, or not one the
    scope reads (the two are not told apart)."""
    entry = await records.entry(session, visit_id)
    if entry is None or entry.person_id is None:
        return None
    if scope.is_citizen or entry.facility_code != scope.facility_code:
        await share(session, scope, [entry.person_id])
        if not scope.may_see_entry(entry):
            return None
        if not all(scope.keeps(src) for src in await _sources(session, [entry])):
            return None
    return int(entry.person_id)


async def _paper_left_out(session: AsyncSession, scope: Scope, paper: Any) -> bool:
    """A paper issued with a visit the scope leaves out (D35): its kind, issuer and date tell
    what the visit was, so it is left out with it, as in ``compartment``."""
    if scope.is_citizen:
        if not scope.confided(paper.person_id):
            return False
        if paper.kind == "birth":  # to a representative of a mother of 16 or more (D35)
            return True
    elif paper.facility_code == scope.facility_code:
        return False
    if paper.visit_key is None:
        return False
    entry = await records.entry_by_key(session, paper.facility_code, paper.visit_key)
    if entry is None or entry.person_id != paper.person_id:
        # a representative of a person of 16 or more: a visit that cannot be judged (D98)
        return scope.is_citizen
    return any(not scope.keeps(src) for src in await _sources(session, [entry]))


async def _registry_entry(session: AsyncSession, pool: Pool, type_: str, id_: str) -> None:
    if type_ == "Organization":
        for facility in (await facilities.directory(session, [id_])).values():
            pool.add(mapping.organization(facility))
    elif type_ == "Practitioner":
        names = await facilities.practitioner_names(session, [id_])
        if id_ in names:
            pool.add(mapping.practitioner(id_, names[id_]))
    elif type_ == "Location":
        code = id_.split("-")[0]
        directory = await facilities.directory(session, [code])
        if code in directory and "-" in id_:
            pool.add(mapping.location(id_, code, directory[code].name))


async def history(
    session: AsyncSession, scope: Scope, type_: str, id_: str
) -> tuple[list[Resource], Pool]:
    """Every version of a resource, newest first: only those of the patient it is now about (a
    version sent for another patient, then corrected, is that patient's data), and none
    when one of them is of a visit the scope leaves out (an earlier version may be the one
    with the sensitive diagnosis, D35)."""
    if type_ == "DocumentReference" and id_.startswith("paper-"):
        # a paper's id names one version of it (a correction is a paper of its own id):
        # its history is itself as it stands, for whoever may read it
        resource, pool = await read(session, scope, type_, id_)
        return [resource], pool
    if not _derived(type_, id_):
        rows = await stored.versions(session, type_, id_)
        rows = [r for r in rows if r.person_id == rows[0].person_id]
        if not rows or not await _may_read_stored(session, scope, rows):
            raise UnknownResource(type=type_, id=id_)
        pool = Pool()
        if rows[0].person_id is not None:
            pool.person_ids.add(rows[0].person_id)
        return [r.body for r in rows], pool
    if type_ not in VISIT_TYPES:
        resource, pool = await read(session, scope, type_, id_)
        return [resource], pool
    entry = await _entry(session, scope, type_, id_)
    names = await facilities.directory(session, [entry.facility_code])
    titles = await catalogs.codebook(session)
    pool = Pool()
    found: list[Resource] = []
    for version in reversed(await records.versions(session, entry.facility_code, entry.visit_key)):
        if version.person_id != entry.person_id:
            continue
        src = _source(entry, version, names.get(entry.facility_code))
        if not scope.keeps(src):
            raise UnknownResource(type=type_, id=id_)
        for resource in mapping.visit_resources(src, titles):
            if resource["resourceType"] == type_ and resource["id"] == id_:
                found.append(resource)
    if not found:
        raise UnknownResource(type=type_, id=id_)
    if entry.person_id is not None:
        pool.person_ids.add(entry.person_id)
    return found, pool


async def vread(
    session: AsyncSession, scope: Scope, type_: str, id_: str, version: str
) -> tuple[Resource, Pool]:
    versions, pool = await history(session, scope, type_, id_)
    for resource in versions:
        if resource["meta"]["versionId"] == version:
            return resource, pool
    raise UnknownVersion(type=type_, id=id_, version=version)


# ------------------------------------------------------------------ finding patients


async def patients_for_identifier(
    session: AsyncSession, scope: Scope, systems_values: list[tuple[str | None, str]]
) -> list[int]:
    """Person ids by personal ID (``system|value`` or bare value), within reach."""
    found = []
    for system, value in systems_values:
        if system not in (None, "", mapping.PERSONAL_ID):
            continue
        person_id = await identity.person_id_of(session, value)
        if person_id is not None:
            found.append(person_id)
    if scope.is_citizen:
        return [p for p in found if p in scope.holders]
    return found


async def patient_of_visit_key(
    session: AsyncSession, scope: Scope, value: str
) -> tuple[list[int], int | None]:
    """The person of an Encounter identifier ``{facility}/{MA_LK}`` (and its visit id)."""
    facility_code, _, visit_key = value.partition("/")
    entry = await records.entry_by_key(session, facility_code, visit_key)
    if entry is None or entry.person_id is None or not scope.may_see_entry(entry):
        return [], None
    return [entry.person_id], entry.id


def _patients(resource: Resource) -> set[int]:
    found: set[int] = set()
    for key in ("subject", "patient"):
        reference = str((resource.get(key) or {}).get("reference", ""))
        person_id = number(reference[8:]) if reference.startswith("Patient/") else None
        if person_id is not None:
            found.add(person_id)
    return found


def accessed_persons(pool: Pool, resources: Iterable[Resource]) -> set[int]:
    """The persons whose clinical data these resources are (for the audit rows). A Provenance
    names no patient: it is about the patients of what it points to in the pool."""
    found: set[int] = set()
    for resource in resources:
        if resource["resourceType"] == "Patient":
            person_id = number(str(resource.get("id", "")))
            if person_id is not None:
                found.add(person_id)
            continue
        found |= _patients(resource)
        if resource["resourceType"] == "Provenance":
            for target in resource.get("target") or []:
                type_, _, rest = str((target or {}).get("reference", "")).partition("/")
                pointed = pool.get(type_, rest.split("/", 1)[0])
                if pointed is not None:
                    found |= _patients(pointed)
    return found & pool.person_ids if pool.person_ids else found


# ------------------------------------------------------------------ allergies (D29)

#: An AllergyIntolerance with one of these statuses is not a current allergy.
_NOT_CURRENT = frozenset({"inactive", "resolved", "refuted", "entered-in-error"})


def _codes(concept: Any) -> set[str]:
    if not isinstance(concept, dict):
        return set()
    return {str(c.get("code")) for c in concept.get("coding") or [] if isinstance(c, dict)}


def current_allergy(resource: Resource) -> bool:
    """Whether an AllergyIntolerance is one to show: not inactive or resolved, not refuted or
    entered in error (an allergy without a status is shown: the sender recorded it)."""
    statuses = _codes(resource.get("clinicalStatus")) | _codes(resource.get("verificationStatus"))
    return not statuses & _NOT_CURRENT


def _concept_text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and (coding.get("display") or coding.get("code")):
            return str(coding.get("display") or coding.get("code"))
    return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return date_range(value)[0]
    except BadSearch:
        return None


def allergy(
    resource: Resource, facility: healthbook.schemas.FacilityRef, base: str
) -> healthbook.schemas.Allergy:
    """An AllergyIntolerance as the health book shows it."""
    reactions = [
        text
        for reaction in resource.get("reaction") or []
        for concept in (reaction or {}).get("manifestation") or []
        if (text := _concept_text(concept))
    ]
    return healthbook.schemas.Allergy(
        substance=_concept_text(resource.get("code")) or "?",
        category=next(iter(resource.get("category") or []), None),
        criticality=resource.get("criticality"),
        reaction="; ".join(dict.fromkeys(reactions)) or None,
        recorded_at=_moment(resource.get("recordedDate")) or _moment(resource.get("onsetDateTime")),
        facility=facility,
        visit_id=linked_visit(resource, base),
    )


async def allergies_of(
    session: AsyncSession,
    person_id: int,
    kept_visits: Collection[int] | None = None,
    *,
    base: str,
) -> list[healthbook.schemas.Allergy]:
    """A person's current allergies, as facilities sent them (FHIR AllergyIntolerance written
    for that person; a test-mode write is in nobody's compartment, D67), newest first, one per
    substance. With ``kept_visits`` (a clinician's reading), only those recorded in none of
    the person's visits or in one of these (``recorded_in_kept``). ``base`` is this server's
    FHIR base."""
    rows = await stored.of_person(session, person_id, "AllergyIntolerance")
    rows = [r for r in rows if current_allergy(r.body)]
    if kept_visits is not None:
        rows = [r for r in rows if recorded_in_kept(r.body, base, kept_visits.__contains__)]
    names = await facilities.directory(session, {r.facility_code for r in rows})
    found = []
    for row in rows:
        place = names.get(row.facility_code)
        item = allergy(
            row.body,
            healthbook.schemas.FacilityRef(
                code=row.facility_code, name=place.name if place else None
            ),
            base,
        )
        found.append((item.recorded_at or row.last_updated, item))
    found.sort(key=lambda pair: pair[0], reverse=True)
    shown: dict[str, healthbook.schemas.Allergy] = {}
    for _, item in found:
        shown.setdefault(item.substance.casefold(), item)
    return list(shown.values())


def allergy_reader(public_url: str) -> healthbook.AllergyReader:
    """``allergies_of`` for a server at ``public_url``: the health book's reader
    (``healthbook.read_allergies_with``)."""
    base = f"{public_url}/fhir/R4"

    async def read(
        session: AsyncSession, person_id: int, kept_visits: Collection[int] | None = None
    ) -> list[healthbook.schemas.Allergy]:
        return await allergies_of(session, person_id, kept_visits, base=base)

    return read
