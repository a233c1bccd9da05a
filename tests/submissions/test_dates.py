"""Dates no clock gives: every date and moment of every table (XML0 to XML15) lies between
1900-01-01 and 2099-12-31, or the row gets SUB-0119 with its place, in Python and in the
compiled reader alike (.NET's MinValue and MaxValue, written by systems for "no date" and "no
end"); such a check-in is a coded row issue, not a 500; a ``since`` that no database holds is a
parameter error; SUB-0148 states the real now."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.papers.test_api import sick_leave
from tests.submissions.test_fast_path import _both, _checkin_both, _checkin_document, _in_row
from tests.submissions.test_fast_path import _codes as _seen_codes
from tests.submissions.test_fast_path import _visit as _fast_visit
from tests.submissions.test_intake import checkin_row, facility_with_token, send, visit
from vnehr import catalogs
from vnehr.kit.clock import VIETNAM
from vnehr.kit.settings import Settings
from vnehr.submissions import analyse, rules, synth
from vnehr.submissions.rules import Findings, check_rows
from vnehr.submissions.spec import tables as tables_spec
from vnehr.submissions.xmlio import Limits, write_table

MIN_VALUE = "000101010000"  # .NET's DateTime.MinValue as yyyyMMddHHmm: an HIS's "no date"
MAX_VALUE = "999912312359"  # and its MaxValue: "no end"
ENDED = datetime(2026, 9, 14, 16, 45)  # noqa: DTZ001
_MOMENT, _DAY, _DAY_OR_MOMENT = (rules.KINDS.index(k) for k in ("moment", "day", "day_or_moment"))


def _dated_fields() -> list[tuple[str, str, int]]:
    """(table variant, field, kind) of every date or moment of every table."""
    found = []
    for key, spec in tables_spec().items():
        name = key.partition("_")[0]
        for field, _req, _max, _multi, kind, _places in rules.field_checks(name, spec.fields):
            if kind in (_MOMENT, _DAY, _DAY_OR_MOMENT):
                found.append((key, field, kind))
    return found


def _row_codes(key: str, row: dict[str, str]) -> list[tuple[str, str]]:
    name, _, variant = key.partition("_")
    found = Findings()
    check_rows(found, name, [row], variant or "4750")
    return sorted((i.code, i.field or "") for i in found.issues if i.field in row)


def test_every_date_and_moment_of_every_table_lies_in_1900_to_2099() -> None:
    dated = _dated_fields()
    assert {k.partition("_")[0] for k, _, _ in dated} >= {
        "XML0", "XML1", "XML2", "XML3", "XML4", "XML5", "XML6", "XML7", "XML8", "XML9", "XML10",
        "XML11", "XML12", "XML13", "XML14", "XML15",
    }  # fmt: skip
    # the start of ARV treatment (HIV and TB care) is a "Chuỗi 8" date too
    assert {("XML6", "BDDT_ARV", _DAY), ("XML15", "BDDT_ARV", _DAY)} <= set(dated)
    for key, field, kind in dated:
        early = {
            _MOMENT: [MIN_VALUE, "189912312359", "210001010000", MAX_VALUE],
            _DAY: ["00010101", "18991231", "21000101", MAX_VALUE[:8]],
        }
        earliest = {_MOMENT: ["190001010000", "209912312359"], _DAY: ["19000101", "20991231"]}
        kinds = (_MOMENT, _DAY) if kind == _DAY_OR_MOMENT else (kind,)
        for value in (v for k in kinds for v in early[k]):
            assert _row_codes(key, {field: value}) == [("SUB-0119", field)], (key, field, value)
        for value in (v for k in kinds for v in earliest[k]):
            assert _row_codes(key, {field: value}) == [], (key, field, value)
    # births have their own earliest year, a format rule, and the same latest day
    assert _row_codes("XML1", {"NGAY_SINH": "209912310000"}) == []
    assert _row_codes("XML1", {"NGAY_SINH": "210001010000"}) == [("SUB-0113", "NGAY_SINH")]
    assert _row_codes("XML12", {"NGAY_SINH": "99991231"}) == [("SUB-0114", "NGAY_SINH")]
    # each part of a field holding several
    assert _row_codes("XML1", {"GT_THE_DEN": "20261231;00010101"}) == [("SUB-0119", "GT_THE_DEN")]
    # the message names table, row and field, in both languages
    found = Findings()
    check_rows(found, "XML3", [{}, {"NGAY_KQ": MIN_VALUE}])
    [issue] = [i for i in found.issues if i.code == "SUB-0119"]
    message = issue.as_dict()["message"]
    for text in (message["vi"], message["en"]):
        for part in ("XML3", "2", "NGAY_KQ", MIN_VALUE, "1900-01-01", "2099-12-31"):
            assert part in text


@pytest.mark.parametrize(
    ("table", "field", "value"),
    [
        ("XML2", "NGAY_YL", MIN_VALUE),
        ("XML3", "NGAY_TH_YL", "189912312359"),
        ("XML4", "NGAY_KQ", MIN_VALUE),
        ("XML1", "GT_THE_TU", "00010101"),
        ("XML1", "NGAY_MIEN_CCT", "00010101"),
        ("XML1", "NGAY_MIEN_CCT", MIN_VALUE),
        ("XML1", "GT_THE_DEN", "99991231"),
        ("XML3", "NGAY_KQ", MAX_VALUE),
        ("XML1", "NGAY_SINH", "999912310000"),
    ],
)
def test_the_compiled_reader_does_not_vouch_for_a_date_out_of_range(
    table: str, field: str, value: str
) -> None:
    made = _fast_visit()
    made.tables[table][0][field] = value
    expected = "SUB-0113" if field == "NGAY_SINH" else "SUB-0119"
    assert expected in _seen_codes(_both(synth.envelope([made], "01001")))


def test_a_checkin_dated_year_1_gets_the_issue_either_way() -> None:
    for field in ("NGAY_VAO", "NGAY_YL"):
        assert "SUB-0119" in _checkin_both(_checkin_document(_in_row(field, MIN_VALUE))), field


def test_a_visit_dated_year_1_is_rejected_without_checks_against_year_1() -> None:
    """The visit's dates before 1900 are one error each: the codes are not looked up on a
    day in year 1, nor the days of treatment counted from it, nor the papers' windows."""
    made = synth.make_visit(random.Random(4), ended=ENDED, care_type="03")
    for rows in made.tables.values():
        for row in rows:
            for field in ("NGAY_VAO", "NGAY_YL", "NGAY_TH_YL", "NGAY_KQ", "NGAY_VAO_NOI_TRU"):
                if row.get(field):
                    row[field] = MIN_VALUE
    analysis = analyse(synth.envelope([made], "01001"), codes=catalogs.offline(), limits=Limits())
    [result] = analysis.visits
    codes = {i.code for i in result.findings.issues}
    assert "SUB-0119" in codes
    assert not codes & {"SUB-0120", "SUB-0122", "SUB-0135", "SUB-0144"}, codes


