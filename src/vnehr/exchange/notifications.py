"""The citizen's inbox: a consumer turns events into notifications, and a push adapter tells
the app (the real VNeID push service plugs in here; development logs): the citizen's phone and
the phones of those who represent them today."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

import httpx
import orjson
from sqlalchemy import ColumnElement, and_, case, delete, func, not_, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs, facilities, identity, papers, records, sharing
from vnehr.exchange.bhxh import DeliveryFailed
from vnehr.exchange.models import DeliveryAttempt, Notification
from vnehr.exchange.worker import Call, Remote
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.db import insert_for
from vnehr.kit.i18n import LANGUAGES, catalogue, text, texts
from vnehr.kit.logging import get_logger
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.paging import decode_cursor, encode_cursor

log = get_logger("vnehr.notifications")


@dataclass(frozen=True, slots=True)
class About:
    """Whom a representative's push is about: the child or ward by name and the relation,
    never by personal ID (the representative's phone is not the place for it)."""

    relation: str  # parent | guardian
    name: str


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What a phone is told: the citizen's own (as the inbox shows it), or, with ``about``, a
    representative's about the person they act for (worded for them; ``kind`` "notice" and
    neutral words when the notice touches a sensitive category)."""

    person_id: int  # the recipient
    personal_id: str  # how VNeID knows the recipient
    kind: str
    title: dict[str, str]
    body: dict[str, str]
    about: About | None = None


class PushRefused(Exception):
    """The push service will not take this message for this recipient, now or later: it
    answered a 4xx whose JSON body names the recipient as the reason (``{"error":
    "recipient_unknown"}``: no phone registered with the app). The recipient is given up for
    this event; any other failure, other 4xx included, is tried again (D105)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"push refused: HTTP {status}")
        self.status = status


#: The error codes of a push answer that are about the recipient, not about us or our
#: message. A 4xx without one (a mistyped address's 404, a 400/413/422 about our payload, a
#: 401 about our key) is a failed attempt: retried, a dead letter in the end, replayable.
RECIPIENT_ERRORS = frozenset({"recipient_unknown"})


def _about_the_recipient(answer: httpx.Response) -> bool:
    """Whether a 4xx answer says the recipient cannot be reached (its JSON ``error``)."""
    if not 400 <= answer.status_code < 500:
        return False
    try:
        found = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return False
    return isinstance(found, dict) and found.get("error") in RECIPIENT_ERRORS


class PushAdapter(Protocol):
    async def push(self, message: PushMessage) -> None:
        """Tell one phone; ``PushRefused`` when the service refuses this recipient for good,
        any other exception when it may take the message later."""


class LogPush:
    """Development push: a log line instead of a message on the phone (without the title: a
    representative's names the child, and logs carry no personal data, D77)."""

    async def push(self, message: PushMessage) -> None:
        log.info(
            "push",
            person_id=message.person_id,
            kind=message.kind,
            about=message.about.relation if message.about else None,
        )


class WebhookPush:
    """The app's push service over HTTP: ``POST {url}`` with the message as JSON, signed with
    ``X-Vnehr-Signature: sha256=<HMAC-SHA256 of the body>``; while keys are rotated, one
    signature per key, the current first, comma-separated (``sha256=<new>, sha256=<old>``:
    the service accepts the message if one of them is made with its key). A 4xx whose body
    names the recipient as the reason raises ``PushRefused`` (given up for that person);
    anything else that is not a 2xx raises, so the push is tried again (the inbox row stays
    meanwhile)."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, secret: str, previous: Sequence[str] = ()
    ) -> None:
        self.http, self.url = http, url
        self.keys = [key.encode() for key in dict.fromkeys([secret, *previous])]

    async def push(self, message: PushMessage) -> None:
        body = orjson.dumps(
            {
                "personal_id": message.personal_id,
                "kind": message.kind,
                "title": message.title,
                "body": message.body,
                "about": (
                    {"relation": message.about.relation, "name": message.about.name}
                    if message.about
                    else None
                ),
                "sent_at": utcnow().isoformat(),
            }
        )
        signatures = ", ".join(
            f"sha256={hmac.new(key, body, hashlib.sha256).hexdigest()}" for key in self.keys
        )
        answer = await self.http.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/json", "X-Vnehr-Signature": signatures},
        )
        status = answer.status_code
        if _about_the_recipient(answer):
            raise PushRefused(status)
        if status >= 300:
            raise RuntimeError(f"push failed: HTTP {status}")


@dataclass(frozen=True, slots=True)
class _Earlier:
    """What earlier attempts of an event did: recipients told (``pushed``) or given up
    (``refused``), and whether one of them stopped with pushes left (``unfinished``)."""

    pushed: frozenset[int]
    refused: frozenset[int]
    unfinished: bool


async def _earlier(session: AsyncSession, event: OutboxEvent) -> _Earlier:
    """Read whatever the attempt's number: a replayed dead letter starts again at attempt 1,
    and its phones were told by the attempts before it. One read on the event's index."""
    rows = await session.execute(
        select(DeliveryAttempt.outcome, DeliveryAttempt.detail).where(
            DeliveryAttempt.event_id == event.event_id
        )
    )
    pushed: set[int] = set()
    refused: set[int] = set()
    unfinished = False
    for outcome, detail in rows:
        if not isinstance(detail, dict) or "pushed" not in detail:
            continue  # another consumer's record
        pushed.update(int(i) for i in detail.get("pushed") or ())
        refused.update(int(i) for i in detail.get("refused") or ())
        unfinished = unfinished or outcome == "failed"
    return _Earlier(frozenset(pushed), frozenset(refused), unfinished)


