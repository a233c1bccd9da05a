"""What the summaries need of a visit, kept on its timeline row (D209, as amended; D233): the
XML1 fields its long-term conditions, risk factors, blood group and weight are read from, until
when the visit's medicines may count as current, the lab results a trend may show, and when its
newest results, services and medicine orders were. A summary of a book of thousands of visits
(the book's and its page, the PDF's, the clinician's, the IPS) then reads these small rows, and
opens only the visits whose medicines (for the IPS: whose newest orders, results, weights,
services and problems) it shows, never every stored visit."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from vnehr.kit.clock import vietnam_moment

#: The form of the kept facts. A row kept in another (or none) is read by opening its visit
#: until ``vnehr db backfill-cards`` fills it anew: bump it whenever ``facts`` changes, or
#: ``TREND_POINTS`` or ``NEWEST`` (2: the results of the lab trends and the times of the newest
#: results, services and orders, D233).
FORM = 2
#: The XML1 fields the summary reads (``healthbook.view.summary``): the diagnoses, the
#: facility's words for them, the blood group and the weight.
XML1_FIELDS = ("MA_BENH_CHINH", "MA_BENH_KT", "CHAN_DOAN_RV", "NHOM_MAU", "CAN_NANG")
#: The points a lab trend shows of a series (``healthbook.view.lab_trends``, which reads it
#: from here): a visit keeps the newest this many results of each series it measured.
TREND_POINTS = 6
#: The entries the IPS shows at most in a section (``fhir.ips.MAX_ENTRIES`` must not be
#: more): a visit keeps the times of its newest this many results, services and orders.
NEWEST = 20

#: A series of a lab trend: the index (MA_CHI_SO, else its name) and the unit without spaces.
Series = tuple[str, str | None]
#: Moments with how many of a visit's results (services, orders) were at each, newest first,
#: those without one (None) last.
Moments = tuple[tuple[datetime | None, int], ...]
#: A point of a series as a visit measured it: when (microseconds since 1970, UTC; None
#: without a time), its value as written (a number), and its row's place in the visit's XML4.
Point = tuple[int | None, str, int]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Measured:
    """One series of lab results as one visit measured it (``measured``)."""

    #: MA_CHI_SO, TEN_CHI_SO (else the series' name) and DON_VI_DO as written, of the first
    #: row of the series in the visit: a trend is named after the newest visit's
    code: str | None
    name: str
    unit: str | None
    #: the newest ``TREND_POINTS`` points, newest first (at one time, the later row first)
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Facts:
    #: the XML1 fields of ``XML1_FIELDS`` the visit has, as stored (CHAN_DOAN_RV only when
    #: its parts name the codes one by one: the summary reads it only then)
    xml1: dict[str, str]
    #: the latest moment one of its medicines counts from (the order's NGAY_YL, else the end
    #: of the visit, else its start); None without one
    drugs_until: datetime | None
    #: the series of lab results the visit measured (``measured``), in the order of their
    #: first rows
    labs: dict[Series, Measured] = field(default_factory=dict)
    #: when the visit's indexed results (XML4 rows with MA_CHI_SO: the laboratory
    #: Observations of FHIR) were (NGAY_KQ), as many of the newest as make ``NEWEST``
    results: Moments = ()
    #: when its services (XML3 rows with MA_DICH_VU: FHIR Procedures) were performed
    #: (NGAY_TH_YL, else NGAY_YL), as many of the newest as make ``NEWEST``
    services: Moments = ()
    #: when its medicines were ordered (XML2 NGAY_YL: FHIR MedicationRequest.authoredOn; an
    #: order without one is not counted), as many of the newest as make ``NEWEST``
    orders: Moments = ()


def _pinned(xml1: dict[str, Any]) -> bool:
    """Whether the discharge words name the diagnoses one by one (as many ``;``-separated
    parts as codes), the only case in which ``healthbook.view.diagnoses`` reads them."""
    main = (xml1.get("MA_BENH_CHINH") or "").strip()
    codes = ([main] if main else []) + [
        c for c in (xml1.get("MA_BENH_KT") or "").split(";") if c.strip()
    ]
    words = [w for w in (xml1.get("CHAN_DOAN_RV") or "").split(";") if w.strip()]
    return len(words) == len(codes)


def _text(row: Any, name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _number(value: str | None) -> Decimal | None:
    if not value:
        return None
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        return None


def trend_point(
    row: Any, ended_at: datetime | None
) -> tuple[Series, datetime | None, Decimal] | None:
    """What a lab trend reads of an XML4 row of a visit ending at ``ended_at``: its series,
    when it was measured (NGAY_KQ, else the end of the visit) and its value; None for a row
    no trend shows (no number, no index). The one rule of ``measured`` (and so of
    ``healthbook.view.lab_trends``) for a row."""
    value = _number(row.get("GIA_TRI"))
    name = _text(row, "MA_CHI_SO") or _text(row, "TEN_CHI_SO")
    if value is None or name is None:
        return None
    unit = _text(row, "DON_VI_DO")
    at = vietnam_moment(row.get("NGAY_KQ")) or ended_at
    return (name, unit.replace(" ", "") if unit else None), at, value


def micros(moment: datetime) -> int:
    """A moment as microseconds since 1970 in UTC (exact; a naive one is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def moment_of(value: int) -> datetime:
    """The moment ``micros`` gave ``value`` for (UTC)."""
    return _EPOCH + timedelta(microseconds=value)


def measured(rows: Sequence[Any], ended_at: datetime | None) -> dict[Series, Measured]:
    """The series of lab results a visit's XML4 ``rows`` measured (``trend_point``; the visit
    ends at ``ended_at``), in the order of their first rows, each with its newest
    ``TREND_POINTS`` points: a trend shows a series' newest ``TREND_POINTS`` points over every
    visit (by time, then the newer visit, then the later row), so no other point of a visit is
    ever among them, and it is named after its first row in the newest visit that has it."""
    first: dict[Series, Any] = {}
    points: dict[Series, list[tuple[tuple[bool, int, int], Point]]] = {}
    for line, row in enumerate(rows):
        found = trend_point(row, ended_at)
        if found is None:
            continue
        series, at, value = found
        first.setdefault(series, row)
        at_us = micros(at) if at is not None else None
        order = (at_us is None, -(at_us or 0), -line)
        points.setdefault(series, []).append((order, (at_us, str(value), line)))
    return {
        series: Measured(
            _text(row, "MA_CHI_SO"),
            _text(row, "TEN_CHI_SO") or series[0],
            _text(row, "DON_VI_DO"),
            tuple(point for _, point in heapq.nsmallest(TREND_POINTS, points[series])),
        )
        for series, row in first.items()
    }


def _newest(moments: list[datetime | None]) -> Moments:
    """``moments`` counted by moment, newest first (None last), as many as make ``NEWEST``."""
    counted: dict[datetime | None, int] = {}
    for moment in moments:
        counted[moment] = counted.get(moment, 0) + 1
    found: list[tuple[datetime | None, int]] = []
    total = 0
    for moment in sorted(counted, key=lambda m: (m is None, -m.timestamp() if m else 0.0)):
        if total >= NEWEST:
            break
        found.append((moment, counted[moment]))
        total += counted[moment]
    return tuple(found)


def facts(tables: Any, started_at: datetime | None, ended_at: datetime | None) -> Facts:
    """The facts of a visit's ``tables`` (whose timeline row has these start and end)."""
    xml1 = (tables.get("XML1") or [{}])[0]
    kept = {
        name: str(xml1[name])
        for name in XML1_FIELDS
        if xml1.get(name) and (name != "CHAN_DOAN_RV" or _pinned(xml1))
    }
    moment = ended_at or started_at
    ordered = [vietnam_moment(row.get("NGAY_YL")) for row in tables.get("XML2") or []]
    moments = [at or moment for at in ordered]
    results = tables.get("XML4") or []
    return Facts(
        kept,
        max((m for m in moments if m is not None), default=None),
        measured(results, ended_at),
        _newest([vietnam_moment(r.get("NGAY_KQ")) for r in results if _text(r, "MA_CHI_SO")]),
        _newest(
            [
                vietnam_moment(r.get("NGAY_TH_YL")) or vietnam_moment(r.get("NGAY_YL"))
                for r in tables.get("XML3") or []
                if _text(r, "MA_DICH_VU")
            ]
        ),
        _newest([at for at in ordered if at is not None]),
    )


def _kept_moments(moments: Moments) -> list[list[Any]]:
    return [[m.isoformat() if m else None, count] for m, count in moments]


def _read_moments(kept: Any) -> Moments:
    return tuple((datetime.fromisoformat(m) if m else None, int(count)) for m, count in kept)


def as_kept(found: Facts) -> str:
    """The facts as a timeline row keeps them: the form, "|", then JSON."""
    value: dict[str, Any] = {"xml1": found.xml1}
    if found.drugs_until is not None:
        value["drugs_until"] = found.drugs_until.isoformat()
    if found.labs:
        value["labs"] = [
            [*series, one.code, one.name, one.unit, one.points]
            for series, one in found.labs.items()
        ]
    if found.results:
        value["results"] = _kept_moments(found.results)
    if found.services:
        value["services"] = _kept_moments(found.services)
    if found.orders:
        value["orders"] = _kept_moments(found.orders)
    return kept_prefix() + orjson.dumps(value).decode()


def kept_prefix() -> str:
    """How facts kept in today's form begin ("2|")."""
    return f"{FORM}|"


def row_facts(row: Any, *, trends: bool = True, times: bool = True) -> Facts | None:
    """The facts a timeline row keeps for the version it points to; None when it does not know
    them (stored before migration 0030 and not yet filled, corrected by a process of the
    previous release, which moves ``version_id`` only, or kept in another form): the visit is
    to be opened. Without ``trends`` or ``times``, its ``labs``, or its ``results``,
    ``services`` and ``orders``, are left empty (not read: a reader of thousands of rows
    reads what it uses)."""
    kept = row.summary_facts
    if kept is None or row.summary_version != row.version_id or not kept.startswith(kept_prefix()):
        return None
    value = orjson.loads(kept.removeprefix(kept_prefix()))
    until = value.get("drugs_until")
    return Facts(
        dict(value["xml1"]),
        datetime.fromisoformat(until) if until else None,
        {
            (key, unit_key): Measured(code, name, unit, tuple(map(tuple, points)))
            for key, unit_key, code, name, unit, points in value.get("labs", ())
        }
        if trends
        else {},
        _read_moments(value.get("results", ())) if times else (),
        _read_moments(value.get("services", ())) if times else (),
        _read_moments(value.get("orders", ())) if times else (),
    )
