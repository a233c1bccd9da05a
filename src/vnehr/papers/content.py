"""The canonical content of a paper, from the paper table of a visit or from the papers API:
holder, facility, doctor, dates, and the facts of its kind. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from vnehr.kit.clock import parse_day, parse_moment
from vnehr.papers import rules

SEX = {"1": "male", "2": "female"}


def _text(row: Mapping[str, str], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _moment(row: Mapping[str, str], name: str) -> str | None:
    found = parse_moment((row.get(name) or "").strip())
    return found.strftime("%Y-%m-%dT%H:%M:00") if found else None


def _day(row: Mapping[str, str], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    found: date | datetime | None = parse_day(value) or parse_moment(value)
    if isinstance(found, datetime):
        found = found.date()
    return found.isoformat() if found else None


def _birth(row: Mapping[str, str], name: str) -> str | None:
    """A birth as far as it is known, as FHIR writes it: "1980-05-14", or "1980-05" / "1980"
    when the national tables give only the month or the year (``yyyymm00``, ``yyyy0000``, with
    or without the time; D106, D111)."""
    found = _day(row, name)
    value = (row.get(name) or "").strip()
    if found or len(value) not in (8, 12) or not value.isascii() or not value.isdigit():
        return found
    year, month, day = value[:4], value[4:6], value[6:8]
    if day != "00" or int(year) < 1850 or int(month) > 12:
        return None
    return year if month == "00" else f"{year}-{month}"


def _whole(row: Mapping[str, str], name: str) -> int | None:
    value = (row.get(name) or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def holder_of(xml1: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": _text(xml1, "HO_TEN") or "",
        "birth_date": _birth(xml1, "NGAY_SINH"),
        "sex": SEX.get((xml1.get("GIOI_TINH") or "").strip()),
        "personal_id": _text(xml1, "SO_CCCD"),
    }


def from_table(
    kind: str,
    row: Mapping[str, str],
    xml1: Mapping[str, str],
    *,
    facility: Mapping[str, str],
) -> dict[str, Any] | None:
    """The content of one paper row of a visit; None when its dates cannot be read (the
    format rules have rejected the visit then)."""
    window = rules.window(kind, row, xml1)
    table, number_field = rules.KINDS[kind]
    number = _text(row, number_field or "") if number_field else None
    if window is None or not number:
        return None
    holder = holder_of(xml1)
    doctor_id = _text(row, "MA_BAC_SI") or _text(row, "MA_BS") or _text(xml1, "MA_BAC_SI")
    facts: dict[str, Any]
    if kind == "referral":
        facts = {
            "to_facility": _text(row, "MA_NOI_DEN") or _text(xml1, "MA_NOI_DEN"),
            "reason": _text(row, "MA_LYDO_CT"),
            "diagnosis": _text(row, "CHAN_DOAN_RV") or _text(xml1, "CHAN_DOAN_RV"),
            "signs": _text(row, "DAU_HIEU_LS"),
            "plan": _text(row, "HUONG_DIEU_TRI"),
            "transport": _text(row, "PHUONGTIEN_VC"),
            "chronic": rules.chronic_referral(rules._codes(xml1)),
        }
    elif kind == "re_exam":
        facts = {
            "appointment": _moment(row, "NGAY_HEN_KL"),
            "diagnosis": _text(row, "CHAN_DOAN_RV") or _text(xml1, "CHAN_DOAN_RV"),
        }
    elif kind == "sick_leave":
        facts = {
            "days": _whole(row, "SO_NGAY_NGHI"),
            "start": _day(row, "TU_NGAY"),
            "end": _day(row, "DEN_NGAY"),
            "employer": _text(row, "DON_VI"),
            "insurance_number": _text(row, "MA_BHXH"),
            "diagnosis": _text(row, "CHAN_DOAN_RV"),
            "series": _text(row, "SO_SERI"),
        }
    elif kind == "birth":
        weight = _text(row, "CAN_NANG_CON")
        facts = {
            "child_name": _text(row, "HO_TEN_CON"),
            "child_sex": SEX.get((row.get("GIOI_TINH_CON") or "").strip()),
            "born_at": _moment(row, "NGAY_SINH_CON"),
            "weight_g": int(float(weight))
            if weight and weight.replace(".", "", 1).isdigit()
            else None,
            "place": _text(row, "NOI_SINH_CON"),
            "temp_card": _text(row, "MA_THE_TAM"),
            "father": _text(row, "HO_TEN_CHA"),
            "book": _text(row, "QUYEN_SO"),
        }
        # the holder is the mother (or carer): the newborn has no personal ID yet (D42)
        holder = {
            "name": _text(row, "HO_TEN_NND") or holder["name"],
            "birth_date": _birth(row, "NGAYSINH_NND") or holder["birth_date"],
            "sex": "female" if _text(row, "HO_TEN_NND") else holder["sex"],
            "personal_id": _text(row, "SO_CCCD_NND") or holder["personal_id"],
        }
        doctor_id = _text(row, "MA_TTDV") or doctor_id
    else:  # discharge
        facts = {
            "admitted": _moment(row, "NGAY_VAO") or _moment(xml1, "NGAY_VAO"),
            "discharged": _moment(row, "NGAY_RA") or _moment(xml1, "NGAY_RA"),
            "diagnosis": _text(row, "CHAN_DOAN_RV"),
            "treatment": _text(row, "PP_DIEUTRI"),
            "leave_days": _text(row, "SO_NGAY_NGHI"),
            "notes": _text(row, "GHI_CHU"),
        }
    return {
        "kind": kind,
        "number": number,
        "table": table,
        "facility": dict(facility),
        "holder": holder,
        "doctor": {"id": doctor_id, "name": _text(row, "TEN_BS")},
        "head": _text(row, "MA_TTDV"),
        "signed_on": window.signed.isoformat(),
        "valid_from": window.valid_from.isoformat(),
        "valid_until": window.until.isoformat() if window.until else None,
        "facts": facts,
    }
