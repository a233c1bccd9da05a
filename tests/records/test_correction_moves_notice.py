"""A correction that gives a visit another patient takes it out of the first one's book, and
her inbox's "a new visit is in your book" notice of it goes too: it named the facility and the
kind of care of a visit that the facility now says is someone else's (D171). The one whose book
it arrives in is told of it, once, as of a new visit."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import local_now
from tests.papers.test_holder_moved import CUONG, HOA, as_patient
from tests.submissions.test_holder_first_sign_in import tell
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.db import Database
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


async def _visit_notices(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, who: tuple[str, ...]
) -> list[str]:
    await sign_in_as(client, session, settings, who)
    inbox = await client.get("/api/v1/me/notifications")
    assert inbox.status_code == 200, inbox.text
    client.cookies.clear()
    return [n["params"]["visit_key"] for n in inbox.json()["items"] if n["kind"] == "visit"]


async def test_a_visit_corrected_to_another_patient_leaves_her_inbox_too(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    await sign_in_as(client, session, settings, HOA)
    await sign_in_as(client, session, settings, CUONG)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 91, local_now() - timedelta(days=3), care_type="01", insured=True)
    kept = visit_of(code, 92, local_now() - timedelta(days=2), care_type="01", insured=True)
    as_patient(one, HOA)
    as_patient(kept, HOA)
    sent = await send(client, headers, synth.envelope([one, kept], code))
    assert sent.status_code == 201, sent.text
    await tell(db)
    assert sorted(await _visit_notices(client, session, settings, HOA)) == sorted(
        [one.ma_lk, kept.ma_lk]
    )

    # the facility corrects the first: it was Cường's
    as_patient(one, CUONG)
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text
    await tell(db)
    assert await _visit_notices(client, session, settings, HOA) == [kept.ma_lk]
    # the visit is in Cường's book now: he is told of it, once
    assert await _visit_notices(client, session, settings, CUONG) == [one.ma_lk]

    # a correction that keeps the patient keeps her notice, and tells no one again
    kept.tables["XML1"][0]["CHAN_DOAN_RV"] = "Viêm họng cấp"
    one.tables["XML1"][0]["CHAN_DOAN_RV"] = "Viêm phổi"
    again = await send(client, headers, synth.envelope([kept, one], code))
    assert [v["outcome"] for v in again.json()["visits"]] == ["changed", "changed"], again.text
    await tell(db)
    assert await _visit_notices(client, session, settings, HOA) == [kept.ma_lk]
    assert await _visit_notices(client, session, settings, CUONG) == [one.ma_lk]


async def test_a_held_visit_corrected_into_his_book_is_told_to_him(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """Held out of every book (its name is not what VNeID confirmed, D150), a visit is told to
    no one; corrected to his name, it arrives in his book and he is told of it."""
    await sign_in_as(client, session, settings, CUONG)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 93, local_now() - timedelta(days=3), care_type="01", insured=True)
    as_patient(one, (CUONG[0], "Lê Văn Cương Minh", CUONG[2], CUONG[3]))
    held = await send(client, headers, synth.envelope([one], code))
    assert "SUB-0170" in held.text, held.text
    await tell(db)
    assert await _visit_notices(client, session, settings, CUONG) == []

    as_patient(one, CUONG)
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text
    await tell(db)
    assert await _visit_notices(client, session, settings, CUONG) == [one.ma_lk]
