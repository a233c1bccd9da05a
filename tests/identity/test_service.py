"""The registry rules of the identity context, as ward offices, facilities, departments and
citizens meet them: sign-in, health accounts, assisted enrolment, insurance cards,
representatives and newborns, role grants."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import identity
from vnehr.audit import AuditEvent
from vnehr.identity import service
from vnehr.identity.models import (
    AccountEvent,
    HealthAccount,
    InsuranceCard,
    Person,
    Representative,
    RoleGrant,
)
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.errors import VnehrError

# Demo citizens of the VNeID simulator: (personal id, name, birth date, gender).
AN = ("001085004217", "Nguyễn Văn An", "1985-03-14", "male")
BINH = ("079162003581", "Trần Thị Bình", "1962-08-02", "female")
CUONG = ("031054007793", "Lê Văn Cường", "1954-11-20", "male")
DUNG = ("048190002468", "Phạm Thị Dung", "1990-05-09", "female")
KHANG = ("001217005432", "Hoàng Minh Khang", "2017-09-01", "male")
HOA = ("079303006174", "Võ Thị Hoa", "2003-02-25", "female")
HUNG = ("001078009135", "Đặng Văn Hùng", "1978-12-30", "male")

HOAN_KIEM, BA_DINH, HONG_HA = "00070", "00004", "00097"  # wards of Hà Nội (province 01)
SAI_GON = "26740"  # a ward of Hồ Chí Minh City (province 79)
CARD = "DN4010123456789"

# A boy born on this day gets a personal ID "PPP2" + "26" + serial (born 2000-2099, male).
NEWBORN_DAY = date(2026, 1, 10)
NEWBORN_ID = "048226001234"


def person(pid: str, *grants: Grant, level: int = 2) -> Subject:
    """A signed-in person as the app builds them (citizen grant first)."""
    return Subject(
        kind="person", id=pid, name=pid, grants=(Grant("citizen"), *grants), assurance_level=level
    )


def dept(province: str | None) -> Grant:
    return Grant("department_admin", province_code=province)


def ward_officer(ward: str) -> Grant:
    return Grant("ward_officer", ward_code=ward)


def facility_admin(facility: str) -> Grant:
    return Grant("facility_admin", facility_code=facility)


def clinician(facility: str) -> Grant:
    return Grant("clinician", facility_code=facility)


def claims(who: tuple[str, str, str, str], *, level: int = 2, **changes: Any) -> dict[str, Any]:
    pid, name, birth, gender = who
    return {
        "sub": f"vneid-{pid}",
        "personal_id": pid,
        "name": name,
        "birthdate": birth,
        "gender": gender,
        "assurance_level": level,
        **changes,
    }


async def signed_in(
    session: AsyncSession, who: tuple[str, str, str, str], level: int = 2
) -> Person:
    return await identity.sign_in(session, claims(who, level=level))


async def resident(
    session: AsyncSession, who: tuple[str, str, str, str], ward: str | None = HOAN_KIEM
) -> Person:
    """A signed-in person living in ``ward`` (as assisted enrolment or the ward office records
    it; set directly here)."""
    found = await signed_in(session, who)
    found.residence_ward_code = ward
    await session.flush()
    return found


async def count(session: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def audited(session: AsyncSession, action: str, person_id: int | None = None) -> int:
    """How many audit rows record ``action`` (about ``person_id`` when given)."""
    where = [AuditEvent.action == action]
    if person_id is not None:
        where.append(AuditEvent.person_id == person_id)
    return await count(session, AuditEvent, *where)


# ------------------------------------------------------------------ sign-in


async def test_first_sign_in_creates_the_person_from_the_vneid_claims(
    session: AsyncSession,
) -> None:
    created = await identity.sign_in(session, claims(AN))

    stored = (await session.scalars(select(Person).where(Person.personal_id == AN[0]))).one()
    assert stored.id == created.id
    assert stored.full_name == "Nguyễn Văn An"
    assert stored.birth_date == date(1985, 3, 14)
    assert stored.sex == "male"
    assert stored.vneid_sub == f"vneid-{AN[0]}"
    assert stored.last_assurance_level == 2
    assert stored.last_sign_in_at is not None
    assert stored.created_by == "vneid"
    assert stored.provisional is False


async def test_second_sign_in_updates_name_and_level_without_a_duplicate(
    session: AsyncSession,
) -> None:
    first = await identity.sign_in(session, claims(AN, level=1))
    second = await identity.sign_in(session, claims(AN, level=2, name="Nguyễn Văn An (đổi tên)"))

    assert second.id == first.id
    assert await count(session, Person, Person.personal_id == AN[0]) == 1
    stored = await session.get(Person, first.id)
    assert stored is not None
    assert stored.full_name == "Nguyễn Văn An (đổi tên)"
    assert stored.last_assurance_level == 2


async def test_sign_in_trims_the_personal_id_it_stores(session: AsyncSession) -> None:
    created = await identity.sign_in(session, claims(AN, personal_id=f" {AN[0]} "))
    assert created.personal_id == AN[0]


@pytest.mark.parametrize(
    ("changes", "cause"),
    [
        ({"gender": "female"}, "ID-0004"),  # digit 4 says male
        ({"birthdate": "2085-03-14"}, "ID-0005"),  # digit 4 says 1900-1999
        ({"birthdate": "1995-03-14"}, "ID-0006"),  # digits 5-6 say 85
        ({"personal_id": "00108500421"}, "ID-0001"),
        ({"personal_id": "003085004217"}, "ID-0003"),
    ],
)
async def test_sign_in_refuses_claims_whose_number_contradicts_them(
    session: AsyncSession, changes: dict[str, Any], cause: str
) -> None:
    with pytest.raises(identity.SignInRejected) as info:
        await identity.sign_in(session, claims(AN, **changes))
    assert info.value.code == "ID-0104"
    assert info.value.status_code == 401
    assert info.value.detail["cause"] == cause
    assert await count(session, Person) == 0


async def test_sign_in_refuses_a_birthdate_that_is_not_a_date(session: AsyncSession) -> None:
    with pytest.raises(identity.SignInRejected) as info:
        await identity.sign_in(session, claims(AN, birthdate="14/03/1985"))
    assert info.value.code == "ID-0104"
    assert await count(session, Person) == 0


# ------------------------------------------------------------------ health accounts


async def test_level_one_cannot_open_a_health_account(session: AsyncSession) -> None:
    await signed_in(session, HUNG, level=1)

    with pytest.raises(identity.LevelTooLow) as info:
        await identity.open_account(session, person(HUNG[0], level=1))

    assert info.value.code == "ID-0101"
    assert info.value.status_code == 403
    assert info.value.detail == {"level": 1, "required": 2}
    assert await identity.account(session, person(HUNG[0], level=1)) is None
    assert await count(session, HealthAccount) == 0
    assert await count(session, AccountEvent) == 0


async def test_level_two_opens_a_self_service_account(session: AsyncSession) -> None:
    an = await signed_in(session, AN)

    opened = await identity.open_account(session, person(AN[0]))

    assert opened.person_id == an.id
    assert opened.status == "open"
    assert opened.channel == "vneid"
    assert opened.assisted_ward_code is None
    assert opened.assisted_by is None
    assert opened.closed_at is None
    events = list(await session.scalars(select(AccountEvent)))
    assert [(e.action, e.channel, e.actor) for e in events] == [
        ("opened", "vneid", f"person:{AN[0]}")
    ]


async def test_opening_twice_keeps_one_account_per_person(session: AsyncSession) -> None:
    await signed_in(session, AN)
    first = await identity.open_account(session, person(AN[0]))
    second = await identity.open_account(session, person(AN[0]))

    assert second.id == first.id
    assert await count(session, HealthAccount) == 1
    assert await count(session, AccountEvent) == 1


async def test_close_then_reopen_keeps_one_row_and_records_each_step(
    session: AsyncSession,
) -> None:
    await signed_in(session, AN)
    me = person(AN[0])
    opened = await identity.open_account(session, me)

    closed = await identity.close_account(session, me, "Tôi không dùng nữa")
    assert closed.id == opened.id
    assert closed.status == "closed"
    assert closed.closed_at is not None

    reopened = await identity.open_account(session, me)
    assert reopened.id == opened.id
    assert reopened.status == "open"
    assert reopened.closed_at is None

    assert await count(session, HealthAccount) == 1
    events = list(
        await session.scalars(
            select(AccountEvent)
            .where(AccountEvent.account_id == opened.id)
            .order_by(AccountEvent.id)
        )
    )
    assert [e.action for e in events] == ["opened", "closed", "reopened"]
    assert events[1].reason == "Tôi không dùng nữa"
    acct = await identity.account(session, me)
    assert acct is not None
    assert acct.status == "open"


async def test_closing_twice_records_one_closing(session: AsyncSession) -> None:
    await signed_in(session, AN)
    me = person(AN[0])
    await identity.open_account(session, me)
    await identity.close_account(session, me, None)
    await identity.close_account(session, me, None)
    actions = await session.scalars(select(AccountEvent.action).order_by(AccountEvent.id))
    assert list(actions) == ["opened", "closed"]


async def test_closing_without_an_account_is_id_0103(session: AsyncSession) -> None:
    await signed_in(session, AN)
    with pytest.raises(VnehrError) as info:
        await identity.close_account(session, person(AN[0]), None)
    assert (info.value.code, info.value.status_code) == ("ID-0103", 404)


async def test_a_person_who_never_signed_in_has_no_profile(session: AsyncSession) -> None:
    with pytest.raises(VnehrError) as info:
        await identity.open_account(session, person(AN[0]))
    assert (info.value.code, info.value.status_code) == ("ID-0102", 404)
    assert await count(session, HealthAccount) == 0


# ------------------------------------------------------------------ assisted enrolment


async def enrol(
    session: AsyncSession,
    officer: Subject,
    who: tuple[str, str, str, str] = BINH,
    *,
    ward: str = HOAN_KIEM,
    **changes: Any,
) -> tuple[Person, HealthAccount]:
    pid, name, birth, gender = who
    fields: dict[str, Any] = {
        "personal_id": pid,
        "full_name": name,
        "birth_date": date.fromisoformat(birth),
        "sex": gender,
        "ward_code": ward,
        **changes,
    }
    done = await service.assisted_open(session, officer, **fields)
    return done.person, done.account


async def test_a_ward_officer_enrols_a_citizen_at_the_ward_office(session: AsyncSession) -> None:
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))

    citizen, acct = await enrol(session, officer, BINH)

    assert citizen.personal_id == BINH[0]
    assert citizen.full_name == "Trần Thị Bình"
    assert citizen.birth_date == date(1962, 8, 2)
    assert citizen.sex == "female"
    assert citizen.created_by == f"person:{CUONG[0]}"
    assert citizen.residence_ward_code == HOAN_KIEM  # the ward of the office
    assert acct.person_id == citizen.id
    assert acct.status == "open"
    assert acct.channel == "assisted"
    assert acct.assisted_ward_code == HOAN_KIEM
    assert acct.assisted_by == f"person:{CUONG[0]}"
    event = (await session.scalars(select(AccountEvent))).one()
    assert (event.action, event.channel, event.ward_code, event.actor) == (
        "opened",
        "assisted",
        HOAN_KIEM,
        f"person:{CUONG[0]}",
    )


async def test_enrolling_someone_already_known_reuses_the_person(session: AsyncSession) -> None:
    binh = await signed_in(session, BINH)
    citizen, _ = await enrol(session, person(CUONG[0], ward_officer(HOAN_KIEM)), BINH)
    assert citizen.id == binh.id
    assert await count(session, Person) == 1
    assert citizen.residence_ward_code == HOAN_KIEM  # she had none


async def test_enrolment_keeps_a_residence_already_known(session: AsyncSession) -> None:
    await resident(session, BINH, SAI_GON)
    citizen, acct = await enrol(session, person(CUONG[0], ward_officer(HOAN_KIEM)), BINH)
    assert citizen.residence_ward_code == SAI_GON  # enrolling elsewhere does not move her
    assert acct.assisted_ward_code == HOAN_KIEM


async def test_an_officer_of_another_ward_may_not_enrol(session: AsyncSession) -> None:
    officer = person(CUONG[0], ward_officer(BA_DINH))
    with pytest.raises(VnehrError) as info:
        await enrol(session, officer, BINH, ward=HOAN_KIEM)
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert await count(session, Person) == 0
    assert await count(session, HealthAccount) == 0


async def test_the_department_of_the_province_may_enrol_in_any_of_its_wards(
    session: AsyncSession,
) -> None:
    _, acct = await enrol(session, person(CUONG[0], dept("01")), BINH, ward=HONG_HA)
    assert (acct.channel, acct.assisted_ward_code) == ("assisted", HONG_HA)


async def test_the_department_of_another_province_may_not_enrol(session: AsyncSession) -> None:
    with pytest.raises(VnehrError) as info:
        await enrol(session, person(CUONG[0], dept("79")), BINH, ward=HOAN_KIEM)
    assert info.value.code == "AUTH-0002"
    assert await count(session, HealthAccount) == 0


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"personal_id": "07916200358"}, "ID-0001"),
        ({"personal_id": "07916200358X"}, "ID-0002"),
        ({"personal_id": "003162003581"}, "ID-0003"),
        ({"sex": "male"}, "ID-0004"),
        ({"birth_date": date(2062, 8, 2)}, "ID-0005"),
        ({"birth_date": date(1963, 8, 2)}, "ID-0006"),
    ],
)
async def test_a_bad_personal_id_is_refused_with_its_rule(
    session: AsyncSession, changes: dict[str, Any], code: str
) -> None:
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    with pytest.raises(VnehrError) as info:
        await enrol(session, officer, BINH, **changes)
    assert (info.value.code, info.value.status_code) == (code, 422)
    assert await count(session, Person) == 0


@pytest.mark.parametrize("ward", ["99999", "00061"])  # never existed; abolished in 2025
async def test_an_unknown_or_abolished_ward_is_id_0110(session: AsyncSession, ward: str) -> None:
    officer = person(CUONG[0], ward_officer(ward), dept(None))
    with pytest.raises(VnehrError) as info:
        await enrol(session, officer, BINH, ward=ward)
    assert (info.value.code, info.value.status_code) == ("ID-0110", 422)
    assert info.value.detail["ward"] == ward
    assert await count(session, Person) == 0


# ------------------------------------------------------------------ insurance cards


async def test_a_citizen_records_a_card_in_their_history(session: AsyncSession) -> None:
    an = await signed_in(session, AN)
    me = person(AN[0])

    await service.add_card(
        session,
        me,
        AN[0],
        card_number="DN4010123456789",
        valid_from=date(2025, 1, 1),
        valid_to=date(2025, 12, 31),
        registered_facility="01001",
    )
    await service.add_card(
        session,
        me,
        AN[0],
        card_number="HT3790123456789",
        valid_from=date(2026, 1, 1),
        valid_to=None,
        registered_facility=None,
    )

    history = await service.cards(session, me, AN[0])
    assert [c.card_number for c in history] == ["HT3790123456789", "DN4010123456789"]
    older = history[1]
    assert older.person_id == an.id
    assert older.social_insurance_number == "0123456789"
    assert (older.valid_from, older.valid_to) == (date(2025, 1, 1), date(2025, 12, 31))
    assert older.registered_facility == "01001"
    assert older.recorded_by == f"person:{AN[0]}"


async def test_a_ward_officer_records_a_card_for_a_citizen(session: AsyncSession) -> None:
    binh = await resident(session, BINH, HOAN_KIEM)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    row = await service.add_card(
        session,
        officer,
        BINH[0],
        card_number=CARD,
        valid_from=None,
        valid_to=None,
        registered_facility=None,
    )
    assert row.recorded_by == f"person:{CUONG[0]}"
    assert [c.card_number for c in await service.cards(session, person(BINH[0]), BINH[0])] == [CARD]
    event = (await session.scalars(select(AuditEvent))).one()
    assert (event.action, event.actor, event.person_id, event.object_id) == (
        "card.added",
        f"person:{CUONG[0]}",
        binh.id,
        str(row.id),
    )
    # the holder reading their own cards is not audited
    assert await audited(session, "cards.read") == 0


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("DN401012345678", "ID-0007"),
        ("dn4010123456789", "ID-0008"),
        ("DN6010123456789", "ID-0009"),
        ("DN4030123456789", "ID-0010"),
        ("DN40101234567A9", "ID-0011"),
    ],
)
async def test_an_invalid_card_is_refused_with_its_rule(
    session: AsyncSession, number: str, code: str
) -> None:
    await signed_in(session, AN)
    with pytest.raises(VnehrError) as info:
        await service.add_card(
            session,
            person(AN[0]),
            AN[0],
            card_number=number,
            valid_from=None,
            valid_to=None,
            registered_facility=None,
        )
    assert (info.value.code, info.value.status_code) == (code, 422)
    assert await count(session, InsuranceCard) == 0


async def test_a_card_that_ends_before_it_starts_is_id_0105(session: AsyncSession) -> None:
    await signed_in(session, AN)
    with pytest.raises(VnehrError) as info:
        await service.add_card(
            session,
            person(AN[0]),
            AN[0],
            card_number=CARD,
            valid_from=date(2026, 1, 1),
            valid_to=date(2025, 12, 31),
            registered_facility=None,
        )
    assert (info.value.code, info.value.status_code) == ("ID-0105", 422)
    assert info.value.detail == {"valid_from": "2026-01-01", "valid_to": "2025-12-31"}
    assert await count(session, InsuranceCard) == 0


async def test_cards_are_private_to_their_holder(session: AsyncSession) -> None:
    an = await resident(session, AN, HOAN_KIEM)
    await signed_in(session, BINH)
    await service.add_card(
        session,
        person(AN[0]),
        AN[0],
        card_number=CARD,
        valid_from=None,
        valid_to=None,
        registered_facility=None,
    )

    with pytest.raises(VnehrError) as reading:
        await service.cards(session, person(BINH[0]), AN[0])
    assert reading.value.code == "AUTH-0002"

    with pytest.raises(VnehrError) as writing:
        await service.add_card(
            session,
            person(BINH[0]),
            AN[0],
            card_number="HT3790123456789",
            valid_from=None,
            valid_to=None,
            registered_facility=None,
        )
    assert writing.value.code == "AUTH-0002"
    assert await count(session, InsuranceCard) == 1

    # the department of the province An lives in may read them, and the reading is audited
    assert len(await service.cards(session, person(CUONG[0], dept("01")), AN[0])) == 1
    assert await audited(session, "cards.read", an.id) == 1
    assert await audited(session, "card.added", an.id) == 1


# ------------------------------------------------------------------ representatives, newborns


async def newborn(session: AsyncSession, registrar: Subject | None = None) -> Person:
    return await service.add_newborn(
        session,
        registrar or person(CUONG[0], clinician("01001")),
        mother_personal_id=DUNG[0],
        birth_date=NEWBORN_DAY,
        sex="male",
        full_name=None,
    )


async def represented_by(session: AsyncSession, who: str) -> list[tuple[int, str | None, str]]:
    return [
        (p.id, p.personal_id, r.relation)
        for r, p in await service.representing(session, person(who))
    ]


async def test_a_clinician_registers_a_newborn_whom_the_mother_represents(
    session: AsyncSession,
) -> None:
    mother = await resident(session, DUNG)

    child = await newborn(session)

    assert child.personal_id is None
    assert child.provisional is True
    assert child.mother_id == mother.id
    assert child.birth_date == NEWBORN_DAY
    assert child.sex == "male"
    assert child.full_name == "Con của Phạm Thị Dung"
    assert child.created_by == f"person:{CUONG[0]}"
    assert child.residence_ward_code == HOAN_KIEM  # where the mother lives
    assert await represented_by(session, DUNG[0]) == [(child.id, None, "parent")]
    looked, event, recorded = await session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    assert (event.action, event.person_id, event.detail) == (
        "newborn.added",
        child.id,
        {"mother_id": mother.id},
    )
    # the child's name is the mother's: the look-up is in her access log
    assert (looked.action, looked.person_id) == ("newborn.mother_read", mother.id)
    # the mother's link is recorded as any other (D245): a case can be about it
    [(link, _)] = await service.representing(session, person(DUNG[0]))
    assert (recorded.action, recorded.object_id, recorded.person_id, recorded.actor) == (
        "representative.added",
        str(link.id),
        child.id,
        f"person:{CUONG[0]}",
    )
    assert recorded.detail == {"agent_id": mother.id, "relation": "parent", "newborn": True}


async def test_the_ward_officer_of_the_mothers_ward_may_register_a_newborn_others_not(
    session: AsyncSession,
) -> None:
    await resident(session, DUNG, HOAN_KIEM)
    assert (await newborn(session, person(CUONG[0], ward_officer(HOAN_KIEM)))).provisional

    for stranger in (
        person(AN[0]),  # a citizen
        person(CUONG[0], ward_officer(BA_DINH)),  # another ward of the same province
        person(CUONG[0], dept("79")),  # another province's department
    ):
        with pytest.raises(VnehrError) as info:
            await newborn(session, stranger)
        assert info.value.code == "AUTH-0002"
    assert await count(session, Person, Person.provisional.is_(True)) == 1
    assert await audited(session, "newborn.added") == 1


async def test_the_issued_personal_id_turns_the_newborn_into_a_normal_person(
    session: AsyncSession,
) -> None:
    await resident(session, DUNG)
    child = await newborn(session)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))

    assigned = await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)

    assert assigned.id == child.id
    assert assigned.personal_id == NEWBORN_ID
    assert assigned.provisional is False
    assert assigned.merged_into_id is None
    assert await audited(session, "person.id_assigned", child.id) == 1
    assert await represented_by(session, DUNG[0]) == [(child.id, NEWBORN_ID, "parent")]
    assert await identity.may_act_for(session, person(DUNG[0]), NEWBORN_ID)
    # a stranger (who never signed in) and a facility system do not act for the child
    assert not await identity.may_act_for(session, person(AN[0]), NEWBORN_ID)
    system = Subject(kind="facility_system", id="his-01001", name="HIS", facility_code="01001")
    assert not await identity.may_act_for(session, system, NEWBORN_ID)


async def test_an_id_that_contradicts_the_newborn_is_refused(session: AsyncSession) -> None:
    await resident(session, DUNG)
    child = await newborn(session)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    with pytest.raises(VnehrError) as info:
        await service.assign_personal_id(session, officer, child.id, "048326001234")  # a girl
    assert info.value.code == "ID-0004"
    refreshed = await session.get(Person, child.id)
    assert refreshed is not None
    assert (refreshed.personal_id, refreshed.provisional) == (None, True)


async def test_a_newborn_who_already_exists_is_merged_into_that_person(
    session: AsyncSession,
) -> None:
    mother = await resident(session, DUNG)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    child = await newborn(session)
    card = InsuranceCard(
        person_id=child.id,
        card_number="TE1480123456789",
        social_insurance_number="0123456789",
        valid_from=NEWBORN_DAY,
        valid_to=None,
        registered_facility=None,
        recorded_at=child.created_at,
        recorded_by="test",
    )
    session.add(card)
    # meanwhile the father had the boy enrolled at the ward office with his new personal ID
    existing, _ = await enrol(
        session,
        officer,
        (NEWBORN_ID, "Phạm Minh Quân", NEWBORN_DAY.isoformat(), "male"),
    )

    merged = await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)

    assert merged.id == existing.id
    assert merged.personal_id == NEWBORN_ID
    assert merged.mother_id == mother.id
    provisional = await session.get(Person, child.id)
    assert provisional is not None
    assert provisional.merged_into_id == existing.id
    assert await count(session, Person, Person.personal_id == NEWBORN_ID) == 1
    # the card and the mother's link moved to the existing person
    cards = await session.scalars(select(InsuranceCard.person_id))
    assert list(cards) == [existing.id]
    links = await session.scalars(select(Representative.subject_id))
    assert list(links) == [existing.id]
    assert await represented_by(session, DUNG[0]) == [(existing.id, NEWBORN_ID, "parent")]
    assert await identity.may_act_for(session, person(DUNG[0]), NEWBORN_ID)
    event = (
        await session.scalars(select(AuditEvent).where(AuditEvent.action == "person.merged"))
    ).one()
    assert (event.person_id, event.object_id, event.actor) == (
        existing.id,
        str(child.id),
        f"person:{CUONG[0]}",
    )
    assert await audited(session, "person.id_assigned") == 0


async def test_assigning_twice_is_id_0106(session: AsyncSession) -> None:
    await resident(session, DUNG)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    child = await newborn(session)
    await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)

    with pytest.raises(VnehrError) as info:
        await service.assign_personal_id(session, officer, child.id, "048226009999")
    assert (info.value.code, info.value.status_code) == ("ID-0106", 409)
    refreshed = await session.get(Person, child.id)
    assert refreshed is not None
    assert refreshed.personal_id == NEWBORN_ID


async def test_a_merged_newborn_cannot_be_assigned_again(session: AsyncSession) -> None:
    await resident(session, DUNG)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    child = await newborn(session)
    await enrol(session, officer, (NEWBORN_ID, "Phạm Minh Quân", "2026-01-10", "male"))
    await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)

    with pytest.raises(VnehrError) as info:
        await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)
    assert info.value.code == "ID-0106"


async def test_a_normal_person_is_not_provisional(session: AsyncSession) -> None:
    an = await resident(session, AN, HOAN_KIEM)
    with pytest.raises(VnehrError) as info:
        await service.assign_personal_id(
            session, person(CUONG[0], ward_officer(HOAN_KIEM)), an.id, "001085009999"
        )
    assert info.value.code == "ID-0106"


async def test_a_representation_that_ends_before_it_starts_is_id_0105(
    session: AsyncSession,
) -> None:
    await signed_in(session, BINH)
    await resident(session, KHANG, HOAN_KIEM)
    with pytest.raises(VnehrError) as info:
        await service.add_representative(
            session,
            person(CUONG[0], ward_officer(HOAN_KIEM)),
            agent_personal_id=BINH[0],
            subject_person=KHANG[0],
            relation="guardian",
            valid_from=date(2026, 1, 1),
            valid_to=date(2025, 1, 1),
        )
    assert (info.value.code, info.value.status_code) == ("ID-0105", 422)
    assert await count(session, Representative) == 0


async def test_only_representations_in_force_today_are_listed(session: AsyncSession) -> None:
    await signed_in(session, BINH)
    khang = await resident(session, KHANG, HOAN_KIEM)
    await resident(session, DUNG, HOAN_KIEM)
    # a ward officer and the department (who records an adult's guardian, a court's)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM), dept("01"))
    today = today_in_vietnam()
    periods = {
        KHANG[0]: (today - timedelta(days=30), None),  # in force
        DUNG[0]: (date(2020, 2, 25), today - timedelta(days=1)),  # ended yesterday
    }
    for subject_pid, (start, end) in periods.items():
        await service.add_representative(
            session,
            officer,
            agent_personal_id=BINH[0],
            subject_person=subject_pid,
            relation="guardian",
            valid_from=start,
            valid_to=end,
        )
    # one that starts tomorrow is not in force either
    await resident(session, AN, HOAN_KIEM)
    await service.add_representative(
        session,
        officer,
        agent_personal_id=BINH[0],
        subject_person=AN[0],
        relation="guardian",
        valid_from=today + timedelta(days=1),
        valid_to=None,
    )

    assert await represented_by(session, BINH[0]) == [(khang.id, KHANG[0], "guardian")]
    assert await identity.may_act_for(session, person(BINH[0]), KHANG[0])
    assert not await identity.may_act_for(session, person(BINH[0]), DUNG[0])
    assert not await identity.may_act_for(session, person(BINH[0]), AN[0])
    assert await audited(session, "representative.added") == 3


async def test_a_citizen_may_not_record_representatives(session: AsyncSession) -> None:
    await signed_in(session, BINH)
    await signed_in(session, KHANG)
    with pytest.raises(VnehrError) as info:
        await service.add_representative(
            session,
            person(BINH[0]),
            agent_personal_id=BINH[0],
            subject_person=KHANG[0],
            relation="parent",
            valid_from=date(2017, 9, 1),
            valid_to=None,
        )
    assert info.value.code == "AUTH-0002"
    assert await count(session, Representative) == 0


# ------------------------------------------------------------------ role grants


async def test_the_department_grants_facility_and_ward_roles_in_its_province(
    session: AsyncSession,
) -> None:
    admin = person(CUONG[0], dept("01"))

    fac = await service.add_grant(
        session, admin, personal_id=AN[0], role="facility_admin", facility_code="01001"
    )
    ward = await service.add_grant(
        session, admin, personal_id=BINH[0], role="ward_officer", ward_code=HOAN_KIEM
    )

    assert (fac.role, fac.facility_code, fac.province_code, fac.ward_code) == (
        "facility_admin",
        "01001",
        None,
        None,
    )
    assert fac.granted_by == f"person:{CUONG[0]}"
    assert (ward.role, ward.ward_code, ward.facility_code) == ("ward_officer", HOAN_KIEM, None)
    assert await identity.grants_for(session, AN[0]) == (
        Grant("citizen"),
        Grant("facility_admin", facility_code="01001"),
    )
    assert Grant("ward_officer", ward_code=HOAN_KIEM) in await identity.grants_for(session, BINH[0])


@pytest.mark.parametrize(
    "scope",
    [
        {"role": "facility_admin", "facility_code": "01001"},
        {"role": "clinician", "facility_code": "01001"},
        {"role": "ward_officer", "ward_code": HOAN_KIEM},
        {"role": "department_admin", "province_code": "01"},
    ],
)
async def test_the_department_of_another_province_may_not_grant(
    session: AsyncSession, scope: dict[str, str]
) -> None:
    with pytest.raises(VnehrError) as info:
        await service.add_grant(session, person(CUONG[0], dept("79")), personal_id=AN[0], **scope)
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert await count(session, RoleGrant) == 0


async def test_only_a_national_administrator_grants_a_national_role(
    session: AsyncSession,
) -> None:
    with pytest.raises(VnehrError) as info:
        await service.add_grant(
            session, person(CUONG[0], dept("01")), personal_id=AN[0], role="department_admin"
        )
    assert info.value.code == "AUTH-0002"
    grant = await service.add_grant(
        session, person(CUONG[0], dept(None)), personal_id=AN[0], role="department_admin"
    )
    assert (grant.role, grant.province_code) == ("department_admin", None)


async def test_a_facility_admin_grants_clinicians_at_their_own_facility_only(
    session: AsyncSession,
) -> None:
    admin = person(CUONG[0], facility_admin("01001"))

    grant = await service.add_grant(
        session, admin, personal_id=AN[0], role="clinician", facility_code="01001"
    )
    assert (grant.role, grant.facility_code) == ("clinician", "01001")

    with pytest.raises(VnehrError) as elsewhere:
        await service.add_grant(
            session, admin, personal_id=AN[0], role="clinician", facility_code="01002"
        )
    assert elsewhere.value.code == "AUTH-0002"
    with pytest.raises(VnehrError) as another_admin:
        await service.add_grant(
            session, admin, personal_id=AN[0], role="facility_admin", facility_code="01001"
        )
    assert another_admin.value.code == "AUTH-0002"
    assert await identity.grants_for(session, AN[0]) == (
        Grant("citizen"),
        Grant("clinician", facility_code="01001"),
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"role": "superuser"}, "ID-0107"),
        ({"role": "ward_officer"}, "ID-0107"),  # no ward
        ({"role": "clinician", "facility_code": "011"}, "ID-0107"),
        ({"role": "ward_officer", "ward_code": "99999"}, "ID-0110"),
        ({"role": "clinician", "facility_code": "01001", "personal_id": "001"}, "ID-0001"),
    ],
)
async def test_a_malformed_grant_is_refused(
    session: AsyncSession, fields: dict[str, str], code: str
) -> None:
    with pytest.raises(VnehrError) as info:
        await service.add_grant(
            session, person(CUONG[0], dept(None)), **{"personal_id": AN[0], **fields}
        )
    assert (info.value.code, info.value.status_code) == (code, 422)
    assert await count(session, RoleGrant) == 0


async def test_a_revoked_grant_is_gone_at_once(session: AsyncSession) -> None:
    admin = person(CUONG[0], dept("01"))
    grant = await service.add_grant(
        session, admin, personal_id=AN[0], role="facility_admin", facility_code="01001"
    )

    revoked = await service.revoke_grant(session, admin, grant.id)

    assert revoked.revoked_at is not None
    assert revoked.revoked_by == f"person:{CUONG[0]}"
    assert await identity.grants_for(session, AN[0]) == (Grant("citizen"),)
    assert await service.grants_of(session, person(AN[0]), AN[0]) == []


async def test_a_facility_admin_revokes_only_their_own_clinicians(session: AsyncSession) -> None:
    bootstrap = identity.bootstrap_grant
    here = await bootstrap(session, AN[0], "clinician", facility_code="01001")
    there = await bootstrap(session, BINH[0], "clinician", facility_code="01002")
    admin = person(CUONG[0], facility_admin("01001"))

    await service.revoke_grant(session, admin, here.id)
    with pytest.raises(VnehrError) as info:
        await service.revoke_grant(session, admin, there.id)
    assert info.value.code == "AUTH-0002"
    assert there.revoked_at is None


@pytest.mark.parametrize(
    "scope",
    [
        {"role": "ward_officer", "ward_code": HOAN_KIEM},
        {"role": "facility_admin", "facility_code": "01001"},
        {"role": "department_admin", "province_code": "01"},
        {"role": "department_admin"},  # national
    ],
)
async def test_the_department_of_another_province_may_not_revoke(
    session: AsyncSession, scope: dict[str, str]
) -> None:
    grant = await identity.bootstrap_grant(session, AN[0], **scope)
    with pytest.raises(VnehrError) as info:
        await service.revoke_grant(session, person(CUONG[0], dept("79")), grant.id)
    assert info.value.code == "AUTH-0002"
    assert grant.revoked_at is None
    assert len(await identity.grants_for(session, AN[0])) == 2


async def test_the_department_of_the_province_revokes_a_ward_officer(
    session: AsyncSession,
) -> None:
    grant = await identity.bootstrap_grant(session, AN[0], "ward_officer", ward_code=HOAN_KIEM)
    await service.revoke_grant(session, person(CUONG[0], dept("01")), grant.id)
    assert await identity.grants_for(session, AN[0]) == (Grant("citizen"),)


async def test_a_provincial_admin_may_not_revoke_a_national_admin(session: AsyncSession) -> None:
    national = await identity.bootstrap_grant(session, AN[0], "department_admin")
    with pytest.raises(VnehrError) as info:
        await service.revoke_grant(session, person(CUONG[0], dept("01")), national.id)
    assert info.value.code == "AUTH-0002"
    await service.revoke_grant(session, person(CUONG[0], dept(None)), national.id)
    assert national.revoked_at is not None


async def test_others_may_not_read_a_persons_grants(session: AsyncSession) -> None:
    await identity.bootstrap_grant(session, AN[0], "clinician", facility_code="01001")
    with pytest.raises(VnehrError) as info:
        await service.grants_of(session, person(BINH[0]), AN[0])
    assert info.value.code == "AUTH-0002"
    mine = await service.grants_of(session, person(AN[0]), AN[0])
    assert [(g.role, g.facility_code) for g in mine] == [("clinician", "01001")]


async def test_merging_keeps_one_link_when_the_mother_already_represented_the_child(
    session: AsyncSession,
) -> None:
    await resident(session, DUNG)
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))
    child = await newborn(session)
    existing, _ = await enrol(
        session, officer, (NEWBORN_ID, "Phạm Minh Quân", NEWBORN_DAY.isoformat(), "male")
    )
    await service.add_representative(
        session,
        officer,
        agent_personal_id=DUNG[0],
        subject_person=NEWBORN_ID,
        relation="parent",
        valid_from=NEWBORN_DAY,
        valid_to=None,
    )
    await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)
    assert await represented_by(session, DUNG[0]) == [(existing.id, NEWBORN_ID, "parent")]


async def test_a_vneid_account_already_linked_to_another_person_is_refused(
    session: AsyncSession,
) -> None:
    await identity.sign_in(session, claims(AN, sub="vneid-shared"))
    with pytest.raises(VnehrError) as info:
        await identity.sign_in(session, claims(BINH, sub="vneid-shared"))
    assert info.value.code == "ID-0104"
    assert info.value.status_code == 401


# ------------------------------------------------------------------ registrar scope (D24)


async def test_the_department_records_a_first_residence_then_moves_the_person_within_it(
    session: AsyncSession,
) -> None:
    binh = await signed_in(session, BINH)  # no residence: the department's alone (D24)
    moved = await service.set_residence(session, person(CUONG[0], dept("01")), BINH[0], HOAN_KIEM)
    assert moved.id == binh.id
    assert moved.residence_ward_code == HOAN_KIEM
    event = (await session.scalars(select(AuditEvent))).one()
    assert (event.action, event.person_id, event.detail) == (
        "person.residence_set",
        binh.id,
        {"from": None, "to": HOAN_KIEM},
    )
    # the department of the province moves her within it
    await service.set_residence(session, person(CUONG[0], dept("01")), BINH[0], BA_DINH)
    assert binh.residence_ward_code == BA_DINH
    assert await audited(session, "person.residence_set", binh.id) == 2


@pytest.mark.parametrize(
    ("registrar", "ward"),
    [
        (person(CUONG[0], ward_officer(BA_DINH)), HOAN_KIEM),  # not the officer of that ward
        (person(CUONG[0], dept("79")), HOAN_KIEM),  # not the department of that province
        (person(CUONG[0]), HOAN_KIEM),  # a citizen
    ],
)
async def test_only_the_ward_or_its_department_records_a_residence_there(
    session: AsyncSession, registrar: Subject, ward: str
) -> None:
    binh = await signed_in(session, BINH)
    with pytest.raises(VnehrError) as info:
        await service.set_residence(session, registrar, BINH[0], ward)
    assert info.value.code == "AUTH-0002"
    assert binh.residence_ward_code is None
    assert await audited(session, "person.residence_set") == 0


async def test_nobody_moves_a_person_of_another_area_into_their_own(
    session: AsyncSession,
) -> None:
    binh = await resident(session, BINH, SAI_GON)
    for registrar in (person(CUONG[0], ward_officer(HOAN_KIEM)), person(CUONG[0], dept("01"))):
        with pytest.raises(VnehrError) as info:
            await service.set_residence(session, registrar, BINH[0], HOAN_KIEM)
        assert info.value.code == "AUTH-0002"
    assert binh.residence_ward_code == SAI_GON
    # the national department may
    await service.set_residence(session, person(CUONG[0], dept(None)), BINH[0], HOAN_KIEM)
    assert binh.residence_ward_code == HOAN_KIEM


async def test_a_residence_needs_a_ward_in_force(session: AsyncSession) -> None:
    await signed_in(session, BINH)
    with pytest.raises(VnehrError) as info:
        await service.set_residence(session, person(CUONG[0], dept(None)), BINH[0], "00061")
    assert (info.value.code, info.value.status_code) == ("ID-0110", 422)


async def representative_by(
    session: AsyncSession, registrar: Subject, subject_person: int | str = KHANG[0]
) -> Representative:
    return await service.add_representative(
        session,
        registrar,
        agent_personal_id=BINH[0],
        subject_person=subject_person,
        relation="guardian",
        valid_from=date(2026, 1, 1),
        valid_to=None,
    )


async def card_by(session: AsyncSession, registrar: Subject, holder: str = KHANG[0]) -> None:
    await service.add_card(
        session,
        registrar,
        holder,
        card_number=CARD,
        valid_from=None,
        valid_to=None,
        registered_facility=None,
    )


OUT_OF_AREA = {
    "officer of another ward": person(CUONG[0], ward_officer(BA_DINH)),
    "department of another province": person(CUONG[0], dept("79")),
    "officer of a ward in another province": person(CUONG[0], ward_officer(SAI_GON)),
}


@pytest.mark.parametrize("registrar", OUT_OF_AREA.values(), ids=OUT_OF_AREA.keys())
async def test_a_registrar_of_another_area_may_not_record_a_representative(
    session: AsyncSession, registrar: Subject
) -> None:
    await signed_in(session, BINH)
    await resident(session, KHANG, HOAN_KIEM)
    with pytest.raises(VnehrError) as info:
        await representative_by(session, registrar)
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert await count(session, Representative) == 0
    assert not await identity.may_act_for(session, person(BINH[0]), KHANG[0])
    assert await audited(session, "representative.added") == 0


@pytest.mark.parametrize(
    "registrar",
    [
        person(CUONG[0], ward_officer(HOAN_KIEM)),
        person(CUONG[0], dept("01")),
        person(CUONG[0], dept(None)),
    ],
    ids=["officer of the ward", "department of the province", "national department"],
)
async def test_a_registrar_of_the_persons_area_records_a_representative(
    session: AsyncSession, registrar: Subject
) -> None:
    await signed_in(session, BINH)
    khang = await resident(session, KHANG, HOAN_KIEM)
    row = await representative_by(session, registrar)
    assert await identity.may_act_for(session, person(BINH[0]), KHANG[0])
    event = (await session.scalars(select(AuditEvent))).one()
    assert (event.action, event.person_id, event.object_type, event.object_id) == (
        "representative.added",
        khang.id,
        "representative",
        str(row.id),
    )
    assert event.actor == f"person:{CUONG[0]}"


async def test_the_area_is_the_represented_persons_not_the_agents(session: AsyncSession) -> None:
    # the agent lives in the officer's ward; the child lives in Sài Gòn
    await resident(session, BINH, HOAN_KIEM)
    await resident(session, KHANG, SAI_GON)
    with pytest.raises(VnehrError) as info:
        await representative_by(session, person(CUONG[0], ward_officer(HOAN_KIEM)))
    assert info.value.code == "AUTH-0002"
    # the agent must exist, wherever they live
    with pytest.raises(VnehrError) as unknown:
        await service.add_representative(
            session,
            person(CUONG[0], dept("79")),
            agent_personal_id=HUNG[0],
            subject_person=KHANG[0],
            relation="guardian",
            valid_from=date(2026, 1, 1),
            valid_to=None,
        )
    assert unknown.value.code == "ID-0102"
    await representative_by(session, person(CUONG[0], dept("79")))
    assert await identity.may_act_for(session, person(BINH[0]), KHANG[0])


@pytest.mark.parametrize(
    ("registrar", "allowed"),
    [
        (person(CUONG[0], ward_officer(HOAN_KIEM)), False),
        (person(CUONG[0], dept("01")), False),
        (person(CUONG[0], dept(None)), True),
    ],
    ids=["ward officer", "provincial department", "national department"],
)
async def test_a_person_without_a_residence_is_only_the_national_departments(
    session: AsyncSession, registrar: Subject, allowed: bool
) -> None:
    await signed_in(session, BINH)
    await signed_in(session, KHANG)  # signed in through VNeID: no residence known yet
    if allowed:
        await representative_by(session, registrar)
        await card_by(session, registrar)
        assert len(await service.cards(session, registrar, KHANG[0])) == 1
        return
    with pytest.raises(VnehrError) as representing:
        await representative_by(session, registrar)
    with pytest.raises(VnehrError) as carding:
        await card_by(session, registrar)
    assert (representing.value.code, carding.value.code) == ("AUTH-0002", "AUTH-0002")
    if registrar.is_department_admin():
        with pytest.raises(VnehrError) as reading:
            await service.cards(session, registrar, KHANG[0])
        assert reading.value.code == "AUTH-0002"


async def test_a_residence_in_an_abolished_ward_is_only_the_national_departments(
    session: AsyncSession,
) -> None:
    await signed_in(session, BINH)
    await resident(session, KHANG, "00061")  # Hàng Bạc, merged into Hoàn Kiếm in 2025
    with pytest.raises(VnehrError) as info:
        await representative_by(session, person(CUONG[0], dept("01")))
    assert info.value.code == "AUTH-0002"
    await representative_by(session, person(CUONG[0], dept(None)))


@pytest.mark.parametrize("registrar", OUT_OF_AREA.values(), ids=OUT_OF_AREA.keys())
async def test_a_registrar_of_another_area_may_not_record_a_card(
    session: AsyncSession, registrar: Subject
) -> None:
    await resident(session, KHANG, HOAN_KIEM)
    with pytest.raises(VnehrError) as info:
        await card_by(session, registrar)
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert await count(session, InsuranceCard) == 0
    assert await audited(session, "card.added") == 0


async def test_a_citizen_records_their_own_card_wherever_they_live(
    session: AsyncSession,
) -> None:
    khang = await resident(session, KHANG, SAI_GON)
    await card_by(session, person(KHANG[0]))
    assert await audited(session, "card.added", khang.id) == 1


async def test_another_provinces_department_may_not_read_the_cards(
    session: AsyncSession,
) -> None:
    an = await resident(session, AN, HOAN_KIEM)
    await card_by(session, person(AN[0]), AN[0])

    with pytest.raises(VnehrError) as info:
        await service.cards(session, person(CUONG[0], dept("79")), AN[0])
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert await audited(session, "cards.read") == 0

    # the holder's own reading is not audited; the Hà Nội department's is
    assert len(await service.cards(session, person(AN[0]), AN[0])) == 1
    assert await audited(session, "cards.read") == 0
    assert len(await service.cards(session, person(CUONG[0], dept("01")), AN[0])) == 1
    event = (
        await session.scalars(select(AuditEvent).where(AuditEvent.action == "cards.read"))
    ).one()
    assert (event.person_id, event.actor) == (an.id, f"person:{CUONG[0]}")


async def test_a_ward_officer_does_not_read_cards(session: AsyncSession) -> None:
    await resident(session, AN, HOAN_KIEM)
    with pytest.raises(VnehrError) as info:
        await service.cards(session, person(CUONG[0], ward_officer(HOAN_KIEM)), AN[0])
    assert info.value.code == "AUTH-0002"


@pytest.mark.parametrize(
    ("registrar", "allowed"),
    [
        (person(CUONG[0], clinician("01001")), True),  # a facility of the mother's province
        (person(CUONG[0], facility_admin("01002")), True),
        (person(CUONG[0], clinician("79001")), False),  # a facility in Hồ Chí Minh City
        (person(CUONG[0], facility_admin("79001")), False),
        (person(CUONG[0], clinician("79001"), ward_officer(HOAN_KIEM)), True),  # by the ward
    ],
)
async def test_a_newborn_is_registered_by_a_facility_of_the_mothers_province(
    session: AsyncSession, registrar: Subject, allowed: bool
) -> None:
    await resident(session, DUNG, HOAN_KIEM)
    if allowed:
        assert (await newborn(session, registrar)).provisional
        assert await audited(session, "newborn.added") == 1
        return
    with pytest.raises(VnehrError) as info:
        await newborn(session, registrar)
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert await count(session, Person, Person.provisional.is_(True)) == 0
    assert await count(session, Representative) == 0
    assert await audited(session, "newborn.added") == 0


async def test_a_mother_without_a_residence_is_registered_by_the_national_department(
    session: AsyncSession,
) -> None:
    await signed_in(session, DUNG)
    with pytest.raises(VnehrError) as info:
        await newborn(session, person(CUONG[0], clinician("01001")))
    assert info.value.code == "AUTH-0002"
    child = await newborn(session, person(CUONG[0], dept(None)))
    assert child.residence_ward_code is None


@pytest.mark.parametrize("registrar", OUT_OF_AREA.values(), ids=OUT_OF_AREA.keys())
async def test_a_registrar_of_another_area_may_not_assign_the_personal_id(
    session: AsyncSession, registrar: Subject
) -> None:
    await resident(session, DUNG, HOAN_KIEM)
    child = await newborn(session)
    with pytest.raises(VnehrError) as info:
        await service.assign_personal_id(session, registrar, child.id, NEWBORN_ID)
    assert (info.value.code, info.value.status_code) == ("AUTH-0002", 403)
    assert (child.personal_id, child.provisional) == (None, True)
    assert await audited(session, "person.id_assigned") == 0


async def test_a_newborn_is_not_merged_into_a_person_of_another_area(
    session: AsyncSession,
) -> None:
    """Merging moves the mother's link: it must not make her the representative of someone
    the registrar does not look after."""
    await resident(session, DUNG, HOAN_KIEM)
    child = await newborn(session)
    stranger, _ = await enrol(
        session,
        person(CUONG[0], ward_officer(SAI_GON)),
        (NEWBORN_ID, "Phạm Minh Quân", NEWBORN_DAY.isoformat(), "male"),
        ward=SAI_GON,
    )
    officer = person(CUONG[0], ward_officer(HOAN_KIEM))

    with pytest.raises(VnehrError) as info:
        await service.assign_personal_id(session, officer, child.id, NEWBORN_ID)
    assert info.value.code == "AUTH-0002"
    assert child.merged_into_id is None
    assert not await identity.may_act_for(session, person(DUNG[0]), NEWBORN_ID)
    assert await audited(session, "person.merged") == 0

    # the national department may merge (and the link then follows)
    merged = await service.assign_personal_id(
        session, person(CUONG[0], dept(None)), child.id, NEWBORN_ID
    )
    assert merged.id == stranger.id
    assert merged.residence_ward_code == SAI_GON
    assert await identity.may_act_for(session, person(DUNG[0]), NEWBORN_ID)
    assert await audited(session, "person.merged", stranger.id) == 1


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ({"role": "facility_admin"}, "ID-0107"),  # could never match a request
        ({"role": "clinician", "facility_code": "1"}, "ID-0107"),
        ({"role": "ward_officer"}, "ID-0107"),
        ({"role": "ward_officer", "ward_code": "99999"}, "ID-0110"),
        ({"role": "department_admin", "province_code": "99"}, "ID-0107"),
        # a code the role does not use is refused, not dropped (that would be a national admin)
        ({"role": "department_admin", "facility_code": "01001"}, "ID-0107"),
        ({"role": "ward_officer", "ward_code": HOAN_KIEM, "province_code": "01"}, "ID-0107"),
    ],
)
async def test_an_operator_grant_needs_the_scope_its_role_uses(
    session: AsyncSession, scope: dict[str, str], code: str
) -> None:
    with pytest.raises(VnehrError) as info:
        await identity.bootstrap_grant(session, AN[0], **scope)
    assert info.value.code == code
    assert await identity.grants_for(session, AN[0]) == (Grant("citizen"),)
