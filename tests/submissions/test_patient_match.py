"""A visit file names its patient by personal ID (SO_CCCD). When the name or birth date it
gives differ from what VNeID confirmed of the person holding that ID, the visit is most likely
someone else's with a mistyped ID: it is stored (and relayed) but held out of that person's
health book, and the receipt says which of the file's fields differ, without telling the
facility the holder's own name or birth date."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.exchange.test_inbox import AN, as_person, signed_in
from tests.healthbook.test_api import visit_of
from tests.submissions.test_intake import facility_with_token, send
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

HOLD = "SUB-0170"


def as_patient(one: synth.SynthVisit, name: str, ngay_sinh: str, personal_id: str = AN[0]) -> None:
    """The visit's patient, in every table that names them: ``ngay_sinh`` as XML1 writes it
    (12 characters; tables holding 8 get its first 8)."""
    for rows in one.tables.values():
        for row in rows:
            if row.get("HO_TEN"):
                row["HO_TEN"] = name
            if row.get("SO_CCCD"):
                row["SO_CCCD"] = personal_id
            if row.get("GIOI_TINH"):
                row["GIOI_TINH"] = "1"
            if row.get("NGAY_SINH"):
                row["NGAY_SINH"] = ngay_sinh[: len(row["NGAY_SINH"])]


def a_visit(code: str, seed: int, name: str, ngay_sinh: str) -> synth.SynthVisit:
    ended = utcnow().replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=3)
    one = visit_of(code, seed, ended, care_type="01", age_group=3)
    as_patient(one, name, ngay_sinh)
    return one


async def an_reads(client: httpx.AsyncClient, settings: Settings) -> list[tuple[str, int]]:
    """(facility, version) of each visit An's own timeline shows."""
    as_person(client, settings, AN[0])
    response = await client.get("/api/v1/me/timeline")
    client.cookies.clear()
    assert response.status_code == 200, response.text
    return [(item["facility"]["code"], item["version"]) for item in response.json()["items"]]


def holds(receipt: dict[str, object]) -> list[str]:
    visits = receipt["visits"]
    assert isinstance(visits, list)
    return sorted(i["field"] for v in visits for i in v["issues"] if i["code"] == HOLD)


async def test_a_stranger_under_an_s_personal_id_stays_out_of_an_s_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # An signed in with VNeID: his name and birth date are the population register's.
    await signed_in(session, AN)
    code, headers = await facility_with_token(
        client, session, settings, scopes=("submission.write", "record.read")
    )
    one = a_visit(code, 31, "Trần Văn Giả", "198501010000")

    response = await send(client, headers, synth.envelope([one], code))

    assert response.status_code == 201, response.text
    receipt = response.json()
    [entry] = receipt["visits"]
    assert entry["status"] == "accepted_with_warnings"
    assert entry["outcome"] == "new"
    assert holds(receipt) == ["HO_TEN", "NGAY_SINH"]
    warning = next(i for i in entry["issues"] if i["code"] == HOLD)
    assert warning["severity"] == "warning"
    assert warning["message"]["vi"]
    assert warning["message"]["en"]
    # whoever typed a wrong ID learns nothing of the real holder
    for told in ("Nguyễn Văn An", "Nguyen Van An", "NGUYEN VAN AN", "1985-03-14", "19850314",
                 "14/03/1985", "198503140000"):  # fmt: skip
        assert told not in response.text
    # kept for the facility (and the BHXH relay), but not in An's book
    assert await an_reads(client, settings) == []
    kept = await client.get(f"/api/v1/visits/{code}/{one.ma_lk}/xml", headers=headers)
    assert kept.status_code == 200


@pytest.mark.parametrize(
    ("name", "ngay_sinh"),
    [
        ("Nguyễn Văn An", "198503140000"),
        ("NGUYEN VAN AN", "198503140830"),  # no accents, capitals; a birth time
        ("Nguyễn  Văn   An ", "198503000000"),  # spaces; the month only
        ("nguyễn văn an", "198500000000"),  # lower case; the year only
    ],
)
async def test_an_written_otherwise_is_still_an(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, name: str, ngay_sinh: str
) -> None:
    await signed_in(session, AN)
    code, headers = await facility_with_token(client, session, settings)
    one = a_visit(code, 32, name, ngay_sinh)

    response = await send(client, headers, synth.envelope([one], code))

    assert response.status_code == 201, response.text
    assert holds(response.json()) == []
    assert await an_reads(client, settings) == [(code, 1)]


@pytest.mark.parametrize("ngay_sinh", ["198503150000", "198504000000"])
async def test_a_birth_date_that_is_not_an_s_holds_the_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, ngay_sinh: str
) -> None:
    await signed_in(session, AN)
    code, headers = await facility_with_token(client, session, settings)
    one = a_visit(code, 33, "Nguyễn Văn An", ngay_sinh)

    response = await send(client, headers, synth.envelope([one], code))

    assert response.status_code == 201, response.text
    assert holds(response.json()) == ["NGAY_SINH"]
    assert await an_reads(client, settings) == []


async def test_a_correction_moves_the_visit_into_and_out_of_the_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    await signed_in(session, AN)
    code, headers = await facility_with_token(client, session, settings)
    held = a_visit(code, 34, "Trần Văn Giả", "198503140000")
    assert holds((await send(client, headers, synth.envelope([held], code))).json()) == ["HO_TEN"]
    assert await an_reads(client, settings) == []

    # the facility corrects the name: version 2 is An's
    as_patient(held, "Nguyễn Văn An", "198503140000")
    fixed = (await send(client, headers, synth.envelope([held], code))).json()
    assert [(v["version"], v["outcome"]) for v in fixed["visits"]] == [(2, "changed")]
    assert holds(fixed) == []
    assert await an_reads(client, settings) == [(code, 2)]

    # a later correction naming someone else takes it out again
    as_patient(held, "Trần Văn Giả", "198503140000")
    again = (await send(client, headers, synth.envelope([held], code))).json()
    assert [(v["version"], holds(again)) for v in again["visits"]] == [(3, ["HO_TEN"])]
    assert await an_reads(client, settings) == []
