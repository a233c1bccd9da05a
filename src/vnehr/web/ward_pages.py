"""The ward office's page (``/ward``): a ward officer opens the health book of a citizen who
cannot sign in to VNeID themselves, makes a newborn's provisional record, records a person's
representative (a parent, a guardian) or ends one, records where a person lives and an
insurance card, from forms that check first, ask before what the officer cannot undo, come back
as typed when refused, and say what happened in words; below, what the officer did there
lately. The same rules and rows as the API's ``POST /api/v1/enrolments``,
``/persons/newborns``, ``/representatives``, ``/representatives/{id}/end``,
``PUT /persons/{id}/residence`` and ``POST /persons/{id}/cards`` (the identity context's)."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Annotated, Any, Literal, TypedDict

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import facilities, identity
from vnehr.kit.auth import Forbidden, OptionalSubject, Subject, csrf_token
from vnehr.kit.clock import EARLIEST_DAY, LATEST_DAY, today_in_vietnam
from vnehr.kit.errors import RequestInvalid, VnehrError
from vnehr.kit.http import ReadSession, WriteSession
from vnehr.kit.i18n import LANGUAGES, Language, text, texts
from vnehr.web.pages import (
    _book_page,
    _error_page,
    _language,
    _open_ref,
    _PageRoute,
    _seal_ref,
    _settings,
    _signed_in,
    _signed_in_form,
    _ward_names,
)

router = APIRouter(include_in_schema=False, route_class=_PageRoute)

#: The key of the sealed result an officer's browser is sent to after acting (``?r=``): the
#: address names nobody (D127); it reads for an hour, for that officer only.
_RESULT = b"vnehr.ward-result"
RESULT_MAX_AGE = 3600
_DAY = re.compile(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*/\s*(\d{4})\s*")
_TWELVE = re.compile(r"\d{12}")
Step = Literal["check", "confirm", "edit"]
#: The end form's steps: ``check`` lists the person's links, ``pick`` asks about the one chosen
EndStep = Literal["check", "pick", "confirm", "edit"]
_LINK_ID = re.compile(r"\d{1,12}")

#: The field a refusal is about, by its code, to show it beside that field.
_ENROL_FIELDS = {
    **{f"ID-000{n}": "personal_id" for n in range(1, 7)},
    "ID-0119": "full_name",  # a first residence only under the record's name and birth (D24)
}
_NEWBORN_FIELDS = {
    "ID-0102": "mother_personal_id",
    "AUTH-0002": "mother_personal_id",  # the office may act, but not for this mother (D24)
    "ID-0111": "birth_date",
    "ID-0112": "birth_date",
    "ID-0126": "birth_date",
}
#: The registry forms' refusals by code: the field they are about, and the page's own words
#: for it (None: the refusal's words).
_REGISTRY_FIELDS: dict[str, tuple[str, str | None]] = {
    "ID-0105": ("valid_to", None),
    "ID-0113": ("agent_personal_id", None),
    "ID-0114": ("relation", "web.ward.representative.adult"),
    "ID-0115": ("agent_personal_id", None),  # the officer himself
    "ID-0116": ("valid_from", None),  # a guardianship begun in childhood, for an adult
    "ID-0117": ("relation", "web.ward.representative.adult_guardian"),  # the department's
    "ID-0118": ("personal_id", None),  # no residence on record: the department's (D24)
    "AUTH-0002": ("personal_id", "web.ward.lives_elsewhere"),  # D24: not in the officer's area
    **{f"ID-00{n:02d}": ("card_number", None) for n in range(7, 12)},
}
#: The end form's refusals of a link, a day or a reason, as ``_REGISTRY_FIELDS``.
_END_FIELDS: dict[str, tuple[str, str | None]] = {
    "ID-0117": ("link", "web.ward.end_link.adult_guardian"),  # the department's, as to record
    "ID-0120": ("link", None),
    "ID-0121": ("ends_on", None),
    "ID-0122": ("link", None),
    "ID-0123": ("reason", None),
    "ID-0125": ("link", None),  # the officer's own representative, or represented
}
#: The links the end form offers: those in force or not yet begun.
_ENDABLE = ("in_force", "not_yet")
_LABELS = {
    "personal_id": "web.ward.personal_id",
    "full_name": "web.ward.full_name",
    "birth_date": "web.ward.birth_date",
    "sex": "web.ward.sex",
    "mother_personal_id": "web.ward.mother_personal_id",
    "child_birth_date": "web.ward.child_birth_date",
    "represented_id": "web.ward.representative.personal_id",
    "agent_personal_id": "web.ward.representative.agent_personal_id",
    "relation": "web.ward.representative.relation",
    "valid_from": "web.ward.valid_from",
    "valid_to": "web.ward.valid_to",
    "card_number": "web.ward.card.number",
    "registered_facility": "web.ward.card.facility",
    "link": "web.ward.end_link.link",
    "ends_on": "web.ward.end_link.ends_on",
    "reason": "web.ward.end_link.reason",
}
_FACILITY = re.compile(r"\d{5}")


def _field_problem(kind: str, field: str, **words: Any) -> dict[str, str]:
    """A field's problem in every language (``web.problem.*``), naming it by its label."""
    return {
        lang: text(f"web.problem.{kind}", lang, {"field": texts(_LABELS[field]), **words})
        for lang in LANGUAGES
    }


