"""A paper's number belongs to one visit (D69): a visit naming a number that another visit's
paper holds is refused (PAP-0130), over HTTP and in files written together, and the first
patient's paper stays theirs; the same visit corrected keeps its paper."""

from __future__ import annotations

import copy
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.papers.test_api import SCOPES, local_now
from tests.submissions.test_intake import facility_with_token, send
from vnehr import catalogs, papers
from vnehr.kit.auth import Subject
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import IntakeOptions, Limits, synth
from vnehr.submissions.service import accept_many, prepare


def _appointment(code: str, seed: int, days_ago: int) -> synth.SynthVisit:
    return visit_of(
        code, seed, local_now() - timedelta(days=days_ago), care_type="01", insured=True,
        appointment=True,
    )  # fmt: skip


async def _papers(session: AsyncSession, code: str) -> list[Paper]:
    found = await session.scalars(
        select(Paper).where(Paper.facility_code == code).order_by(Paper.issued_at, Paper.version)
    )
    return list(found)


async def test_another_visit_cannot_take_a_paper_number_over(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    first = _appointment(code, 53, 5)
    assert (await send(client, headers, synth.envelope([first], code))).json()["status"] == (
        "accepted"
    )
    number = first.tables["XML14"][0]["SO_GIAYHEN_KL"]
    other = _appointment(code, 54, 4)
    assert who(other)[0] != who(first)[0]
    other.tables["XML14"][0]["SO_GIAYHEN_KL"] = number  # the HIS reuses a number
    receipt = (await send(client, headers, synth.envelope([other], code))).json()
    [visit] = receipt["visits"]
    assert visit["status"] == "rejected"
    [issue] = [i for i in visit["issues"] if i["code"] == "PAP-0130"]
    assert (issue["table"], issue["row"], issue["field"]) == ("XML14", 1, "SO_GIAYHEN_KL")
    assert first.ma_lk in issue["message"]["en"]
    [paper] = await _papers(session, code)  # the first patient's appointment, untouched
    assert (paper.status, paper.version, paper.visit_key) == ("valid", 1, first.ma_lk)
    assert paper.personal_id == who(first)[0]
    # the visit itself corrected, with its appointment: not refused, the paper still its own
    first.tables["XML1"][0]["GHI_CHU"] = "Bổ sung ghi chú"
    again = (await send(client, headers, synth.envelope([first], code))).json()
    assert again["visits"][0]["status"] != "rejected", again
    assert again["visits"][0]["version"] == 2
    kept = await _papers(session, code)
    assert [(p.visit_key, p.status) for p in kept] == [(first.ma_lk, "valid")]
    # /submissions/validate says so too, storing nothing
    checked = await client.post(
        "/api/v1/submissions/validate", content=synth.envelope([other], code), headers=headers
    )
    assert "PAP-0130" in {i["code"] for v in checked.json()["visits"] for i in v["issues"]}


async def test_two_visits_with_one_number_in_files_written_together(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, _ = await facility_with_token(client, session, settings, scopes=SCOPES)
    sender = Subject(
        "facility_system", "his", "HIS", scopes=frozenset({"submission.write"}), facility_code=code
    )
    first, other = _appointment(code, 55, 5), _appointment(code, 56, 4)
    other.tables["XML14"][0]["SO_GIAYHEN_KL"] = first.tables["XML14"][0]["SO_GIAYHEN_KL"]
    third = copy.deepcopy(_appointment(code, 57, 3))  # a number of its own
    codes = await catalogs.codebook(session)
    files = [
        (sender, data, prepare(data, codes=codes, limits=Limits()))
        for data in (synth.envelope([v], code) for v in (first, other, third))
    ]
    options = IntakeOptions(limits=Limits(), papers=papers.keys_for(settings))
    receipts = await accept_many(session, files, options)
    assert [r["visits"][0]["status"] != "rejected" for r in receipts] == [True, False, True]
    assert {p.visit_key for p in await _papers(session, code)} == {first.ma_lk, third.ma_lk}
