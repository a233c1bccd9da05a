"""Papers given a holder while the holder's personal ID was pending confirmation, compared at
the holder's first VNeID sign-in as a paper is compared when issued (D150, D152): those naming
someone else are nobody's (D167)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.papers.models import Paper
from vnehr.papers.service import HeldPaper, _birth_of

#: Papers read, and rows written, per statement.
PAGE = 500


async def hold_unconfirmed(session: AsyncSession, match: identity.PatientMatch) -> list[HeldPaper]:
    """The papers in the person's book (every version) whose holder's name or birth date are
    not what VNeID confirmed of them, compared as a paper being issued is (``_holder``): they
    get no holder, as if issued now. Read a page at a time."""
    held: list[HeldPaper] = []
    after = ""
    while True:
        rows = list(
            await session.execute(
                select(Paper.id, Paper.kind, Paper.number, Paper.facility_code,
                       Paper.visit_key, Paper.content["holder"])
                .where(Paper.person_id == match.person_id, Paper.id > after)
                .order_by(Paper.id)
                .limit(PAGE)
            )
        )  # fmt: skip
        for paper_id, kind, number, facility_code, visit_key, holder in rows:
            holder = holder if isinstance(holder, dict) else {}
            if match.differs(holder.get("name") or "", *_birth_of(holder)):
                held.append(HeldPaper(paper_id, kind, number, facility_code, visit_key))
        if len(rows) < PAGE:
            break
        after = rows[-1][0]
    for start in range(0, len(held), PAGE):
        await session.execute(
            update(Paper)
            .where(
                Paper.id.in_([p.paper_id for p in held[start : start + PAGE]]),
                Paper.person_id == match.person_id,
            )
            .values(person_id=None)
            .execution_options(synchronize_session=False)
        )
    return held
