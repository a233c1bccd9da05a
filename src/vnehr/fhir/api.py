"""HL7 FHIR R4 (4.0.1) at ``/fhir/R4``: metadata, read, vread, history, search, the
``Patient/$everything`` and ``Patient/$summary`` operations, and the writes of facility systems
(create, conditional create, update, transaction and batch Bundles; ``write``). Every error is an
OperationOutcome with the same stable code as the rest of the API.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import httpx
import orjson
from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, catalogs, papers, sharing, submissions
from vnehr.fhir import capability, ips, mapping, store, write
from vnehr.fhir.errors import BadBody, BadSearch, NameAPatient, UnsupportedType
from vnehr.fhir.search import SUPPORTED, criteria, date_range, sort_key
from vnehr.kit.auth import CurrentSubject
from vnehr.kit.clock import utcnow
from vnehr.kit.errors import BodyTooLarge, VnehrError
from vnehr.kit.http import ReadSession, database
from vnehr.kit.i18n import texts

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT = 50
MAX_COUNT = 500
Resource = dict[str, Any]

#: VnehrError status -> OperationOutcome.issue.code (503: "transient", try again later)
_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    422: "invalid",
    503: "transient",
}
#: Errors whose issue type (R4 ValueSet issue-type) says more than their status does.
_ISSUE_CODE_OF = {
    "FHIR-0003": "not-supported",
    "FHIR-0016": "duplicate",
    "FHIR-0017": "invariant",
    "FHIR-0018": "multiple-matches",
    "FHIR-0020": "not-supported",
    "FHIR-0021": "not-found",
    "FHIR-0022": "required",
}


def outcome(status: int, code: str, message: dict[str, str]) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_CODE_OF.get(code) or _ISSUE_CODE.get(status, "exception"),
                "details": {
                    "coding": [
                        {"system": "https://fhir.vnehr.vn/CodeSystem/error-code", "code": code}
                    ],
                    "text": message.get("vi"),
                },
                "diagnostics": message.get("en"),
            }
        ],
    }
    return fhir_response(body, status)


def fhir_response(
    body: Resource, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


class FhirRoute(APIRoute):
    """Turns every error of a FHIR route (auth, validation, ours) into an OperationOutcome."""

    def render_error(self, request: Request, error: VnehrError) -> Response:
        """An error the middleware answers for this route (a lost database, D101): the
        OperationOutcome, as for the route's other errors."""
        return outcome(error.status_code, error.code, error.messages())

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except VnehrError as exc:
                return outcome(exc.status_code, exc.code, exc.messages())
            except RequestValidationError as exc:
                return outcome(400, "KIT-0422", texts("KIT-0422", {"count": len(exc.errors())}))

        return route


router = APIRouter(prefix="/fhir/R4", tags=["FHIR R4"], route_class=FhirRoute)
_FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": "OperationOutcome", "content": {FHIR_JSON: {}}}
    for status in (400, 401, 403, 404)
}
ResourceType = Annotated[str, Path(pattern=r"^[A-Z][A-Za-z]{1,40}$")]
ResourceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


def _base(request: Request) -> str:
    return f"{request.app.state.settings.public_url}/fhir/R4"


def _supported(type_: str) -> None:
    if type_ not in SUPPORTED:
        raise UnsupportedType(type=type_)


async def _audit(
    request: Request,
    scope: store.Scope,
    pool: store.Pool,
    resources: list[Resource],
    what: str,
) -> None:
    """One audit row per person whose data someone other than that person read."""
    persons = store.accessed_persons(pool, resources)
    rows = []
    for person_id in sorted(persons):
        holder = scope.holders.get(person_id)
        if scope.is_citizen and holder is not None and holder.relation is None:
            continue  # the citizen reading their own record
        detail: dict[str, Any] | None = {"as": holder.relation} if holder is not None else None
        shared = scope.shared.get(person_id)
        if shared is not None:  # another facility's system, under the patient's consent
            detail = {
                "facility": scope.facility_code,
                "basis": shared.kind,
                "scope": shared.scope,
                "reference": shared.reference,
            }
        rows.append(
            audit.audit_event(
                actor=scope.subject.label,
                action="fhir.read",
                object_type="fhir",
                object_id=what[:200],
                person_id=person_id,
                detail=detail,
            )
        )
    if rows:
        async with database(request).session() as session:
            session.add_all(rows)
            for person_id in sorted(persons & scope.shared.keys()):
                await sharing.notice_viewed(session, person_id, scope.facility_code or "")


