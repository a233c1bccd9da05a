"""A correction that gives a visit another patient takes its papers out of the first one's
book: the earlier versions (the first holder's name, the new patient's diagnoses) name no
holder any more, her notices of them go, and her reads of them (JSON, PDF, QR, FHIR, the
list) answer as for a paper that does not exist; the old QR still verifies as revoked. A
correction that keeps the holder leaves her its earlier version, revoked, as her history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import SCOPES, Phone, local_now, verify
from tests.papers.test_corrections import qr_of
from tests.submissions.test_intake import facility_with_token, send
from vnehr import exchange
from vnehr.audit import AuditEvent
from vnehr.kit.outbox import OutboxEvent
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import synth

HOA = ("001190054321", "Phạm Thị Hoa", "1990-05-04", "female")
CUONG = ("001088012377", "Lê Văn Cường", "1988-07-21", "male")
#: What the facility wrote of Cường's visit: never to be read in Hoa's book.
HIS_DIAGNOSIS = "Viêm phổi thùy dưới phải"


def as_patient(one: synth.SynthVisit, who: tuple[str, str, str, str]) -> None:
    """The visit's patient, in every table that names them."""
    born = who[2].replace("-", "")
    for rows in one.tables.values():
        for row in rows:
            if row.get("HO_TEN"):
                row["HO_TEN"] = who[1]
            if row.get("SO_CCCD"):
                row["SO_CCCD"] = who[0]
            if row.get("GIOI_TINH"):
                row["GIOI_TINH"] = "1" if who[3] == "male" else "2"
            if row.get("NGAY_SINH"):
                row["NGAY_SINH"] = (born + "0000")[: len(row["NGAY_SINH"])]


async def _tell_holders(session: AsyncSession) -> None:
    """The inbox consumer takes every ``paper.issued`` event so far (again), reading the
    papers as they stand, as a worker's own session does."""
    session.expire_all()
    events = await session.scalars(select(OutboxEvent).where(OutboxEvent.topic == "paper.issued"))
    for event in events:
        await exchange.event_notifier("paper", Phone())(session, event)


async def _book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, who: Any
) -> dict[str, Any]:
    """What the person reads of their papers, signed in: the list, the inbox's paper
    notices and the FHIR DocumentReferences."""
    await sign_in_as(client, session, settings, who)
    listed = await client.get("/api/v1/me/papers")
    assert listed.status_code == 200, listed.text
    inbox = (await client.get("/api/v1/me/notifications")).json()
    fhir = (await client.get("/fhir/R4/DocumentReference")).json()
    return {
        "papers": [(p["id"], p["status"], p["revoke_reason"]) for p in listed.json()["papers"]],
        "text": listed.text,
        "notices": [n for n in inbox["items"] if n["kind"] == "paper"],
        "documents": [e["resource"]["id"] for e in fhir.get("entry", [])],
    }


async def _a_visit_of_hoa(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, seed: int
) -> tuple[str, dict[str, str], synth.SynthVisit, Paper]:
    """A visit with a re-exam appointment sent under Hoa's personal ID (Hoa signed in with
    VNeID), its paper in her book and its notice in her inbox."""
    await sign_in_as(client, session, settings, HOA)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, seed, local_now() - timedelta(days=5), care_type="01", insured=True,
        appointment=True, age_group=3,
    )  # fmt: skip
    as_patient(one, HOA)
    sent = await send(client, headers, synth.envelope([one], code))
    assert sent.status_code == 201, sent.text
    assert sent.json()["visits"][0]["outcome"] == "new", sent.text
    [paper] = (await session.scalars(select(Paper).where(Paper.facility_code == code))).all()
    await _tell_holders(session)
    hers = await _book(client, session, settings, HOA)
    assert hers["papers"] == [(paper.id, "valid", None)]
    assert len(hers["notices"]) == 1
    assert f"paper-{paper.id}" in hers["documents"]
    client.cookies.clear()
    return code, headers, one, paper


