"""What a registrar may not do to reach someone's health book: be recorded as the agent
themselves, record a link that represents nobody, record a court's guardian for an adult from a
ward office, or give a first residence (by the residence form or by an enrolment under a name
that is not the record's) to a citizen who has none on record: such a citizen is in nobody's
area but the department's (D24)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_service import (
    AN,
    BINH,
    CUONG,
    HOAN_KIEM,
    KHANG,
    audited,
    count,
    dept,
    person,
    resident,
    signed_in,
    ward_officer,
)
from vnehr import identity
from vnehr.identity import service
from vnehr.identity.models import HealthAccount, Representative
from vnehr.kit.auth import Subject
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.errors import VnehrError

OFFICER = person(CUONG[0], ward_officer(HOAN_KIEM))
DEPARTMENT = person(CUONG[0], dept("01"))


async def _link(
    session: AsyncSession,
    registrar: Subject,
    agent: str,
    subject: str,
    relation: str = "guardian",
    since: date | None = None,
) -> Representative:
    return await service.add_representative(
        session,
        registrar,
        agent_personal_id=agent,
        subject_person=subject,
        relation=relation,
        valid_from=since or today_in_vietnam(),
        valid_to=None,
    )


async def _refused(code: str, work: object) -> VnehrError:
    with pytest.raises(VnehrError) as info:
        await work  # type: ignore[misc]
    assert info.value.code == code, info.value
    return info.value


async def test_a_registrar_is_never_recorded_as_the_agent(session: AsyncSession) -> None:
    await resident(session, KHANG, HOAN_KIEM)  # a child of the ward
    await resident(session, AN, HOAN_KIEM)
    await signed_in(session, CUONG)
    for registrar in (OFFICER, DEPARTMENT, person(CUONG[0], dept(None))):
        for relation in ("parent", "guardian"):
            await _refused("ID-0115", _link(session, registrar, CUONG[0], KHANG[0], relation))
        await _refused("ID-0115", _link(session, registrar, CUONG[0], AN[0]))
        # and the page's check says the same before it names anyone
        await _refused(
            "ID-0115",
            identity.check_representative(
                session, registrar, ward_code=HOAN_KIEM, personal_id=KHANG[0],
                agent_personal_id=CUONG[0], relation="parent",
                valid_from=today_in_vietnam(), valid_to=None,
            ),
        )  # fmt: skip
    assert await count(session, Representative) == 0
    assert not await identity.may_act_for(session, person(CUONG[0]), KHANG[0])
    # someone else is recorded as before
    await _link(session, OFFICER, AN[0], KHANG[0], "parent", date(2017, 9, 1))
    assert await identity.may_act_for(session, person(AN[0]), KHANG[0])


async def test_a_guardianship_begun_in_childhood_is_refused_for_an_adult(
    session: AsyncSession,
) -> None:
    await resident(session, BINH, HOAN_KIEM)  # born 1962: of age since 1980
    await signed_in(session, AN)
    for registrar in (OFFICER, DEPARTMENT):
        refused = await _refused(
            "ID-0116", _link(session, registrar, AN[0], BINH[0], "guardian", date(1975, 1, 1))
        )
        assert refused.status_code == 422
        assert refused.params["adult_on"] == "1980-08-02"
        await _refused(
            "ID-0114", _link(session, registrar, AN[0], BINH[0], "parent", date(1975, 1, 1))
        )
    assert await count(session, Representative) == 0
    assert await identity.representatives(session, (await signed_in(session, BINH)).id) == []


async def test_a_guardian_for_an_adult_is_recorded_by_the_department_only(
    session: AsyncSession,
) -> None:
    binh = await resident(session, BINH, HOAN_KIEM)
    await resident(session, KHANG, HOAN_KIEM)
    await signed_in(session, AN)
    refused = await _refused("ID-0117", _link(session, OFFICER, AN[0], BINH[0]))
    assert refused.status_code == 403
    await _refused(
        "ID-0117",
        identity.check_representative(
            session, OFFICER, ward_code=HOAN_KIEM, personal_id=BINH[0],
            agent_personal_id=AN[0], relation="guardian",
            valid_from=today_in_vietnam(), valid_to=None,
        ),
    )  # fmt: skip
    assert await count(session, Representative) == 0
    # a minor's guardian stays the ward office's work; an adult's is the department's
    await _link(session, OFFICER, AN[0], KHANG[0], "guardian", date(2020, 1, 1))
    await _link(session, DEPARTMENT, AN[0], BINH[0])
    assert [h.personal_id for h in await identity.representatives(session, binh.id)] == [AN[0]]


async def test_a_first_residence_is_recorded_by_the_department_only(
    session: AsyncSession,
) -> None:
    an = await signed_in(session, AN)  # VNeID's sign-in records no residence
    await signed_in(session, BINH)
    refused = await _refused("ID-0118", service.set_residence(session, OFFICER, AN[0], HOAN_KIEM))
    assert refused.status_code == 403
    await _refused(
        "ID-0118",
        identity.check_residence(session, OFFICER, ward_code=HOAN_KIEM, personal_id=AN[0]),
    )
    assert an.residence_ward_code is None
    assert await audited(session, "residence.person.read", an.id) == 1  # the look-up is logged
    assert await audited(session, "person.residence_set") == 0
    # so the officer cannot go on to record anyone for him
    await _refused("AUTH-0002", _link(session, OFFICER, BINH[0], AN[0]))
    # the department of the ward's province records it; then the ward office acts for him
    await service.set_residence(session, DEPARTMENT, AN[0], HOAN_KIEM)
    assert an.residence_ward_code == HOAN_KIEM
    checked = await identity.check_residence(
        session, OFFICER, ward_code=HOAN_KIEM, personal_id=AN[0]
    )
    assert checked.already


async def test_an_enrolment_gives_a_first_residence_only_under_the_recorded_name_and_birth(
    session: AsyncSession,
) -> None:
    an = await signed_in(session, AN)
    typed = {
        "personal_id": AN[0],
        "full_name": AN[1],
        "birth_date": date(1985, 3, 14),
        "sex": "male",
        "ward_code": HOAN_KIEM,
    }
    for wrong in ({"full_name": "Nguyễn Văn Ai"}, {"birth_date": date(1985, 1, 1)}):
        refused = await _refused("ID-0119", identity.enrol(session, OFFICER, **{**typed, **wrong}))  # type: ignore[arg-type]
        assert refused.status_code == 422
        assert "Nguyễn Văn An" not in str(refused.params)
    assert an.residence_ward_code is None
    assert await count(session, HealthAccount) == 0
    assert await audited(session, ENROLMENT_READ, an.id) == 2  # each look-up in his log
    # the citizen at the counter with his chip card: the same name (accents aside) and birth
    done = await identity.enrol(session, OFFICER, **{**typed, "full_name": "Nguyen Van An"})  # type: ignore[arg-type]
    assert (done.outcome, done.differs) == ("opened", ())
    assert an.residence_ward_code == HOAN_KIEM
    # a citizen living somewhere already keeps the enrolment of D212 (what differs is said)
    binh = await resident(session, BINH, "00004")
    other = await identity.enrol(
        session, OFFICER, personal_id=BINH[0], full_name="Trần Thị Hoa",
        birth_date=date(1962, 8, 2), sex="female", ward_code=HOAN_KIEM,
    )  # fmt: skip
    assert other.differs == ("full_name",)
    assert binh.residence_ward_code == "00004"


ENROLMENT_READ = service.ENROLMENT_READ
