"""A person's first VNeID sign-in: what was filed to them while they were pending confirmation
(D23), when there was nothing to compare it with, is compared with what VNeID has just
confirmed of them, each as it is compared when it arrives (D150, D152), in the sign-in's
transaction (D167). A process across contexts that sit above identity, so the composition
root wires it (``identity.on_first_confirmation``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import audit, exchange, fhir, identity, papers, records, reporting, submissions
from vnehr.kit.clock import utcnow

#: The audit action of what a first sign-in took out of the person's book.
HELD = "patient.held_at_first_sign_in"


async def recheck(session: AsyncSession, match: identity.PatientMatch) -> None:
    """Hold what names someone else than VNeID confirmed, with the same effect as when it
    arrives: a visit (its current version) leaves the person's timeline, summary, sharing and
    inbox, its receipt warns SUB-0170, and the report stops counting it in a book; a paper
    has no holder; a Patient kept as sent, what was recorded in a held visit, and what a
    facility that then no longer has the person as its own patient wrote about them (D181)
    leave the FHIR compartment. The person's visits are read a page at a time. One audit row
    about the person says how many of each, naming nothing of whoever the stranger is."""
    now = utcnow()
    held: list[tuple[records.Filed, list[str]]] = []
    judged: dict[tuple[str, str], list[str]] = {}  # most visits name the person alike
    after = 0
    while True:
        page = await records.filed_to(session, match.person_id, after=after)
        for filed in page:
            if filed.xml1 is None:
                continue  # (unreadable: left as filed, logged)
            named = (filed.xml1.get("HO_TEN") or "", filed.xml1.get("NGAY_SINH") or "")
            if named not in judged:
                judged[named] = submissions.unconfirmed_fields(match, filed.xml1)
            if judged[named] and not filed.test_mode:
                held.append((filed, judged[named]))
        if not page:
            break
        after = page[-1].entry_id
    warned = [(filed, submissions.held_warnings(fields, now)) for filed, fields in held]
    await records.hold_out(session, match.person_id, warned)
    await submissions.note_held(
        session, [(filed.submission_id, filed.visit_key, added) for filed, added in warned]
    )
    await reporting.out_of_book(session, [filed for filed, _ in held])
    held_papers = await papers.hold_unconfirmed(session, match)
    resources = await fhir.release_unconfirmed(
        session, match, [filed.entry_id for filed, _ in held]
    )
    notices = await exchange.forget(
        session,
        match.person_id,
        [(filed.facility_code, filed.visit_key) for filed, _ in held],
        held_papers,
    )
    if not (held or held_papers or resources):
        return
    session.add(
        audit.audit_event(
            actor="vneid:first-sign-in",
            action=HELD,
            object_type="person",
            object_id=str(match.person_id),
            person_id=None,  # about no one's record, like a visit held as it arrives
            detail={
                "visits": len(held),
                "visit_versions": [filed.version_id for filed, _ in held],
                "fields": sorted({f for _, fields in held for f in fields}),
                "papers": len(held_papers),
                "paper_ids": [paper.paper_id for paper in held_papers],
                "fhir_resources": resources,
                "notices": notices,
            },
        )
    )
    await session.flush()