def _entry(base: str, resource: Resource, mode: str | None = None) -> Resource:
    entry: Resource = {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
    }
    if mode:
        entry["search"] = {"mode": mode}
    return entry


# ------------------------------------------------------------------ writing


async def _body(request: Request) -> Resource:
    """The JSON body, capped in size; decimals kept exact (FHIR decimals are precise)."""
    settings = request.app.state.settings
    data = await request.body()
    if len(data) > settings.max_body_bytes:
        raise BodyTooLarge(limit=settings.max_body_bytes)
    try:
        parsed = json.loads(data, parse_float=Decimal)
    except (ValueError, RecursionError) as exc:
        raise BadBody(reason="not JSON") from exc
    if not isinstance(parsed, dict):
        raise BadBody(reason="a FHIR resource is a JSON object")
    return cast(Resource, parsed)


def _intake_options(request: Request) -> submissions.IntakeOptions:
    settings = request.app.state.settings
    # A FHIR client authenticates with its private_key_jwt token; XMLDSig covers XML files
    # only, so the signature setting does not apply to visits sent as FHIR (D33).
    return submissions.IntakeOptions(
        limits=submissions.Limits(max_bytes=settings.max_body_bytes),
        require_signature=False,
        card_check=request.app.state.card_check,
        papers=papers.keys_for(settings),
    )


def _invalid(exc: write.Invalid) -> Response:
    message = exc.messages()
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "structure",
                "details": {
                    "coding": [
                        {"system": f"{mapping.BASE}/CodeSystem/error-code", "code": exc.code}
                    ],
                    "text": message["vi"],
                },
                "diagnostics": f"{problem.message} ({message['en']})",
                "expression": [problem.path],
            }
            for problem in exc.problems
        ]
        or [{"severity": "error", "code": "too-long", "diagnostics": message["en"]}],
    }
    return fhir_response(body, 422)


async def _not_the_holder(
    request: Request, subject: CurrentSubject, exc: write.NotTheHolder
) -> Response:
    """A write refused because its Patient is not the ID's holder (D150): nothing of it was
    kept (its transaction rolled back), but the refusal is, in a transaction of its own: trying
    names and birth dates against an ID leaves a trace. The answer names each element that
    differs, never what VNeID has."""
    async with database(request).session() as session:
        session.add(write.refusal_trace(subject, exc))
    issues = []
    for where in exc.where:
        message = texts(exc.code, {"element": where})
        issues.append(
            {
                "severity": "error",
                "code": "business-rule",
                "details": {
                    "coding": [
                        {"system": f"{mapping.BASE}/CodeSystem/error-code", "code": exc.code}
                    ],
                    "text": message["vi"],
                },
                "diagnostics": message["en"],
                "expression": [where],
            }
        )
    return fhir_response({"resourceType": "OperationOutcome", "issue": issues}, 422)


