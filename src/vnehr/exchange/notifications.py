"""The citizen's inbox: a consumer turns events into notifications, and a push adapter tells
the app (the real VNeID push service plugs in here; development logs)."""

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
from vnehr.exchange.models import Notification
from vnehr.kit.clock import utcnow
from vnehr.kit.db import insert_for
from vnehr.kit.i18n import LANGUAGES, catalogue, text, texts
from vnehr.kit.logging import get_logger
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.paging import decode_cursor, encode_cursor

Handler = Callable[[AsyncSession, OutboxEvent], Awaitable[dict[str, Any] | None]]

log = get_logger("vnehr.notifications")


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What the citizen's phone is told (the inbox keeps the same)."""

    person_id: int
    personal_id: str | None  # how VNeID knows the citizen
    kind: str
    title: dict[str, str]
    body: dict[str, str]


class PushAdapter(Protocol):
    async def push(self, message: PushMessage) -> None: ...


class LogPush:
    """Development push: a log line instead of a message on the phone."""

    async def push(self, message: PushMessage) -> None:
        log.info("push", person_id=message.person_id, kind=message.kind, title=message.title["vi"])


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


async def _message(
    session: AsyncSession, person_id: int, kind: str, params: dict[str, Any]
) -> PushMessage:
    found = await identity.persons(session, [person_id])
    [text] = await texts_of(session, [(kind, params)])
    holder = found.get(person_id)
    return PushMessage(
        person_id, holder.personal_id if holder else None, kind, text["title"], text["body"]
    )


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
        if created is not None:
            await push.push(await _message(session, int(person_id), "visit", params))
        return {"notification_id": created}

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
        if created is not None:
            await push.push(await _message(session, int(person_id), kind, params))
        return {"notification_id": created}

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