async def _gone_for_her(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, old: Paper
) -> None:
    """Hoa reads nothing of the paper any more, by any way, and is told nothing of it."""
    hers = await _book(client, session, settings, HOA)
    assert hers["papers"] == []
    assert HIS_DIAGNOSIS not in hers["text"]
    assert hers["notices"] == []
    assert hers["documents"] == []
    for address in (
        f"/api/v1/papers/{old.id}",
        f"/api/v1/papers/{old.id}.pdf",
        f"/api/v1/papers/{old.id}/qr.png",
        f"/fhir/R4/DocumentReference/paper-{old.id}",
    ):
        response = await client.get(address)
        assert response.status_code == 404, (address, response.text)
    client.cookies.clear()
    # whoever checks the QR she was given is told it is revoked
    checked = await verify(client, qr_of(old))
    assert (checked["authentic"], checked["valid"], checked["status"]) == (True, False, "revoked")


async def _moved_rows(session: AsyncSession, paper_id: str) -> list[tuple[Any, ...]]:
    rows = await session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "paper.moved", AuditEvent.object_id == paper_id
        )
    )
    return [(r.person_id, r.detail) for r in rows]


@pytest.mark.parametrize("appointment", ["kept", "dropped"])
async def test_a_correction_naming_another_patient_takes_the_paper_out_of_her_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, appointment: str
) -> None:
    code, headers, one, old = await _a_visit_of_hoa(client, session, settings, 81)
    hoa_id = old.person_id

    # the facility corrects the visit: it was Cường's, with his diagnosis (and, or not, the
    # appointment it carried)
    as_patient(one, CUONG)
    one.tables["XML1"][0]["CHAN_DOAN_RV"] = HIS_DIAGNOSIS
    if "XML14" in one.tables:
        one.tables["XML14"][0]["CHAN_DOAN_RV"] = HIS_DIAGNOSIS
    if appointment == "dropped":
        one.tables.pop("XML14")
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text
    await _tell_holders(session)

    await _gone_for_her(client, session, settings, old)
    rows = await _moved_rows(session, old.id)
    assert rows == [(hoa_id, {"reason": "another_holder"})]
    assert CUONG[0] not in str(rows)
    his = await _book(client, session, settings, CUONG)
    if appointment == "kept":
        [(paper_id, status, _)] = his["papers"]
        assert status == "valid"
        assert paper_id != old.id  # not her version, which names her
        assert HIS_DIAGNOSIS in his["text"]
        assert HOA[1] not in his["text"]
        assert len(his["notices"]) == 1
    else:
        assert his["papers"] == []
    # the facility that issued it still reads its own paper
    client.cookies.clear()
    kept = await client.get(f"/api/v1/papers/{old.id}", headers=headers)
    assert kept.status_code == 200, kept.text


async def test_a_correction_held_out_of_her_book_takes_the_paper_with_it(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, one, old = await _a_visit_of_hoa(client, session, settings, 82)
    hoa_id = old.person_id

    # under her ID, but not her name: the visit is held out of any book (D150), and so is
    # its paper, both versions
    as_patient(one, (HOA[0], "Phạm Thị Khác", HOA[2], HOA[3]))
    one.tables["XML1"][0]["CHAN_DOAN_RV"] = HIS_DIAGNOSIS
    one.tables["XML14"][0]["CHAN_DOAN_RV"] = HIS_DIAGNOSIS
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text
    assert "SUB-0170" in fixed.text
    await _tell_holders(session)

    await _gone_for_her(client, session, settings, old)
    assert await _moved_rows(session, old.id) == [(hoa_id, {"reason": "another_holder"})]


async def test_a_correction_that_keeps_the_holder_keeps_her_history(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, one, old = await _a_visit_of_hoa(client, session, settings, 83)

    one.tables["XML14"][0]["NGAY_HEN_KL"] = one.tables["XML14"][0]["NGAY_HEN_KL"][:8] + "1400"
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text
    await _tell_holders(session)

    hers = await _book(client, session, settings, HOA)
    [new, earlier] = hers["papers"]
    assert new[1:] == ("valid", None)
    assert earlier == (old.id, "revoked", "replaced")
    assert len(hers["notices"]) == 2  # each version was told
    assert (await client.get(f"/api/v1/papers/{old.id}.pdf")).status_code == 200
    assert await _moved_rows(session, old.id) == []
