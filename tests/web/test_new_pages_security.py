"""The pages added for the facility's administrator, the ward office and the book's downloads,
walked as the wrong caller and with hostile input (this session's security review): what
reproduced, each fixed."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import as_person
from tests.web.test_login import AN, login
from tests.web.test_ward_page import BA_DINH, MAI, _csrf, _enrol, _newborn, _officer, _shown
from vnehr import identity
from vnehr.kit.settings import Settings


async def test_a_ward_office_that_finds_a_citizen_on_record_is_in_her_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Any ward office may open the book of a citizen at its counter, wherever she lives; a
    citizen already on record is shown as recorded (her name, her birth date), whatever was
    typed. Typing a personal ID, a made-up name and a day of its year read both, and an open
    book wrote nothing anywhere: the citizen could never learn that an office looked."""
    csrf = await _officer(client, session)  # Cường, Hoàn Kiếm: Mai's book opened, on record
    assert (await _enrol(client, csrf, "confirm")).status_code == 303

    # An, ward officer of Ba Đình, types Mai's personal ID with a name and a day he made up
    await identity.bootstrap_grant(session, AN, "ward_officer", ward_code=BA_DINH)
    client.cookies.clear()
    await login(client, AN, "/ward")
    typed = {**MAI, "full_name": "Ai Đó", "birth_date": "01/01/1990"}
    done = await client.post(
        "/ward/enrol",
        data={"csrf": _csrf((await client.get("/ward")).text), "ward": BA_DINH, **typed}
        | {"step": "confirm"},
    )
    assert done.status_code == 303, _shown(done.text)[:600]
    result = _shown((await client.get(done.headers["location"])).text)
    assert "Nguyễn Thị Mai" in result  # as recorded: the office read it
    assert "12/05/1990" in result

    as_person(client, settings, MAI["personal_id"])
    log = (await client.get("/api/v1/me/access-log")).json()
    looked = [e for e in log if e["action"] == "enrolment.read"]
    assert [e["who"]["name"] for e in looked] == ["Nguyễn Văn An"], log
    page = _shown((await client.get("/portal/book/access-log")).text)
    assert "Văn phòng xã/phường xem thông tin định danh khi mở sổ" in page
    assert "Nguyễn Văn An" in page


async def test_the_newborn_forms_question_naming_the_mother_is_in_her_access_log(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The newborn form's first step writes nothing and names the mother typed: any personal
    ID of someone living in the ward, typed with any birth date, gave their name, and left no
    trace. The look-up is now in the mother's access log, by the officer's name."""
    csrf = await _officer(client, session)
    assert (await _enrol(client, csrf, "confirm")).status_code == 303  # Mai lives in the ward
    asked = await _newborn(client, csrf, "check")
    assert asked.status_code == 200, _shown(asked.text)[:600]
    assert "Nguyễn Thị Mai" in _shown(asked.text)

    as_person(client, settings, MAI["personal_id"])
    log = (await client.get("/api/v1/me/access-log")).json()
    looked = [e for e in log if e["action"] == "newborn.mother_read"]
    assert [e["who"]["name"] for e in looked] == ["Lê Văn Cường"], log
    page = _shown((await client.get("/portal/book/access-log")).text)
    assert "Văn phòng xã/phường xem thông tin người mẹ để ghi nhận trẻ sơ sinh" in page