async def _sensitive(session: AsyncSession, kind: str, payload: dict[str, Any]) -> bool:
    """Whether a notice concerns a visit touching a sensitive category (D35): a new visit, or
    a paper issued from one (a birth certificate always: the birth is reproductive health).
    A visit that cannot be read counts as sensitive (it cannot be judged, D98). A new visit
    is judged by the version the event names and by the visit as it stands now: corrected
    into a category before the notice went out, it is not told (the inbox follows later
    corrections, ``_visible``)."""
    if kind == "visit":
        version_id = payload.get("version_id")
        version = await records.version_by_id(session, int(version_id)) if version_id else None
        if version is None or sharing.categories(version.tables):
            return True
        current = await records.current_version(session, version.facility_code, version.visit_key)
        return current is None or bool(sharing.categories(current.tables))
    if kind == "paper":
        if payload.get("kind") == "birth":
            return True
        paper_id = payload.get("paper_id")
        paper = await papers.by_id(session, str(paper_id)) if paper_id else None
        if paper is None or not paper.visit_key:
            return paper is None
        visit = await records.current_version(session, paper.facility_code, paper.visit_key)
        return visit is not None and bool(sharing.categories(visit.tables))
    return False


#: The parameters of a paper's notice naming the visit it was issued with (facility code and
#: visit key; "" for a paper issued without one).
PAPER_FACILITY, PAPER_VISIT = "visit_facility", "visit_key"
#: The parameter of a paper's notice naming the paper's kind by its code ("re_exam",
#: "birth"): a notice marked sensitive is shown again once its visit is plain, unless it is
#: of a birth certificate (always sensitive) or stored before it was kept (cannot be told).
PAPER_KIND = "paper_kind"


async def _paper_visit(session: AsyncSession, payload: dict[str, Any]) -> dict[str, str]:
    """The visit a paper was issued with, as its notice keeps it; nothing for a paper that
    cannot be found (the notice then cannot be judged, and a representative of a person of
    16 or more is not shown it)."""
    paper_id = payload.get("paper_id")
    paper = await papers.by_id(session, str(paper_id)) if paper_id else None
    if paper is None:
        return {}
    if not paper.visit_key:
        return {PAPER_FACILITY: "", PAPER_VISIT: "", PAPER_KIND: paper.kind}
    return {
        PAPER_FACILITY: paper.facility_code,
        PAPER_VISIT: paper.visit_key,
        PAPER_KIND: paper.kind,
    }


#: Kinds whose push to a representative leaves the facility out: who opened or read the record
#: may itself tell what care the person had (a psychiatric hospital, an HIV clinic), and the
#: registry does not know a facility's specialty. Signed in, the inbox and the person's access
#: log name it; the person's own phone is told in full.
_FACILITY_NOT_ON_THEIR_PHONE = frozenset({"emergency", "viewed", "emergency_unjustified"})


def facility_withheld(kind: str, holder: identity.Holder) -> bool:
    """Whether a message of ``kind`` about ``holder`` names no facility to a representative
    anywhere (phone, inbox, its parameters): who looked at the record of a person of 16 or
    more, as their access log shows it to a representative (``healthbook.access_log``)."""
    return kind in _FACILITY_NOT_ON_THEIR_PHONE and holder.confides(today_in_vietnam())


