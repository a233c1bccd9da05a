"""The citizen's inbox: a consumer turns events into notifications, and a push adapter tells
the app (the real VNeID push service plugs in here; development logs): the citizen's phone and
the phones of those who represent them today."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import facilities, identity
from vnehr.exchange.bhxh import DeliveryFailed
from vnehr.exchange.models import DeliveryAttempt, Notification
from vnehr.kit.clock import utcnow
from vnehr.kit.db import insert_for
from vnehr.kit.i18n import LANGUAGES, catalogue, text, texts
from vnehr.kit.logging import get_logger
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.paging import decode_cursor, encode_cursor

Handler = Callable[[AsyncSession, OutboxEvent], Awaitable[dict[str, Any] | None]]

log = get_logger("vnehr.notifications")


@dataclass(frozen=True, slots=True)
class About:
    """Whom a representative's push is about: the child or ward by name and the relation,
    never by personal ID (the representative's phone is not the place for it)."""

    relation: str  # parent | guardian
    name: str


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What a phone is told (the inbox keeps the same): the citizen's own, or, with
    ``about``, a representative's about the person they act for."""

    person_id: int  # the recipient
    personal_id: str | None  # how VNeID knows the recipient
    kind: str
    title: dict[str, str]
    body: dict[str, str]
    about: About | None = None


class PushAdapter(Protocol):
    async def push(self, message: PushMessage) -> None: ...


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
    ``X-Vnehr-Signature: sha256=<HMAC-SHA256 of the body>``. A failure raises, so the delivery
    is retried (the inbox row is written in the same savepoint and rolled back with it)."""

    def __init__(self, http: httpx.AsyncClient, url: str, secret: str) -> None:
        self.http, self.url, self.key = http, url, secret.encode()

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
        signature = hmac.new(self.key, body, hashlib.sha256).hexdigest()
        answer = await self.http.post(
            self.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Vnehr-Signature": f"sha256={signature}",
            },
        )
        if answer.status_code >= 300:
            raise RuntimeError(f"push refused: HTTP {answer.status_code}")


async def _tell(
    session: AsyncSession,
    push: PushAdapter,
    event: OutboxEvent,
    person_id: int,
    kind: str,
    params: dict[str, Any],
) -> int:
    """Push a new notification to the person's phone and to the phone of everyone who
    represents them today (both parents of a child; not one whose representation ended), the
    latter marked as about the person. Recipients that an earlier, failed attempt of this event
    already told are skipped; a failure raises ``DeliveryFailed`` naming those told so far, so
    that a retry tells nobody twice. How many were told now."""
    [shown] = await texts_of(session, [(kind, params)])
    holder = (await identity.persons(session, [person_id])).get(person_id)
    messages = [
        PushMessage(
            person_id, holder.personal_id if holder else None, kind, shown["title"], shown["body"]
        )
    ]
    if holder is not None:
        for agent in await identity.representatives(session, person_id):
            if agent.personal_id is None or agent.relation is None:
                continue  # nobody VNeID could reach
            title = {lang: f"{holder.full_name}: {t}" for lang, t in shown["title"].items()}
            about = About(agent.relation, holder.full_name)
            messages.append(
                PushMessage(agent.id, agent.personal_id, kind, title, shown["body"], about)
            )
    told = await _told_before(session, event)
    count = 0
    for message in messages:
        if message.person_id in told:
            continue
        try:
            await push.push(message)
        except Exception as exc:
            raise DeliveryFailed(
                f"push: {type(exc).__name__}: {exc}", keep={"pushed": sorted(told)}
            ) from exc
        told.add(message.person_id)
        count += 1
    return count


async def _told_before(session: AsyncSession, event: OutboxEvent) -> set[int]:
    """Recipients (person ids) that failed attempts of this event pushed to before failing."""
    if (event.attempts or 0) <= 1:
        return set()  # the first attempt: nothing to look up
    details = await session.scalars(
        select(DeliveryAttempt.detail).where(
            DeliveryAttempt.event_id == event.event_id, DeliveryAttempt.outcome == "failed"
        )
    )
    return {int(i) for d in details if isinstance(d, dict) for i in d.get("pushed") or ()}


#: Kinds whose ``facility`` parameter is the facility's code (the events of visits and
#: emergency accesses carry the code; papers and views carry the name already).
_FACILITY_BY_CODE = ("visit", "emergency")


async def texts_of(
    session: AsyncSession, messages: Sequence[tuple[str, dict[str, Any]]]
) -> list[dict[str, dict[str, str]]]:
    """Title and text of each ``(kind, params)`` as the citizen reads them: a facility by its
    name in the registry (its code alone tells a citizen nothing; "Cơ sở 01001" when the code
    is unknown), an emergency reason by its label (``web.reason.*``), not the API's code. The
    stored parameters keep the codes, for the app and for later renames."""

    def code_of(kind: str, params: dict[str, Any]) -> str | None:
        code = params.get("facility")
        return code if kind in _FACILITY_BY_CODE and isinstance(code, str) and code else None

    codes = {code for kind, params in messages if (code := code_of(kind, params))}
    names = await facilities.directory(session, codes) if codes else {}
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
        found.append(render(kind, shown))
    return found


def render(kind: str, params: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Title and text of a notification in Vietnamese and English, from the catalogues. A
    parameter given as ``{"vi": ..., "en": ...}`` is taken in each language."""
    found: dict[str, dict[str, str]] = {"title": {}, "body": {}}
    for language in LANGUAGES:
        mine = {k: v[language] if isinstance(v, dict) else v for k, v in params.items()}
        found["title"][language] = text(f"notify.{kind}.title", language, mine)
        found["body"][language] = text(f"notify.{kind}.body", language, mine)
    return found


def visit_notifier(push: PushAdapter) -> Handler:
    """visit.accepted -> "a new visit is in your health book" (once per event and person)."""

    async def deliver(session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        payload = event.payload
        person_id = payload.get("person_id")
        if not person_id or payload.get("test_mode") or payload.get("version", 1) != 1:
            return {"note": "nobody to tell"}
        params = {
            "facility": payload.get("facility_code", ""),
            "visit_key": payload.get("visit_key", ""),
        }
        insert = insert_for(session)
        created = await session.scalar(
            insert(Notification)
            .values(
                event_id=event.event_id,
                person_id=int(person_id),
                kind="visit",
                params=params,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["event_id", "person_id"])
            .returning(Notification.id)
        )
        told = 0
        if created is not None:
            told = await _tell(session, push, event, int(person_id), "visit", params)
        return {"notification_id": created, "told": told}

    return deliver


def event_notifier(kind: str, push: PushAdapter) -> Handler:
    """An event whose payload names ``person_id`` and ``params`` -> a notification of ``kind``
    (once per event and person), pushed to the app."""

    async def deliver(session: AsyncSession, event: OutboxEvent) -> dict[str, Any] | None:
        person_id = event.payload.get("person_id")
        if not person_id:
            return {"note": "nobody to tell"}
        params = dict(event.payload.get("params") or {})
        created = await session.scalar(
            insert_for(session)(Notification)
            .values(
                event_id=event.event_id,
                person_id=int(person_id),
                kind=kind,
                params=params,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["event_id", "person_id"])
            .returning(Notification.id)
        )
        told = 0
        if created is not None:
            told = await _tell(session, push, event, int(person_id), kind, params)
        return {"notification_id": created, "told": told}

    return deliver


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of an inbox, newest first; ``next_cursor`` (None on the last page) gives the
    next, older one. ``unread`` counts every unread message, not only this page's."""

    items: list[Notification]
    unread: int
    next_cursor: str | None


async def inbox(
    session: AsyncSession,
    person_ids: Collection[int],
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> InboxPage:
    """The notifications of these persons (the caller and whom they represent), newest first,
    a page at a time: keyset on the id, so that messages arriving meanwhile neither repeat nor
    hide older ones (an invalid cursor is ``InvalidCursor``)."""
    ids = sorted(set(person_ids))
    query = (
        select(Notification)
        .where(Notification.person_id.in_(ids))
        .order_by(Notification.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        (after,) = decode_cursor(cursor, (int,))
        query = query.where(Notification.id < after)
    rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    unread = await session.scalar(
        select(func.count()).where(Notification.person_id.in_(ids), Notification.read_at.is_(None))
    )
    return InboxPage(
        rows, int(unread or 0), encode_cursor((rows[-1].id,)) if more and rows else None
    )


async def mark_read(
    session: AsyncSession, person_ids: Collection[int], notification_id: int
) -> bool:
    """Mark a notification of these persons read. True when it is theirs, read now or before
    (marking twice is no error: two devices may both do it); False when it is nobody's of
    theirs."""
    ids = sorted(set(person_ids))
    result = await session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.person_id.in_(ids),
            Notification.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    found = await session.scalar(
        select(Notification.id).where(
            Notification.id == notification_id, Notification.person_id.in_(ids)
        )
    )
    return found is not None


async def mark_all_read(session: AsyncSession, person_ids: Collection[int]) -> int:
    """Mark every unread notification of these persons read; how many were."""
    result = await session.execute(
        update(Notification)
        .where(
            Notification.person_id.in_(sorted(set(person_ids))),
            Notification.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
