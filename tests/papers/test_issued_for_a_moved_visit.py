"""A paper a facility issued through the papers API for a visit it sent (a sick leave citing
the visit's MA_LK) names the visit's patient. When the facility corrects the visit to another
patient, the paper is no longer hers: it leaves her book as a paper of the visit file does
(D170), and, since nothing the facility sent replaces it, it is revoked with a reason that
says why, so that whoever checks it is told and the facility knows to issue it again for the
right person. The hub never moves it to him by itself; the facility's new issue of the same
number for the same visit is the paper's next version, in his book."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import SCOPES, local_now, sick_leave, verify
from tests.papers.test_corrections import qr_of
from tests.papers.test_holder_moved import (
    CUONG,
    HIS_DIAGNOSIS,
    HOA,
    _book,
    _moved_rows,
    _tell_holders,
    as_patient,
)
from tests.submissions.test_intake import facility_with_token, send
from vnehr import catalogs, papers
from vnehr.audit import AuditEvent
from vnehr.kit.auth import Subject
from vnehr.kit.i18n import text
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import IntakeOptions, Limits, synth
from vnehr.submissions.service import accept, accept_many, prepare

#: The receipt's warning that a correction revoked a paper the facility issued for the visit.
REVOKED = "SUB-0172"


async def _leave_of_hoa(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, seed: int
) -> tuple[str, dict[str, str], synth.SynthVisit, dict[str, Any], Paper]:
    """A visit of Hoa (signed in with VNeID) and the sick leave the facility issued for it
    through the papers API afterwards: in her book, told in her inbox."""
    await sign_in_as(client, session, settings, HOA)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, seed, local_now() - timedelta(days=2), care_type="01", insured=True,
        appointment=False, age_group=3,
    )  # fmt: skip
    one.tables["XML1"][0]["MA_BENH_CHINH"] = "J06.9"
    as_patient(one, HOA)
    sent = await send(client, headers, synth.envelope([one], code))
    assert sent.json()["visits"][0]["outcome"] == "new", sent.text
    body = {"kind": "sick_leave", "visit_key": one.ma_lk, "fields": sick_leave(one, 10)}
    made = await client.post("/api/v1/papers", json=body, headers=headers)
    assert made.status_code == 201, made.text
    paper = await session.get(Paper, made.json()["id"])
    assert paper is not None
    assert paper.person_id is not None
    await _tell_holders(session)
    hers = await _book(client, session, settings, HOA)
    assert hers["papers"] == [(paper.id, "valid", None)]
    assert len(hers["notices"]) == 1
    assert f"paper-{paper.id}" in hers["documents"]
    client.cookies.clear()
    return code, headers, one, body, paper


async def _correct(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    code: str,
    one: synth.SynthVisit,
    to: tuple[str, str, str, str],
) -> dict[str, Any]:
    """The correction, over the API; returns the visit's entry in its receipt."""
    as_patient(one, to)
    one.tables["XML1"][0]["CHAN_DOAN_RV"] = HIS_DIAGNOSIS
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text
    entry: dict[str, Any] = fixed.json()["visits"][0]
    return entry


def _told_to_issue_again(entry: dict[str, Any], paper: Paper) -> None:
    """The receipt's entry of the corrected visit names the revoked paper by kind and number,
    in words in both languages, and tells the facility to issue it again; never whose it was."""
    assert entry["status"] == "accepted_with_warnings", entry
    [warning] = [w for w in entry["issues"] if w["code"] == REVOKED]
    assert warning["severity"] == "warning"
    assert {k: warning["detail"][k] for k in ("paper_id", "kind", "number")} == {
        "paper_id": paper.id,
        "kind": "sick_leave",
        "number": paper.number,
    }
    for language in ("vi", "en"):
        message = warning["message"][language]
        assert paper.number in message
        assert text("web.paper_kind.sick_leave", language) in message
    assert "cấp lại" in warning["message"]["vi"]
    assert "issue it again" in warning["message"]["en"].lower()
    for hers in HOA:
        assert hers not in str(warning)