@router.post("", responses=_FHIR_RESPONSES)
@router.post("/", responses=_FHIR_RESPONSES, include_in_schema=False)
async def post_bundle(request: Request, subject: CurrentSubject) -> Response:
    """A transaction Bundle at visit end: the visit goes through intake (same checks, storage,
    receipt and outbox as the XML); other entries are stored as sent. All or nothing."""
    bundle = await _body(request)
    if bundle.get("resourceType") != "Bundle":
        raise write.Unsupported(method="POST of a Bundle", type=str(bundle.get("resourceType")))
    if bundle.get("type") == "batch":
        return fhir_response(await _batch(request, bundle))
    write.require_writer(subject)
    try:
        async with database(request).session() as session:
            result = await write.transaction(
                session, subject, bundle, _intake_options(request), base=_base(request)
            )
    except write.Invalid as exc:
        return _invalid(exc)
    except write.NotTheHolder as exc:
        return await _not_the_holder(request, subject, exc)
    except write.VisitRejected as exc:
        outcome_body = write.outcome_of(exc.issues)
        outcome_body["issue"].insert(
            0,
            {
                "severity": "error",
                "code": "business-rule",
                "details": {
                    "coding": [
                        {"system": f"{mapping.BASE}/CodeSystem/error-code", "code": exc.code}
                    ],
                    "text": exc.messages()["vi"],
                },
                "diagnostics": exc.messages()["en"],
            },
        )
        return fhir_response(outcome_body, 422)
    # committed: only now is the answer given
    return fhir_response(result)


#: The most entries one batch may hold (each is its own request).
BATCH_LIMIT = 500
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    412: "Precondition Failed",
    422: "Unprocessable Entity",
}


async def _batch(request: Request, bundle: Resource) -> Resource:
    """A batch Bundle: each entry (GET read or search, POST create, PUT update) is carried out
    on its own, exactly as the same request sent alone (same access checks, audit, own
    transaction); one failing entry does not stop the others. Entries cannot point at each
    other (use a transaction for that)."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadBody(reason="Bundle.entry is a list")
    # the Bundle's own structure here; each entry's resource is checked when it is carried out
    write.check(
        {
            **bundle,
            "entry": [
                {k: v for k, v in e.items() if k != "resource"}
                for e in entries
                if isinstance(e, dict)
            ],
        }
    )
    if len(entries) > BATCH_LIMIT:
        raise write.Invalid([], reason=f"a batch holds at most {BATCH_LIMIT} entries")
    headers = {k: v for k, v in request.headers.items() if k in ("authorization", "cookie")}
    base = str(request.url_for("post_bundle")).rstrip("/")
    transport = httpx.ASGITransport(app=request.app)
    answers = []
    async with httpx.AsyncClient(transport=transport, base_url=base) as inner:
        for entry in entries:
            answers.append(await _batch_entry(inner, headers, entry))
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "batch-response",
        "entry": answers,
    }


async def _batch_entry(
    inner: httpx.AsyncClient, headers: dict[str, str], entry: Resource
) -> Resource:
    wanted = entry.get("request") or {}
    method = str(wanted.get("method") or "")
    url = str(wanted.get("url") or "").lstrip("/")
    if method not in ("GET", "POST", "PUT") or not url or "://" in url or url.startswith(".."):
        return {
            "response": {
                "status": "400 Bad Request",
                "outcome": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "error",
                            "code": "not-supported",
                            "diagnostics": "batch entries: GET, POST or PUT of a relative URL",
                        }
                    ],
                },
            }
        }
    sent = dict(headers)
    if wanted.get("ifNoneExist"):
        sent["if-none-exist"] = str(wanted["ifNoneExist"])
    body = None
    if method in ("POST", "PUT"):
        sent["content-type"] = "application/fhir+json"
        body = json.dumps(entry.get("resource"), default=_plain).encode()
    answer = await inner.request(method, f"/{url}", headers=sent, content=body)
    response: Resource = {
        "status": f"{answer.status_code} {_REASONS.get(answer.status_code, '')}".strip()
    }
    for name, key in (
        ("location", "location"),
        ("etag", "etag"),
        ("last-modified", "lastModified"),
    ):
        if answer.headers.get(name):
            response[key] = answer.headers[name]
    result: Resource = {"response": response}
    try:
        returned = json.loads(answer.content, parse_float=Decimal) if answer.content else None
    except ValueError:
        returned = None
    if isinstance(returned, dict):
        if answer.status_code >= 400:
            response["outcome"] = returned
        else:
            result["resource"] = returned
    return result


@router.post("/{resource_type}", status_code=201, responses=_FHIR_RESPONSES)
async def create(
    request: Request, subject: CurrentSubject, resource_type: ResourceType
) -> Response:
    """Create a resource as sent (conditional with ``If-None-Exist: identifier=system|value``)."""
    _supported(resource_type)
    resource = await _body(request)
    if resource.get("resourceType") != resource_type:
        raise BadBody(reason=f"the body is a {resource.get('resourceType')}, not a {resource_type}")
    try:
        async with database(request).session() as session:
            written = await write.store(
                session,
                subject,
                _plain(resource),
                if_none_exist=request.headers.get("if-none-exist"),
                base=_base(request),
            )
    except write.Invalid as exc:
        return _invalid(exc)
    except write.NotTheHolder as exc:
        return await _not_the_holder(request, subject, exc)
    return _written(request, written.resource, 201 if written.created else 200)


@router.put("/{resource_type}/{resource_id}", responses=_FHIR_RESPONSES)
async def put(
    request: Request, subject: CurrentSubject, resource_type: ResourceType, resource_id: ResourceId
) -> Response:
    """Update a resource written through FHIR (a new version); visits change through intake."""
    _supported(resource_type)
    resource = await _body(request)
    if resource.get("resourceType") != resource_type or resource.get("id") not in (
        None,
        resource_id,
    ):
        raise BadBody(reason="the body's type and id must match the URL")
    try:
        async with database(request).session() as session:
            written = await write.store(
                session, subject, _plain(resource), resource_id=resource_id, base=_base(request)
            )
    except write.Invalid as exc:
        return _invalid(exc)
    except write.NotTheHolder as exc:
        return await _not_the_holder(request, subject, exc)
    return _written(request, written.resource, 201 if written.created else 200)


def _written(request: Request, resource: Resource, status: int) -> Response:
    version = resource["meta"]["versionId"]
    location = f"{_base(request)}/{resource['resourceType']}/{resource['id']}/_history/{version}"
    return fhir_response(
        resource,
        status,
        headers={
            "Location": location,
            "ETag": f'W/"{version}"',
            "Last-Modified": resource["meta"]["lastUpdated"],
        },
    )


def _plain(value: Any) -> Any:
    """Decimals back to JSON numbers for storage (the visit path keeps them exact): integers
    that fit in 53 bits stay integers, the rest become the nearest double."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value() and "." not in str(value) and abs(value) < 2**53:
            return int(value)
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------ metadata


