"""The six-monthly report: the figures assembled from the counters (rollups or recount), the
facility registry, the ward population, the visits facilities declared and the department's
notes. Every figure here comes from ``counts``: the same function on a recount gives the same
report, which is how it is checked."""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from vnehr.kit.i18n import texts
from vnehr.reporting.metrics import CATEGORIES, LAG_BUCKETS, Period

Key = tuple[date, str, str, str, str, str, str]
#: A median or 90th percentile beyond the last lag bucket: more than a year late. Not None,
#: which means "no visits": a facility whose visits all come a year late is the slowest.
BEYOND: Literal["more"] = "more"
Lag = int | Literal["more"] | None

CATEGORY_TITLES = {
    "outpatient_exam": ("Khám bệnh ngoại trú", "Outpatient examination"),
    "outpatient_treatment": ("Điều trị ngoại trú", "Outpatient treatment"),
    "medicine_by_appointment": ("Lĩnh thuốc theo hẹn", "Medicine by appointment"),
    "inpatient": ("Điều trị nội trú", "Inpatient treatment"),
    "day_inpatient": ("Điều trị nội trú ban ngày", "Day inpatient treatment"),
    "remote": ("Khám bệnh, chữa bệnh từ xa", "Remote care"),
    "other": ("Khác (chưa phân loại)", "Other (unclassified)"),
}
#: How many of the slowest facilities the report names.
SLOWEST = 10
PAPER_KINDS = ("driver", "referral", "re_exam", "sick_leave", "birth", "discharge")


@dataclass(frozen=True, slots=True)
class FacilityRow:
    code: str
    name: str
    ownership: str  # public | private
    ward: str
    connected: bool


@dataclass(frozen=True, slots=True)
class Scope:
    period: Period
    province: str | None
    ward: str | None = None
    facility: str | None = None

    def keeps(self, ward: str, facility: str) -> bool:
        return (self.ward is None or ward == self.ward) and (
            self.facility is None or facility == self.facility
        )


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


def _bucket_at(histogram: Mapping[str, int], fraction: float) -> Lag:
    known = sorted((int(b), n) for b, n in histogram.items() if b.isdigit())
    total = sum(n for _, n in known) + histogram.get("more", 0)
    if not total:
        return None
    running = 0
    for bound, n in known:
        running += n
        if running >= fraction * total:
            return bound
    return BEYOND


def _slowest_first(median: Lag) -> tuple[int, int]:
    """Sort key of a facility's median lag: beyond a year, then the longest bucket first, then
    facilities whose lag is not known."""
    if isinstance(median, int):
        return (1, -median)
    return (0, 0) if median == BEYOND else (2, 0)