async def _recipients(
    session: AsyncSession, event: OutboxEvent, person_id: int, kind: str, params: dict[str, Any]
) -> list[PushMessage]:
    """Whom to push: the person, when VNeID knows them (a newborn without a personal ID has no
    phone; in neutral words, without facility or kind, unless their last sign-in was at level
    2), and each person who represents them today (``identity.representatives``: a parent
    until the child is 18) and whose last sign-in could read the book (level 2; the inbox shows
    a level-1 identity nothing, D74). A representative is told in their own words, about the
    person by name; in neutral words, without facility or kind, when the notice touches a
    sensitive category; of an emergency access or a read without the facility."""
    holder = (await identity.persons(session, [person_id])).get(person_id)
    if holder is None:
        return []
    [shown] = await _shown(session, [(kind, params)])
    messages = []
    if holder.personal_id and holder.reads_books:
        own = render(kind, shown)
        messages.append(PushMessage(holder.id, holder.personal_id, kind, own["title"], own["body"]))
    elif holder.personal_id:
        # a level-1 identity (or one never seen signed in) reads no book and no inbox (D74):
        # its phone hears that there is news and that level 2 reads it, nothing more
        own = render("neutral", {})
        messages.append(
            PushMessage(holder.id, holder.personal_id, "notice", own["title"], own["body"])
        )
    # (an agent an event tells in a notice of their own, e.g. a representative whose end is
    # to come, is not told a second time about the person)
    apart = set(event.payload.get("told_apart") or ())
    agents = [
        (agent.id, agent.personal_id, agent.relation)
        for agent in await identity.representatives(session, person_id)
        if agent.personal_id and agent.relation and agent.reads_books and agent.id not in apart
    ]
    if not agents:
        return messages
    neutral = await _sensitive(session, kind, event.payload)
    if neutral:
        # a minor of 16 or more may have chosen that care in confidence: their representatives
        # are not told of it at all (not even "news about ‹name›"), as the book they read
        # leaves the visit out (``records.withheld``)
        today = today_in_vietnam()
        agents = [a for a in agents if not records.confiding(replace(holder, relation=a[2]), today)]
        if not agents:
            return messages
    about = {**shown, "name": holder.full_name}
    if neutral:
        said = render("neutral", about, "_for")
    elif facility_withheld(kind, holder):
        said = render(kind, about, "_for_confided")
    elif kind in _FACILITY_NOT_ON_THEIR_PHONE:
        said = render(kind, about, "_for_phone")
    else:
        said = render(kind, about, "_for")
    for agent_id, personal_id, relation in agents:
        messages.append(
            PushMessage(
                agent_id,
                personal_id,
                "notice" if neutral else kind,
                said["title"],
                said["body"],
                About(relation, holder.full_name),
            )
        )
    return messages


@dataclass(frozen=True, slots=True)
class _Notice:
    """What an event tells whom: a notification of ``kind`` for the person, and their phones
    and their representatives'."""

    person_id: int
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Pushed:
    """What one attempt's pushes came to: recipients told, given up (``PushRefused``), and
    the other failures (tried again)."""

    pushed: frozenset[int]
    refused: frozenset[int]
    failures: tuple[str, ...]


_TOLD_BEFORE: dict[str, Any] = {"notification_id": None, "note": "told before"}


async def _still_theirs(session: AsyncSession, event: OutboxEvent, notice: _Notice) -> bool:
    """Whether the visit or paper a notice tells of is still in the person's book: one held
    out of it since it was filed (at the holder's first sign-in, D167) is told to no one."""
    if notice.kind == "visit":
        entry = await records.entry_by_key(
            session, str(notice.params.get("facility")), str(notice.params.get("visit_key"))
        )
        return entry is not None and entry.person_id == notice.person_id
    if notice.kind == "paper":
        paper_id = event.payload.get("paper_id")
        paper = await papers.by_id(session, str(paper_id)) if paper_id else None
        return paper is None or paper.person_id == notice.person_id
    return True


async def _judged(session: AsyncSession, event: OutboxEvent, notice: _Notice) -> _Notice | None:
    """The notice with what the inbox judges it by later, kept on its row; None when what it
    tells of has left the person's book since."""
    if not await _still_theirs(session, event, notice):
        return None
    if notice.kind in _ON_THE_DAY:
        # told on the day a link begins or ends: not if it was withdrawn or ended otherwise
        # since, nor days late; to whom the link names now (a newborn merged since: the child)
        link, day = event.payload.get("representative_id"), event.payload.get("day")
        if not link or not day:
            return None
        due = await identity.still_due(
            session, int(str(link)), notice.kind, date.fromisoformat(str(day))
        )
        if due is None:
            return None
        said = {"agent": due.agent_name, "person": due.person_name}
        notice = replace(
            notice,
            person_id=due.person_id,
            params={**notice.params, **{k: v for k, v in said.items() if k in notice.params}},
        )
    params = notice.params
    if notice.kind == "paper":
        # the visit the paper was issued with, if any ("" for none): the inbox judges the
        # notice by that visit as it stands when read (``_visible``)
        params = {**params, **await _paper_visit(session, event.payload)}
    if await _sensitive(session, notice.kind, event.payload):
        # kept on the row: the inbox leaves it out for a representative of a person who may
        # be 16 or more, long after the event and its visit's version are gone
        params = {**params, SENSITIVE: True}
    return replace(notice, params=params)


