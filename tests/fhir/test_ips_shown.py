"""The IPS made from the visits ``ips.visits_shown`` names (from what their timeline rows keep)
is the one made from every visit (D233): over random books, section by section."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from vnehr import records
from vnehr.fhir import ips, mapping
from vnehr.fhir.store import Pool
from vnehr.kit.clock import vietnam_moment
from vnehr.submissions import synth

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
PROBLEMS = [f"{letter}{n:02d}" for letter in "JKM" for n in range(10, 30)]


class _Titles:
    """A catalogue that knows a few ICD-10 codes (the others are shown as their code)."""

    def in_force(self, list_name: str, code: str, day: date) -> Any:
        if list_name == "icd10" and code.startswith(("I", "E")):
            return type("Title", (), {"title_vi": f"Bệnh {code}", "title_en": None})()
        return None


def _source(visit_id: int, tables: dict[str, Any], *, open_ended: bool) -> mapping.VisitSource:
    xml1 = tables["XML1"][0]
    ended = None if open_ended else vietnam_moment(xml1["NGAY_RA"])
    return mapping.VisitSource(
        visit_id=visit_id,
        version=1,
        version_id=visit_id + 10_000,
        facility_code="01001",
        facility_name=None,
        visit_key=f"k{visit_id}",
        person_id=1,
        tables=tables,
        received_at=NOW - timedelta(days=1),
        started_at=vietnam_moment(xml1["NGAY_VAO"]),
        ended_at=ended,
        submission_id="s",
        first_version=True,
    )


def _document(sources: list[mapping.VisitSource]) -> dict[str, Any]:
    pool = Pool()
    for src in sources:
        for resource in mapping.visit_resources(src, _Titles()):
            pool.add(resource)
    pool.add({"resourceType": "Patient", "id": "1"})
    made = ips.document("https://x/fhir/R4", pool, "1", now=NOW)
    composition = made["entry"][0]["resource"]
    return {
        "sections": composition["section"],
        "entries": [e["resource"] for e in made["entry"][1:]],
    }


def test_the_visits_shown_make_the_document_every_visit_makes() -> None:
    entries = mapped = every = 0
    for seed in range(12):
        rng = random.Random(seed)
        sources = []
        for n in range(rng.randint(5, 120)):
            ended = (NOW - timedelta(days=rng.randint(0, 300), minutes=n)).replace(tzinfo=None)
            made = synth.make_visit(rng, ended=ended, age_group=3, insured=rng.random() < 0.8,
                                    care_type=rng.choice(["01", "02", "03", "07"]))  # fmt: skip
            tables = made.tables
            xml1 = tables["XML1"][0]
            if rng.random() < 0.7:
                xml1["CAN_NANG"] = "0"
            if rng.random() < 0.3:  # the same diagnoses as another visit
                xml1["MA_BENH_CHINH"], xml1["MA_BENH_KT"] = "I10", "E11.9"
            elif rng.random() < 0.7:  # more problems than a section shows
                codes = rng.sample(PROBLEMS, rng.randint(1, 3))
                xml1["MA_BENH_CHINH"], xml1["MA_BENH_KT"] = codes[0], ";".join(codes[1:])
            for table in ("XML2", "XML3", "XML4"):  # each kind of entry in some visits only
                if rng.random() < 0.5:
                    tables.pop(table, None)
            if rng.random() < 0.2:  # orders about 90 days ago, either side of the window
                at = NOW - timedelta(days=90, hours=rng.randint(-30, 30))
                for row in tables.get("XML2") or []:
                    row["NGAY_YL"] = (at + timedelta(hours=7)).strftime("%Y%m%d%H%M")
            sources.append(_source(1000 - n, made.tables, open_ended=rng.random() < 0.05))
        sources.sort(key=lambda src: (src.ended_at is None, src.ended_at), reverse=True)
        told = [
            (src.visit_id, src.started_at, src.ended_at,
             records.visit_facts(src.tables, src.started_at, src.ended_at))
            for src in sources
        ]  # fmt: skip
        shown = ips.visits_shown(told, _Titles(), now=NOW)
        whole = _document(sources)
        assert _document([src for src in sources if src.visit_id in shown]) == whole, seed
        mapped += len(shown)
        every += len(sources)
        entries += sum(len(section.get("entry", [])) for section in whole["sections"])
    assert entries > 12 * 4 * ips.MAX_ENTRIES  # (full sections were compared)
    assert mapped < every * 0.6, (mapped, every)


def test_orders_of_the_first_day_of_the_window_are_shown() -> None:
    """``document`` counts an order from the Vietnam day that is the UTC day 90 days ago:
    an order 90 days and 9 hours ago is shown (and its visit mapped, for it alone: the later
    visit has the same diagnosis), one 11 hours more is not."""
    sources = []
    for n, hours in enumerate((9, 11)):
        made = synth.make_visit(random.Random(n), ended=(NOW - timedelta(days=89 - n)).replace(
            tzinfo=None), age_group=3, insured=True, care_type="01")  # fmt: skip
        at = NOW - timedelta(days=90, hours=hours)
        for row in made.tables["XML2"]:
            row["NGAY_YL"] = (at + timedelta(hours=7)).strftime("%Y%m%d%H%M")
        for table in ("XML3", "XML4"):
            made.tables.pop(table, None)
        made.tables["XML1"][0].update(CAN_NANG="0", MA_BENH_CHINH="I10", MA_BENH_KT="")
        sources.insert(0, _source(100 - n, made.tables, open_ended=False))
    told = [
        (src.visit_id, src.started_at, src.ended_at,
         records.visit_facts(src.tables, src.started_at, src.ended_at))
        for src in sources
    ]  # fmt: skip
    whole = _document(sources)
    [medicines] = [x for x in whole["sections"] if x["title"].startswith("Thuốc")]
    assert {e["reference"].split("-")[0] for e in medicines["entry"]} == {"MedicationRequest/100"}
    shown = ips.visits_shown(told, _Titles(), now=NOW)
    assert shown == {99, 100}
    assert _document([src for src in sources if src.visit_id in shown]) == whole
