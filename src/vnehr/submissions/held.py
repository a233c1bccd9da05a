"""Visits filed while their patient's personal ID was pending confirmation, compared at the
holder's first VNeID sign-in by the intake's own rule (D150), and the receipts of those held
then saying so, as the intake's receipt says it of a visit held as it arrives (D167)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.submissions.models import Submission
from vnehr.submissions.rules import Issue, patient_named
from vnehr.submissions.service import _CONFIRMED_FIELDS, HELD, _file_status


def unconfirmed_fields(match: identity.PatientMatch, xml1: Mapping[str, str]) -> list[str]:
    """The fields of a visit's XML1 (HO_TEN, NGAY_SINH) that are not what VNeID confirmed of
    the person its SO_CCCD names: the intake's comparison (``_book_of``); none while nothing
    is confirmed."""
    return [_CONFIRMED_FIELDS[name] for name in match.differs(*patient_named(xml1))]


def held_warnings(fields: Sequence[str], held_at: datetime) -> list[dict[str, Any]]:
    """SUB-0170 for each field, as the intake's receipt gives it, with the moment the visit
    was held (``detail.held_at``): later than the receipt, at the holder's first sign-in."""
    return [
        Issue(HELD, "warning", "XML1", 1, field_, {"held_at": held_at.isoformat()}).as_dict()
        for field_ in fields
    ]


async def note_held(
    session: AsyncSession, held: Sequence[tuple[str, str, list[dict[str, Any]]]]
) -> None:
    """Add to the receipts (submission id, visit key, warnings) the warnings of the visits
    held after they were received: the visit's entry gets them, and its status and the
    file's become ``accepted_with_warnings`` when they were ``accepted``. The receipts are
    locked first (PostgreSQL): two first sign-ins may hold visits of one file at once."""
    by_file: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for submission_id, visit_key, warnings in held:
        by_file[submission_id].setdefault(visit_key, []).extend(warnings)
    for submission_id in sorted(by_file):
        # (the receipt alone, not the file kept beside it)
        found = (
            await session.execute(
                select(Submission.receipt, Submission.status)
                .where(Submission.id == submission_id)
                .with_for_update()
            )
        ).first()
        if found is None:
            continue
        receipt, status = found
        wanted = by_file[submission_id]
        visits = []
        for entry in receipt.get("visits") or []:
            added = wanted.get(entry.get("visit_key"))
            if added and entry.get("status") != "rejected":
                entry = {
                    **entry,
                    "status": "accepted_with_warnings",
                    "issues": [*(entry.get("issues") or []), *added],
                }
            visits.append(entry)
        status = _file_status([v["status"] for v in visits]) if visits else status
        await session.execute(
            update(Submission)
            .where(Submission.id == submission_id)
            .values(receipt={**receipt, "status": status, "visits": visits}, status=status)
            .execution_options(synchronize_session=False)
        )
    await session.flush()