def _typed_id(
    typed: dict[str, str], field: str, problems: dict[str, dict[str, str]], label: str = ""
) -> None:
    """A personal ID typed in ``field``: there, and 12 digits (``label``: its label's key in
    ``_LABELS`` when not the field's name)."""
    if not typed[field]:
        problems[field] = _field_problem("missing", label or field)
    elif not _TWELVE.fullmatch(typed[field]):
        problems[field] = _field_problem("format", label or field)


def _typed_day(
    typed: dict[str, str], field: str, problems: dict[str, dict[str, str]], *, required: bool
) -> date | None:
    """A date typed in ``field`` (dd/mm/yyyy); None when left empty or not a day (then said)."""
    if not typed[field]:
        if required:
            problems[field] = _field_problem("missing", field)
        return None
    day = _day(typed[field])
    if day is None:
        problems[field] = _field_problem("date", field)
    elif not EARLIEST_DAY <= day <= LATEST_DAY:
        problems[field] = _field_problem("date_range", field, **_RANGE)
        return None
    return day


#: The days a form takes (as the intake's, D145): a card from 01/01/0001 or to 31/12/9999 is a
#: typing slip, and every link or card recorded tells the citizen of its dates.
_RANGE = {"first": EARLIEST_DAY.strftime("%d/%m/%Y"), "last": LATEST_DAY.strftime("%d/%m/%Y")}


_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def _words(error: VnehrError) -> dict[str, str]:
    """An error's message as the page writes dates (dd/mm/yyyy, as typed in the form), not the
    API's ISO dates ("Ngày sinh 2099-01-01 ...")."""
    params = {
        name: _ISO_DAY.sub(r"\3/\2/\1", value) if isinstance(value, str) else value
        for name, value in error.params.items()
    }
    return texts(error.code, params)


def _day(typed: str) -> date | None:
    """A date typed as the national forms write it (dd/mm/yyyy); None when it is no day."""
    found = _DAY.fullmatch(typed)
    if found is None:
        return None
    try:
        return date(int(found[3]), int(found[2]), int(found[1]))
    except ValueError:
        return None


def _read_person(
    typed: dict[str, str], problems: dict[str, dict[str, str]], *, child: bool = False
) -> date | None:
    """Check the birth date and sex typed (the rest the service checks); the birth date read.
    ``child``: the date is named as the newborn form labels it."""
    born = _day(typed["birth_date"])
    label = "child_birth_date" if child else "birth_date"
    if not typed["birth_date"].strip():
        problems["birth_date"] = _field_problem("missing", label)
    elif born is None:
        problems["birth_date"] = _field_problem("date", label)
    elif not EARLIEST_DAY <= born <= LATEST_DAY:
        problems["birth_date"] = _field_problem("date_range", label, **_RANGE)
        born = None
    if typed["sex"] not in ("male", "female"):
        problems["sex"] = _field_problem("missing", "sex")
    return born


async def _office(
    request: Request, session: AsyncSession, who: Subject, ward: str | None
) -> str | Response:
    """The ward whose office the page acts for: ``ward`` (a form's, an address's), else the
    officer's first; an error page for whoever may not act there (in words: who the page is
    for). A department administrator without a ward of their own is asked for one."""
    mine = sorted({g.ward_code for g in who.grants_for("ward_officer") if g.ward_code})
    ward = ward or (mine[0] if mine else None)
    if ward is None:
        if who.is_department_admin():
            return ""
        return _error_page(
            request, Forbidden(action="open the ward office page"), [_not_an_officer()]
        )
    try:
        await identity.keeps_ward_office(session, who, ward, "open the ward office page")
    except Forbidden as exc:
        named = (await _ward_names(session, {ward})).get(ward, ward)
        # an officer of other wards, or another province's department: not this ward's
        elsewhere = mine or who.is_department_admin()
        words = texts("web.ward.not_this_ward", {"ward": named}) if elsewhere else _not_an_officer()
        return _error_page(request, exc, [words])
    except VnehrError as exc:
        return _error_page(request, exc)
    return ward