@pytest.mark.parametrize("corrected_to", ["another patient", "held out of her book"])
async def test_a_paper_issued_for_a_visit_corrected_to_another_patient_leaves_her_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, corrected_to: str
) -> None:
    code, headers, one, _, old = await _leave_of_hoa(client, session, settings, 91)
    hoa_id = old.person_id
    qr = qr_of(old)

    # the facility says the visit was Cường's (or, under her ID, someone VNeID does not know
    # by that name: held out of every book, D150)
    other = CUONG if corrected_to == "another patient" else (HOA[0], "Phạm Thị Khác", *HOA[2:])
    entry = await _correct(client, headers, code, one, other)
    await _tell_holders(session)

    # the receipt tells the facility which paper was revoked, to issue it again
    _told_to_issue_again(entry, old)

    hers = await _book(client, session, settings, HOA)
    assert hers["papers"] == []
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

    # whoever checks the paper she was given is told it no longer holds, and why, in words
    checked = await verify(client, qr)
    assert (checked["authentic"], checked["valid"], checked["status"]) == (True, False, "revoked")
    assert checked["reason"] == "visit_moved"
    for language in ("vi", "en"):
        page = await client.post(f"/verify?lang={language}", data={"qr": qr})
        assert text("web.papers.reason.visit_moved", language) in page.text

    # the facility reads its paper: revoked because the visit moved, to be issued again
    kept = await client.get(f"/api/v1/papers/{old.id}", headers=headers)
    assert kept.status_code == 200, kept.text
    assert (kept.json()["status"], kept.json()["revoke_reason"]) == ("revoked", "visit_moved")

    # audited about her, never naming who the visit is now said to be of
    assert await _moved_rows(session, old.id) == [(hoa_id, {"reason": "another_holder"})]
    revoked = list(
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "paper.revoked", AuditEvent.object_id == old.id
            )
        )
    )
    assert [(r.person_id, r.detail["reason"]) for r in revoked] == [(hoa_id, "visit_moved")]
    assert CUONG[0] not in str([r.detail for r in revoked])

    if corrected_to == "another patient":
        # the hub did not hand her paper to him
        his = await _book(client, session, settings, CUONG)
        assert his["papers"] == []
        assert his["notices"] == []


async def test_the_facility_issues_the_paper_again_for_the_visit_s_patient(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, one, body, old = await _leave_of_hoa(client, session, settings, 92)
    await _correct(client, headers, code, one, CUONG)

    # the same number, for the same visit: its next version, now his (the holder comes from
    # the visit as stored, never from what the facility sends)
    again = await client.post("/api/v1/papers", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert (again.json()["outcome"], again.json()["version"]) == ("replaced", 2)
    assert again.json()["content"]["holder"]["personal_id"] == CUONG[0]
    await _tell_holders(session)

    his = await _book(client, session, settings, CUONG)
    assert his["papers"] == [(again.json()["id"], "valid", None)]
    assert HOA[1] not in his["text"]
    assert len(his["notices"]) == 1
    hers = await _book(client, session, settings, HOA)
    assert hers["papers"] == []
    assert hers["notices"] == []
    client.cookies.clear()
    # her version stays revoked for whoever checks it
    checked = await verify(client, qr_of(old))
    assert (checked["valid"], checked["reason"]) == (False, "visit_moved")


async def test_a_correction_that_keeps_the_patient_keeps_the_paper(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, one, _, old = await _leave_of_hoa(client, session, settings, 93)
    entry = await _correct(client, headers, code, one, HOA)
    await _tell_holders(session)

    assert REVOKED not in [w["code"] for w in entry["issues"]]

    hers = await _book(client, session, settings, HOA)
    assert hers["papers"] == [(old.id, "valid", None)]
    assert len(hers["notices"]) == 1
    assert await _moved_rows(session, old.id) == []


@pytest.mark.parametrize("written", ["one file", "a batch"])
async def test_the_receipt_of_a_correction_written_alone_or_in_a_batch_names_the_revoked_paper(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, written: str
) -> None:
    # the intake's two writers: a file alone (``accept``, a batch retried file by file) and
    # the group commit or the import (``accept_many``), here with a new visit before it
    code, _, one, _, old = await _leave_of_hoa(client, session, settings, 94)
    sender = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=code
    )
    options = IntakeOptions(limits=Limits(), papers=papers.keys_for(settings))
    codes = await catalogs.codebook(session)
    as_patient(one, CUONG)
    correction = synth.envelope([one], code)
    analysis = prepare(correction, codes=codes, limits=options.limits)
    if written == "one file":
        receipt = await accept(session, sender, correction, analysis, options)
    else:
        other = visit_of(code, 95, local_now() - timedelta(days=1))
        first = synth.envelope([other], code)
        files = [
            (sender, first, prepare(first, codes=codes, limits=options.limits)),
            (sender, correction, analysis),
        ]
        answers = await accept_many(session, files, options)
        assert all(isinstance(a, dict) for a in answers), answers
        assert REVOKED not in str(answers[0])
        receipt = answers[1]
        assert isinstance(receipt, dict)
    [entry] = receipt["visits"]
    assert entry["outcome"] == "changed"
    _told_to_issue_again(entry, old)
    assert receipt["status"] == "accepted_with_warnings"
    paper_id = old.id
    await session.flush()
    session.expire_all()
    revoked = await session.get(Paper, paper_id)
    assert revoked is not None
    assert (revoked.status, revoked.revoke_reason) == ("revoked", "visit_moved")