_TOLD_OF_THE_VISIT: dict[str, Any] = {"notification_id": None, "note": "told of the visit before"}


def _visit_of(notice: _Notice) -> tuple[str, str] | None:
    """The visit (facility, MA_LK) a new visit's notice tells of; None for other kinds."""
    if notice.kind != "visit":
        return None
    return str(notice.params.get("facility", "")), str(notice.params.get("visit_key", ""))


async def _told_of_the_visit(session: AsyncSession, event: OutboxEvent, notice: _Notice) -> bool:
    """Whether another event told the person of the visit this notice tells of: the first
    version's event and a later one that put the visit back in the book (``new_in_book``)
    are both delivered after the corrections when the worker is behind. ``forget`` removes the
    notices of a visit that leaves the book, so one there now tells of it as it is. One look
    on ``ix_notification_visit``; a representative reads the person's rows, and the pushes go
    with the row. Events of one visit are delivered one after the other (one ordering key),
    so two of them never both find none."""
    visit = _visit_of(notice)
    if visit is None:
        return False
    found = await session.scalar(
        select(Notification.id)
        .where(
            Notification.person_id == notice.person_id,
            Notification.facility_code == visit[0],
            Notification.visit_key == visit[1],
            Notification.event_id != event.event_id,
        )
        .limit(1)
    )
    return found is not None


async def _store(session: AsyncSession, event: OutboxEvent, notice: _Notice) -> int | None:
    """The inbox row, once per event and person; its id, None when it was there before. A
    new visit's row names the visit in its own columns (``_told_of_the_visit``)."""
    facility_code, visit_key = _visit_of(notice) or (None, None)
    created: int | None = await session.scalar(
        insert_for(session)(Notification)
        .values(
            event_id=event.event_id,
            person_id=notice.person_id,
            kind=notice.kind,
            params=notice.params,
            created_at=utcnow(),
            facility_code=facility_code,
            visit_key=visit_key,
        )
        .on_conflict_do_nothing(index_elements=["event_id", "person_id"])
        .returning(Notification.id)
    )
    return created


async def _to_tell(
    session: AsyncSession, event: OutboxEvent, notice: _Notice, earlier: _Earlier
) -> list[PushMessage]:
    """The pushes of this attempt: every recipient not told, nor given up, before."""
    messages = await _recipients(session, event, notice.person_id, notice.kind, notice.params)
    return [m for m in messages if m.person_id not in earlier.pushed | earlier.refused]


async def _push_each(push: PushAdapter, messages: Sequence[PushMessage]) -> _Pushed:
    """Tell every phone; a recipient refused for good is given up alone, any other failure
    is kept for the attempt to report, and the other phones are told all the same. Needs no
    database: on SQLite it runs with no transaction open."""
    pushed: set[int] = set()
    refused: set[int] = set()
    failures: list[str] = []
    for message in messages:
        try:
            await push.push(message)
        except PushRefused as exc:
            refused.add(message.person_id)
            log.warning("push_refused", person_id=message.person_id, status=exc.status)
        except Exception as exc:  # noqa: BLE001 - the service may take it later; others go on
            failures.append(f"{type(exc).__name__}: {exc}")
        else:
            pushed.add(message.person_id)
    return _Pushed(frozenset(pushed), frozenset(refused), tuple(failures))


def _told(
    event: OutboxEvent, created: int | None, earlier: _Earlier, now: _Pushed
) -> dict[str, Any]:
    """The attempt's detail: who was told or given up, by this attempt and every earlier one.
    When some pushes failed, ``DeliveryFailed(partial=True)``: the inbox row stays, with the
    list of those told, so that the retry (or the replay of a dead letter) tells only the
    rest."""
    pushed, refused = earlier.pushed | now.pushed, earlier.refused | now.refused
    done = {"pushed": sorted(pushed), "refused": sorted(refused)}
    if refused and not pushed and not now.failures:
        # every phone said "unknown recipient": worth a look (a wrong app registration?)
        log.warning("push_nobody_reachable", event_id=event.event_id, refused=len(refused))
    if now.failures:
        failures = now.failures
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise DeliveryFailed(f"push: {failures[0]}{more}", keep=done, partial=True)
    return {"notification_id": created, **done}


