"""What a ward officer meets on /ward after a review in a real browser: the box at the top of a
refused form says what is wrong in the words beside the field (never "you may not do this" for
a mother living elsewhere, nor "1 error" for a date that is no day), and an unnamed newborn's
result names the child once."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_login import login
from tests.web.test_ward_page import HOAN_KIEM, MAI, _enrol, _newborn, _officer, _shown
from vnehr import demo


def _alert(page: str) -> str:
    """The words of the box at the top of the page that says the form was refused."""
    found = re.search(r'<div class="error" role="alert" id="refused">(.*?)</div>', page, re.S)
    assert found is not None, _shown(page)[:900]
    return _shown(found[1])


async def test_the_refusal_at_the_top_says_what_the_field_says(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Bình (on record since she signed in) lives in no ward of Cường's: not his to record
    await login(client, demo.FACILITY_ADMIN)
    csrf = await _officer(client, session)
    elsewhere = await _newborn(client, csrf, "check", mother_personal_id=demo.FACILITY_ADMIN)
    assert elsewhere.status_code == 403
    top = _alert(elsewhere.text)
    assert "Người mẹ không cư trú tại xã/phường này" in top
    assert "không có quyền" not in top

    no_day = await _newborn(
        client, csrf, "check", mother_personal_id=demo.FACILITY_ADMIN, birth_date="31/02/2025"
    )
    assert no_day.status_code == 422
    top = _alert(no_day.text)
    assert "Ngày sinh của trẻ phải là một ngày có thật" in top
    assert "không hợp lệ: 1 lỗi" not in top

    english = await client.post(
        "/ward/enrol?lang=en",
        data={"csrf": csrf, "ward": HOAN_KIEM, "step": "check", **MAI, "birth_date": "x"},
    )
    top = _alert(english.text)
    assert "Date of birth must be a real date" in top, top


async def test_an_unnamed_newborn_is_named_once_in_the_result(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await _officer(client, session)
    await _enrol(client, csrf, "confirm")  # the mother, now living in the ward
    done = await _newborn(client, csrf, "confirm", sex="female")
    assert done.status_code == 303
    outcome = await client.get(done.headers["location"])
    said = _shown(re.search(r'id="outcome">(.*?)</p>', outcome.text, re.S)[1])  # type: ignore[index]
    assert said.count("Nguyễn Thị Mai") == 1, said
    assert "chưa đặt tên" in said