@router.get("/metadata", responses=_FHIR_RESPONSES)
async def metadata(request: Request) -> Response:
    """The CapabilityStatement: exactly what this server supports."""
    return fhir_response(capability.statement(_base(request)))


# ------------------------------------------------------------------ operations


@router.get("/Patient/{patient_id}/$everything", responses=_FHIR_RESPONSES)
async def everything(
    request: Request, session: ReadSession, subject: CurrentSubject, patient_id: ResourceId
) -> Response:
    """Every resource of one patient's record within the caller's reach (searchset);
    ``_since``: those changed since (a visit not received since is not even mapped), with the
    Patient and the registry's resources they point to; ``start`` / ``end``: those of care
    given in these days (a visit whose stay does not meet them is not even mapped; a resource
    with no date of care is kept); ``_type``: of these types only (comma-separated,
    repeatable)."""
    query = list(request.query_params.multi_items())
    since, types = _everything_filters(query)
    care = _care_filter(query)
    scope = await store.scope_of(session, subject, base=_base(request))

    def maps(src: mapping.VisitSource) -> bool:
        if since is not None and src.received_at < since:
            return False
        return care is None or store.stay_meets(src.started_at, src.ended_at, care)

    wanted = maps if since is not None or care is not None else None
    pool = await store.patient_compartment(session, scope, patient_id, maps=wanted)  # or 404
    resources = store.everything_of(pool, patient_id, since=since, types=types, care=care)
    bundle = _page(request, resources, dict(query), count_only=_count_only(query, []))
    await _audit(request, scope, pool, resources, f"Patient/{patient_id}/$everything")
    return fhir_response(bundle)


