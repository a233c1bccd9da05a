"""The SMART Health Card of every kind of paper: it fits one QR code, an independent QR reader
(zxing-cpp) reads it back, its Bundle is valid FHIR R4 (our validator from the official
StructureDefinitions, and fhir.resources), the facts a verifier sees come from the signed
Bundle, and any change to the signature, payload or key is caught."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
import zxingcpp
from fhir.resources.R4B import get_fhir_model_class
from PIL import Image

from vnehr.fhir.validate import validate
from vnehr.papers import card, content, shc

FACILITY = {"code": "01001", "name": "Bệnh viện Đa khoa Xanh Pôn"}
XML1 = {
    "MA_LK": "LK1",
    "NGAY_VAO": "202611020800",
    "NGAY_RA": "202611041000",
    "NGAY_SINH": "198503140000",
    "GIOI_TINH": "1",
    "SO_CCCD": "001085004217",
    "HO_TEN": "Nguyễn Văn Trường Giang Long",
    "MA_LOAI_KCB": "03",
    "MA_BENH_CHINH": "I10",
    "MA_BENH_KT": "E11.9",
    "MA_NOI_DEN": "01002",
    "CHAN_DOAN_RV": "Tăng huyết áp",
}
ROWS: dict[str, dict[str, str]] = {
    "referral": {
        "GIAY_CHUYEN_TUYEN": "1234/2026/GCT",
        "MA_NOI_DEN": "01002",
        "MA_LYDO_CT": "1",
        "DAU_HIEU_LS": "Đau ngực",
        "MA_BAC_SI": "000123/HNO",
    },
    "re_exam": {
        "SO_GIAYHEN_KL": "77/2026/GHKL",
        "NGAY_HEN_KL": "202611200730",
        "NGAY_CT": "20261104",
        "MA_BAC_SI": "000123/HNO",
    },
    "sick_leave": {
        "SO_CT": "NV-1",
        "SO_NGAY_NGHI": "5",
        "TU_NGAY": "20261102",
        "DEN_NGAY": "20261106",
        "NGAY_CT": "20261102",
        "DON_VI": "Công ty A",
        "MA_BS": "0101005678",
    },
    "birth": {
        "SO": "00042.GCS.01001.26",
        "HO_TEN_NND": "Trần Thị Hằng Nga",
        "NGAYSINH_NND": "19950101",
        "SO_CCCD_NND": "001195001234",
        "HO_TEN_CON": "Nguyễn Trần Bảo Ngọc",
        "GIOI_TINH_CON": "2",
        "NGAY_SINH_CON": "202611030615",
        "CAN_NANG_CON": "3200",
        "MA_THE_TAM": "TE1010126000042",
        "NGAY_CT": "20261104",
        "MA_TTDV": "0101001234",
    },
    "discharge": {
        "SO_LUU_TRU": "BA-2026-000123",
        "NGAY_VAO": "202611020800",
        "NGAY_RA": "202611041000",
        "CHAN_DOAN_RV": "Tăng huyết áp",
        "NGAY_CT": "20261104",
        "MA_BS": "0101005678",
        "TEN_BS": "BS. Lê Văn Tâm",
    },
}


def contents() -> list[dict[str, Any]]:
    made = [content.from_table(kind, row, XML1, facility=FACILITY) for kind, row in ROWS.items()]
    driver = {
        "kind": "driver",
        "number": "01001.KSK.000001.26",
        "facility": FACILITY,
        "holder": {
            "name": XML1["HO_TEN"],
            "birth_date": "1985-03-14",
            "sex": "male",
            "personal_id": "001085004217",
        },
        "doctor": {"id": "000123/HNO", "name": "BS. Đỗ Thu Hà"},
        "signed_on": "2026-11-20",
        "valid_from": "2026-11-20",
        "valid_until": "2027-11-19",
        "facts": {
            "examined_on": "2026-11-20",
            "classes": ["B", "C1", "D2E"],
            "drug_test": "negative",
            "alcohol": "negative",
            "conclusion": "fit_with_conditions",
            "conditions": "Đeo kính khi lái xe",
        },
    }
    return [c for c in made if c is not None] + [driver]


KEY = shc.IssuerKey.from_secret("card-test-secret-" + "y" * 30)
ISSUER = "https://sskdt.hanoi.example"


def issued(body: dict[str, Any]) -> str:
    return KEY.sign(
        ISSUER,
        1_795_000_000,
        card.bundle(body),
        KEY.rid("p"),
    )


@pytest.mark.parametrize("body", contents(), ids=lambda c: c["kind"])
def test_each_paper_fits_one_qr_that_an_independent_reader_reads(body: dict[str, Any]) -> None:
    jws = issued(body)
    assert len(jws) <= shc.MAX_QR_JWS, f"{body['kind']}: {len(jws)} characters"
    # (QR codes only: in about 3 % of the codes the reader also "sees" an EAN-13 in the modules)
    image = Image.open(io.BytesIO(shc.qr_png(jws)))
    [found] = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert found.text == shc.qr_text(jws)
    assert shc.jws_from_qr(found.text) == jws


@pytest.mark.parametrize("body", contents(), ids=lambda c: c["kind"])
def test_each_card_bundle_is_valid_fhir_r4(body: dict[str, Any]) -> None:
    opened = shc.open_card(issued(body), {KEY.kid: KEY.public})
    bundle = opened.bundle
    assert validate(bundle) == []
    get_fhir_model_class("Bundle").model_validate(bundle)
    for entry in bundle["entry"]:
        assert "id" not in entry["resource"]  # SHC: minimal resources, resource:N references
        assert entry["fullUrl"].startswith("resource:")
    text = str(bundle)
    assert "Tăng huyết áp" not in text
    assert "I10" not in text  # no diagnosis in any card


def test_the_verifier_sees_the_signed_facts() -> None:
    by_kind = {c["kind"]: c for c in contents()}
    driver = card.read(shc.open_card(issued(by_kind["driver"]), {KEY.kid: KEY.public}).bundle)
    assert driver["facts"]["classes"] == "B, C1, D2E"
    assert driver["facts"]["conclusion"] == "fit_with_conditions"
    assert driver["facts"]["conditions"] == "Đeo kính khi lái xe"
    assert driver["holder"] == {"name": XML1["HO_TEN"], "birth_date": "1985-03-14"}
    assert driver["valid_until"] == "2027-11-19"
    birth = card.read(shc.open_card(issued(by_kind["birth"]), {KEY.kid: KEY.public}).bundle)
    assert birth["holder"]["name"] == "Trần Thị Hằng Nga"  # the mother holds it (D42)
    assert (birth["facts"]["child_name"], birth["facts"]["weight_g"]) == (
        "Nguyễn Trần Bảo Ngọc",
        3200,
    )
    referral = card.read(shc.open_card(issued(by_kind["referral"]), {KEY.kid: KEY.public}).bundle)
    assert referral["facts"]["to_facility"] == "01002"
    # a chronic disease (I10): the referral is valid a year from discharge
    assert referral["valid_until"] == "2027-11-03"


def test_changed_signature_payload_or_key_is_caught() -> None:
    jws = issued(contents()[0])
    header, body, signature = jws.split(".")
    keys = {KEY.kid: KEY.public}
    other = shc.IssuerKey.from_secret("another-secret-" + "z" * 30)
    with pytest.raises(shc.BadCard) as bad:
        shc.open_card(f"{header}.{body[:-2]}AA.{signature}", keys)
    assert bad.value.reason == "bad_signature"
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with pytest.raises(shc.BadCard) as bad:
        shc.open_card(f"{header}.{body}.{flipped}", keys)
    assert bad.value.reason == "bad_signature"
    with pytest.raises(shc.BadCard) as bad:
        shc.open_card(jws, {other.kid: other.public})
    assert bad.value.reason == "unknown_key"
    forged = other.sign(ISSUER, 1, card.bundle(contents()[0]), "r")
    forged = forged.replace(forged.split(".")[0], header)  # claims the hub's kid
    with pytest.raises(shc.BadCard) as bad:
        shc.open_card(forged, keys)
    assert bad.value.reason == "bad_signature"
    for junk in ("", "shc:/", "shc:/99", "shc:/1", "a.b", "shc:/" + "1" * 20_000):
        with pytest.raises(shc.BadCard):
            shc.open_card(shc.jws_from_qr(junk), keys)


def test_the_issuer_key_is_stable_and_its_kid_is_the_jwk_thumbprint() -> None:
    from joserfc.jwk import ECKey

    again = shc.IssuerKey.from_secret("card-test-secret-" + "y" * 30)
    assert again.kid == KEY.kid
    assert KEY.rid("a") == again.rid("a") != KEY.rid("b")
    public = KEY.public_jwk()
    assert ECKey.import_key(public).thumbprint() == KEY.kid
    assert "d" not in public  # never the private part


def test_working_days_do_not_leak_into_dates_of_other_kinds() -> None:
    sick = content.from_table("sick_leave", ROWS["sick_leave"], XML1, facility=FACILITY)
    assert sick is not None
    assert (sick["valid_from"], sick["valid_until"]) == ("2026-11-02", "2026-11-06")
    discharge = content.from_table("discharge", ROWS["discharge"], XML1, facility=FACILITY)
    assert discharge is not None
    assert discharge["valid_until"] is None
    assert date.fromisoformat(discharge["signed_on"]) == date(2026, 11, 4)