def test_papers_periods_are_not_counted_from_a_day_out_of_range() -> None:
    """A sick leave's holder born in year 9999 (is the child under 7?) was a crash of the
    whole file; now the birth is a format error and the paper rules pass it by."""
    made = synth.make_visit(
        random.Random(8),
        ended=ENDED,
        care_type="01",
        insured=True,
    )
    made.tables["XML11"] = [sick_leave(made, 3)]
    made.tables["XML1"][0]["NGAY_SINH"] = "999912310000"
    analysis = analyse(synth.envelope([made], "01001"), codes=catalogs.offline(), limits=Limits())
    [result] = analysis.visits
    assert ("SUB-0113", "XML1", "NGAY_SINH") in {
        (i.code, i.table, i.field) for i in result.findings.issues
    }


async def test_a_re_exam_appointment_in_year_9999_is_a_row_issue_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    one = visit(code, seed=5, care_type="01", insured=True, appointment=True)
    one.tables["XML14"][0]["NGAY_HEN_KL"] = MAX_VALUE
    response = await send(client, headers, synth.envelope([one], code))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "rejected"
    found = [(i["code"], i["table"], i["field"]) for i in response.json()["visits"][0]["issues"]]
    assert ("SUB-0119", "XML14", "NGAY_HEN_KL") in found


async def test_a_checkin_dated_year_1_is_a_row_issue_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    for field in ("NGAY_VAO", "NGAY_YL"):
        row = checkin_row(code, f"LK-MIN-{field}")
        row[field] = MIN_VALUE
        response = await client.post(
            "/api/v1/checkins",
            content=write_table("XML0", [row]),
            headers={**headers, "Content-Type": "application/xml"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "rejected"
        found = [(i["code"], i["row"], i["field"]) for i in response.json()["issues"]]
        assert ("SUB-0119", 1, field) in found


async def test_a_since_no_database_holds_is_a_parameter_error(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, headers = await facility_with_token(client, session, settings)
    for since in ("0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-05:00"):
        response = await client.get("/api/v1/submissions", params={"since": since}, headers=headers)
        assert (response.status_code, response.json()["code"]) == (422, "KIT-0422"), since
    for since in ("0001-01-01T00:00:00+00:00", "2026-01-01T00:00:00+07:00"):
        response = await client.get("/api/v1/submissions", params={"since": since}, headers=headers)
        assert response.status_code == 200, (since, response.text)


async def test_a_visit_ahead_of_the_clock_is_told_the_real_now_and_the_tolerance(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    row = checkin_row(code, "LK-AHEAD")
    before = datetime.now(VIETNAM).strftime("%Y%m%d%H%M")
    row["NGAY_VAO"] = row["NGAY_YL"] = (datetime.now(VIETNAM) + timedelta(hours=1)).strftime(
        "%Y%m%d%H%M"
    )
    response = await client.post(
        "/api/v1/checkins",
        content=write_table("XML0", [row]),
        headers={**headers, "Content-Type": "application/xml"},
    )
    after = datetime.now(VIETNAM).strftime("%Y%m%d%H%M")
    [ahead] = [i for i in response.json()["issues"] if i["code"] == "SUB-0148"][:1]
    assert before <= ahead["detail"]["now"] <= after  # not now plus the tolerance
    assert ahead["detail"]["now"] in ahead["message"]["en"]
    assert ahead["detail"]["now"] in ahead["message"]["vi"]
    assert "plus 10 minutes" in ahead["message"]["en"]
    assert "cộng 10 phút" in ahead["message"]["vi"]
