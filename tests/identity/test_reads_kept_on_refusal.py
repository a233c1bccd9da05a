"""A look-up of a person that a later check refuses still tells the caller something (that the
ID is someone's, her birth date): the read stays in the person's access log although the
request is refused and its transaction rolled back (D224, D228)."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import AN, BINH, CUONG, audited, error, sign_in_as
from vnehr.identity.models import Person, Representative
from vnehr.kit.settings import Settings


async def _mother_reads(client: httpx.AsyncClient) -> list[tuple[str, str | None]]:
    """The newborn form's look-ups of Bình as she reads them in "who viewed my record"."""
    log = (await client.get("/api/v1/me/access-log")).json()
    return [(e["action"], e["who"]["name"]) for e in log if e["action"] == "newborn.mother_read"]


async def _children(session: AsyncSession, mother_id: int) -> int:
    stmt = select(func.count()).select_from(Person).where(Person.mother_id == mother_id)
    return int(await session.scalar(stmt) or 0)


async def test_a_refused_newborn_call_leaves_the_mothers_look_up_in_her_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    mother = await sign_in_as(client, session, settings, BINH)  # born 1962-08-02
    mother.residence_ward_code = "00070"  # Hoàn Kiếm, Hà Nội
    await session.flush()
    newborn = {"mother_personal_id": BINH[0], "sex": "female", "birth_date": "2026-01-10"}

    # the department is told her birth date: refused, and the look-up kept
    await sign_in_as(
        client, session, settings, AN, {"role": "department_admin", "province_code": None}
    )
    before = {**newborn, "birth_date": "1950-01-01"}
    body = error(await client.post("/api/v1/persons/newborns", json=before), 422, "ID-0112")
    assert "1962-08-02" in body["message"]["en"]
    # a clinician of another province is told she lives elsewhere: that the ID is someone's
    await sign_in_as(
        client, session, settings, CUONG, {"role": "clinician", "facility_code": "79001"}
    )
    error(await client.post("/api/v1/persons/newborns", json=newborn), 403, "AUTH-0002")

    await sign_in_as(client, session, settings, BINH)
    # newest first: the clinician's, then the department's
    assert await _mother_reads(client) == [
        ("newborn.mother_read", CUONG[1]),
        ("newborn.mother_read", AN[1]),
    ]
    # nothing else of the refused calls is kept
    assert await _children(session, mother.id) == 0
    assert await audited(session, "newborn.added") == 0
    assert await session.scalar(select(func.count()).select_from(Representative)) == 0

    # a call that succeeds writes its look-up once
    await sign_in_as(
        client, session, settings, CUONG, {"role": "clinician", "facility_code": "01001"}
    )
    born = await client.post("/api/v1/persons/newborns", json=newborn)
    assert born.status_code == 201, born.text
    await sign_in_as(client, session, settings, BINH)
    assert await _mother_reads(client) == [
        ("newborn.mother_read", CUONG[1]),
        ("newborn.mother_read", CUONG[1]),
        ("newborn.mother_read", AN[1]),
    ]
    assert await _children(session, mother.id) == 1
    assert await audited(session, "newborn.added") == 1
