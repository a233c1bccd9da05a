"""A birth known by its year or month only (NGAY_SINH ``yyyy00000000`` / ``yyyymm000000``, as the
national tables allow): a parent represents the person until the earliest day they may have
turned 18, a later visit with a more precise date improves what is stored (never the other
way), and a person with no birth date at all comes of age by the year their personal ID
encodes, not never (D100, D105)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person, signed_in
from tests.healthbook.test_api import visit_of, who
from tests.submissions.test_intake import facility_with_token, send
from vnehr import demo, identity
from vnehr.identity.models import Representative
from vnehr.kit.clock import today_in_vietnam, utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth


def _born_in(year: int, ngay_sinh: str) -> Callable[[synth.SynthVisit], None]:
    """Rewrite a synthetic visit's person: NGAY_SINH as given, a personal ID of ``year``."""

    def rewrite(one: synth.SynthVisit) -> None:
        for rows in one.tables.values():
            for row in rows:
                if row.get("NGAY_SINH"):
                    row["NGAY_SINH"] = ngay_sinh
                if row.get("SO_CCCD"):
                    c = row["SO_CCCD"]
                    century = 2 * (year // 100 - 19) + int(c[3]) % 2
                    row["SO_CCCD"] = f"{c[:3]}{century}{year % 100:02d}{c[6:]}"

    return rewrite


async def _visit(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    seed: int,
    rewrite: Callable[[synth.SynthVisit], None],
    like: synth.SynthVisit | None = None,
) -> synth.SynthVisit:
    code, headers = await facility_with_token(client, session, settings)
    ended = utcnow().replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=3)
    one = visit_of(code, seed, ended, like, care_type="01", age_group=3)
    rewrite(one)
    answer = await send(client, headers, synth.envelope([one], code))
    assert answer.status_code == 201, answer.text
    assert [v["status"] for v in answer.json()["visits"]] == ["accepted"]
    return one


async def _parent_of(session: AsyncSession, personal_id: str) -> None:
    """An as the parent, recorded in 2000 while the child was a minor (the ward office no
    longer records a parent for someone of age, D233)."""
    await signed_in(session, AN)
    agent_id = await identity.person_id_of(session, AN[0])
    subject_id = await identity.person_id_of(session, personal_id)
    assert agent_id is not None
    assert subject_id is not None
    session.add(
        Representative(
            agent_id=agent_id, subject_id=subject_id, relation="parent",
            valid_from=date(2000, 1, 1), valid_to=None, created_at=utcnow(),
            created_by=demo.OPERATOR.label,
        )
    )  # fmt: skip
    await session.flush()


async def _parent_reads(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, personal_id: str
) -> bool:
    """Whether the parent reads the book and the person's pushes reach the parent's phone."""
    as_person(client, settings, AN[0])
    reads = (await client.get(f"/api/v1/me/timeline?for={personal_id}")).status_code == 200
    person_id = await identity.person_id_of(session, personal_id)
    assert person_id is not None
    told = [h.personal_id for h in await identity.representatives(session, person_id)]
    assert reads == (told == [AN[0]])
    return reads


