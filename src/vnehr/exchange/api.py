"""HTTP routes of the exchange context: the citizen's notification inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.exchange import notifications
from vnehr.kit.auth import CurrentSubject, Forbidden, Subject
from vnehr.kit.errors import NotFound
from vnehr.kit.http import ReadSession, WriteSession, error_responses

router = APIRouter(prefix="/api/v1/me/notifications", tags=["notifications"])


class Message(BaseModel):
    id: int
    kind: str
    title: dict[str, str]
    body: dict[str, str]
    params: dict[str, Any]
    created_at: datetime
    read: bool


class Inbox(BaseModel):
    unread: int
    items: list[Message]


async def _person(session: AsyncSession, subject: Subject) -> int:
    if subject.kind != "person":
        raise Forbidden(action="read a person's notifications as a system")
    person_id = await identity.person_id_of(session, subject.id)
    if person_id is None:
        raise NotFound(path="/api/v1/me/notifications")
    return person_id


@router.get("", response_model=Inbox, responses=error_responses(401, 403, 404))
async def my_notifications(session: ReadSession, subject: CurrentSubject) -> Inbox:
    """My notifications, newest first, with the number still unread."""
    rows, unread = await notifications.inbox(session, await _person(session, subject))
    return Inbox(
        unread=unread,
        items=[
            Message(
                id=row.id,
                kind=row.kind,
                params=row.params,
                created_at=row.created_at,
                read=row.read_at is not None,
                **notifications.render(row.kind, row.params),
            )
            for row in rows
        ],
    )


@router.post("/{notification_id}/read", status_code=204, responses=error_responses(401, 403, 404))
async def mark_read(
    session: WriteSession,
    subject: CurrentSubject,
    notification_id: Annotated[int, Path(ge=1)],
) -> None:
    """Mark one of my notifications as read."""
    if not await notifications.mark_read(session, await _person(session, subject), notification_id):
        raise NotFound(path=f"/api/v1/me/notifications/{notification_id}")
