"""What a timeline row keeps of its visit for the summaries (D231, D233): kept and read back
unchanged, bounded however many results a visit has, and enough for the lab trends to be
exactly those of the whole visits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from vnehr import records
from vnehr.healthbook import schemas as s
from vnehr.healthbook import view
from vnehr.records import facts

START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
SERIES = [("GLU", "Glucose", "mmol/L"), ("GLU", "Glucose", "mmol / L"), ("GLU", "Glucose", "mg/dL"),
          ("", "Ure", "mmol/L"), ("CRE", "Creatinin", "µmol/L"), ("HBA1C", "HbA1c", "%"),
          ("WBC", "Bạch cầu", "G/L"), ("", "", "g/L")]  # fmt: skip


def _at(moment: datetime) -> str:
    return (moment + timedelta(hours=7)).strftime("%Y%m%d%H%M")


def _visit(rng: random.Random, ended: datetime) -> dict[str, Any]:
    """The tables of a visit with random results (some at one time, some without a time or a
    number), services and orders."""
    results = []
    times = [ended - timedelta(hours=rng.randint(0, 72)) for _ in range(4)]
    for _ in range(rng.randint(0, 60)):
        code, name, unit = rng.choice(SERIES)
        at = rng.choice([*times, None])
        value = rng.choice([f"{rng.uniform(1, 20):.1f}", f"{rng.randint(1, 9)}", "dương tính", ""])
        results.append({"MA_CHI_SO": code, "TEN_CHI_SO": name, "GIA_TRI": value, "DON_VI_DO": unit,
                        "NGAY_KQ": _at(at) if at else "", "MA_DICH_VU": "22.0121"})  # fmt: skip
    services = [
        {"MA_DICH_VU": rng.choice(["02.1896", ""]), "NGAY_YL": _at(rng.choice(times)),
         "NGAY_TH_YL": rng.choice(["", _at(rng.choice(times))])}
        for _ in range(rng.randint(0, 25))
    ]  # fmt: skip
    orders = [{"TEN_THUOC": "Hapacol", "NGAY_YL": rng.choice(["", _at(rng.choice(times))])}
              for _ in range(rng.randint(0, 25))]  # fmt: skip
    return {"XML1": [{"MA_BENH_CHINH": "E11.9", "CAN_NANG": "60"}], "XML2": orders,
            "XML3": services, "XML4": results}  # fmt: skip


def _trends_of_every_result(visits: list[tuple[view.Header, Any]]) -> list[s.LabTrend]:
    """The lab trends as reading every result of every visit makes them (the rule of
    ``view.lab_trends`` before the rows kept a part of them), to compare with."""
    found: dict[Any, list[Any]] = {}
    names: dict[Any, Any] = {}
    for position, (header, tables) in enumerate(visits):
        for line, row in enumerate(tables.get("XML4") or []):
            read = facts.trend_point(row, header.ended_at)
            if read is None:
                continue
            key, at, value = read
            order = (at is None, -at.timestamp() if at else 0.0, position, -line)
            found.setdefault(key, []).append(
                (order, s.TrendPoint(at=at, value=value, visit_id=header.id))
            )
            text = {n: (row.get(n) or "").strip() or None for n in ("MA_CHI_SO", "TEN_CHI_SO",
                                                                    "DON_VI_DO")}  # fmt: skip
            names.setdefault(key, (text["MA_CHI_SO"], text["TEN_CHI_SO"] or key[0],
                                   text["DON_VI_DO"]))  # fmt: skip
    series = []
    for key, points in found.items():
        points.sort(key=lambda item: item[0])
        code, name, unit = names[key]
        series.append(s.LabTrend(code=code, name=name, unit=unit,
                                 points=[p for _, p in points[: view.TREND_POINTS]]))  # fmt: skip
    chosen = sorted(series, key=lambda t: (-len(t.points), t.name, t.unit or ""))
    chosen = chosen[: view.TRENDS_SHOWN]
    for trend in chosen:
        if len(trend.points) >= 2:
            newest, before = trend.points[0].value, trend.points[1].value
            change = (newest - before) / abs(before) if before else newest
            trend.direction = "steady" if abs(change) < 0.05 else ("up" if change > 0 else "down")
    return chosen


def _row(found: facts.Facts) -> Any:
    return SimpleNamespace(summary_facts=facts.as_kept(found), summary_version=7, version_id=7)


def _header(visit_id: int, ended: datetime) -> view.Header:
    return view.Header(
        id=visit_id,
        facility=s.FacilityRef(code="01001", name=None),
        care_type="01",
        main_diagnosis=None,
        outcome=None,
        insured=True,
        started_at=ended - timedelta(days=1),
        ended_at=ended,
        version=1,
    )


def test_the_facts_are_read_back_as_kept() -> None:
    rng = random.Random(1)
    for n in range(50):
        ended = START + timedelta(days=n)
        found = facts.facts(_visit(rng, ended), ended - timedelta(days=1), ended)
        assert records.row_facts(_row(found)) == found


def test_a_visit_keeps_a_bounded_part_of_its_results() -> None:
    """A stay with 200 glucose results (units written two ways) keeps the newest few, named
    after the first, and the times of its newest results: a row stays small however long the
    stay."""
    rows = [
        {"MA_CHI_SO": "GLU", "TEN_CHI_SO": "Glucose", "GIA_TRI": str(5 + n % 7),
         "DON_VI_DO": "mmol / L" if n == 0 else "mmol/L", "NGAY_KQ": _at(START + timedelta(hours=n))}
        for n in range(200)
    ]  # fmt: skip
    found = facts.facts({"XML4": rows}, None, START + timedelta(days=10))
    [(series, glucose)] = found.labs.items()
    assert series == ("GLU", "mmol/L")
    assert (glucose.code, glucose.name, glucose.unit) == ("GLU", "Glucose", "mmol / L")
    assert [facts.moment_of(at) for at, _, _ in glucose.points if at is not None] == [
        START + timedelta(hours=n) for n in range(199, 199 - facts.TREND_POINTS, -1)
    ]
    assert sum(count for _, count in found.results) == facts.NEWEST
    assert len(facts.as_kept(found)) < 1500


def test_the_lab_trends_of_the_kept_results_are_those_of_every_result() -> None:
    """Over random books, the trends read from what each row keeps are exactly those read
    from every result of every visit (series, points, order, names, directions)."""
    longest = 0
    for seed in range(40):
        rng = random.Random(seed)
        full = []
        kept = []
        for n in range(rng.randint(1, 12)):
            ended = START - timedelta(days=rng.randint(0, 400), hours=n)
            tables = _visit(rng, ended)
            header = _header(1000 - n, ended)
            full.append((header, tables))
            found = records.row_facts(_row(facts.facts(tables, header.started_at, ended)))
            assert found is not None
            kept.append((header.id, found.labs))
        order = sorted(range(len(full)), key=lambda i: full[i][0].ended_at or START, reverse=True)
        full = [full[i] for i in order]
        kept = [kept[i] for i in order]
        trends = view.lab_trends(
            [(h, {"XML4": t["XML4"]}) for h, t in full]
        )  # (as reading every result does: ``trends_of_every_result``)
        assert view.trends(kept) == trends == _trends_of_every_result(full), seed
        longest = max([longest, *(len(t.points) for t in trends)])
    assert longest == view.TREND_POINTS  # (series longer than a trend shows were compared)
