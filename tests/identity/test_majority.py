"""A parent represents a child until the child is 18 (Civil Code 2015 Art. 20, 136), whatever
end date the link has: the book, the inbox and the phone follow it. A guardianship that began
while the ward was a minor ends then too; one that began when the ward was already an adult (a
court's appointment for an adult who cannot act alone) lasts its recorded period."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import demo, identity
from vnehr.identity.models import Representative
from vnehr.kit.auth import Subject
from vnehr.kit.clock import today_in_vietnam, utcnow

AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
BINH = ("079162003581", "Trần Thị Bình", "1962-08-02", "female")
CUONG = ("031054007793", "Lê Văn Cường", "1954-11-20", "male")


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def sign_in(session: AsyncSession, who: tuple[str, str, str, str]) -> str:
    await identity.sign_in(
        session,
        {"sub": f"s-{who[0]}", "personal_id": who[0], "name": who[1], "birthdate": who[2],
         "gender": who[3], "assurance_level": 2},
    )  # fmt: skip
    return who[0]


async def citizen(session: AsyncSession, born: date, serial: str, name: str) -> str:
    century = 2 * (born.year // 100 - 19)  # male: 0 for the 1900s, 2 for the 2000s
    personal_id = f"001{century}{born.year % 100:02d}{serial}"
    return await sign_in(session, (personal_id, name, born.isoformat(), "male"))


async def link(session: AsyncSession, agent: str, subject: str, relation: str, since: date) -> None:
    """A link as recorded when it began (``since``): a parent's recorded while the child was
    a minor, which the ward office no longer records once they are of age (D233)."""
    agent_id = await identity.person_id_of(session, agent)
    subject_id = await identity.person_id_of(session, subject)
    assert agent_id is not None
    assert subject_id is not None
    session.add(
        Representative(
            agent_id=agent_id, subject_id=subject_id, relation=relation, valid_from=since,
            valid_to=None, created_at=utcnow(), created_by=demo.OPERATOR.label,
        )
    )  # fmt: skip
    await session.flush()


async def test_a_representation_of_a_minor_ends_on_the_18th_birthday(
    session: AsyncSession,
) -> None:
    today = today_in_vietnam()
    for who in (AN, BINH, CUONG):
        await sign_in(session, who)
    of_age = await citizen(session, years_before(today, 18), "000101", "Đủ Tuổi")
    minor = await citizen(
        session, years_before(today, 18) + timedelta(days=1), "000102", "Chưa Đủ Tuổi"
    )
    for child in (of_age, minor):
        born = years_before(today, 18)
        await link(session, AN[0], child, "parent", born)
        await link(session, BINH[0], child, "guardian", born + timedelta(days=400))
    # a court appoints a guardian for the adult
    await link(session, CUONG[0], of_age, "guardian", today)
    await session.flush()

    async def agents(personal_id: str) -> list[tuple[str | None, str | None]]:
        person_id = await identity.person_id_of(session, personal_id)
        assert person_id is not None
        found = await identity.representatives(session, person_id)
        return sorted((a.personal_id, a.relation) for a in found)

    assert await agents(minor) == sorted([(AN[0], "parent"), (BINH[0], "guardian")])
    assert await agents(of_age) == [(CUONG[0], "guardian")]

    an = Subject(kind="person", id=AN[0], name=AN[1], assurance_level=2)
    assert [h.personal_id for h in await identity.book_holders(session, an)] == [AN[0], minor]
    assert not await identity.may_act_for(session, an, of_age)
    assert await identity.may_act_for(session, an, minor)
    cuong = Subject(kind="person", id=CUONG[0], name=CUONG[1], assurance_level=2)
    assert await identity.may_act_for(session, cuong, of_age)
