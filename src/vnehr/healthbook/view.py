"""From the stored national tables to what a person reads: one visit in full, and the summary
across visits. Pure (no database): titles come from a catalogue snapshot passed in.

The tables are kept exactly as received (strings); everything here is a reading of them, so a
better reading later changes no stored data.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from vnehr import records
from vnehr.healthbook import schemas as s
from vnehr.kit.clock import VIETNAM, parse_day, today_in_vietnam, vietnam_moment
from vnehr.kit.i18n import Language

Rows = Mapping[str, list[dict[str, str]]]

#: Care types of chronic-disease follow-up (MA_LOAI_KCB): 05 and 08 chronic outpatient, 07
#: medicine by appointment. Their diagnoses are long-term conditions (D29).
CHRONIC_CARE = frozenset({"05", "07", "08"})
#: A diagnosis seen in visits at least this far apart is long-term too (D29).
RECURRING = timedelta(days=90)
#: Drugs prescribed within this window are "current medicines" (D29).
CURRENT_MEDICINES = timedelta(days=90)

#: Papers that can come inside a visit file: table -> (kind, number field, date field).
PAPERS: Mapping[str, tuple[str, str, str]] = {
    "XML7": ("discharge", "SO_LUU_TRU", "NGAY_CT"),
    "XML9": ("birth", "SO", "NGAY_CT"),
    "XML10": ("pregnancy_leave", "SO_CT", "NGAY_CT"),
    "XML11": ("sick_leave", "SO_CT", "NGAY_CT"),
    "XML12": ("assessment", "SO_BIEN_BAN", "NGAY_CHUNG_TU"),
    "XML13": ("referral", "GIAY_CHUYEN_TUYEN", "NGAY_RA"),
    "XML14": ("re_exam", "SO_GIAYHEN_KL", "NGAY_CT"),
}


#: A reference range in XML4's reserve field DU_PHONG: "KTC: 3.9 - 6.4" (khoảng tham chiếu).
#: XML4 has no range field (D29); a FHIR sender's Observation.referenceRange arrives this way,
#: and an XML sender may write its range the same way. Other DU_PHONG text is not a range.
RANGE_PREFIX = "KTC:"


class Titles(Protocol):
    """What the view needs of the catalogue snapshot."""

    def in_force(self, list_name: str, code: str, day: date) -> Any: ...


@dataclass(frozen=True, slots=True)
class Header:
    """What the timeline row knows without reading the tables."""

    id: int
    facility: s.FacilityRef
    care_type: str | None
    main_diagnosis: str | None
    outcome: str | None
    insured: bool
    started_at: datetime | None
    ended_at: datetime | None
    version: int


def _text(row: Mapping[str, str], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _number(value: str | None) -> Decimal | None:
    if not value:
        return None
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        return None


def _int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _icd(code: str) -> str:
    value = code.strip().upper()
    if "." in value or len(value) <= 3:
        return value
    return f"{value[:3]}.{value[3:]}"


def vietnam_day(moment: datetime | None) -> date:
    """The Vietnam day of a stored moment (UTC inside), today's when there is none: codes are
    valid by the visit's day as the facility wrote it (D17), and a visit ending at 00:30 in
    Vietnam is on the previous day in UTC."""
    if moment is None:
        return today_in_vietnam()
    if moment.tzinfo is None:  # (a stored moment is UTC)
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(VIETNAM).date()


def coded(titles: Titles, list_name: str, code: str | None, day: date) -> s.Coded | None:
    """A code with its titles in force on ``day`` (the code alone when the list lacks it)."""
    if not code:
        return None
    found = coded_dict(titles, list_name, code, day)
    return s.Coded(**found) if found else None


def coded_dict(
    titles: Titles, list_name: str, code: str | None, day: date
) -> dict[str, Any] | None:
    """``coded`` as a plain dict (for the hot JSON path)."""
    if not code:
        return None
    key = _icd(code) if list_name == "icd10" else code.strip()
    entry = titles.in_force(list_name, key, day)
    if entry is None:
        return {"code": key, "vi": None, "en": None}
    return {"code": key, "vi": entry.title_vi, "en": entry.title_en}


def coded_name(coded: Any, lang: Language) -> str:
    """A code's name in ``lang`` (a ``coded`` value, or its dict): the catalogue's title, else
    (a diagnosis) the facility's own words for it in the visit (``stated``); in Vietnamese
    never the English title (the code stands alone instead, as the book's pages and its PDF
    show it). "" when there is none."""
    if not coded:
        return ""

    def field(name: str) -> Any:
        return coded.get(name) if isinstance(coded, dict) else getattr(coded, name, None)

    found = field("vi") or field("stated")
    if lang == "en":
        found = field("en") or found
    return str(found or "")


def timeline_row(header: Header, titles: Titles) -> dict[str, Any]:
    """A timeline item as a plain dict, the shape of ``schemas.TimelineItem`` (the hot read
    serialises it with orjson; pages and the summary validate it into the model)."""
    day = vietnam_day(header.ended_at or header.started_at)
    return {
        "id": header.id,
        "facility": {"code": header.facility.code, "name": header.facility.name},
        "care_type": coded_dict(titles, "care-type", header.care_type, day),
        "started_at": header.started_at,
        "ended_at": header.ended_at,
        "main_diagnosis": coded_dict(titles, "icd10", header.main_diagnosis, day),
        "outcome": coded_dict(titles, "treatment-result", header.outcome, day),
        "insured": header.insured,
        "version": header.version,
    }


class _CodedMemo:
    """Coded dicts of the hot timeline read, remembered per catalogue copy: a code with one
    version valid for all time (nearly every code) gives one shared dict; a code whose titles
    changed is looked up for its day. Bounded; a new catalogue copy starts afresh."""

    _LIMIT = 100_000

    def __init__(self) -> None:
        self._titles: Any = None
        self._timeless: dict[tuple[str, str], dict[str, Any] | None] = {}

    def get(self, titles: Titles, list_name: str, code: str | None, day: date) -> Any:
        if not code:
            return None
        if titles is not self._titles or len(self._timeless) > self._LIMIT:
            self._titles, self._timeless = titles, {}
        found = self._timeless.get((list_name, code), _UNKNOWN)
        if found is _UNKNOWN:
            found = self._timeless[(list_name, code)] = self._lookup(titles, list_name, code)
        return coded_dict(titles, list_name, code, day) if found is None else found

    @staticmethod
    def _lookup(titles: Titles, list_name: str, code: str) -> dict[str, Any] | None:
        """The dict for every day, or None when it depends on the day."""
        key = _icd(code) if list_name == "icd10" else code.strip()
        of = getattr(titles, "of", None)
        if of is None:
            return None
        versions = of(list_name, key)
        if not versions:
            return {"code": key, "vi": None, "en": None}
        only = versions[0]
        if len(versions) == 1 and only.valid_from is None and only.valid_to is None:
            return {"code": key, "vi": only.title_vi, "en": only.title_en}
        return None


_UNKNOWN = object()
_CODED = _CodedMemo()


def timeline_rows(
    rows: Iterable[Sequence[Any]], titles: Titles, names: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """``timeline_row`` for rows read by position in ``records.TIMELINE_COLUMNS`` order, as the
    hot read gets them (no intermediate objects: this loop was a third of the read's time)."""
    coded_of = _CODED.get
    today = today_in_vietnam()
    items = []
    for row in rows:
        entry_id, _, facility, care_type, diagnosis, outcome, insured, started, ended = row[:9]
        day = vietnam_day(ended or started) if ended or started else today
        items.append(
            {
                "id": entry_id,
                "facility": {"code": facility, "name": names.get(facility)},
                "care_type": coded_of(titles, "care-type", care_type, day),
                "started_at": started,
                "ended_at": ended,
                "main_diagnosis": coded_of(titles, "icd10", diagnosis, day),
                "outcome": coded_of(titles, "treatment-result", outcome, day),
                "insured": insured,
                "version": row[9],
            }
        )
    return items


def timeline_item(header: Header, titles: Titles) -> s.TimelineItem:
    return s.TimelineItem.model_validate(timeline_row(header, titles))


def diagnoses(xml1: Mapping[str, str], titles: Titles, day: date) -> list[s.Diagnosis]:
    """The main diagnosis first, then the secondary ones (MA_BENH_KT, ``;``-separated), each
    with the facility's words for it when CHAN_DOAN_RV names them in the same order (as many
    ``;``-separated parts as codes; otherwise no part is pinned to a code)."""
    found: list[s.Diagnosis] = []
    seen: set[str] = set()
    main = _text(xml1, "MA_BENH_CHINH")
    others = [c for c in (_text(xml1, "MA_BENH_KT") or "").split(";") if c.strip()]
    codes = ([main] if main else []) + others
    words = [w.strip() for w in (_text(xml1, "CHAN_DOAN_RV") or "").split(";") if w.strip()]
    stated: list[str | None] = [*words] if len(words) == len(codes) else [None] * len(codes)
    for position, code in enumerate(codes):
        item = coded(titles, "icd10", code, day)
        if item is None or item.code in seen:
            continue
        seen.add(item.code)
        found.append(
            s.Diagnosis(
                **item.model_dump(),
                main=position == 0 and main is not None,
                stated=stated[position],
            )
        )
    return found


def drugs(rows: Iterable[Mapping[str, str]]) -> list[s.Drug]:
    return [
        s.Drug(
            line=_int(row.get("STT")),
            code=_text(row, "MA_THUOC"),
            name=_text(row, "TEN_THUOC") or _text(row, "MA_THUOC") or "?",
            strength=_text(row, "HAM_LUONG"),
            unit=_text(row, "DON_VI_TINH"),
            route=_text(row, "DUONG_DUNG"),
            dose=_text(row, "LIEU_DUNG"),
            instructions=_text(row, "CACH_DUNG"),
            quantity=_number(row.get("SO_LUONG")),
            unit_price=_number(row.get("DON_GIA")),
            amount=_number(row.get("THANH_TIEN_BV")),
            ordered_at=vietnam_moment(row.get("NGAY_YL")),
            prescriber=_text(row, "MA_BAC_SI"),
        )
        for row in rows
    ]


def services(rows: Iterable[Mapping[str, str]]) -> list[s.Service]:
    return [
        s.Service(
            line=_int(row.get("STT")),
            code=_text(row, "MA_DICH_VU") or _text(row, "MA_VAT_TU"),
            name=_text(row, "TEN_DICH_VU") or _text(row, "TEN_VAT_TU") or "?",
            unit=_text(row, "DON_VI_TINH"),
            quantity=_number(row.get("SO_LUONG")),
            unit_price=_number(row.get("DON_GIA_BV")),
            amount=_number(row.get("THANH_TIEN_BV")),
            ordered_at=vietnam_moment(row.get("NGAY_YL")),
            performed_at=vietnam_moment(row.get("NGAY_TH_YL")),
            result_at=vietnam_moment(row.get("NGAY_KQ")),
            supply=_text(row, "MA_DICH_VU") is None and _text(row, "MA_VAT_TU") is not None,
        )
        for row in rows
    ]


def reference_range(row: Mapping[str, str]) -> str | None:
    """The reference range the sender gave for an XML4 row, if any (``RANGE_PREFIX``)."""
    reserve = (row.get("DU_PHONG") or "").strip()
    if not reserve.startswith(RANGE_PREFIX):
        return None
    return reserve[len(RANGE_PREFIX) :].strip() or None


def results(rows: Iterable[Mapping[str, str]]) -> list[s.Result]:
    return [
        s.Result(
            line=_int(row.get("STT")),
            service_code=_text(row, "MA_DICH_VU"),
            code=_text(row, "MA_CHI_SO"),
            name=_text(row, "TEN_CHI_SO") or _text(row, "MA_CHI_SO") or "?",
            value=_text(row, "GIA_TRI"),
            unit=_text(row, "DON_VI_DO"),
            reference_range=reference_range(row),
            description=_text(row, "MO_TA"),
            conclusion=_text(row, "KET_LUAN"),
            at=vietnam_moment(row.get("NGAY_KQ")),
        )
        for row in rows
    ]


def notes(rows: Iterable[Mapping[str, str]]) -> list[s.Note]:
    return [
        s.Note(
            at=vietnam_moment(row.get("THOI_DIEM_DBLS")),
            text=_text(row, "DIEN_BIEN_LS") or "",
            stage=_text(row, "GIAI_DOAN_BENH"),
            consultation=_text(row, "HOI_CHAN"),
            surgery=_text(row, "PHAU_THUAT"),
            by=_text(row, "NGUOI_THUC_HIEN"),
        )
        for row in rows
    ]


def record_summary(row: Mapping[str, str] | None) -> s.RecordSummary | None:
    if row is None:
        return None
    return s.RecordSummary(
        admission_diagnosis=_text(row, "CHAN_DOAN_VAO"),
        discharge_diagnosis=_text(row, "CHAN_DOAN_RV"),
        course=_text(row, "QT_BENHLY"),
        key_results=_text(row, "TOMTAT_KQ"),
        treatment=_text(row, "PP_DIEUTRI"),
        notes=_text(row, "GHI_CHU"),
        signed_on=vietnam_moment(row.get("NGAY_CT")),
    )


def costs(xml1: Mapping[str, str]) -> s.Costs | None:
    """The visit's bill in đồng (None when the facility sent no total)."""
    total = _number(xml1.get("T_TONGCHI_BV"))
    if total is None:
        return None
    parts = [_number(xml1.get(name)) for name in ("T_BNTT", "T_BNCCT")]
    known = [p for p in parts if p is not None]
    other = _number(xml1.get("T_NGUONKHAC"))
    return s.Costs(
        total=total,
        insurance=_number(xml1.get("T_BHTT")),
        patient=sum(known, Decimal(0)) if known else None,
        other=other if other else None,
    )


def papers(tables: Rows) -> list[s.PaperRef]:
    found = []
    for table, (kind, number, issued) in PAPERS.items():
        for row in tables.get(table) or []:
            found.append(
                s.PaperRef(
                    kind=kind, table=table, number=_text(row, number), issued_on=_text(row, issued)
                )
            )
    return found


def visit(
    header: Header, tables: Rows, titles: Titles, *, received_at: datetime | None = None
) -> s.Visit:
    """Everything of one visit, from its current version's tables."""
    xml1 = (tables.get("XML1") or [{}])[0]
    day = vietnam_day(header.ended_at or header.started_at)
    xml8 = next(iter(tables.get("XML8") or []), None)
    re_exam = [parse_day(p.strip()) for p in (_text(xml1, "NGAY_TAI_KHAM") or "").split(";")]
    return s.Visit(
        **timeline_item(header, titles).model_dump(),
        person_name=_text(xml1, "HO_TEN"),
        reason=_text(xml1, "LY_DO_VV"),
        diagnosis_text=_text(xml1, "CHAN_DOAN_RV"),
        diagnoses=diagnoses(xml1, titles, day),
        traditional_diagnoses=[
            c.strip() for c in (_text(xml1, "MA_BENH_YHCT") or "").split(";") if c.strip()
        ],
        discharge_type=coded(titles, "discharge-type", _text(xml1, "MA_LOAI_RV"), day),
        blood_group=_text(xml1, "NHOM_MAU"),
        weight_kg=_number(xml1.get("CAN_NANG")),
        re_exam_on=[d for d in re_exam if d is not None],
        days_of_treatment=_int(xml1.get("SO_NGAY_DTRI")),
        drugs=drugs(tables.get("XML2") or []),
        services=services(tables.get("XML3") or []),
        results=results(tables.get("XML4") or []),
        notes=notes(tables.get("XML5") or []),
        summary=record_summary(xml8),
        papers=papers(tables),
        received_at=received_at,
        costs=costs(xml1),
    )


def summary(
    holder_name: str,
    personal_id: str | None,
    visits: Sequence[tuple[Header, Rows]],
    titles: Titles,
    *,
    now: datetime,
    last: int = 5,
    measured: Sequence[tuple[int, Mapping[records.Series, records.Measured]]] | None = None,
) -> s.Summary:
    """The one-page summary over every visit (newest first in ``visits``); the lab trends
    from ``measured`` when given (``trends``: what the timeline rows keep), else from the
    visits' XML4."""
    conditions: dict[str, s.Condition] = {}
    ordered: list[s.CurrentMedicine] = []
    weights: list[s.Measurement] = []
    blood_group: str | None = None
    seen_at: dict[str, list[datetime]] = {}
    chronic: set[str] = set()
    for header, tables in visits:
        xml1 = (tables.get("XML1") or [{}])[0]
        moment = header.ended_at or header.started_at
        day = vietnam_day(moment or now)
        for diagnosis in diagnoses(xml1, titles, day):
            if moment is not None:
                seen_at.setdefault(diagnosis.code, []).append(moment)
            if header.care_type in CHRONIC_CARE:
                chronic.add(diagnosis.code)
            known = conditions.get(diagnosis.code)
            if known is None:
                conditions[diagnosis.code] = s.Condition(
                    code=diagnosis.code,
                    vi=diagnosis.vi,
                    en=diagnosis.en,
                    stated=diagnosis.stated,
                    first_seen=moment,
                    last_seen=moment,
                )
            else:
                known.visits += 1
                known.first_seen = moment or known.first_seen
        blood_group = blood_group or _text(xml1, "NHOM_MAU")
        weight = _number(xml1.get("CAN_NANG"))
        if weight is not None and weight > 0:
            weights.append(
                s.Measurement(kind="weight", value=weight, unit="kg", at=moment, visit_id=header.id)
            )
        for drug in drugs(tables.get("XML2") or []):
            when = drug.ordered_at or moment
            if when is None or now - when > CURRENT_MEDICINES:
                continue
            ordered.append(
                s.CurrentMedicine(
                    name=drug.name,
                    strength=drug.strength,
                    dose=drug.dose,
                    prescribed_at=when,
                    visit_id=header.id,
                    facility=header.facility,
                )
            )
    for code, moments in seen_at.items():
        if max(moments) - min(moments) >= RECURRING:
            chronic.add(code)
    # newest order first, one per name (D29): a visit's rows come in STT order, not by time
    medicines: dict[str, s.CurrentMedicine] = {}
    for medicine in sorted(ordered, key=lambda m: m.prescribed_at or now, reverse=True):
        medicines.setdefault(medicine.name, medicine)
    found_trends = lab_trends(visits) if measured is None else trends(measured)
    return s.Summary(
        person_name=holder_name,
        personal_id=personal_id,
        chronic_conditions=[conditions[c] for c in conditions if c in chronic],
        current_medicines=list(medicines.values()),
        blood_group=blood_group,
        measurements=weights[:10],
        last_visits=[timeline_item(h, titles) for h, _ in visits[:last]],
        lab_trends=found_trends,
        risk_factors=risk_factors(list(conditions)),
    )


#: Risk factors read from diagnoses (ICD-10 prefixes), as a clinician scans for them.
RISK_FACTORS: Sequence[tuple[str, str, str, tuple[str, ...]]] = (
    ("hypertension", "Tăng huyết áp", "Hypertension", ("I10", "I11", "I12", "I13", "I15")),
    ("diabetes", "Đái tháo đường", "Diabetes", ("E10", "E11", "E12", "E13", "E14")),
    ("dyslipidaemia", "Rối loạn lipid máu", "Dyslipidaemia", ("E78",)),
    ("obesity", "Béo phì", "Obesity", ("E66",)),
    ("tobacco", "Hút thuốc lá", "Tobacco use", ("Z72.0", "F17")),
    ("alcohol", "Sử dụng rượu bia có hại", "Harmful alcohol use", ("F10", "K70")),
    (
        "ischaemic_heart",
        "Bệnh tim thiếu máu cục bộ",
        "Ischaemic heart disease",
        ("I20", "I21", "I22", "I23", "I24", "I25"),
    ),
    ("stroke", "Tiền sử đột quỵ", "History of stroke", ("I63", "I64", "I69")),
    ("kidney", "Bệnh thận mạn", "Chronic kidney disease", ("N18",)),
    ("copd", "Bệnh phổi tắc nghẽn mạn tính", "COPD", ("J44",)),
)
TRENDS_SHOWN = 8
TREND_POINTS = records.TREND_POINTS


def risk_factors(codes: Iterable[str]) -> list[s.RiskFactor]:
    found = []
    seen = [c.upper() for c in codes]
    for key, vi, en, prefixes in RISK_FACTORS:
        basis = next(
            (
                c
                for c in seen
                if c.replace(".", "").startswith(tuple(p.replace(".", "") for p in prefixes))
            ),
            None,
        )
        if basis is not None:
            found.append(s.RiskFactor(code=key, vi=vi, en=en, basis=f"ICD-10 {basis}"))
    return found


def lab_trends(visits: Sequence[tuple[Header, Rows]]) -> list[s.LabTrend]:
    """Numeric laboratory results by index (MA_CHI_SO, else the name) and unit over the visits,
    the indexes measured most often first; each with its newest values and direction.

    Points are ordered by the result's time (NGAY_KQ, else the visit's end), newest first: a
    visit may hold several results of one index (glucose at 08:00 and at 16:00), and its rows
    come in STT order. A unit is part of the series: 6.0 mmol/L and 108 mg/dL of the same
    index are two series, never one falling trend."""
    return trends(
        [(h.id, records.measured(tables.get("XML4") or [], h.ended_at)) for h, tables in visits]
    )


def trends(
    visits: Sequence[tuple[int, Mapping[records.Series, records.Measured]]],
) -> list[s.LabTrend]:
    """``lab_trends`` from what each visit (its id, newest visit first) measured of each series
    (``records.measured``, which a timeline row keeps: the summaries read it there)."""
    found: dict[records.Series, list[tuple[Any, int | None, str, int]]] = {}
    names: dict[records.Series, tuple[str | None, str, str | None]] = {}
    for position, (visit_id, measured) in enumerate(visits):  # newest visit first
        for key, one in measured.items():
            if key not in names:
                names[key] = (one.code, one.name, one.unit)
            # newest first: by time; without one, by visit, later rows of a visit first
            found.setdefault(key, []).extend(
                ((at is None, -(at or 0), position, -line), at, value, visit_id)
                for at, value, line in one.points
            )
    series = []
    for key, points in found.items():
        code, name, unit = names[key]
        shown = heapq.nsmallest(TREND_POINTS, points, key=lambda item: item[0])
        series.append(
            s.LabTrend(
                code=code,
                name=name,
                unit=unit,
                points=[
                    s.TrendPoint(
                        at=records.moment_of(at) if at is not None else None,
                        value=Decimal(value),
                        visit_id=visit_id,
                    )
                    for _, at, value, visit_id in shown
                ],
            )
        )
    chosen = sorted(series, key=lambda t: (-len(t.points), t.name, t.unit or ""))[:TRENDS_SHOWN]
    for trend in chosen:
        if len(trend.points) >= 2:
            newest, before = trend.points[0].value, trend.points[1].value
            change = (newest - before) / abs(before) if before else newest
            trend.direction = "steady" if abs(change) < 0.05 else ("up" if change > 0 else "down")
    return chosen
