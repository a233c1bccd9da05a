"""A paper names its holder by personal ID, with a name and a birth date. When the holder has
signed in with VNeID and the paper's name or birth date differ from what VNeID confirmed, the
paper is most likely someone else's under a mistyped ID: the papers API refuses it (PAP-0008,
naming only the field), with no number taken; a birth certificate inside a visit file is
issued, like its visit (D150), but kept out of the named mother's book, and the receipt says
which field differs. Neither answer tells the sender the holder's own details."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import error, sign_in_as
from tests.papers.test_api import SCOPES, driver_body, local_now
from tests.papers.test_issuing import birth_row
from tests.submissions.test_intake import facility_with_token, send
from vnehr.audit import AuditEvent
from vnehr.kit.settings import Settings
from vnehr.papers.models import Paper
from vnehr.submissions import synth

AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
MOTHER = ("001195033333", "Lý Thị Mai", "1995-03-03", "female")
REFUSED = "PAP-0008"
IN_FILE = "SUB-0171"


def _told_nothing_of(response: httpx.Response, who: tuple[str, str, str, str]) -> None:
    born = who[2]
    for told in (who[1], who[1].upper(), born, born.replace("-", "")):
        assert told not in response.text


async def _papers_of(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, who: Any
) -> list[tuple[str, str]]:
    """(kind, status) of the papers the person's own book shows."""
    await sign_in_as(client, session, settings, who)
    found = (await client.get("/api/v1/me/papers")).json()["papers"]
    client.cookies.clear()
    return [(p["kind"], p["status"]) for p in found]


async def _refusals(session: AsyncSession) -> list[Any]:
    rows = await session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.not_confirmed")
    )
    return [(r.person_id, (r.detail or {}).get("fields")) for r in rows]


@pytest.mark.parametrize(
    ("name", "birth", "fields"),
    [
        ("Trần Văn Giả", AN[2], ["holder.name"]),
        (AN[1], "1985-03-15", ["holder.birth_date"]),
        ("Trần Văn Giả", "1985-01-01", ["holder.name", "holder.birth_date"]),
    ],
)
async def test_a_driver_certificate_naming_someone_else_under_an_s_id_is_refused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    name: str,
    birth: str,
    fields: list[str],
) -> None:
    await sign_in_as(client, session, settings, AN)  # VNeID confirmed An's details
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    holder = {"personal_id": AN[0], "name": name, "birth_date": birth, "sex": "male"}

    refused = await client.post("/api/v1/papers", json=driver_body(holder=holder), headers=headers)

    body = error(refused, 422, REFUSED)
    assert body["detail"]["fields"] == fields
    _told_nothing_of(refused, AN)
    assert list(await session.scalars(select(Paper).where(Paper.facility_code == code))) == []
    assert await _refusals(session) == [(None, fields)]
    # An's own details, written otherwise, are An's; the refusal took no number
    holder = {"personal_id": AN[0], "name": "NGUYEN VAN AN", "birth_date": AN[2], "sex": "male"}
    made = await client.post("/api/v1/papers", json=driver_body(holder=holder), headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["number"].startswith(f"{code}.KSK.000001.")
    assert await _papers_of(client, session, settings, AN) == [("driver", "valid")]


async def _a_birth(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, seed: int
) -> tuple[str, dict[str, str], synth.SynthVisit]:
    """The mother signed in with VNeID (her details confirmed), and a facility system about to
    send her baby's birth visit: its code, token header and the visit."""
    await sign_in_as(client, session, settings, MOTHER)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    baby = visit_of(
        code, seed, local_now() - timedelta(days=2), care_type="01", insured=True,
        appointment=False, age_group=0,
    )  # fmt: skip
    return code, headers, baby


async def test_a_birth_certificate_sent_after_the_visit_naming_another_mother_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, baby = await _a_birth(client, session, settings, 91)
    assert (await send(client, headers, synth.envelope([baby], code))).status_code == 201

    async def issued(**fields: str) -> httpx.Response:
        row = {**birth_row(baby, code, MOTHER), **fields}
        body = {"kind": "birth", "visit_key": baby.ma_lk, "fields": row}
        return await client.post("/api/v1/papers", json=body, headers=headers)

    wrong_name = await issued(HO_TEN_NND="Lý Thị Khác")
    assert error(wrong_name, 422, REFUSED)["detail"]["fields"] == ["HO_TEN_NND"]
    _told_nothing_of(wrong_name, MOTHER)
    wrong_day = await issued(NGAYSINH_NND="19950304")
    assert error(wrong_day, 422, REFUSED)["detail"]["fields"] == ["NGAYSINH_NND"]
    assert await _papers_of(client, session, settings, MOTHER) == []

    made = await issued(HO_TEN_NND="LÝ THỊ MAI")
    assert made.status_code == 201, made.text
    assert await _papers_of(client, session, settings, MOTHER) == [("birth", "valid")]
    assert len(await _refusals(session)) == 2


def _warned(receipt: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [
        (i["table"], i["row"], i["field"])
        for v in receipt["visits"]
        for i in v["issues"]
        if i["code"] == IN_FILE
    ]


async def test_a_birth_certificate_in_a_visit_file_naming_another_mother_stays_out_of_her_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, baby = await _a_birth(client, session, settings, 92)
    baby.tables["XML9"] = [{**birth_row(baby, code, MOTHER), "HO_TEN_NND": "Lý Thị Khác"}]

    # the visit and its paper are kept (the visit is the baby's, and relayed), the paper with
    # no holder; the receipt names the field
    response = await send(client, headers, synth.envelope([baby], code))
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["status"] == "accepted_with_warnings", receipt
    assert _warned(receipt) == [("XML9", 1, "HO_TEN_NND")]
    _told_nothing_of(response, MOTHER)
    [paper] = await session.scalars(select(Paper).where(Paper.facility_code == code))
    assert (paper.kind, paper.person_id, paper.status) == ("birth", None, "valid")
    assert await _papers_of(client, session, settings, MOTHER) == []

    # corrected: the mother's
    baby.tables["XML9"] = [birth_row(baby, code, MOTHER)]
    fixed = (await send(client, headers, synth.envelope([baby], code))).json()
    assert _warned(fixed) == []
    assert await _papers_of(client, session, settings, MOTHER) == [("birth", "valid")]

    # a later correction naming another birth date takes it out of her book again
    baby.tables["XML9"] = [{**birth_row(baby, code, MOTHER), "NGAYSINH_NND": "19950304"}]
    again = (await send(client, headers, synth.envelope([baby], code))).json()
    assert _warned(again) == [("XML9", 1, "NGAYSINH_NND")]
    assert ("birth", "valid") not in await _papers_of(client, session, settings, MOTHER)
