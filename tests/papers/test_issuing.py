"""Issuing papers through the API as facility systems meet it: a numbered driver's certificate
never takes another holder's number, a birth certificate goes to the mother's book, a table
row is checked against the national table's field formats like a visit file (never a 500), and
only systems allowed to read records or issue papers read them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.healthbook.test_api import visit_of, who
from tests.identity.test_api import error, sign_in_as
from tests.papers.test_api import SCOPES, driver_body, local_now, sick_leave, verify
from tests.submissions.test_intake import facility_with_token, send, system_token
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

OTHER_HOLDER = {
    "personal_id": "001092054321",
    "name": "Phạm Thị Lan",
    "birth_date": "1992-03-03",
    "sex": "female",
}


async def test_a_numbered_driver_certificate_never_takes_another_holders_number(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    yy = driver_body()["examined_on"][2:4]
    taken = f"{code}.KSK.000002.{yy}"
    first = await client.post("/api/v1/papers", json=driver_body(number=taken), headers=headers)
    assert first.status_code == 201, first.text
    # numbered here: the next free number, not the one the first holder has
    second = await client.post(
        "/api/v1/papers", json=driver_body(holder=OTHER_HOLDER), headers=headers
    )
    assert second.status_code == 201, second.text
    assert second.json()["number"] == f"{code}.KSK.000003.{yy}"
    assert second.json()["outcome"] == "issued"
    checked = await verify(client, first.json()["qr"])
    assert (checked["valid"], checked["status"]) == (True, "valid")
    # the first holder's number given for someone else is refused, not a "correction"
    error(
        await client.post(
            "/api/v1/papers", json=driver_body(number=taken, holder=OTHER_HOLDER), headers=headers
        ),
        409,
        "PAP-0006",
    )
    assert (await verify(client, first.json()["qr"]))["valid"] is True
    # the same holder's certificate corrected keeps its number
    again = await client.post(
        "/api/v1/papers",
        json=driver_body(number=taken, conclusion="fit_with_conditions", conditions="Đeo kính"),
        headers=headers,
    )
    assert again.status_code == 201, again.text
    assert (again.json()["number"], again.json()["outcome"]) == (taken, "replaced")


def birth_row(
    baby: synth.SynthVisit, code: str, mother: tuple[str, str, str, str]
) -> dict[str, Any]:
    signed = (local_now() - timedelta(days=2)).strftime("%Y%m%d")
    born = (local_now() - timedelta(days=3)).strftime("%Y%m%d") + "0800"
    return {
        "MA_LK": baby.ma_lk, "MA_BHXH_NND": "0000000000", "HO_TEN_NND": mother[1],
        "NGAYSINH_NND": mother[2].replace("-", ""), "MA_DANTOC_NND": "01",
        "SO_CCCD_NND": mother[0], "NGAYCAP_CCCD_NND": "20200101", "NOICAP_CCCD_NND": "Cục CS",
        "NOI_CU_TRU_NND": "Hà Nội", "MA_QUOCTICH": "000", "MATINH_CU_TRU": "01",
        "MAXA_CU_TRU": "00001", "HO_TEN_CHA": "Ngô Văn Cha", "MA_THE_TAM": "TE1010000000001",
        "HO_TEN_CON": "Ngô Bé", "GIOI_TINH_CON": "1", "SO_CON": "1", "LAN_SINH": "1",
        "SO_CON_SONG": "1", "CAN_NANG_CON": "3200", "NGAY_SINH_CON": born,
        "NOI_SINH_CON": "Bệnh viện", "TINH_TRANG_CON": "Khỏe", "SINHCON_PHAUTHUAT": "0",
        "SINHCON_DUOI32TUAN": "0", "GHI_CHU": "Không", "NGUOI_DO_DE": "BS",
        "NGUOI_GHI_PHIEU": "NHS", "NGAY_CT": signed, "SO": f"00001.GCS.{code}.{signed[2:4]}",
        "QUYEN_SO": "1", "MA_TTDV": "0101001234",
    }  # fmt: skip


async def test_a_birth_certificate_issued_after_the_visit_goes_to_the_mothers_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    baby = visit_of(
        code, 81, local_now() - timedelta(days=2), care_type="01", insured=True,
        appointment=False, age_group=0,
    )  # fmt: skip
    await send(client, headers, synth.envelope([baby], code))
    mother = ("001195011111", "Ngô Thị Mẹ", "1995-01-01", "female")
    body = {"kind": "birth", "visit_key": baby.ma_lk, "fields": birth_row(baby, code, mother)}
    made = await client.post("/api/v1/papers", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.json()["content"]["holder"]["personal_id"] == mother[0]

    await sign_in_as(client, session, settings, mother)
    assert [p["kind"] for p in (await client.get("/api/v1/me/papers")).json()["papers"]] == [
        "birth"
    ]
    await sign_in_as(client, session, settings, who(baby))
    assert (await client.get("/api/v1/me/papers")).json()["papers"] == []


async def test_a_table_row_is_checked_against_the_national_field_formats(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    one = visit_of(
        code, 63, local_now() - timedelta(days=2), care_type="01", insured=True, appointment=False
    )
    await send(client, headers, synth.envelope([one], code))

    async def refused(**fields: str) -> list[tuple[str, str]]:
        body = {
            "kind": "sick_leave",
            "visit_key": one.ma_lk,
            "fields": {**sick_leave(one, 3), **fields},
        }
        found = error(
            await client.post("/api/v1/papers", json=body, headers=headers), 422, "PAP-0004"
        )
        return [(i["code"], i["field"]) for i in found["detail"]["issues"]]

    # longer than the table allows (SO_CT: 200, DON_VI: 1024)
    assert await refused(SO_CT="N" * 300, DON_VI="X" * 100_000) == [
        ("SUB-0111", "SO_CT"),
        ("SUB-0111", "DON_VI"),
    ]
    assert await refused(SO_NGAY_NGHI="ba") == [("SUB-0112", "SO_NGAY_NGHI")]
    assert await refused(TU_NGAY="hôm nay", DEN_NGAY="mai") == [
        ("SUB-0114", "TU_NGAY"),
        ("SUB-0114", "DEN_NGAY"),
    ]
    made = await client.post(
        "/api/v1/papers",
        json={"kind": "sick_leave", "visit_key": one.ma_lk, "fields": sick_leave(one, 3)},
        headers=headers,
    )
    assert made.status_code == 201, made.text


async def test_only_systems_that_read_records_or_issue_papers_read_papers(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    paper = (await client.post("/api/v1/papers", json=driver_body(), headers=headers)).json()
    kiosk = await system_token(client, session, settings, code, ("checkin.write",))
    for path in ("", ".pdf", "/qr.png"):
        error(
            await client.get(f"/api/v1/papers/{paper['id']}{path}", headers=kiosk), 403, "AUTH-0004"
        )
    reader = await system_token(client, session, settings, code, ("record.read",))
    assert (await client.get(f"/api/v1/papers/{paper['id']}", headers=reader)).status_code == 200
    assert (await client.get(f"/api/v1/papers/{paper['id']}", headers=headers)).status_code == 200