async def test_a_year_only_birth_ends_the_representation_at_the_earliest_18th_birthday(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    year = today_in_vietnam().year
    adult = await _visit(client, session, settings, 21, _born_in(year - 20, f"{year - 20}00000000"))
    surely = await _visit(
        client, session, settings, 23, _born_in(year - 17, f"{year - 17}00000000")
    )
    maybe = await _visit(client, session, settings, 24, _born_in(year - 18, f"{year - 18}00000000"))
    for one in (adult, surely, maybe):
        await _parent_of(session, who(one)[0])

    assert not await _parent_reads(client, session, settings, who(adult)[0])  # 20 years old
    assert await _parent_reads(client, session, settings, who(surely)[0])  # 16 or 17
    # 17 or 18 this year: an adult from 1 January for all the parent may know
    assert not await _parent_reads(client, session, settings, who(maybe)[0])


async def test_a_month_only_birth_ends_the_representation_on_the_1st_of_that_month(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    today = today_in_vietnam()
    year = today.year - 18
    this_month = f"{year}{today.month:02d}000000"
    nxt = (today.month % 12) + 1
    next_month = f"{year + (today.month == 12)}{nxt:02d}000000"
    grown = await _visit(client, session, settings, 21, _born_in(year, this_month))
    minor = await _visit(
        client, session, settings, 23, _born_in(year + (today.month == 12), next_month)
    )
    for one in (grown, minor):
        await _parent_of(session, who(one)[0])

    assert not await _parent_reads(client, session, settings, who(grown)[0])
    assert await _parent_reads(client, session, settings, who(minor)[0])


async def test_a_full_birth_date_ends_the_representation_on_the_18th_birthday(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    today = today_in_vietnam()
    if today.month == 2 and today.day == 29:
        pytest.skip("no 29 February 18 years ago")
    born = today.replace(year=today.year - 18)
    grown = await _visit(client, session, settings, 21, _born_in(born.year, f"{born:%Y%m%d}0000"))
    await _parent_of(session, who(grown)[0])

    assert not await _parent_reads(client, session, settings, who(grown)[0])  # 18 today


async def test_a_later_visit_with_the_full_date_improves_a_year_only_birth(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    today = today_in_vietnam()
    if (today.month, today.day) == (12, 31):
        pytest.skip("nobody born in that year is a minor on 31 December")
    year = today.year - 18
    one = await _visit(client, session, settings, 21, _born_in(year, f"{year}00000000"))
    personal_id = who(one)[0]
    await _parent_of(session, personal_id)
    assert not await _parent_reads(client, session, settings, personal_id)

    # a facility that knows the day: born on 31 December, still a minor today
    await _visit(client, session, settings, 22, _born_in(year, f"{year}12310000"), like=one)
    assert await _parent_reads(client, session, settings, personal_id)
    person_id = await identity.person_id_of(session, personal_id)
    assert person_id is not None
    holder = (await identity.persons(session, [person_id]))[person_id]
    assert holder.birth_date == date(year, 12, 31)

    # a later visit with the year only again does not make it less precise
    await _visit(client, session, settings, 25, _born_in(year, f"{year}00000000"), like=one)
    assert await _parent_reads(client, session, settings, personal_id)


async def test_with_no_birth_date_the_personal_id_gives_the_year(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    year = today_in_vietnam().year
    adult = f"001{2 * ((year - 20) // 100 - 19)}{(year - 20) % 100:02d}000731"
    minor = f"001{2 * ((year - 15) // 100 - 19)}{(year - 15) % 100:02d}000732"
    for personal_id in (adult, minor):
        await identity.match_patient(
            session, personal_id=personal_id, full_name="Không Rõ Ngày Sinh", birth_date=None,
            sex="male", source="test",
        )  # fmt: skip
        await _parent_of(session, personal_id)

    assert not await _parent_reads(client, session, settings, adult)
    assert await _parent_reads(client, session, settings, minor)


@pytest.mark.parametrize(
    ("ngay_sinh", "fhir", "vi", "en"),
    [
        ("198000000000", "1980", "năm 1980", "1980 (year only)"),
        ("198005000000", "1980-05", "tháng 05/1980", "05/1980 (month only)"),
    ],
)
async def test_a_partial_birth_is_shown_as_what_is_known(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    ngay_sinh: str,
    fhir: str,
    vi: str,
    en: str,
) -> None:
    """FHIR's birthDate takes "YYYY" and "YYYY-MM": the Patient, and the IPS's Patient, say
    exactly what is known; the portal and the book say "năm 1980" / "tháng 05/1980", never an
    invented day."""
    one = await _visit(client, session, settings, 31, _born_in(1980, ngay_sinh))
    personal_id = who(one)[0]
    person_id = await identity.person_id_of(session, personal_id)
    as_person(client, settings, personal_id)
    patient = (await client.get(f"/fhir/R4/Patient/{person_id}")).json()
    assert patient["birthDate"] == fhir
    ips = (await client.get(f"/fhir/R4/Patient/{person_id}/$summary")).json()
    [shown] = [e["resource"] for e in ips["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert shown["birthDate"] == fhir
    found = (await client.get("/fhir/R4/Patient", params={"birthdate": fhir})).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [str(person_id)]

    for lang, words in (("vi", vi), ("en", en)):
        for page in ("/portal", "/portal/book", "/portal/book/summary"):
            assert words in (await client.get(page, params={"lang": lang})).text, (page, lang)