def _everything_filters(
    query: list[tuple[str, str]],
) -> tuple[datetime | None, frozenset[str] | None]:
    """``$everything``'s ``_since`` (an instant; a date is its first moment, Vietnam time) and
    ``_type`` (resource types this server holds; BadSearch for another)."""
    since: datetime | None = None
    types: set[str] | None = None
    for key, value in query:
        if key == "_since":
            since = date_range(value)[0]
        elif key == "_type":
            named = {t.strip() for t in value.split(",") if t.strip()}
            unknown = sorted(named - set(SUPPORTED))
            if unknown:
                raise BadSearch(
                    reason=f"_type names a type this server does not hold: {unknown[0][:40]}"
                )
            types = (types or set()) | named
    return since, frozenset(types) if types is not None else None


def _care_filter(query: list[tuple[str, str]]) -> tuple[datetime, datetime] | None:
    """``$everything``'s ``start`` and ``end`` (dates of care, FHIR R4 Patient-everything):
    from the first moment of ``start`` to the last of ``end``; either may be left out. An
    ``end`` before the ``start`` is refused (BadSearch)."""
    start = end = None
    for key, value in query:
        if key == "start":
            start = date_range(value)[0]
        elif key == "end":
            end = date_range(value)[1]
    if start is None and end is None:
        return None
    care = (start or datetime.min.replace(tzinfo=UTC), end or datetime.max.replace(tzinfo=UTC))
    if care[1] <= care[0]:
        raise BadSearch(reason="end is before start")
    return care


@router.get("/Patient/{patient_id}/$summary", responses=_FHIR_RESPONSES)
async def summary(
    request: Request, session: ReadSession, subject: CurrentSubject, patient_id: ResourceId
) -> Response:
    """An International Patient Summary: a document Bundle with a Composition first."""
    scope = await store.scope_of(session, subject, base=_base(request))
    now = utcnow()
    titles = await catalogs.codebook(session)
    shown = partial(ips.visits_shown, titles=titles, now=now)
    pool = await store.summary_compartment(session, scope, patient_id, shown)  # or 404
    document = ips.document(_base(request), pool, patient_id, now=now)
    await _audit(
        request,
        scope,
        pool,
        [e["resource"] for e in document["entry"]],
        f"Patient/{patient_id}/$summary",
    )
    return fhir_response(document)


# ------------------------------------------------------------------ search


@router.get("/{resource_type}", responses=_FHIR_RESPONSES)
async def search_type(
    request: Request, session: ReadSession, subject: CurrentSubject, resource_type: ResourceType
) -> Response:
    """Search one resource type (the caller's compartment; see the CapabilityStatement)."""
    return await _search(
        request, session, subject, resource_type, list(request.query_params.multi_items())
    )


@router.post("/{resource_type}/_search", responses=_FHIR_RESPONSES)
async def search_post(
    request: Request, session: ReadSession, subject: CurrentSubject, resource_type: ResourceType
) -> Response:
    """Search with the parameters in a form body (as the specification allows)."""
    form = await request.form()
    items = list(request.query_params.multi_items()) + [(k, str(v)) for k, v in form.multi_items()]
    return await _search(request, session, subject, resource_type, items)


def _references(values: tuple[str, ...]) -> list[int]:
    found = []
    for value in values:
        tail = value.rstrip("/").split("/")
        if len(tail) >= 2 and tail[-2] != "Patient":
            continue
        person_id = store.number(tail[-1])
        if person_id is None:
            raise BadSearch(reason=f"{value} is not a Patient of this server")
        found.append(person_id)
    return found