def _top_words(refused: VnehrError, problems: dict[str, dict[str, str]] | None) -> dict[str, str]:
    """What the box at the top of a refused form says: the words beside its fields when there
    are some (not "1 error", nor "you may not" for a mother living elsewhere), else the
    refusal's own."""
    if not problems:
        return _words(refused)
    return {lang: " ".join(p[lang] for p in problems.values()) for lang in LANGUAGES}


def _refusal(
    form: str | None, refused: VnehrError | None, problems: dict[str, dict[str, str]] | None
) -> dict[str, Any]:
    """What a page of the office says of a refused form (``_ward_macros.html``): the box at
    the top, which form, and the words beside each field."""
    return {
        "refused": refused,
        "refused_words": _top_words(refused, problems) if refused is not None else None,
        "refused_form": form if refused is not None else None,
        "problems": problems or {},
    }


def _not_an_officer() -> dict[str, str]:
    return texts("web.ward.not_an_officer")


async def _officer_form(
    request: Request, session: AsyncSession, subject: Subject | None, csrf: str, ward: str
) -> tuple[Subject, str] | Response:
    """Who sends one of the office's forms, and for which ward's office (``_office``): a
    department administrator without a ward goes back to choose one."""
    who = _signed_in_form(request, subject, csrf)
    if isinstance(who, Response):
        return who
    office = await _office(request, session, who, ward or None)
    if isinstance(office, Response):
        return office
    if not office:
        return RedirectResponse("/ward", status_code=303)
    return who, office


async def _ward_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    ward: str,
    *,
    http_status: int = 200,
    refused: VnehrError | None = None,
    problems: dict[str, dict[str, str]] | None = None,
    form: str | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """The office's page: its forms and what the officer did lately. A refused form (``form``:
    "enrol", "newborn", "representative", "end_link", "residence" or "card") comes back with
    what was typed and each problem beside its field (``problems``), the refusal at the top."""
    mine = sorted({g.ward_code for g in who.grants_for("ward_officer") if g.ward_code} | {ward})
    names = await _ward_names(session, set(mine))
    recent = await identity.ward_work(session, who, ward)
    today = today_in_vietnam().strftime("%d/%m/%Y")
    forms: dict[str, dict[str, str]] = {
        "enrol": {},
        "newborn": {},
        "representative": {"valid_from": today},
        "end_link": {},
        "residence": {},
        "card": {},
    }
    if form is not None and typed is not None:
        forms[form] = typed
    return _book_page(
        request,
        "ward.html",
        http_status,
        at=f"/ward?ward={ward}",
        subject=who,
        ward=ward,
        ward_name=names.get(ward, ward),
        wards=[(code, names.get(code, code)) for code in mine],
        recent=recent,
        csrf=csrf_token(_settings(request), request.state.session_data),
        forms=forms,
        **_refusal(form, refused, problems),
    )


