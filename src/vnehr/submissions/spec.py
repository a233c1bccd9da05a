"""The national tables (QĐ 130 as amended by 4750 and 3176), as data: element names, field
order, types, maximum sizes and required marks, from ``data/tables.json``
(regenerate with ``scripts/gen_tables.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

#: yyyyMMddHHmm fields (12 characters) and yyyyMMdd fields (8 characters), §1.4.
DATETIME_FIELDS = frozenset(
    {
        "NGAY_VAO", "NGAY_VAO_NOI_TRU", "NGAY_RA", "NGAY_YL", "NGAY_TH_YL", "NGAY_KQ",
        "NGAY_TTOAN", "NGAY_SINH", "THOI_DIEM_DBLS", "NGAY_HEN_KL", "NGAY_SINH_CON",
        "THOIGIAN_DINHCHI",
    }
)  # fmt: skip
DATE_FIELDS = frozenset(
    {
        "GT_THE_TU", "GT_THE_DEN", "NAM_NAM_LIEN_TUC", "NGAY_TAI_KHAM", "NGAY_CT", "TU_NGAY",
        "DEN_NGAY", "NGAYKD_HIV", "NGAYLAP", "NGAY_SINHCON", "NGAY_CONCHET",
        # XML6 and XML15 (HIV and TB care), XML7 (sick leave after discharge), XML9 (the
        # carer's ID), XML12 (medical assessment): "Chuỗi 8" dates, yyyyMMdd
        "NGAYBD_DTRI_LAO", "NGAYKT_DTRI_LAO", "NGAY_XN_TLVR", "NGAY_KQ_XN_TLVR", "NGAY_XN_PCR",
        "NGAY_KQ_XN_PCR", "NGAY_NHAN_TT_MANG_THAI", "NGAY_BAT_DAU_DT_CTX", "NGAY_BAT_DAU_XU_TRI",
        "NGAY_KET_THUC_XU_TRI", "NGAY_CHUYEN_PHAC_DO", "NGOAITRU_TUNGAY", "NGOAITRU_DENNGAY",
        "NGAYCAP_CCCD_NND", "NGAY_HOP", "NGAY_CAP_CCCD", "NGAY_CHUNG_TU", "NGAY_DE_NGHI",
        "BDDT_ARV",  # (XML6, XML15: the day ARV treatment began)
    }
)  # fmt: skip
#: Birth dates: yyyyMMddHHmm, or yyyyMMdd where the table's field holds 8 characters, with
#: zeros for an unknown time, day or month (§1.4).
BIRTH_FIELDS = frozenset({"NGAY_SINH", "NGAYSINH_NND"})
#: Fields written as a date or a moment "depending on the case" (§1.4).
DAY_OR_MOMENT_FIELDS = frozenset({"NGAY_MIEN_CCT"})
#: Decimal places allowed in the drug and service lines (Appendix A: "làm tròn đến 3 / 2 chữ
#: số thập phân"), counted without trailing zeros ("25300.000" is 25300.00).
DECIMAL_PLACES: dict[str, dict[str, int]] = {
    table_name: {
        **dict.fromkeys(("SO_LUONG", "DON_GIA", "DON_GIA_BV", "DON_GIA_BH"), 3),
        **dict.fromkeys(
            ("THANH_TIEN_BV", "THANH_TIEN_BH", "T_NGUONKHAC_NSNN", "T_NGUONKHAC_VTNN",
             "T_NGUONKHAC_VTTN", "T_NGUONKHAC_CL", "T_BNTT", "T_BNCCT", "T_BHTT"), 2
        ),
    }
    for table_name in ("XML2", "XML3")
}  # fmt: skip
#: Fields the referral (XML13) and the re-exam appointment (XML14) repeat from XML1: "if given,
#: the same as in table 1" (Appendix A). The referral's PP_DIEUTRI is XML1's PP_DIEU_TRI; its
#: MA_CSKCB, MA_NOI_DEN, MA_BENH_CHINH and NGAY_RA are the paper rules' (PAP-0108, PAP-0111).
SAME_AS_XML1: dict[str, dict[str, str]] = {
    "XML13": {
        **{name: name for name in (
            "MA_NOI_DI", "HO_TEN", "NGAY_SINH", "GIOI_TINH", "MA_QUOCTICH", "MA_DANTOC",
            "MA_NGHE_NGHIEP", "DIA_CHI", "MA_THE_BHYT", "GT_THE_DEN", "NGAY_VAO",
            "NGAY_VAO_NOI_TRU", "CHAN_DOAN_RV", "MA_BENH_KT", "MA_BENH_YHCT", "PP_DIEU_TRI",
            "MA_LOAI_RV",
        )},
        "PP_DIEUTRI": "PP_DIEU_TRI",
    },
    "XML14": {name: name for name in (
        "NGAY_SINH", "GIOI_TINH", "DIA_CHI", "MA_THE_BHYT", "GT_THE_DEN", "NGAY_VAO",
        "NGAY_VAO_NOI_TRU", "NGAY_RA", "CHAN_DOAN_RV", "MA_BENH_CHINH", "MA_BENH_KT",
        "MA_BENH_YHCT", "MA_DOITUONG_KCB",
    )},
}  # fmt: skip
#: A moment that must not come before another of the same row (Appendix A, "kiểm tra"
#: column): (later field, earlier field).
ORDERED_MOMENTS = (
    ("NGAY_RA", "NGAY_VAO"),
    ("NGAY_VAO_NOI_TRU", "NGAY_VAO"),
    ("NGAY_TH_YL", "NGAY_YL"),
    ("NGAY_KQ", "NGAY_YL"),
)
#: Fields holding several values separated by ";" (§1.4): each part is checked on its own.
MULTI_VALUE_FIELDS = frozenset(
    {"MA_BENH_KT", "MA_KHOA", "MA_GIUONG", "MA_BAC_SI", "NGAY_TAI_KHAM", "MA_THE_BHYT",
     "GT_THE_TU", "GT_THE_DEN", "MA_DKBD", "CAN_NANG_CON"}
)  # fmt: skip
#: Free-text fields written inside CDATA when we produce XML (as BHXH's generators do).
FREE_TEXT_FIELDS = frozenset(
    {
        "HO_TEN", "DIA_CHI", "CHAN_DOAN_VAO", "CHAN_DOAN_RV", "LY_DO_VV", "LY_DO_VNT",
        "PP_DIEU_TRI", "PP_DIEUTRI", "GHI_CHU", "DU_PHONG", "TEN_THUOC", "TEN_DICH_VU",
        "TEN_VAT_TU", "TEN_CHI_SO", "MO_TA", "KET_LUAN", "DIEN_BIEN_LS", "HOI_CHAN",
        "PHAU_THUAT", "QT_BENHLY", "TOMTAT_KQ", "LIEU_DUNG", "CACH_DUNG", "HAM_LUONG",
        "DAU_HIEU_LS", "HUONG_DIEU_TRI", "DON_VI", "GIAI_DOAN_BENH", "NGUYENNHAN_DINHCHI",
    }
)  # fmt: skip
TABLES_IN_ENVELOPE = tuple(f"XML{n}" for n in range(1, 16))


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: Literal["string", "number"]
    max: int | None
    required: bool


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # XML1 ... (XML13_3176 for the 3176 variant)
    root: str | None
    list: str | None
    row: str | None
    fields: tuple[Field, ...]

    @property
    def repeating(self) -> bool:
        return self.row is not None

    @property
    def by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}


@cache
def tables() -> dict[str, Table]:
    raw = resources.files("vnehr.submissions").joinpath("data", "tables.json").read_bytes()
    out: dict[str, Table] = {}
    for name, spec in json.loads(raw).items():
        out[name] = Table(
            name=name,
            root=spec["root"],
            list=spec["list"],
            row=spec["row"],
            fields=tuple(Field(**f) for f in spec["fields"]),
        )
    return out


def table(name: str, variant: str = "4750") -> Table:
    """The spec of a table; XML13 differs between the 4750 and 3176 variants."""
    if name == "XML13" and variant == "3176":
        return tables()["XML13_3176"]
    return tables()[name]