async def _persons_of_query(
    session: AsyncSession, scope: store.Scope, type_: str, crits: list[Any]
) -> list[int] | None:
    """The persons a query is about, when it names them; None when it does not."""
    named: list[int] | None = None

    def narrow(found: list[int]) -> None:
        nonlocal named
        named = found if named is None else [p for p in named if p in found]

    for crit in crits:
        name = crit.param.name
        if name in ("patient", "subject") and crit.modifier == "":
            narrow(_references(crit.values))
        elif type_ == "Patient" and name == "_id" and crit.modifier == "":
            narrow([p for p in map(store.number, crit.values) if p is not None])
        elif type_ == "Patient" and name == "identifier" and crit.modifier == "":
            pairs = [
                (v.partition("|")[0] if "|" in v else None, v.rpartition("|")[2])
                for v in crit.values
            ]
            narrow(await store.patients_for_identifier(session, scope, pairs))
        elif type_ == "Encounter" and name == "identifier" and crit.modifier == "":
            found: list[int] = []
            for value in crit.values:
                persons, _ = await store.patient_of_visit_key(
                    session, scope, value.rpartition("|")[2]
                )
                found += persons
            narrow(found)
        elif type_ in store.VISIT_TYPES and name == "_id" and crit.modifier == "":
            found = []
            for value in crit.values:
                try:
                    _, read_pool = await store.read(session, scope, type_, value)
                except VnehrError:
                    continue
                found += list(read_pool.person_ids)
            narrow(found)
    return named


#: ``_summary`` values (search.html#summary) we do not serve: a part of each resource. Handled
#: like any parameter we do not support: ignored and named, or refused when strict.
_SUMMARY_UNSUPPORTED = frozenset({"true", "text", "data"})


def _count_only(items: list[tuple[str, str]], unknown: list[str]) -> bool:
    """Whether the query asks for the total alone (``_summary=count``); an unsupported
    ``_summary`` value is added to ``unknown``, one FHIR does not define is refused."""
    count = False
    for key, value in items:
        if key != "_summary":
            continue
        if value == "count":
            count = True
        elif value in _SUMMARY_UNSUPPORTED:
            unknown.append(f"_summary={value}")
        elif value != "false":
            allowed = "true, text, data, count, false"
            raise BadSearch(reason=f"_summary is one of {allowed}: {value[:20]}")
    return count


def _strict(request: Request) -> bool:
    """``Prefer: handling=strict`` (search.html#errors): a parameter we do not support is an
    error rather than ignored."""
    prefer = ",".join(request.headers.getlist("prefer"))
    return any(part.strip().lower() == "handling=strict" for part in re.split("[,;]", prefer))


async def _search(
    request: Request,
    session: AsyncSession,
    subject: Any,
    type_: str,
    items: list[tuple[str, str]],
) -> Response:
    _supported(type_)
    scope = await store.scope_of(session, subject, base=_base(request))
    crits, unknown = criteria(type_, items)
    count_only = _count_only(items, unknown)
    if unknown and _strict(request):
        raise BadSearch(reason=f"not supported here: {', '.join(sorted(set(unknown)))}")
    if type_ in store.REGISTRY_TYPES:
        pool = await _registry_pool(session, scope, type_, crits)
    else:
        persons = await _persons_of_query(session, scope, type_, crits)
        if persons is None and scope.is_citizen:
            persons = sorted(scope.holders)
        if persons is None and type_ in store.VISIT_TYPES:
            raise NameAPatient()
        if type_ == "Patient" and not any(k in ("_include", "_revinclude") for k, _ in items):
            # what a facility system asks first: the Patients alone, no visit mapped
            pool = await store.patients(session, scope, persons or [])
        else:
            pool = await store.compartment(session, scope, persons or [])
        if not scope.is_citizen and type_ not in store.VISIT_TYPES:
            for resource in (await store.written_by(session, scope, type_)).resources.values():
                pool.add(resource)
    matches = [r for r in pool.of_type(type_) if all(c.test(r) for c in crits)]
    control = dict(items)
    if control.get("_sort"):
        matches.sort(key=sort_key(type_, control["_sort"]))
    bundle = _page(
        request, matches, control, pool=pool, type_=type_, items=items, count_only=count_only
    )
    if unknown:
        bundle.setdefault("entry", []).append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-supported",
                            "diagnostics": f"ignored: {', '.join(sorted(set(unknown)))}",
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            }
        )
    shown = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    if type_ not in store.REGISTRY_TYPES:
        # the total tells as much as the entries (that a penicillin allergy is there): every
        # patient matched is audited, whichever page comes back (none with _count=0)
        await _audit(request, scope, pool, [*matches, *shown], f"{type_}?{urlencode(items)}")
    return fhir_response(bundle)