@router.get("/ward", response_class=HTMLResponse)
async def ward_office(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    ward: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
) -> Response:
    """The ward office's page: assisted enrolment, newborns' provisional records,
    representatives, residences and insurance cards, and what the officer did there lately
    (ward officers of the ward, its department)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    office = await _office(request, session, who, ward)
    if isinstance(office, Response):
        return office
    if not office:  # a department administrator: which ward's office
        return _book_page(request, "ward_choose.html", subject=who)
    return await _ward_page(request, session, who, office)


@router.post("/ward/enrol")
async def ward_enrol(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    ward: Annotated[str, Form(max_length=5)] = "",
    personal_id: Annotated[str, Form(max_length=40)] = "",
    full_name: Annotated[str, Form(max_length=400)] = "",
    birth_date: Annotated[str, Form(max_length=40)] = "",
    sex: Annotated[str, Form(max_length=10)] = "",
    step: Annotated[Step, Form()] = "check",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Open a citizen's health book at the office: ``check`` shows what will be done and asks,
    ``confirm`` does it (``identity.enrol``, as the API) and sends the browser to the result,
    ``edit`` brings the form back filled in. A refusal comes back on the form (D193)."""
    sender = await _officer_form(request, session, subject, csrf, ward)
    if isinstance(sender, Response):
        return sender
    who, office = sender
    typed = {
        "personal_id": personal_id.strip(),
        "full_name": full_name.strip(),
        "birth_date": birth_date.strip(),
        "sex": sex,
    }
    if step == "edit":
        return await _ward_page(request, session, who, office, form="enrol", typed=typed)
    problems: dict[str, dict[str, str]] = {}
    born = _read_person(typed, problems)
    if not typed["personal_id"]:
        problems["personal_id"] = _field_problem("missing", "personal_id")
    if len(typed["full_name"]) < 2:
        problems["full_name"] = _field_problem("too_short", "full_name", min=2)
    elif len(typed["full_name"]) > 200:
        problems["full_name"] = _field_problem("too_long", "full_name", max=200)
    if problems or born is None:
        return await _refused(request, session, who, office, "enrol", typed, problems)
    try:
        if step == "check":
            checked = await identity.check_assisted(
                session,
                who,
                personal_id=typed["personal_id"],
                birth_date=born,
                sex=sex,
                ward_code=office,
            )
            return await _confirm_page(
                request, session, who, office, "enrol", {**typed, "personal_id": checked}
            )
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            done = await identity.enrol(
                session,
                who,
                personal_id=typed["personal_id"],
                full_name=typed["full_name"],
                birth_date=born,
                sex=sex,
                ward_code=office,
            )
    except VnehrError as exc:
        field = _ENROL_FIELDS.get(exc.code)
        shown = {field: _words(exc)} if field else {}
        return await _refused(request, session, who, office, "enrol", typed, shown, exc)
    person = done.person
    result = {
        "kind": "enrol",
        "ward": office,
        "outcome": done.outcome,
        "new": done.new_person,
        "differs": list(done.differs),
        "name": person.full_name,
        "personal_id": person.personal_id,
        "birth": person.birth_date.isoformat() if person.birth_date else person.birth_partial,
        "sex": person.sex,
    }
    return _to_result(request, who, result)