def _notifier(push: PushAdapter, notice_of: Callable[[OutboxEvent], _Notice | None]) -> Remote:
    """The inbox consumer of ``notice_of``'s events: the inbox row (once per event and
    person) and a push to every recipient not told by an earlier attempt. A recipient the
    push service refuses for good is given up alone and recorded (``refused``); when some
    pushes fail otherwise, every other phone is told all the same and the attempt fails,
    keeping the inbox row (D99).

    On SQLite a round reads whom to tell on a snapshot, pushes with no transaction open (the
    file's one write lock is not held while the push service answers) and writes the inbox
    row with the attempt after (D129); the event's claim keeps other workers from it
    meanwhile. Elsewhere (PostgreSQL rounds, JetStream) one transaction writes the row first:
    a second delivery of the event at the same time waits for its commit, then finds it
    told."""

    async def prepare(session: AsyncSession, event: OutboxEvent) -> Call[_Pushed] | dict[str, Any]:
        notice = notice_of(event)
        if notice is None:
            return {"note": "nobody to tell"}
        notice = await _judged(session, event, notice)
        if notice is None:
            return {"note": "nobody to tell"}
        if await _told_of_the_visit(session, event, notice):
            return dict(_TOLD_OF_THE_VISIT)
        stored = await session.scalar(
            select(Notification.id).where(
                Notification.event_id == event.event_id,
                Notification.person_id == notice.person_id,
            )
        )
        earlier = await _earlier(session, event)
        if stored is not None and not earlier.unfinished:
            return dict(_TOLD_BEFORE)  # the row and its pushes
        messages = await _to_tell(session, event, notice, earlier)

        async def record(session: AsyncSession, now: _Pushed) -> dict[str, Any]:
            return _told(event, await _store(session, event, notice), earlier, now)

        return Call(lambda: _push_each(push, messages), record)

    async def inline(session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        notice = notice_of(event)
        if notice is None:
            return {"note": "nobody to tell"}
        notice = await _judged(session, event, notice)
        if notice is None:
            return {"note": "nobody to tell"}
        if await _told_of_the_visit(session, event, notice):
            return dict(_TOLD_OF_THE_VISIT)
        created = await _store(session, event, notice)
        earlier = await _earlier(session, event)
        if created is None and not earlier.unfinished:
            return dict(_TOLD_BEFORE)  # the row and its pushes
        messages = await _to_tell(session, event, notice, earlier)
        return _told(event, created, earlier, await _push_each(push, messages))

    return Remote(prepare, inline)


#: Kinds whose ``facility`` parameter is the facility's code (the events of visits and
#: emergency accesses, and of their reviews, carry the code; papers and views carry the name
#: already).
_FACILITY_BY_CODE = ("visit", "emergency", "emergency_unjustified")


async def texts_of(
    session: AsyncSession,
    messages: Sequence[tuple[str, dict[str, Any]]],
    about: Sequence[str | None] = (),
    withheld: Sequence[bool] = (),
) -> list[dict[str, dict[str, str]]]:
    """Title and text of each ``(kind, params)`` as the citizen reads them: a facility by its
    name in the registry (its code alone tells a citizen nothing; "Cơ sở 01001" when the code
    is unknown), an emergency reason by its label (``web.reason.*``), not the API's code. The
    stored parameters keep the codes, for the app and for later renames.

    ``about`` gives, for each message, the name of the person it is about when the reader acts
    for them (a parent reading a child's): worded as the representative's push ("…của ‹tên›",
    never "your"), with the facility, as the reader's book shows it. None, or no ``about``,
    for the reader's own. ``withheld`` marks the messages whose facility the reader may not
    see (``facility_withheld``): worded without it."""
    shown = await _shown(session, messages)
    names = list(about) if about else [None] * len(messages)
    hidden = list(withheld) if withheld else [False] * len(messages)
    return [
        render(kind, {**params, "name": name}, "_for_confided" if hide else "_for")
        if name
        else render(kind, params)
        for (kind, _), params, name, hide in zip(messages, shown, names, hidden, strict=True)
    ]


async def _shown(
    session: AsyncSession, messages: Sequence[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The parameters of each message as a person reads them (``texts_of``)."""

    def code_of(kind: str, params: dict[str, Any]) -> str | None:
        code = params.get("facility")
        return code if kind in _FACILITY_BY_CODE and isinstance(code, str) and code else None

    codes = {code for kind, params in messages if (code := code_of(kind, params))}
    names = await facilities.directory(session, codes) if codes else {}
    places = (
        await catalogs.codebook(session)
        if any(kind in _REPRESENTATION for kind, _ in messages)
        else None
    )
    found = []
    for kind, params in messages:
        shown = dict(params)
        code = code_of(kind, params)
        if code is not None:
            shown["facility"] = (
                dict.fromkeys(LANGUAGES, names[code].name)
                if code in names
                else texts("notify.facility_code", {"code": code})
            )
        reason = f"web.reason.{params.get('reason')}"
        if kind == "emergency" and reason in catalogue("vi"):
            shown["reason"] = texts(reason)
        opened = params.get("opened")
        if kind == "emergency_unjustified" and isinstance(opened, str) and len(opened) == 10:
            # the day the access was opened, as the portal writes a date (D158)
            shown["opened"] = f"{opened[8:10]}/{opened[5:7]}/{opened[:4]}"
        if kind in _REPRESENTATION and places is not None:
            shown |= _representative_shown(places, params)
        found.append(shown)
    return found


#: Kinds told on the day a representation recorded earlier begins or ends (D247), to the
#: person and to the agent (``identity.DUE_KINDS``).
_ON_THE_DAY = frozenset(kind for pair in identity.DUE_KINDS.values() for kind in pair)
#: Kinds of notices about a representation: recorded (``representative``), ended, told to
#: the person and their representatives (``representative_ended``) and to the former agent
#: (``representative_released``), and those told on the day.
_REPRESENTATION = (
    "representative",
    "representative_ended",
    "representative_released",
    *sorted(_ON_THE_DAY),
)


def _day(value: object) -> str:
    """An ISO day as the portal writes a date (D158); anything else as it is."""
    if isinstance(value, str) and len(value) == 10:
        return f"{value[8:10]}/{value[5:7]}/{value[:4]}"
    return str(value or "")


def _place(places: catalogs.Snapshot, kind: str, code: str) -> str | None:
    """The name of a ward or province: in force today, else its latest (a ward merged by the
    2025 reform keeps the name it had when the link was recorded)."""
    versions = places.of(kind, code)
    current = places.in_force(kind, code, today_in_vietnam())
    latest = current or max(versions, key=lambda v: v.valid_from or date.min, default=None)
    return latest.title_vi if latest is not None and latest.title_vi else None


def _representative_shown(places: catalogs.Snapshot, params: dict[str, Any]) -> dict[str, Any]:
    """A representation's notice in words: the relation, the period (of an end, from when:
    ``when``) and the office that recorded it by name (the parameters keep the codes and ISO
    days)."""
    relation = f"notify.representative.relation.{params.get('relation')}"
    days = {"valid_from": _day(params.get("valid_from")), "valid_to": _day(params.get("valid_to"))}
    period = "between" if params.get("valid_to") else "since"
    office = params.get("office")
    if office in ("ward", "department"):
        kind = "ward" if office == "ward" else "province"
        code = str(params.get(kind) or "")
        name = _place(places, kind, code)
        said = (
            texts(f"notify.office.{office}", {kind: name})
            if name
            else texts(f"notify.office.{kind}_code", {"code": code})
        )
    else:
        said = texts("notify.office.national")
    found = {
        "relation": texts(relation) if relation in catalogue("vi") else params.get("relation"),
        "period": texts(f"notify.representative.{period}", days),
        "office": said,
    }
    if params.get("day"):
        found["day"] = _day(params.get("day"))  # the day a notice told on that day tells of
    if params.get("ends_on"):
        # an end: from which day, or from the start for a link withdrawn before it began
        when = "withdrawn" if params.get("withdrawn") else "ends"
        found["when"] = texts(
            f"notify.representative.{when}", {**days, "ends_on": _day(params.get("ends_on"))}
        )
    return found


def render(kind: str, params: dict[str, Any], suffix: str = "") -> dict[str, dict[str, str]]:
    """Title and text of a notification in Vietnamese and English, from the catalogues
    (``suffix`` "_for": a representative's, about ``params["name"]``). A parameter given as
    ``{"vi": ..., "en": ...}`` is taken in each language."""
    found: dict[str, dict[str, str]] = {"title": {}, "body": {}}
    for language in LANGUAGES:
        mine = {k: v[language] if isinstance(v, dict) else v for k, v in params.items()}
        found["title"][language] = text(f"notify.{kind}.title{suffix}", language, mine)
        found["body"][language] = text(f"notify.{kind}.body{suffix}", language, mine)
    return found


def visit_notifier(push: PushAdapter) -> Remote:
    """visit.accepted -> "a new visit is in your health book" (once per event and person): of
    a visit's first version, and of a correction that puts it in the person's book (another
    patient's before, or held out of every book: ``new_in_book``, D171). Other corrections
    tell nothing: the person was told of the visit already. A person is told of a visit once
    while it stays in their book, however many of its events come (``_told_of_the_visit``)."""

    def notice_of(event: OutboxEvent) -> _Notice | None:
        payload = event.payload
        person_id = payload.get("person_id")
        if not person_id or payload.get("test_mode"):
            return None
        if payload.get("version", 1) != 1 and not payload.get("new_in_book"):
            return None
        params = {
            "facility": payload.get("facility_code", ""),
            "visit_key": payload.get("visit_key", ""),
        }
        return _Notice(int(person_id), "visit", params)

    return _notifier(push, notice_of)


def event_notifier(kind: str, push: PushAdapter) -> Remote:
    """An event whose payload names ``person_id`` and ``params`` -> a notification of ``kind``
    (once per event and person), pushed to the app."""

    def notice_of(event: OutboxEvent) -> _Notice | None:
        person_id = event.payload.get("person_id")
        if not person_id:
            return None
        return _Notice(int(person_id), kind, dict(event.payload.get("params") or {}))

    return _notifier(push, notice_of)


def scheduled_notifier(push: PushAdapter) -> Remote:
    """representative.due -> the notice of the kind its payload names (``identity.DUE_KINDS``:
    a link begins today, its end takes effect today), once per event and person, delivered
    from the morning of that day (the event waits in the outbox until then) and only if it is
    still so (``_still_theirs``)."""

    def notice_of(event: OutboxEvent) -> _Notice | None:
        person_id, kind = event.payload.get("person_id"), event.payload.get("kind")
        if not person_id or kind not in _ON_THE_DAY:
            return None
        return _Notice(int(person_id), str(kind), dict(event.payload.get("params") or {}))

    return _notifier(push, notice_of)


#: The review's finding the inbox tells (``emergency.reviewed``); a justified access is not
#: told again: the citizen was told when it was opened, and it runs as it was told.
_TOLD_FINDINGS = frozenset({"unjustified"})


def review_notifier(push: PushAdapter) -> Remote:
    """emergency.reviewed -> "an emergency access to your record was found unjustified and
    ended" (once per event and person), pushed to the app; a justified finding tells no one.
    A representative of a person of 16 or more is not told which facility (D109, D124)."""

    def notice_of(event: OutboxEvent) -> _Notice | None:
        person_id = event.payload.get("person_id")
        if not person_id or event.payload.get("outcome") not in _TOLD_FINDINGS:
            return None
        params = dict(event.payload.get("params") or {})
        return _Notice(int(person_id), "emergency_unjustified", params)

    return _notifier(push, notice_of)


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of an inbox, newest first; ``next_cursor`` (None on the last page) gives the
    next, older one. ``unread`` counts every unread message, not only this page's."""

    items: list[Notification]
    unread: int
    next_cursor: str | None


#: The parameter that marks a notice about a visit touching a sensitive category (D35), or a
#: paper issued from one.
SENSITIVE = "sensitive"


def confided(holders: Collection[identity.Holder]) -> set[int]:
    """Of the persons whose messages the caller reads, those whose notices of sensitive
    visits the caller is not shown: the caller represents them and they may be 16 or more
    (``records.confiding``)."""
    today = today_in_vietnam()
    return {h.id for h in holders if records.confiding(h, today)}


def _visible(ids: Collection[int], confided: Collection[int]) -> ColumnElement[bool]:
    """The notices of these persons the caller is shown: of the persons in ``confided``, not
    those of a visit (or of a paper issued with one) whose timeline row does not know, today,
    that the visit touches no sensitive category (``records.known_plain``): a visit corrected
    into a category since, a row not yet filled or kept by an older classification, a notice
    stored before the marks (D132), a paper notice that names no visit. A notice marked
    sensitive when told is judged by its visit as it stands too: a visit corrected to a plain
    one since shows it again; the mark still hides one that names no visit, a birth
    certificate's, and a paper's stored before ``PAPER_KIND``. In SQL, one statement, so that
    a page is full, its cursor is of a shown notice, and counting, marking read and reading
    are of the same rows."""
    hidden = sorted(set(confided) & set(ids))
    if not hidden:
        return true()
    params = Notification.params
    marked = func.coalesce(params[SENSITIVE].as_boolean(), False)
    visit_key = params[PAPER_VISIT].as_string()
    facility = case(
        (Notification.kind == "paper", params[PAPER_FACILITY].as_string()),
        else_=params["facility"].as_string(),
    )
    plain = records.known_plain(Notification.person_id, facility, visit_key)
    unjudged = or_(
        and_(Notification.kind == "visit", not_(plain)),
        and_(
            Notification.kind == "paper",
            or_(visit_key.is_(None), and_(visit_key != "", not_(plain))),
        ),
    )
    # marked, yet judged by its visit (plain today, else ``unjudged`` hides it): a visit's
    # notice, or a paper's that names its visit and its kind, not a birth certificate
    paper_kind = func.coalesce(params[PAPER_KIND].as_string(), "birth")
    by_visit = or_(
        Notification.kind == "visit",
        and_(Notification.kind == "paper", visit_key != "", paper_kind != "birth"),
    )
    stays = and_(marked, not_(func.coalesce(by_visit, False)))
    return not_(and_(Notification.person_id.in_(hidden), or_(stays, unjudged)))


async def inbox(
    session: AsyncSession,
    person_ids: Collection[int],
    *,
    limit: int = 50,
    cursor: str | None = None,
    confided: Collection[int] = (),
) -> InboxPage:
    """The notifications of these persons (the caller and whom they represent), newest first,
    a page at a time: keyset on the id, so that messages arriving meanwhile neither repeat nor
    hide older ones (an invalid cursor is ``InvalidCursor``). Of the persons in ``confided``,
    notices of sensitive visits are left out, and not counted as unread."""
    ids = sorted(set(person_ids))
    shown = _visible(ids, confided)
    query = (
        select(Notification)
        .where(Notification.person_id.in_(ids), shown)
        .order_by(Notification.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        (after,) = decode_cursor(cursor, (int,))
        query = query.where(Notification.id < after)
    rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor((rows[-1].id,)) if more and rows else None
    unread = await session.scalar(
        select(func.count()).where(
            Notification.person_id.in_(ids), Notification.read_at.is_(None), shown
        )
    )
    return InboxPage(rows, int(unread or 0), next_cursor)


async def mark_read(
    session: AsyncSession,
    person_ids: Collection[int],
    notification_id: int,
    *,
    confided: Collection[int] = (),
) -> bool:
    """Mark a notification of these persons read. True when it is theirs, read now or before
    (marking twice is no error: two devices may both do it); False when it is nobody's of
    theirs, or one the caller is not shown (``inbox``'s ``confided``): answered as one that
    does not exist, and left unread for the young person."""
    ids = sorted(set(person_ids))
    shown = _visible(ids, confided)
    result = await session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.person_id.in_(ids),
            Notification.read_at.is_(None),
            shown,
        )
        .values(read_at=utcnow())
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    found = await session.scalar(
        select(Notification.id).where(
            Notification.id == notification_id, Notification.person_id.in_(ids), shown
        )
    )
    return found is not None


#: Notices read, and removed, per statement.
_PAGE = 500


async def forget(
    session: AsyncSession,
    person_id: int,
    visits: Collection[tuple[str, str]],
    held_papers: Collection[papers.HeldPaper],
) -> int:
    """Remove from the person's inbox the notices of these visits (facility, visit key) and
    papers, which have left their book (D167): a notice names the facility and the kind of
    care. A paper's notice is known by its number and kind (and the facility of the visit it
    came with). How many were removed; the person's notices are read a page at a time."""
    wanted_visits = set(visits)
    wanted_papers = {(p.number, p.kind): p for p in held_papers}
    if not wanted_visits and not wanted_papers:
        return 0
    gone: list[int] = []
    after = 0
    while True:
        rows = list(
            await session.execute(
                select(Notification.id, Notification.kind, Notification.params)
                .where(
                    Notification.person_id == person_id,
                    Notification.kind.in_(("visit", "paper")),
                    Notification.id > after,
                )
                .order_by(Notification.id)
                .limit(_PAGE)
            )
        )
        for notification_id, kind, params in rows:
            if _told_of(kind, params or {}, wanted_visits, wanted_papers):
                gone.append(int(notification_id))
        if len(rows) < _PAGE:
            break
        after = int(rows[-1][0])
    for start in range(0, len(gone), _PAGE):
        await session.execute(
            delete(Notification).where(Notification.id.in_(gone[start : start + _PAGE]))
        )
    return len(gone)


def _told_of(
    kind: str,
    params: dict[str, Any],
    visits: set[tuple[str, str]],
    held_papers: dict[tuple[str, str], papers.HeldPaper],
) -> bool:
    if kind == "visit":
        return (str(params.get("facility")), str(params.get("visit_key"))) in visits
    paper_kind = params.get(PAPER_KIND)
    for (number, held_kind), paper in held_papers.items():
        if params.get("number") != number or paper_kind not in (None, held_kind):
            continue
        if params.get(PAPER_FACILITY) in (None, "", paper.facility_code):
            return True
    return False


async def mark_all_read(
    session: AsyncSession, person_ids: Collection[int], *, confided: Collection[int] = ()
) -> int:
    """Mark every unread notification of these persons read that the caller is shown (of the
    persons in ``confided``, not the notices of sensitive visits: they stay unread for the
    young person); how many were."""
    ids = sorted(set(person_ids))
    result = await session.execute(
        update(Notification)
        .where(
            Notification.person_id.in_(ids),
            Notification.read_at.is_(None),
            _visible(ids, confided),
        )
        .values(read_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
