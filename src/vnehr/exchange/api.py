"""HTTP routes of the exchange context: the citizen's notification inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.exchange import notifications
from vnehr.kit.auth import CurrentSubject, Subject
from vnehr.kit.errors import NotFound
from vnehr.kit.http import ReadSession, WriteSession, error_responses

router = APIRouter(prefix="/api/v1/me/notifications", tags=["notifications"])
#: Row ids are 64-bit: a larger number is a 422, not a database overflow.
MAX_ROW_ID = 2**63 - 1


class Whose(BaseModel):
    """The person a message is about: the caller, or a child or ward they represent."""

    personal_id: str | None
    name: str
    relation: str | None = Field(
        description="None: the caller's own; parent | guardian: a person the caller represents"
    )


class Message(BaseModel):
    id: int
    kind: str
    title: dict[str, str]
    body: dict[str, str]
    params: dict[str, Any]
    created_at: datetime
    read: bool
    person: Whose


class Inbox(BaseModel):
    unread: int = Field(description="Unread messages in all, not only on this page.")
    items: list[Message]
    next_cursor: str | None = Field(default=None, description="Opaque; absent on the last page.")


class Marked(BaseModel):
    marked: int


async def _holders(session: AsyncSession, subject: Subject) -> dict[int, identity.Holder]:
    """Whose messages the caller reads: their own and those of the persons they represent
    today (a parent is told of a visit to, or an emergency access to, their child's record).
    The messages tell of the health book, so a level-1 identity reads none (D12, ID-0101)."""
    return {h.id: h for h in await identity.book_holders(session, subject)}


@router.get("", response_model=Inbox, responses=error_responses(400, 401, 403, 404))
async def my_notifications(
    session: ReadSession,
    subject: CurrentSubject,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Inbox:
    """My notifications and those of the persons I represent, newest first, with cursor
    paging and the number still unread."""
    holders = await _holders(session, subject)
    page = await notifications.inbox(
        session,
        holders,
        limit=limit,
        cursor=cursor,
        confided=notifications.confided(holders.values()),
    )
    # a represented person's messages name them, as their push does (D100); one's own: "your"
    whose = [holders[r.person_id] for r in page.items]
    # who looked at the record of a person of 16 or more is not named to a representative
    hidden = [
        h.relation is not None and notifications.facility_withheld(r.kind, h)
        for r, h in zip(page.items, whose, strict=True)
    ]
    rendered = await notifications.texts_of(
        session,
        [(r.kind, r.params) for r in page.items],
        [h.full_name if h.relation else None for h in whose],
        hidden,
    )
    return Inbox(
        unread=page.unread,
        next_cursor=page.next_cursor,
        items=[
            Message(
                id=row.id,
                kind=row.kind,
                # shown again (its visit corrected to a plain one), a notice must not tell a
                # representative that it was marked sensitive when told, and hidden
                params={
                    k: v
                    for k, v in row.params.items()
                    if not (hide and k == "facility")
                    and not (h.relation is not None and k == notifications.SENSITIVE)
                },
                created_at=row.created_at,
                read=row.read_at is not None,
                person=Whose(
                    personal_id=holders[row.person_id].personal_id,
                    name=holders[row.person_id].full_name,
                    relation=holders[row.person_id].relation,
                ),
                **text,
            )
            for row, text, hide, h in zip(page.items, rendered, hidden, whose, strict=True)
        ],
    )


@router.post("/read-all", response_model=Marked, responses=error_responses(401, 403, 404))
async def mark_all_read(session: WriteSession, subject: CurrentSubject) -> Marked:
    """Mark all my notifications (and those of the persons I represent) as read."""
    holders = await _holders(session, subject)
    confided = notifications.confided(holders.values())
    return Marked(marked=await notifications.mark_all_read(session, holders, confided=confided))


@router.post("/{notification_id}/read", status_code=204, responses=error_responses(401, 403, 404))
async def mark_read(
    session: WriteSession,
    subject: CurrentSubject,
    notification_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
) -> None:
    """Mark one of my notifications (or of a person I represent) as read; marking it again
    is no error."""
    holders = await _holders(session, subject)
    confided = notifications.confided(holders.values())
    if not await notifications.mark_read(session, holders, notification_id, confided=confided):
        raise NotFound(path=f"/api/v1/me/notifications/{notification_id}")
