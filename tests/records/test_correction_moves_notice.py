"""A correction that gives a visit another patient takes it out of the first one's book, and
her inbox's "a new visit is in your book" notice of it goes too: it named the facility and the
kind of care of a visit that the facility now says is someone else's (D171). The one whose book
it arrives in is told of it, once, as of a new visit; once also when the worker delivers the
visit's events only after the corrections (the first version's notice and the last's are of
the same visit)."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person
from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import sign_in_as
from tests.papers.test_api import local_now
from tests.papers.test_holder_moved import CUONG, HOA, as_patient
from tests.submissions.test_holder_first_sign_in import FAST, tell
from tests.submissions.test_intake import facility_with_token, send
from vnehr import demo, exchange, identity
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


class Phones:
    """The app's push service, as a test sees it: which phones were told what."""

    def __init__(self) -> None:
        self.told: list[exchange.PushMessage] = []

    async def push(self, message: exchange.PushMessage) -> None:
        self.told.append(message)

    def of(self, personal_id: str) -> list[str]:
        return [m.kind for m in self.told if m.personal_id == personal_id]


async def _tell_phones(db: Database, phones: Phones) -> None:
    """The worker delivers every new visit's event so far, pushing to ``phones``."""
    consumers: exchange.Consumers = {"visit.accepted": {"inbox": exchange.visit_notifier(phones)}}
    for _ in range(10):
        if not await exchange.deliver_once(db, consumers, FAST):
            return


async def test_a_visit_held_and_given_back_before_delivery_is_told_to_her_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """The facility sends Hoa's visit, a correction with a typo in her name (held out of every
    book, D150), then the name fixed, and the worker delivers the three only then (a backlog
    of a minute): the first version's event and the last's both tell of the visit in her
    book. Her inbox lists it once, and her phone is told once."""
    await sign_in_as(client, session, settings, HOA)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 95, local_now() - timedelta(days=3), care_type="01", insured=True)
    as_patient(one, HOA)
    first = await send(client, headers, synth.envelope([one], code))
    assert first.status_code == 201, first.text
    as_patient(one, (HOA[0], "Phạm Thị Hoa Sai", HOA[2], HOA[3]))
    typo = await send(client, headers, synth.envelope([one], code))
    assert "SUB-0170" in typo.text, typo.text
    as_patient(one, HOA)
    fixed = await send(client, headers, synth.envelope([one], code))
    assert fixed.json()["visits"][0]["outcome"] == "changed", fixed.text

    phones = Phones()
    await _tell_phones(db, phones)

    assert await _visit_notices(client, session, settings, HOA) == [one.ma_lk]
    assert phones.of(HOA[0]) == ["visit"]


async def test_a_visit_given_to_another_and_back_before_delivery_is_told_to_her_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """Hoa's visit corrected to Cường's, then back to hers, before the worker delivers: she is
    told once; Cường, whose book it has left by then, not at all."""
    await sign_in_as(client, session, settings, HOA)
    await sign_in_as(client, session, settings, CUONG)
    client.cookies.clear()
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 96, local_now() - timedelta(days=3), care_type="01", insured=True)
    for patient in (HOA, CUONG, HOA):
        as_patient(one, patient)
        sent = await send(client, headers, synth.envelope([one], code))
        assert sent.status_code == 201, sent.text

    phones = Phones()
    await _tell_phones(db, phones)

    assert await _visit_notices(client, session, settings, HOA) == [one.ma_lk]
    assert await _visit_notices(client, session, settings, CUONG) == []
    assert (phones.of(HOA[0]), phones.of(CUONG[0])) == (["visit"], [])


async def test_a_childs_visit_given_back_before_delivery_is_told_to_the_parent_once(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, db: Database
) -> None:
    """A child's visit corrected to Cường's and back before the worker delivers: An, who
    represents the child, reads it once among the child's notices and is told once on his
    phone."""
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 97, local_now() - timedelta(days=3), care_type="01", age_group=0)
    child = who(one)
    first = await send(client, headers, synth.envelope([one], code))
    assert first.status_code == 201, first.text
    await sign_in_as(client, session, settings, AN)
    await sign_in_as(client, session, settings, CUONG)
    client.cookies.clear()
    await identity.add_representative(
        session, demo.OPERATOR, agent_personal_id=AN[0], subject_person=child[0],
        relation="parent", valid_from=date(2020, 1, 1), valid_to=None,
    )  # fmt: skip
    await session.flush()
    for patient in (CUONG, child):
        as_patient(one, patient)
        sent = await send(client, headers, synth.envelope([one], code))
        assert sent.status_code == 201, sent.text

    phones = Phones()
    await _tell_phones(db, phones)

    as_person(client, settings, AN[0])
    inbox = await client.get("/api/v1/me/notifications")
    assert inbox.status_code == 200, inbox.text
    told = [(n["kind"], n["params"]["visit_key"]) for n in inbox.json()["items"]]
    assert told == [("visit", one.ma_lk)]
    assert phones.of(AN[0]) == ["visit"]
    assert len(phones.of(child[0])) == 1
