"""The simulated BHXH portal, driven over HTTP the way vnehr's exchange client drives it.

The app is mounted at ``/sim/bhxh`` inside a parent app. The GIAMDINHHS files are built here
with lxml (a minimal XML1 ``TONG_HOP`` and optional other tables, base64 in the envelope).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from lxml import etree
from starlette.applications import Starlette
from starlette.routing import Mount

from vnehr.sim.bhxh import (
    DEMO_CARDS,
    Account,
    BhxhConfig,
    DemoCard,
    Faults,
    create_app,
    password_hash,
)

BASE = "http://testserver/sim/bhxh"
USER, PASSWORD = "bv01001", "mat-khau-thu-nghiem"
FACILITY = "01001"
CARD = "DN4010123456789"
FILE_4750 = "/api/qd130/guiHoSoXmlQD4750"
FILE_3176 = "/api/qd130/guiHoSoXmlQD3176"
CHECKIN = "/api/qd130/checkInKcbQd4750"
LOOKUP = "/api/egw/KQNhanLichSuKCB2024"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def document(root: str, fields: dict[str, str]) -> bytes:
    element = etree.Element(root)
    for name, value in fields.items():
        etree.SubElement(element, name).text = value
    data: bytes = etree.tostring(element, xml_declaration=True, encoding="utf-8")
    return data


def xml1(ma_lk: str, *, card: str = CARD, diagnosis: str = "Viêm họng cấp", **extra: str) -> bytes:
    return document(
        "TONG_HOP",
        {
            "MA_LK": ma_lk,
            "STT": "1",
            "MA_BN": "BN001",
            "HO_TEN": "Nguyễn Văn An",
            "MA_THE_BHYT": card,
            "NGAY_VAO": "202603010800",
            "NGAY_RA": "202603011000",
            "CHAN_DOAN_RV": diagnosis,
            "MA_BENH_CHINH": "J02.9",
            "KET_QUA_DTRI": "1",
            "MA_LOAI_RV": "1",
            "MA_DOITUONG_KCB": "1.1",
            "MA_CSKCB": FACILITY,
            **extra,
        },
    )


def xml2(ma_lk: str) -> bytes:
    root = etree.Element("CHITIEU_CHITIET_THUOC")
    row = etree.SubElement(etree.SubElement(root, "DSACH_CHI_TIET_THUOC"), "CHI_TIET_THUOC")
    for name, value in {"MA_LK": ma_lk, "STT": "1", "MA_THUOC": "40.17"}.items():
        etree.SubElement(row, name).text = value
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def envelope(
    records: list[dict[str, bytes]], facility: str = FACILITY, count: str | None = None
) -> bytes:
    root = etree.Element("GIAMDINHHS")
    etree.SubElement(etree.SubElement(root, "THONGTINDONVI"), "MACSKCB").text = facility
    info = etree.SubElement(root, "THONGTINHOSO")
    etree.SubElement(info, "NGAYLAP").text = "20260302"
    etree.SubElement(info, "SOLUONGHOSO").text = count or str(len(records))
    listing = etree.SubElement(info, "DANHSACHHOSO")
    for record in records:
        hoso = etree.SubElement(listing, "HOSO")
        for kind, content in record.items():
            entry = etree.SubElement(hoso, "FILEHOSO")
            etree.SubElement(entry, "LOAIHOSO").text = kind
            etree.SubElement(entry, "NOIDUNGFILE").text = base64.b64encode(content).decode()
    etree.SubElement(root, "CHUKYDONVI")
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def visit_file(ma_lk: str = "LK0001", **extra: str) -> bytes:
    return envelope([{"XML1": xml1(ma_lk, **extra), "XML2": xml2(ma_lk)}])


def checkin_doc(ma_lk: str = "LK0001") -> bytes:
    root = etree.Element("CHI_TIEU_TRANG_THAI_KCB")
    row = etree.SubElement(etree.SubElement(root, "DSACH_TRANG_THAI_KCB"), "TRANG_THAI_KCB")
    for name, value in {"MA_LK": ma_lk, "STT": "1", "MA_THE_BHYT": CARD}.items():
        etree.SubElement(row, name).text = value
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(clock: FakeClock) -> BhxhConfig:
    return BhxhConfig(
        accounts={USER: Account(PASSWORD, (FACILITY, "01002")), "other": Account("x", ("79001",))},
        clock=clock,
    )


@pytest.fixture
async def sim(config: BhxhConfig) -> AsyncIterator[httpx.AsyncClient]:
    root = Starlette(routes=[Mount("/sim/bhxh", create_app(config))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url=BASE) as client:
        yield client


async def login(
    sim: httpx.AsyncClient, user: str = USER, password: str = PASSWORD
) -> dict[str, Any]:
    response = await sim.post(
        "/api/token/take", data={"username": user, "password": md5_upper(password)}
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["maKetQua"] == "200", body
    return body


def headers_of(token: dict[str, Any], password: str = PASSWORD) -> dict[str, str]:
    return {
        "accessToken": token["access_token"],
        "tokenId": token["id_token"],
        "passwordHash": md5_upper(password),
    }


async def send(
    sim: httpx.AsyncClient,
    data: bytes,
    *,
    token: dict[str, Any] | None = None,
    path: str = FILE_4750,
    **form: str,
) -> httpx.Response:
    token = token or await login(sim)
    fields = {
        "username": USER,
        "loaiHoSo": "130",
        "maTinh": "01",
        "maCSKCB": FACILITY,
        "fileHSBase64": b64(data),
        **form,
    }
    return await sim.post(path, data=fields, headers=headers_of(token))


async def received(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await sim.get("/_sim/received")
    assert response.status_code == 200
    body: list[dict[str, Any]] = response.json()
    return body


async def set_faults(sim: httpx.AsyncClient, **faults: Any) -> dict[str, Any]:
    response = await sim.put("/_sim/faults", json=faults)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------------- token


async def test_token_with_md5_uppercase_password(sim: httpx.AsyncClient) -> None:
    body = await login(sim)
    assert body["token_type"] == "bearer"
    assert body["username"] == USER
    assert body["expires_in"] == 1800
    assert body["access_token"]
    assert body["id_token"]
    assert body["access_token"] != body["id_token"]
    assert password_hash(PASSWORD) == md5_upper(PASSWORD)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        (USER, md5_upper("wrong")),
        (USER, PASSWORD),  # plain text instead of MD5
        (USER, md5_upper(PASSWORD).lower()),  # lowercase hex
        ("nobody", md5_upper(PASSWORD)),
    ],
)
async def test_token_refused_with_wrong_credentials(
    sim: httpx.AsyncClient, user: str, password: str
) -> None:
    response = await sim.post("/api/token/take", data={"username": user, "password": password})
    assert response.status_code == 200
    body = response.json()
    assert body["maKetQua"] == "401"
    assert "access_token" not in body
    assert body["thongDiep"]


async def test_token_without_fields(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/api/token/take", data={"username": USER})
    assert response.json()["maKetQua"] == "400"


# ---------------------------------------------------------------------- files


async def test_file_is_kept_with_increasing_versions(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    first = await send(sim, visit_file("LK0001"), token=token)
    assert first.status_code == 200
    answer = first.json()
    assert answer["maKetQua"] == "200"
    assert re.fullmatch(r"\d{14}", answer["thoiGianTiepNhan"])
    assert answer["thoiGianTiepNhan"] == "20260302083000"  # Vietnam time of the clock
    assert answer["thongDiep"]

    second = (await send(sim, visit_file("LK0001", diagnosis="Viêm amidan"), token=token)).json()
    third = (await send(sim, visit_file("LK0001", diagnosis="Viêm amidan"), token=token)).json()
    other = (await send(sim, visit_file("LK0002"), token=token)).json()
    ids = {answer["maGiaoDich"], second["maGiaoDich"], third["maGiaoDich"], other["maGiaoDich"]}
    assert len(ids) == 4  # a repeated file gets a new transaction id

    versions = (await sim.get(f"/_sim/received/{FACILITY}/LK0001")).json()
    assert [v["version_number"] for v in versions] == [1, 2, 3]
    assert [v["duplicate"] for v in versions] == [False, False, True]
    assert versions[0]["maGiaoDich"] == answer["maGiaoDich"]
    assert versions[0]["variant"] == "4750"
    assert versions[0]["facility"] == FACILITY
    assert versions[0]["ma_lk"] == "LK0001"
    assert versions[0]["tables"] == ["XML1", "XML2"]
    expected = hashlib.sha256(xml1("LK0001") + xml2("LK0001")).hexdigest()
    assert versions[0]["content_sha256"] == expected
    assert versions[1]["content_sha256"] == versions[2]["content_sha256"] != expected
    assert datetime.fromisoformat(versions[0]["received_at"]) == datetime(
        2026, 3, 2, 1, 30, tzinfo=UTC
    )
    assert len(await received(sim)) == 4
    assert (await sim.get(f"/_sim/received/{FACILITY}/LK9999")).json() == []


async def test_hash_ignores_table_order_in_the_envelope(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    await send(sim, envelope([{"XML1": xml1("LK1"), "XML2": xml2("LK1")}]), token=token)
    await send(sim, envelope([{"XML2": xml2("LK1"), "XML1": xml1("LK1")}]), token=token)
    first, again = await received(sim)
    assert first["content_sha256"] == again["content_sha256"]
    assert again["duplicate"] is True


async def test_every_hoso_of_a_file_is_kept(sim: httpx.AsyncClient) -> None:
    data = envelope([{"XML1": xml1("LK-A")}, {"XML1": xml1("LK-B")}])
    answer = (await send(sim, data)).json()
    assert answer["maKetQua"] == "200"
    records = await received(sim)
    assert [r["ma_lk"] for r in records] == ["LK-A", "LK-B"]
    assert {r["maGiaoDich"] for r in records} == {answer["maGiaoDich"]}


async def test_3176_path_is_recorded_with_its_variant(sim: httpx.AsyncClient) -> None:
    answer = (await send(sim, visit_file(), path=FILE_3176)).json()
    assert answer["maKetQua"] == "200"
    [record] = await received(sim)
    assert record["variant"] == "3176"


@pytest.mark.parametrize(
    ("data", "form", "code"),
    [
        (visit_file(), {"maCSKCB": "01002"}, "400"),  # file says 01001
        (visit_file(), {"maCSKCB": "79001"}, "403"),  # not this account's facility
        (visit_file(), {"loaiHoSo": "0"}, "400"),
        (visit_file(), {"loaiHoSo": ""}, "400"),
        (visit_file(), {"maTinh": ""}, "400"),
        (visit_file(), {"fileHSBase64": "không phải base64!"}, "422"),
        (visit_file(), {"username": "other"}, "401"),  # not the token's account
        (b"<GIAMDINHHS><THONGTINDONVI>", {}, "422"),  # not well-formed
        (document("TONG_HOP", {"MA_LK": "x"}), {}, "422"),  # not an envelope
        (envelope([{"XML2": xml2("LK1")}]), {}, "422"),  # no XML1
        (envelope([{"XML1": document("TONG_HOP", {"STT": "1"})}]), {}, "422"),  # no MA_LK
        (envelope([{"XML0": xml1("LK1")}]), {}, "422"),  # XML0 is not a table of a file
        (envelope([{"XML1": xml1("LK1")}], count="2"), {}, "422"),
        (envelope([]), {}, "422"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><GIAMDINHHS>&e;</GIAMDINHHS>',
            {},
            "422",
        ),
    ],
)
async def test_refused_files_are_not_kept(
    sim: httpx.AsyncClient, data: bytes, form: dict[str, Any], code: str
) -> None:
    response = await send(sim, data, **form)
    assert response.status_code == 200
    body = response.json()
    assert body["maKetQua"] == code, body
    assert body["thongDiep"]
    assert "maGiaoDich" not in body
    assert await received(sim) == []


async def test_inner_document_that_is_not_base64(sim: httpx.AsyncClient) -> None:
    data = envelope([{"XML1": xml1("LK1")}]).replace(b"<NOIDUNGFILE>", b"<NOIDUNGFILE>*")
    assert (await send(sim, data)).json()["maKetQua"] == "422"


async def test_token_problems_answer_401(sim: httpx.AsyncClient, clock: FakeClock) -> None:
    form = {
        "username": USER,
        "loaiHoSo": "130",
        "maTinh": "01",
        "maCSKCB": FACILITY,
        "fileHSBase64": b64(visit_file()),
    }
    missing = await sim.post(FILE_4750, data=form)
    assert missing.json()["maKetQua"] == "401"

    token = await login(sim)
    good = headers_of(token)
    for bad in (
        {**good, "accessToken": "forged"},
        {**good, "tokenId": "forged"},
        {**good, "passwordHash": md5_upper("wrong")},
    ):
        assert (await sim.post(FILE_4750, data=form, headers=bad)).json()["maKetQua"] == "401"

    clock.advance(1799)
    assert (await sim.post(FILE_4750, data=form, headers=good)).json()["maKetQua"] == "200"
    clock.advance(2)
    expired = (await sim.post(FILE_4750, data=form, headers=good)).json()
    assert expired["maKetQua"] == "401"
    assert len(await received(sim)) == 1


async def test_account_without_facility_list_may_send_for_any(clock: FakeClock) -> None:
    config = BhxhConfig(accounts={USER: Account(PASSWORD)}, clock=clock)
    root = Starlette(routes=[Mount("/sim/bhxh", create_app(config))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url=BASE) as sim:
        data = envelope([{"XML1": xml1("LK1")}], facility="79001")
        assert (await send(sim, data, maCSKCB="79001")).json()["maKetQua"] == "200"


# ---------------------------------------------------------------------- check-in


async def test_checkin(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    form = {"username": USER, "loaiHoSo": "0", "maTinh": "01", "maCSKCB": FACILITY}
    for path in (CHECKIN, "/api/qd130/checkInKcbQd3176"):
        response = await sim.post(
            path, data={**form, "fileHSBase64": b64(checkin_doc())}, headers=headers_of(token)
        )
        body = response.json()
        assert body["maKetQua"] == "200"
        assert body["maGiaoDich"]
    wrong_kind = await sim.post(
        CHECKIN,
        data={**form, "loaiHoSo": "130", "fileHSBase64": b64(checkin_doc())},
        headers=headers_of(token),
    )
    assert wrong_kind.json()["maKetQua"] == "400"
    not_checkin = await sim.post(
        CHECKIN, data={**form, "fileHSBase64": b64(visit_file())}, headers=headers_of(token)
    )
    assert not_checkin.json()["maKetQua"] == "422"
    no_token = await sim.post(CHECKIN, data={**form, "fileHSBase64": b64(checkin_doc())})
    assert no_token.json()["maKetQua"] == "401"

    checkins = (await sim.get("/_sim/checkins")).json()
    assert [(c["variant"], c["ma_lk"]) for c in checkins] == [
        ("4750", ["LK0001"]),
        ("3176", ["LK0001"]),
    ]
    assert await received(sim) == []  # a check-in is not a visit file


# ---------------------------------------------------------------------- card lookup


async def lookup(
    sim: httpx.AsyncClient, *, token: dict[str, Any] | None = None, **body: Any
) -> dict[str, Any]:
    token = token or await login(sim)
    card = DEMO_CARDS[CARD]
    payload = {
        "maThe": card.card_number,
        "hoTen": card.full_name,
        "ngaySinh": card.birth_date,
        "hoTenCb": "Phạm Thu Hà",
        "cccdCb": "001190012345",
        **body,
    }
    response = await sim.post(
        LOOKUP,
        params={
            "token": token["access_token"],
            "id_token": token["id_token"],
            "username": USER,
            "password": md5_upper(PASSWORD),
        },
        json=payload,
    )
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


async def test_lookup_valid_card(sim: httpx.AsyncClient) -> None:
    answer = await lookup(sim)
    assert answer["maKetQua"] == "000"
    assert answer["ghiChu"]
    assert answer["maThe"] == CARD
    assert answer["hoTen"] == "Nguyễn Văn An"
    assert answer["ngaySinh"] == "15/03/1985"
    assert answer["gioiTinh"] == "Nam"
    assert answer["maDKBD"] == "01001"
    assert answer["gtTheDen"] == "31/12/2099"
    assert answer["maSoBHXH"] == "0123456789"
    for key in ("diaChi", "cqBHXH", "gtTheTu", "maKV", "ngayDu5Nam", "maTheCu", "maTheMoi"):
        assert key in answer
    for key in ("gtTheTuMoi", "gtTheDenMoi", "maDKBDMoi", "tenDKBDMoi"):
        assert key in answer
    assert answer["dsLichSuKCB2018"] == []


async def test_lookup_name_is_compared_without_case_or_spacing(sim: httpx.AsyncClient) -> None:
    answer = await lookup(sim, hoTen="  NGUYỄN  văn AN ")
    assert answer["maKetQua"] == "000"
    assert (await lookup(sim, ngaySinh="1985"))["maKetQua"] == "000"  # year only


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"maThe": "HT3010987654321", "hoTen": "Trần Thị Bình", "ngaySinh": "02/11/1950"}, "010"),
        ({"maThe": "HS4011122334455", "hoTen": "Lê Minh Châu", "ngaySinh": "20/07/2008"}, "110"),
        ({"maThe": "GD4019999999999"}, "050"),
        ({"maThe": "XX9"}, "051"),
        ({"hoTen": "Nguyễn Văn Anh"}, "060"),
        ({"ngaySinh": "16/03/1985"}, "070"),
        ({"ngaySinh": "1985-03-15"}, "205"),
        ({"hoTenCb": ""}, "205"),
        ({"cccdCb": None}, "205"),
    ],
)
async def test_lookup_result_codes(sim: httpx.AsyncClient, body: dict[str, Any], code: str) -> None:
    answer = await lookup(sim, **body)
    assert answer["maKetQua"] == code
    assert answer["ghiChu"]
    if code in ("050", "051", "060", "070", "205"):
        assert answer["hoTen"] is None
        assert answer["dsLichSuKCB2018"] is None
    else:
        assert answer["maThe"] == body["maThe"]


async def test_lookup_expiry_follows_the_clock(clock: FakeClock) -> None:
    card = DemoCard(
        card_number="DN4010000000001",
        full_name="Đỗ Văn Em",
        birth_date="01/01/1990",
        gender=1,
        address="Hà Nội",
        registered_facility=FACILITY,
        valid_from="20260101",
        valid_to="20260302",
    )
    config = BhxhConfig(
        accounts={USER: Account(PASSWORD)}, cards={card.card_number: card}, clock=clock
    )
    root = Starlette(routes=[Mount("/sim/bhxh", create_app(config))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=root), base_url=BASE) as sim:
        body: dict[str, Any] = {
            "maThe": card.card_number,
            "hoTen": card.full_name,
            "ngaySinh": card.birth_date,
        }
        assert (await lookup(sim, **body))["maKetQua"] == "000"
        clock.advance(86400)
        assert (await lookup(sim, **body))["maKetQua"] == "010"


async def test_lookup_needs_a_valid_token(sim: httpx.AsyncClient) -> None:
    forged = {"access_token": "forged", "id_token": "forged"}
    answer = await lookup(sim, token=forged)
    assert answer["maKetQua"] == "401"
    response = await sim.post(LOOKUP, content=b"not json")
    assert response.json()["maKetQua"] == "401"
    token = await login(sim)
    response = await sim.post(
        LOOKUP,
        params={
            "token": token["access_token"],
            "id_token": token["id_token"],
            "username": USER,
            "password": md5_upper(PASSWORD),
        },
        content=b"not json",
    )
    assert response.json()["maKetQua"] == "205"


async def test_lookup_history_has_the_submitted_visit(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    await send(sim, visit_file("LK0001"), token=token)
    await send(sim, visit_file("LK0001", diagnosis="Viêm amidan cấp"), token=token)
    await send(sim, visit_file("LK0002", card="HT3010987654321"), token=token)
    history = (await lookup(sim, token=token))["dsLichSuKCB2018"]
    assert history == [
        {
            "maHoSo": "LK0001",
            "maCSKCB": FACILITY,
            "ngayVao": "202603010800",
            "ngayRa": "202603011000",
            "tenBenh": "Viêm amidan cấp",  # the latest version
            "tinhTrang": "1",
            "kqDieuTri": "1",
            "lyDoVV": "1.1",
        }
    ]


# ---------------------------------------------------------------------- faults


async def test_error_rate_answers_500_and_keeps_nothing(sim: httpx.AsyncClient) -> None:
    await set_faults(sim, error_rate=1.0)
    response = await send(sim, visit_file())
    assert response.status_code == 200
    assert response.json() == {"maKetQua": "500", "thongDiep": "Lỗi hệ thống"}
    assert await received(sim) == []


async def test_timeout_rate_keeps_the_file_then_hangs(sim: httpx.AsyncClient) -> None:
    await set_faults(sim, timeout_rate=1.0, hang_seconds=0.2)
    started = time.monotonic()
    response = await send(sim, visit_file())
    assert time.monotonic() - started >= 0.2
    assert response.json()["maKetQua"] == "200"
    assert len(await received(sim)) == 1


async def test_drop_rate_keeps_the_file_and_answers_502(sim: httpx.AsyncClient) -> None:
    await set_faults(sim, drop_rate=1.0)
    response = await send(sim, visit_file())
    assert response.status_code == 502
    [record] = await received(sim)
    assert record["ma_lk"] == "LK0001"


async def test_duplicate_answer_rate_keeps_the_file_twice(sim: httpx.AsyncClient) -> None:
    await set_faults(sim, duplicate_answer_rate=1.0)
    answer = (await send(sim, visit_file())).json()
    assert answer["maKetQua"] == "200"
    first, second = await received(sim)
    assert (first["version_number"], first["duplicate"]) == (1, False)
    assert (second["version_number"], second["duplicate"]) == (2, True)
    assert first["maGiaoDich"] == second["maGiaoDich"] == answer["maGiaoDich"]


async def test_unavailable_answers_503_except_controls(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    await set_faults(sim, unavailable=True)
    for path in ("/api/token/take", FILE_4750, CHECKIN, LOOKUP):
        response = await sim.post(path, data={"username": USER})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert response.json()["maKetQua"] == "503"
    assert (await sim.get("/_sim/received")).status_code == 200
    assert (await sim.get("/_sim/faults")).json()["unavailable"] is True
    await set_faults(sim)
    assert (await send(sim, visit_file(), token=token)).json()["maKetQua"] == "200"


async def test_latency_delays_every_portal_endpoint(sim: httpx.AsyncClient) -> None:
    await set_faults(sim, latency_seconds=0.1)
    started = time.monotonic()
    await login(sim)
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    await sim.get("/_sim/received")
    assert time.monotonic() - started < 0.1


async def test_seeded_rates_are_deterministic(sim: httpx.AsyncClient) -> None:
    token = await login(sim)

    async def outcomes() -> list[str]:
        await set_faults(sim, error_rate=0.5, seed=42)
        return [
            (await send(sim, visit_file(f"LK{i}"), token=token)).json()["maKetQua"]
            for i in range(12)
        ]

    first = await outcomes()
    assert await outcomes() == first
    assert set(first) == {"200", "500"}
    assert len(await received(sim)) == 2 * first.count("200")


async def test_faults_can_be_changed_on_the_config(
    sim: httpx.AsyncClient, config: BhxhConfig
) -> None:
    config.faults.error_rate = 1.0
    assert (await send(sim, visit_file())).json()["maKetQua"] == "500"
    assert (await sim.get("/_sim/faults")).json()["error_rate"] == 1.0
    config.faults = Faults()
    assert (await send(sim, visit_file())).json()["maKetQua"] == "200"


async def test_faults_put_replaces_and_validates(sim: httpx.AsyncClient) -> None:
    body = await set_faults(sim, drop_rate=0.25, seed=7)
    assert body == {
        "error_rate": 0.0,
        "latency_seconds": 0.0,
        "timeout_rate": 0.0,
        "hang_seconds": 30.0,
        "drop_rate": 0.25,
        "duplicate_answer_rate": 0.0,
        "unavailable": False,
        "seed": 7,
    }
    assert (await sim.put("/_sim/faults", json={"error_rate": 1.5})).status_code == 422
    assert (await sim.put("/_sim/faults", json={"nonsense": 1})).status_code == 422
    assert (await set_faults(sim))["drop_rate"] == 0.0


async def test_faults_apply_to_checkins(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    await set_faults(sim, drop_rate=1.0)
    form = {"username": USER, "loaiHoSo": "0", "maTinh": "01", "maCSKCB": FACILITY}
    response = await sim.post(
        CHECKIN, data={**form, "fileHSBase64": b64(checkin_doc())}, headers=headers_of(token)
    )
    assert response.status_code == 502
    assert len((await sim.get("/_sim/checkins")).json()) == 1


# ---------------------------------------------------------------------- controls


async def test_delete_received_resets(sim: httpx.AsyncClient) -> None:
    token = await login(sim)
    await send(sim, visit_file(), token=token)
    assert len(await received(sim)) == 1
    assert (await sim.delete("/_sim/received")).status_code == 204
    assert await received(sim) == []
    await send(sim, visit_file(), token=token)  # the token survives the reset
    [record] = await received(sim)
    assert (record["version_number"], record["duplicate"]) == (1, False)