def build(
    scope: Scope,
    counts: Mapping[Key, int],
    registry: Iterable[FacilityRow],
    *,
    population: Mapping[str, int],
    declared: Mapping[tuple[str, str], int],
    notes: str,
    cost_per_record: int,
    ward_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report as plain data (the JSON output; the other formats are drawn from it)."""
    ward_names = ward_names or {}
    registered = list(registry)
    facilities = [f for f in registered if scope.keeps(f.ward, f.code)]
    names = {f.code: f.name for f in registered}
    # one pass over the counters: the period's totals, and what is kept per facility (visits
    # sent, lag histogram), so nothing below reads the counters again (a scan of every
    # facility's counters for each facility made 5,000 facilities take minutes)
    period_counts: dict[tuple[str, str, str], int] = defaultdict(int)
    sent_by_facility: dict[str, int] = defaultdict(int)
    lags_by_facility: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    accounts_by_ward: dict[str, int] = defaultdict(int)
    for (month, _prov, ward, facility, metric, dim1, dim2), value in counts.items():
        if metric == "accounts":
            if scope.ward is None or ward == scope.ward:
                accounts_by_ward[ward] += value
            continue
        if not (scope.period.start <= month <= scope.period.end) or not scope.keeps(ward, facility):
            continue
        period_counts[(metric, dim1, dim2)] += value
        if metric == "visits_sent":
            sent_by_facility[facility] += value
        elif metric == "lag":
            lags_by_facility[facility][dim1] += value

    def total(metric: str, dim1: str | None = None, dim2: str | None = None) -> int:
        return sum(
            v
            for (m, d1, d2), v in period_counts.items()
            if m == metric and (dim1 is None or d1 == dim1) and (dim2 is None or d2 == dim2)
        )

    matrix = []
    categories = [*CATEGORIES, "other"]
    for category in categories:
        row: dict[str, Any] = {"category": category, "title": CATEGORY_TITLES[category]}
        for flag in ("insured", "uninsured"):
            made = declared.get((category, flag)) if declared else None
            row[flag] = {
                "made": made,
                "sent": total("visits_sent", category, flag),
                "in_book": total("visits_in_book", category, flag),
            }
        if category != "other" or row["insured"]["sent"] or row["uninsured"]["sent"]:
            matrix.append(row)
    sent = total("visits_sent")
    in_book = total("visits_in_book")

    sending = {f for f, v in sent_by_facility.items() if v > 0}

    def facility_figures(rows: list[FacilityRow]) -> dict[str, int]:
        return {
            "with_code": len(rows),
            "connected": sum(1 for f in rows if f.connected),
            "sending": sum(1 for f in rows if f.code in sending),
        }

    of_ward: dict[str, list[FacilityRow]] = defaultdict(list)
    of_owner: dict[str, list[FacilityRow]] = defaultdict(list)
    for f in facilities:
        of_ward[f.ward].append(f)
        of_owner[f.ownership].append(f)
    facility_section = {
        **facility_figures(facilities),
        "by_ownership": {own: facility_figures(of_owner[own]) for own in ("public", "private")},
        "by_ward": [
            {"ward": w, "name": ward_names.get(w, ""), **facility_figures(of_ward[w])}
            for w in sorted(of_ward)
        ],
    }

    people_wards = sorted(
        set(accounts_by_ward) | {w for w in population if scope.ward in (None, w)}
    )
    by_ward = [
        {
            "ward": w,
            "name": ward_names.get(w, ""),
            "accounts": accounts_by_ward.get(w, 0),
            "population": population.get(w),
            "share": _share(accounts_by_ward.get(w, 0), population.get(w)),
        }
        for w in people_wards
        if w
    ]
    accounts = sum(accounts_by_ward.values())
    people_total = sum(population.get(w, 0) for w in people_wards) or None

    histogram: dict[str, int] = {}
    for (metric, dim1, _), value in period_counts.items():
        if metric == "lag":
            histogram[dim1] = histogram.get(dim1, 0) + value
    ranked: list[tuple[Lag, int, str]] = []
    for code in sending:
        mine = lags_by_facility.get(code, {})
        ranked.append((_bucket_at(mine, 0.5), sum(mine.values()), code))
    # only the first ten are shown: a heap, not a sort of every facility
    slowest = [
        {
            "facility": code,
            "name": names.get(code, code),
            "median_minutes": median,
            "visits": visits,
        }
        for median, visits, code in heapq.nsmallest(
            SLOWEST, ranked, key=lambda r: (*_slowest_first(r[0]), -r[1], r[2])
        )
    ]

    rejected = total("rejected_visits")
    by_code = sorted(
        ((d1, v) for (m, d1, _), v in period_counts.items() if m == "rejected"),
        key=lambda item: (-item[1], item[0]),
    )
    with_summary = total("with_summary")
    return {
        "period": scope.period.name,
        "from": scope.period.start.isoformat(),
        "to": scope.period.end.isoformat(),
        "province": scope.province,
        "ward": scope.ward,
        "ward_name": ward_names.get(scope.ward, "") if scope.ward else None,
        "facility": scope.facility,
        "facility_name": names.get(scope.facility, "") if scope.facility else None,
        "matrix": matrix,
        "totals": {
            "made": sum(declared.values()) if declared else None,
            "sent": sent,
            "in_book": in_book,
        },
        "facilities": facility_section,
        "people": {
            "accounts": accounts,
            "population": people_total,
            "share": _share(accounts, people_total),
            "by_ward": by_ward,
        },
        "records": {"created": sent, "integrated": in_book, "share": _share(in_book, sent)},
        "timeliness": {
            "visits": sent,
            "median_minutes": _bucket_at(histogram, 0.5),
            "p90_minutes": _bucket_at(histogram, 0.9),
            "within_24h": _share(total("within_24h"), sent),
            "within_deadline": _share(total("within_deadline"), sent),
            "histogram": [
                {"up_to_minutes": b, "visits": histogram.get(str(b), 0)} for b in LAG_BUCKETS
            ]
            + [{"up_to_minutes": None, "visits": histogram.get("more", 0)}],
            "slowest": slowest,
        },
        "quality": {
            "rejected_visits": rejected,
            "rejection_rate": _share(rejected, rejected + sent),
            "by_code": [
                {
                    "code": c,
                    "visits": v,
                    "share": _share(v, rejected + sent),
                    "message": texts(c, {}),
                }
                for c, v in by_code
            ],
            "with_summary": with_summary,
            "with_summary_share": _share(with_summary, sent),
        },
        "papers": {kind: total("papers", kind) for kind in PAPER_KINDS},
        "savings": {
            "visits": sent,
            "cost_per_record": cost_per_record,
            "total": sent * cost_per_record,
        },
        "notes": notes,
    }