async def _registry_pool(
    session: AsyncSession, scope: store.Scope, type_: str, crits: list[Any]
) -> store.Pool:
    """Registry searches name what they look for (identifier or _id) in the public directory;
    a facility also searches what it wrote, a citizen what their record points to."""
    pool = store.Pool()
    named = False
    for crit in crits:
        if crit.param.name in ("identifier", "_id") and crit.modifier == "":
            named = True
            for value in crit.values:
                try:
                    resource, _ = await store.read(session, scope, type_, value.rpartition("|")[2])
                except VnehrError:
                    continue
                pool.add(resource)
    if not scope.is_citizen:
        for resource in (await store.written_by(session, scope, type_)).resources.values():
            pool.add(resource)
    elif not named:
        return await store.compartment(session, scope, sorted(scope.holders))
    return pool


def _page(
    request: Request,
    matches: list[Resource],
    control: dict[str, str],
    *,
    pool: store.Pool | None = None,
    type_: str | None = None,
    items: list[tuple[str, str]] | None = None,
    count_only: bool = False,
) -> Resource:
    """A searchset Bundle of one page of ``matches``; with ``count_only`` (``_summary=count``)
    the total alone: no entries, no links to other pages."""
    base = _base(request)
    try:
        count = min(int(control.get("_count", DEFAULT_COUNT)), MAX_COUNT)
        offset = max(int(control.get("_offset", 0)), 0)
    except ValueError as exc:
        raise BadSearch(reason="_count and _offset are whole numbers") from exc
    if count < 0:
        raise BadSearch(reason="_count is not negative")
    if count_only:
        count = 0
    page = matches[offset : offset + count]
    entries = [_entry(base, r, "match" if type_ else None) for r in page]
    if pool is not None and type_ is not None and items is not None:
        entries += [_entry(base, r, "include") for r in _included(pool, type_, page, items)]
    path = request.url.path
    kept = [
        (k, v) for k, v in (items or list(request.query_params.multi_items())) if k != "_offset"
    ]

    def link(relation: str, at: int) -> dict[str, str]:
        query = urlencode([*kept, ("_offset", str(at))])
        return {
            "relation": relation,
            "url": f"{request.app.state.settings.public_url}{path}?{query}",
        }

    links = [link("self", offset)]
    if offset + count < len(matches) and count > 0:
        links.append(link("next", offset + count))
    if offset > 0 and not count_only:
        links.append(link("previous", max(offset - count, 0)))
    bundle: Resource = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")},
        "type": "searchset",
        "total": len(matches),
        "link": links,
    }
    if not count_only:
        bundle["entry"] = entries
    return bundle