@router.post("/ward/newborn")
async def ward_newborn(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    ward: Annotated[str, Form(max_length=5)] = "",
    mother_personal_id: Annotated[str, Form(max_length=40)] = "",
    full_name: Annotated[str, Form(max_length=400)] = "",
    birth_date: Annotated[str, Form(max_length=40)] = "",
    sex: Annotated[str, Form(max_length=10)] = "",
    step: Annotated[Step, Form()] = "check",
    another: Annotated[str, Form(max_length=1)] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Make a newborn's provisional record (``identity.record_newborn``, as the API), linked
    to the mother, who represents the child: ``check`` names the mother and asks, ``confirm``
    does it, ``edit`` brings the form back; a refusal comes back on the form (D193). When a
    child of hers born that day is on record already, ``confirm`` records another only with
    ``another=1`` (twins), else it asks again (D226)."""
    sender = await _officer_form(request, session, subject, csrf, ward)
    if isinstance(sender, Response):
        return sender
    who, office = sender
    typed = {
        "mother_personal_id": mother_personal_id.strip(),
        "full_name": full_name.strip(),
        "birth_date": birth_date.strip(),
        "sex": sex,
    }
    if step == "edit":
        return await _ward_page(request, session, who, office, form="newborn", typed=typed)
    problems: dict[str, dict[str, str]] = {}
    born = _read_person(typed, problems, child=True)
    if not typed["mother_personal_id"]:
        problems["mother_personal_id"] = _field_problem("missing", "mother_personal_id")
    elif not _TWELVE.fullmatch(typed["mother_personal_id"]):
        problems["mother_personal_id"] = _field_problem("format", "mother_personal_id")
    if len(typed["full_name"]) > 200:
        problems["full_name"] = _field_problem("too_long", "full_name", max=200)
    if problems or born is None:
        return await _refused(request, session, who, office, "newborn", typed, problems)
    try:
        mother = await identity.check_newborn(
            session,
            who,
            mother_personal_id=typed["mother_personal_id"],
            birth_date=born,
            ward_code=office,
        )
        # a child of hers born that day on record already: twins, or this one sent again (the
        # back button, a second tap)? Asked, and recorded again only when the officer says so
        recorded = await identity.newborns_of(session, mother.id, born, hold=step != "check")
        if step == "check" or (recorded and another != "1"):
            return await _confirm_page(
                request,
                session,
                who,
                office,
                "newborn",
                typed,
                mother=mother.full_name,
                recorded=recorded,
                again=step != "check",
            )
        async with session.begin_nested():
            child = await identity.record_newborn(
                session,
                who,
                mother_personal_id=typed["mother_personal_id"],
                birth_date=born,
                sex=sex,
                full_name=typed["full_name"] or None,
            )
    except VnehrError as exc:
        field = _NEWBORN_FIELDS.get(exc.code)
        words = texts("web.ward.mother_elsewhere") if exc.code == "AUTH-0002" else _words(exc)
        shown = {field: words} if field else {}
        return await _refused(request, session, who, office, "newborn", typed, shown, exc)
    result = {
        "kind": "newborn",
        "ward": office,
        "name": child.full_name,
        "named": bool(typed["full_name"]),
        "birth": child.birth_date.isoformat() if child.birth_date else None,
        "sex": child.sex,
        "mother": mother.full_name,
    }
    return _to_result(request, who, result)


async def _refused(
    request: Request,
    session: AsyncSession,
    who: Subject,
    ward: str,
    form: str,
    typed: dict[str, str],
    problems: dict[str, dict[str, str]],
    error: VnehrError | None = None,
) -> Response:
    """The form sent back as typed, each problem beside its field, the refusal at the top
    (without ``error``: the fields' own problems, ``RequestInvalid``)."""
    if error is None:
        error = RequestInvalid(count=len(problems))
    return await _ward_page(
        request,
        session,
        who,
        ward,
        http_status=error.status_code,
        refused=error,
        problems=problems,
        form=form,
        typed=typed,
    )


async def _confirm_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    ward: str,
    form: str,
    typed: dict[str, str],
    mother: str | None = None,
    recorded: list[str] | None = None,
    again: bool = False,
    **found: Any,
) -> Response:
    """What will be done, line by line, with "confirm" and "change" (both carry what was
    typed): nothing is written until the officer confirms. ``recorded``: the children of the
    mother born that day already on record (``again``: a confirmation came without saying
    this one is another child); ``found``: what a registry form's check found (the persons
    as recorded, whether it is on record already)."""
    return _book_page(
        request,
        "ward_confirm.html",
        at=f"/ward?ward={ward}",
        subject=who,
        ward=ward,
        ward_name=(await _ward_names(session, {ward})).get(ward, ward),
        form=form,
        typed=typed,
        mother=mother,
        recorded=recorded or [],
        again=again,
        csrf=csrf_token(_settings(request), request.state.session_data),
        **found,
    )


def _registry_refusal(
    exc: VnehrError,
    typed: dict[str, str],
    names: dict[str, str] | None = None,
    fields: dict[str, tuple[str, str | None]] = _REGISTRY_FIELDS,
) -> dict[str, dict[str, str]]:
    """A registry form's refusal beside its field, in the page's words where it has some: an
    unknown person beside the ID that named them, a person out of the officer's area (D24) in
    words that say who does it; ``names``: wards by name, for a residence elsewhere;
    ``fields``: the form's own refusals by code, before ``_REGISTRY_FIELDS``."""
    if exc.code == "ID-0102":
        typed_id = exc.params.get("personal_id")
        field = "agent_personal_id" if typed_id == typed.get("agent_personal_id") else "personal_id"
        return {field: _words(exc)}
    if exc.code == "AUTH-0002" and "ward" in exc.params and names is not None:
        ward = str(exc.params["ward"])
        where = {"ward": names.get(ward, ward)}
        return {"personal_id": texts("web.ward.residence.elsewhere", where)}
    found = fields.get(exc.code, _REGISTRY_FIELDS.get(exc.code))
    if found is None or found[0] not in typed:
        return {}
    field, words = found
    return {field: texts(words) if words else _words(exc)}


class _Representation(TypedDict):
    """What the representative form asks of ``identity.check_representative`` and
    ``record_representative``."""

    ward_code: str
    personal_id: str
    agent_personal_id: str
    relation: str
    valid_from: date
    valid_to: date | None


class _Card(TypedDict):
    """What the card form asks of ``identity.check_card`` and ``record_card``."""

    ward_code: str
    personal_id: str
    card_number: str
    valid_from: date | None
    valid_to: date | None


@router.post("/ward/representative")
async def ward_representative(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    ward: Annotated[str, Form(max_length=5)] = "",
    personal_id: Annotated[str, Form(max_length=40)] = "",
    agent_personal_id: Annotated[str, Form(max_length=40)] = "",
    relation: Annotated[str, Form(max_length=10)] = "",
    valid_from: Annotated[str, Form(max_length=40)] = "",
    valid_to: Annotated[str, Form(max_length=40)] = "",
    step: Annotated[Step, Form()] = "check",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Record a parent or guardian who acts for a person living in the office's area
    (``identity.record_representative``, as the API's ``/representatives``): ``check``
    names both as recorded and asks, ``confirm`` does it (the same link sent again records
    nothing), ``edit`` brings the form back; a refusal comes back on the form (D193)."""
    sender = await _officer_form(request, session, subject, csrf, ward)
    if isinstance(sender, Response):
        return sender
    who, office = sender
    typed = {
        "personal_id": personal_id.strip(),
        "agent_personal_id": agent_personal_id.strip(),
        "relation": relation,
        "valid_from": valid_from.strip(),
        "valid_to": valid_to.strip(),
    }
    form = "representative"
    if step == "edit":
        return await _ward_page(request, session, who, office, form=form, typed=typed)
    problems: dict[str, dict[str, str]] = {}
    _typed_id(typed, "personal_id", problems, "represented_id")
    _typed_id(typed, "agent_personal_id", problems)
    if relation not in ("parent", "guardian"):
        problems["relation"] = _field_problem("missing", "relation")
    since = _typed_day(typed, "valid_from", problems, required=True)
    until = _typed_day(typed, "valid_to", problems, required=False)
    if problems or since is None:
        return await _refused(request, session, who, office, form, typed, problems)
    asked: _Representation = {
        "ward_code": office,
        "personal_id": typed["personal_id"],
        "agent_personal_id": typed["agent_personal_id"],
        "relation": relation,
        "valid_from": since,
        "valid_to": until,
    }
    try:
        if step == "check":
            checked = await identity.check_representative(session, who, **asked)
            return await _confirm_page(
                request, session, who, office, form, typed, person=checked.person,
                agent=checked.agent, already=checked.already,
            )  # fmt: skip
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            checked = await identity.record_representative(session, who, **asked)
    except VnehrError as exc:
        shown = _registry_refusal(exc, typed)
        return await _refused(request, session, who, office, form, typed, shown, exc)
    result = {
        "kind": form,
        "ward": office,
        "name": checked.person.full_name,
        "agent": checked.agent.full_name,
        "relation": relation,
        "from": since.isoformat(),
        "to": until.isoformat() if until else None,
        "already": checked.already,
    }
    return _to_result(request, who, result)


@router.post("/ward/end_link")
async def ward_end_link(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    ward: Annotated[str, Form(max_length=5)] = "",
    personal_id: Annotated[str, Form(max_length=40)] = "",
    link: Annotated[str, Form(max_length=40)] = "",
    ends_on: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    step: Annotated[EndStep, Form()] = "check",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """End a parent's or guardian's representation of a person living in the office's area
    (``identity.end_link``, as the API's ``/representatives/{id}/end``): ``check`` lists the
    person's links (the look-up in their access log), ``pick`` takes the link chosen, the
    first day its agent no longer acts and why, and asks, naming them; ``confirm`` does it
    (the same end sent again ends nothing more), ``edit`` brings the list back as typed. A
    refusal about the person comes back on the office's page, one about the link, the day or
    the reason on the list (D193)."""
    sender = await _officer_form(request, session, subject, csrf, ward)
    if isinstance(sender, Response):
        return sender
    who, office = sender
    typed = {
        "personal_id": personal_id.strip(),
        "link": link.strip(),
        "ends_on": ends_on.strip(),
        "reason": reason.strip(),
    }
    form = "end_link"
    problems: dict[str, dict[str, str]] = {}
    _typed_id(typed, "personal_id", problems, "represented_id")
    if problems:
        return await _refused(request, session, who, office, form, typed, problems)
    try:
        listed = await identity.links_to_end(
            session, who, ward_code=office, personal_id=typed["personal_id"]
        )
    except VnehrError as exc:
        shown = _registry_refusal(exc, typed)
        return await _refused(request, session, who, office, form, typed, shown, exc)
    if step == "check":
        typed["ends_on"] = typed["ends_on"] or today_in_vietnam().strftime("%d/%m/%Y")
    if step in ("check", "edit"):
        return await _links_page(request, session, who, office, listed, typed)
    if not _LINK_ID.fullmatch(typed["link"]):
        problems["link"] = _field_problem("missing", "link")
    day = _typed_day(typed, "ends_on", problems, required=False)
    if problems:
        return await _links_page(request, session, who, office, listed, typed, problems)
    link_id, why = int(typed["link"]), typed["reason"]
    try:
        if step == "pick":
            checked = await identity.check_end_link(
                session, who, listed, link_id=link_id, ends_on=day, reason=why
            )
            typed["ends_on"] = checked.ends_on.strftime("%d/%m/%Y")  # (left empty: today)
            return await _confirm_page(
                request, session, who, office, form, typed, end=checked, already=checked.already
            )
        async with session.begin_nested():  # (a refusal shown on the page undoes its part)
            checked = await identity.end_link(
                session, who, listed, link_id=link_id, ends_on=day, reason=why
            )
    except VnehrError as exc:
        shown = _registry_refusal(exc, typed, fields=_END_FIELDS)
        return await _links_page(request, session, who, office, listed, typed, shown, exc)
    result = {
        "kind": form,
        "ward": office,
        "name": checked.person.full_name,
        "agent": checked.link.agent_name,
        "relation": checked.link.relation,
        "ends_on": checked.ends_on.isoformat(),
        "withdrawn": checked.withdrawn,
        "already": checked.already,
        "reason": typed["reason"],
    }
    return _to_result(request, who, result)


async def _links_page(
    request: Request,
    session: AsyncSession,
    who: Subject,
    ward: str,
    listed: identity.PersonLinks,
    typed: dict[str, str],
    problems: dict[str, dict[str, str]] | None = None,
    refused: VnehrError | None = None,
) -> Response:
    """The person's links, those in force or to come offered to end, with the day and the
    reason as typed; a refusal at the top and beside its field (without ``refused``: the
    fields' own problems, ``RequestInvalid``)."""
    if refused is None and problems:
        refused = RequestInvalid(count=len(problems))
    return _book_page(
        request,
        "ward_end_link.html",
        refused.status_code if refused is not None else 200,
        at=f"/ward?ward={ward}",
        subject=who,
        ward=ward,
        ward_name=(await _ward_names(session, {ward})).get(ward, ward),
        person=listed.person,
        links=listed.links,
        endable=_ENDABLE,
        typed=typed,
        csrf=csrf_token(_settings(request), request.state.session_data),
        **_refusal("end_link", refused, problems),
    )


@router.post("/ward/residence")
async def ward_residence(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    ward: Annotated[str, Form(max_length=5)] = "",
    personal_id: Annotated[str, Form(max_length=40)] = "",
    step: Annotated[Step, Form()] = "check",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Record that a person on record lives in the office's ward (``identity.record_residence``,
    as the API's ``PUT /persons/{id}/residence``): ``check`` names the person and where they
    live now and asks, ``confirm`` does it (someone living here already is left as is),
    ``edit`` brings the form back; a refusal comes back on the form (D193)."""
    sender = await _officer_form(request, session, subject, csrf, ward)
    if isinstance(sender, Response):
        return sender
    who, office = sender
    typed = {"personal_id": personal_id.strip()}
    form = "residence"
    if step == "edit":
        return await _ward_page(request, session, who, office, form=form, typed=typed)
    problems: dict[str, dict[str, str]] = {}
    _typed_id(typed, "personal_id", problems)
    if problems:
        return await _refused(request, session, who, office, form, typed, problems)
    try:
        if step == "check":
            checked = await identity.check_residence(
                session, who, ward_code=office, personal_id=typed["personal_id"]
            )
            current = checked.current
            names = await _ward_names(session, {current} if current else set())
            return await _confirm_page(
                request, session, who, office, form, typed, person=checked.person,
                current=names.get(current, current) if current else None,
                already=checked.already,
            )  # fmt: skip
        async with session.begin_nested():
            checked = await identity.record_residence(
                session, who, ward_code=office, personal_id=typed["personal_id"]
            )
    except VnehrError as exc:
        elsewhere = exc.params.get("ward") if exc.code == "AUTH-0002" else None
        names = await _ward_names(session, {str(elsewhere)} if elsewhere else set())
        shown = _registry_refusal(exc, typed, names)
        return await _refused(request, session, who, office, form, typed, shown, exc)
    result = {
        "kind": form,
        "ward": office,
        "name": checked.person.full_name,
        "already": checked.already,
    }
    return _to_result(request, who, result)


@router.post("/ward/card")
async def ward_card(
    request: Request,
    session: WriteSession,
    subject: OptionalSubject,
    ward: Annotated[str, Form(max_length=5)] = "",
    personal_id: Annotated[str, Form(max_length=40)] = "",
    card_number: Annotated[str, Form(max_length=40)] = "",
    valid_from: Annotated[str, Form(max_length=40)] = "",
    valid_to: Annotated[str, Form(max_length=40)] = "",
    registered_facility: Annotated[str, Form(max_length=40)] = "",
    step: Annotated[Step, Form()] = "check",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Add an insurance card to the card history of a person living in the office's area
    (``identity.record_card``, as the API's ``POST /persons/{id}/cards``): ``check`` names
    the person and the card and asks, ``confirm`` does it (the same card and period sent
    again adds nothing), ``edit`` brings the form back; a refusal comes back on the form."""
    sender = await _officer_form(request, session, subject, csrf, ward)
    if isinstance(sender, Response):
        return sender
    who, office = sender
    typed = {
        "personal_id": personal_id.strip(),
        # as printed on the card; the portal reads capitals only
        "card_number": "".join(card_number.split()).upper(),
        "valid_from": valid_from.strip(),
        "valid_to": valid_to.strip(),
        "registered_facility": registered_facility.strip(),
    }
    form = "card"
    if step == "edit":
        return await _ward_page(request, session, who, office, form=form, typed=typed)
    problems: dict[str, dict[str, str]] = {}
    _typed_id(typed, "personal_id", problems)
    if not typed["card_number"]:
        problems["card_number"] = _field_problem("missing", "card_number")
    since = _typed_day(typed, "valid_from", problems, required=False)
    until = _typed_day(typed, "valid_to", problems, required=False)
    facility = typed["registered_facility"] or None
    if facility is not None and not _FACILITY.fullmatch(facility):
        problems["registered_facility"] = _field_problem("format", "registered_facility")
    if problems:
        return await _refused(request, session, who, office, form, typed, problems)
    asked: _Card = {
        "ward_code": office,
        "personal_id": typed["personal_id"],
        "card_number": typed["card_number"],
        "valid_from": since,
        "valid_to": until,
    }
    named = await facilities.directory(session, [facility]) if facility else {}
    facility_name = named[facility].name if facility and facility in named else None
    try:
        if step == "check":
            checked = await identity.check_card(session, who, **asked)
            return await _confirm_page(
                request, session, who, office, form, typed, person=checked.person,
                facility_name=facility_name, already=checked.already,
            )  # fmt: skip
        async with session.begin_nested():
            checked = await identity.record_card(
                session, who, **asked, registered_facility=facility
            )
    except VnehrError as exc:
        shown = _registry_refusal(exc, typed)
        return await _refused(request, session, who, office, form, typed, shown, exc)
    result = {
        "kind": form,
        "ward": office,
        "name": checked.person.full_name,
        "card": checked.card_number,
        "from": since.isoformat() if since else None,
        "to": until.isoformat() if until else None,
        "facility": facility_name or facility,
        "already": checked.already,
    }
    return _to_result(request, who, result)


def _to_result(request: Request, who: Subject, result: dict[str, Any]) -> Response:
    """After acting, the browser goes to the result (a reload does not act again); what it
    says is sealed in the address for this officer only."""
    # (letters as themselves, not \u escapes: a long Vietnamese name stays well under the cap)
    written = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    sealed = _seal_ref(_settings(request), _RESULT, who.label, written)
    return RedirectResponse(f"/ward/result?r={sealed}", status_code=303)


@router.get("/ward/result", response_class=HTMLResponse)
async def ward_result(
    request: Request,
    session: ReadSession,
    subject: OptionalSubject,
    r: Annotated[str, Query(max_length=4000)] = "",
) -> Response:
    """What a form of the office did, in words (for the officer who did it, for an hour)."""
    who = _signed_in(request, subject)
    if isinstance(who, RedirectResponse):
        return who
    opened = _open_ref(_settings(request), _RESULT, who.label, r, RESULT_MAX_AGE) if r else None
    result: dict[str, Any] | None = json.loads(opened) if opened else None
    ward = str(result["ward"]) if result else ""
    names = await _ward_names(session, {ward} - {""})
    lang: Language = "en" if _language(request) == "en" else "vi"
    return _book_page(
        request,
        "ward_result.html",
        subject=who,
        result=result,
        ward=ward,
        ward_name=names.get(ward, ward),
        differs=", ".join(text(_LABELS[f], lang) for f in (result or {}).get("differs", [])),
    )