def _included(
    pool: store.Pool, type_: str, page: list[Resource], items: list[tuple[str, str]]
) -> list[Resource]:
    from vnehr.fhir.search import param

    out: dict[tuple[str, str], Resource] = {}
    shown = {(r["resourceType"], r["id"]) for r in page}
    for key, value in items:
        if key not in ("_include", "_revinclude"):
            continue
        source, _, rest = value.partition(":")
        name, _, target = rest.partition(":")
        if key == "_include":
            if source != type_ and source != "*":
                continue
            names = [name] if name != "*" else [p.name for p in _reference_params(source)]
            for resource in page:
                for param_name in names:
                    definition = param(type_, param_name)
                    if definition is None or definition.kind != "reference":
                        raise BadSearch(reason=f"cannot include {value}")
                    for element in definition.values(resource):
                        reference = (
                            element.get("reference", "") if isinstance(element, dict) else ""
                        )
                        rtype, _, rid = reference.partition("/")
                        if target and rtype != target:
                            continue
                        found = pool.get(rtype, rid.split("/_history")[0])
                        if found is not None and (rtype, found["id"]) not in shown:
                            out[(rtype, found["id"])] = found
        else:
            definition = param(source, name)
            if definition is None or definition.kind != "reference":
                raise BadSearch(reason=f"cannot revinclude {value}")
            wanted = {f"{t}/{i}" for t, i in shown}
            for candidate in pool.of_type(source):
                refs = {
                    e.get("reference", "").split("/_history")[0]
                    for e in definition.values(candidate)
                    if isinstance(e, dict)
                }
                if refs & wanted:
                    out[(source, candidate["id"])] = candidate
    return list(out.values())


def _reference_params(type_: str) -> list[Any]:
    from vnehr.fhir.search import PARAMS

    return [p for p in PARAMS.get(type_, []) if p.kind == "reference"]


# ------------------------------------------------------------------ read, vread, history


@router.get("/{resource_type}/{resource_id}", responses=_FHIR_RESPONSES)
async def read(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    resource_type: ResourceType,
    resource_id: ResourceId,
) -> Response:
    """The current version of a resource."""
    _supported(resource_type)
    scope = await store.scope_of(session, subject, base=_base(request))
    resource, pool = await store.read(session, scope, resource_type, resource_id)
    await _audit(request, scope, pool, [resource], f"{resource_type}/{resource_id}")
    return _versioned(resource)


def _versioned(resource: Resource) -> Response:
    meta = resource.get("meta") or {}
    headers = {"ETag": f'W/"{meta.get("versionId", "1")}"'}
    return fhir_response(resource, headers=headers)


@router.get("/{resource_type}/{resource_id}/_history", responses=_FHIR_RESPONSES)
async def history(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    resource_type: ResourceType,
    resource_id: ResourceId,
) -> Response:
    """Every version of a resource, newest first (a history Bundle)."""
    _supported(resource_type)
    scope = await store.scope_of(session, subject, base=_base(request))
    versions, pool = await store.history(session, scope, resource_type, resource_id)
    base = _base(request)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "total": len(versions),
        "link": [{"relation": "self", "url": f"{base}/{resource_type}/{resource_id}/_history"}],
        "entry": [
            {
                "fullUrl": f"{base}/{resource_type}/{resource_id}",
                "resource": v,
                "request": {
                    "method": "POST" if v["meta"]["versionId"] == "1" else "PUT",
                    "url": resource_type
                    if v["meta"]["versionId"] == "1"
                    else f"{resource_type}/{resource_id}",
                },
                "response": {
                    "status": "201 Created" if v["meta"]["versionId"] == "1" else "200 OK",
                    "lastModified": v["meta"].get("lastUpdated"),
                },
            }
            for v in versions
        ],
    }
    await _audit(request, scope, pool, versions, f"{resource_type}/{resource_id}/_history")
    return fhir_response(bundle)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}", responses=_FHIR_RESPONSES)
async def vread(
    request: Request,
    session: ReadSession,
    subject: CurrentSubject,
    resource_type: ResourceType,
    resource_id: ResourceId,
    version_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")],
) -> Response:
    """One version of a resource."""
    _supported(resource_type)
    scope = await store.scope_of(session, subject, base=_base(request))
    resource, pool = await store.vread(session, scope, resource_type, resource_id, version_id)
    await _audit(
        request, scope, pool, [resource], f"{resource_type}/{resource_id}/_history/{version_id}"
    )
    return _versioned(resource)
