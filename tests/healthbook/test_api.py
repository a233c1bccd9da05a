"""The citizen reads their health book: timeline, one visit, its PDF, the summary; a parent reads
a child's book; nobody reads anyone else's."""

from __future__ import annotations

import io
import random
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from pypdf import PdfReader
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import error, sign_in_as
from tests.submissions.test_intake import facility_with_token, send
from vnehr import records
from vnehr.audit import AuditEvent
from vnehr.healthbook.schemas import FacilityRef
from vnehr.identity.models import Person, Representative
from vnehr.kit.clock import utcnow
from vnehr.kit.paging import encode_cursor
from vnehr.kit.settings import Settings
from vnehr.records.models import TimelineEntry
from vnehr.submissions import synth

PERSON_FIELDS = ("HO_TEN", "SO_CCCD", "NGAY_SINH", "GIOI_TINH")
STRANGER = ("001090000123", "Lê Văn Lạ", "1990-01-01", "male")


def visit_of(
    code: str, seed: int, ended: datetime, like: synth.SynthVisit | None = None, **kw: Any
) -> synth.SynthVisit:
    """A synthetic visit; with ``like``, of the same person (name, ID, birth, sex copied into
    every table that carries them)."""
    made = synth.make_visit(random.Random(seed), facility_code=code, ended=ended, **kw)
    if like is not None:
        source = like.tables["XML1"][0]
        for rows in made.tables.values():
            for row in rows:
                for name in PERSON_FIELDS:
                    if row.get(name):
                        row[name] = source[name]
    return made


def who(one: synth.SynthVisit) -> tuple[str, str, str, str]:
    xml1 = one.tables["XML1"][0]
    born = xml1["NGAY_SINH"]
    return (
        xml1["SO_CCCD"],
        xml1["HO_TEN"],
        f"{born[:4]}-{born[4:6]}-{born[6:8]}",
        "male" if xml1["GIOI_TINH"] == "1" else "female",
    )


async def book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, list[synth.SynthVisit]]:
    """Three visits of one adult at one facility: a year ago, two months ago (chronic care),
    and last month; the facility sends them all in one file."""
    code, headers = await facility_with_token(client, session, settings)
    now = utcnow().replace(tzinfo=None, second=0, microsecond=0)
    first = visit_of(code, 11, now - timedelta(days=365), care_type="01", age_group=3)
    visits = [
        first,
        visit_of(code, 12, now - timedelta(days=60), first, care_type="07", age_group=3),
        visit_of(code, 13, now - timedelta(days=30), first, care_type="01", age_group=3),
    ]
    response = await send(client, headers, synth.envelope(visits, code))
    assert response.status_code == 201, response.text
    assert response.json()["status"] != "rejected", response.text
    return code, visits


async def test_the_timeline_lists_my_visits_newest_first_page_by_page(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    first = await client.get("/api/v1/me/timeline", params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    second = await client.get(
        "/api/v1/me/timeline", params={"limit": 2, "cursor": page["next_cursor"]}
    )
    rest = second.json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    items = page["items"] + rest["items"]
    ends = [i["ended_at"] for i in items]
    assert ends == sorted(ends, reverse=True)
    newest = items[0]
    xml1 = visits[2].tables["XML1"][0]
    assert newest["facility"] == {"code": code, "name": "Bệnh viện thử"}
    assert newest["care_type"]["code"] == "01"
    assert newest["care_type"]["vi"]
    assert newest["main_diagnosis"]["code"].replace(".", "") == xml1["MA_BENH_CHINH"].replace(
        ".", ""
    )
    assert newest["main_diagnosis"]["vi"] or newest["main_diagnosis"]["en"]
    assert newest["outcome"]["code"] == xml1["KET_QUA_DTRI"]
    assert [i["care_type"]["code"] for i in items] == ["01", "07", "01"]
    # the same checks as every other route: stable codes, both languages
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"for": "12345"}):
        refused = await client.get("/api/v1/me/timeline", params=bad)
        assert (refused.status_code, refused.json()["code"]) == (422, "KIT-0422"), bad
    bad_cursor = await client.get("/api/v1/me/timeline", params={"cursor": "!!"})
    assert bad_cursor.status_code == 400
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/v1/me/timeline",status="200"' in metrics
    client.cookies.clear()
    assert (await client.get("/api/v1/me/timeline")).json()["code"] == "AUTH-0001"


async def test_a_cursor_with_a_date_no_database_holds_is_refused_on_the_api_and_the_page(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A cursor comes back from the caller: a changed one is a 400 with the cursor's code (an
    error page on the book page), never a 500 from the database."""
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    for ended in (
        "xx",
        "2026-01-01",
        "2026-01-01T00:00:00",  # no time zone: the column holds moments
        "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    ):
        cursor = encode_cursor((ended, 1))
        error(await client.get("/api/v1/me/timeline", params={"cursor": cursor}), 400, "KIT-0001")
        page = await client.get("/portal/book", params={"cursor": cursor})
        assert page.status_code == 400, (ended, page.text[:200])
        assert page.headers["content-type"].startswith("text/html")
        assert "<code>KIT-0001</code>" in page.text
    first = (await client.get("/api/v1/me/timeline", params={"limit": 1})).json()
    page = await client.get("/portal/book", params={"cursor": first["next_cursor"]})
    assert page.status_code == 200


async def test_a_visit_without_an_end_does_not_stop_the_paging(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The column allows a visit without an end (NGAY_RA is required of a file today): it is
    listed first, and the cursor after it leads on to the rest, on both databases, in one's
    own book and in a represented person's (``records.timeline_page``)."""
    _, visits = await book(client, session, settings)
    me = await sign_in_as(client, session, settings, who(visits[0]))
    ids = [i["id"] for i in (await client.get("/api/v1/me/timeline")).json()["items"]]
    await session.execute(
        update(TimelineEntry).where(TimelineEntry.id == ids[1]).values(ended_at=None)
    )
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        page = await client.get(
            "/api/v1/me/timeline", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        seen += [i["id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[1], ids[0], ids[2]]
    assert (await client.get("/portal/book")).status_code == 200
    theirs: list[int] = []
    after = None
    while rows := await records.timeline_page(session, [me.id], after=after, limit=1):
        theirs.append(rows[0][0])
        after = (rows[0][8], rows[0][0])
        assert len(theirs) <= 3
    assert theirs == seen


async def test_one_visit_in_full_matches_what_the_facility_sent(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    newest = (await client.get("/api/v1/me/timeline")).json()["items"][0]
    response = await client.get(f"/api/v1/me/visits/{newest['id']}")
    assert response.status_code == 200, response.text
    got = response.json()
    sent = visits[2].tables
    xml1 = sent["XML1"][0]
    assert got["person_name"] == xml1["HO_TEN"]
    assert got["diagnoses"][0]["main"] is True
    codes = [d["code"].replace(".", "") for d in got["diagnoses"]]
    expected = [xml1["MA_BENH_CHINH"]] + [c for c in xml1["MA_BENH_KT"].split(";") if c]
    assert codes == [c.replace(".", "") for c in dict.fromkeys(expected)]
    assert [d["name"] for d in got["drugs"]] == [r["TEN_THUOC"] for r in sent.get("XML2", [])]
    assert all(d["dose"] for d in got["drugs"])
    assert len(got["results"]) == len(sent.get("XML4", []))
    for result, row in zip(got["results"], sent.get("XML4", []), strict=True):
        assert (result["value"], result["unit"]) == (
            row["GIA_TRI"] or None,
            row["DON_VI_DO"] or None,
        )
    assert len(got["services"]) == len(sent.get("XML3", []))
    if "XML8" in sent:
        assert got["summary"]["course"] == sent["XML8"][0]["QT_BENHLY"]
    assert got["version"] == 1


async def test_the_pdf_is_a_real_pdf_in_vietnamese(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    newest = (await client.get("/api/v1/me/timeline")).json()["items"][0]
    response = await client.get(f"/api/v1/me/visits/{newest['id']}.pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert "attachment" in response.headers["content-disposition"]
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    xml1 = visits[2].tables["XML1"][0]
    assert "SỔ SỨC KHỎE ĐIỆN TỬ" in text
    assert xml1["HO_TEN"] in text
    assert "Chẩn đoán" in text
    assert newest["main_diagnosis"]["code"] in text
    first_drug = visits[2].tables["XML2"][0]["TEN_THUOC"]
    assert first_drug.split()[0] in text


async def test_the_summary_gathers_conditions_medicines_and_measurements(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    response = await client.get("/api/v1/me/summary")
    assert response.status_code == 200, response.text
    got = response.json()
    chronic_visit = visits[1].tables["XML1"][0]
    chronic = {c["code"].replace(".", "") for c in got["chronic_conditions"]}
    assert (
        chronic_visit["MA_BENH_CHINH"].replace(".", "") in chronic
    )  # care type 07: medicine by appointment
    old_only = {r["TEN_THUOC"] for r in visits[0].tables.get("XML2", [])} - {
        r["TEN_THUOC"] for v in visits[1:] for r in v.tables.get("XML2", [])
    }
    current = {m["name"] for m in got["current_medicines"]}
    assert current == {r["TEN_THUOC"] for v in visits[1:] for r in v.tables.get("XML2", [])}
    assert not current & old_only  # a year-old prescription is not current
    weights = [m for m in got["measurements"] if m["kind"] == "weight"]
    assert len(weights) == 3
    assert [v["id"] for v in got["last_visits"]] == [
        i["id"] for i in (await client.get("/api/v1/me/timeline")).json()["items"]
    ]
    assert got["allergies"] == []
    # ... which the page says is for want of an allergy field, not "no allergies" (D29)
    page = await client.get("/portal/book/summary")
    assert "không có trường dị ứng" in page.text
    assert "Chưa ghi nhận dị ứng" not in page.text

    # laboratory trends: each numeric index with its values, newest visit first
    newest_first = list(reversed(visits))
    expected: dict[str, list[float]] = {}
    for one in newest_first:
        for row in one.tables.get("XML4", []):
            try:
                value = float(row["GIA_TRI"])
            except (KeyError, ValueError):
                continue
            key = row.get("MA_CHI_SO") or row["TEN_CHI_SO"]
            expected.setdefault(key, []).append(value)
    assert got["lab_trends"], "the synthetic visits carry numeric results"
    for trend in got["lab_trends"]:
        key = trend["code"] or trend["name"]
        assert [p["value"] for p in trend["points"]] == expected[key][:6]
        if len(trend["points"]) >= 2:
            assert trend["direction"] in ("up", "down", "steady")
    # risk factors: read from the diagnoses, each naming its ICD-10 code
    codes = {c["code"] for c in got["chronic_conditions"]}
    for factor in got["risk_factors"]:
        assert factor["basis"].startswith("ICD-10 ")
        assert factor["vi"]
        assert factor["en"]
    if any(c.startswith("I10") for c in codes):
        assert "hypertension" in {f["code"] for f in got["risk_factors"]}


async def test_risk_factors_and_trends_are_read_as_a_clinician_would() -> None:
    from datetime import UTC

    from vnehr.healthbook import view

    found = view.risk_factors(["I10", "E11.9", "J06.9", "Z72.0"])
    assert [(f.code, f.basis) for f in found] == [
        ("hypertension", "ICD-10 I10"),
        ("diabetes", "ICD-10 E11.9"),
        ("tobacco", "ICD-10 Z72.0"),
    ]
    assert view.risk_factors(["J06.9", "K29.7"]) == []
    header = view.Header  # visits newest first: glucose 9.0 then 7.0 (rising), HbA1c steady
    rows = []
    for visit_id, (glucose, hba1c) in enumerate([("9.0", "7.1"), ("7.0", "7.0"), ("6.0", "x")]):
        rows.append(
            (
                header(
                    id=visit_id,
                    facility=None,
                    care_type="01",
                    main_diagnosis=None,  # type: ignore[arg-type]
                    outcome=None,
                    insured=True,
                    started_at=None,
                    ended_at=datetime(2026, 10 - visit_id, 1, tzinfo=UTC),
                    version=1,
                ),
                {
                    "XML4": [
                        {
                            "MA_CHI_SO": "GLU",
                            "TEN_CHI_SO": "Glucose",
                            "GIA_TRI": glucose,
                            "DON_VI_DO": "mmol/L",
                        },
                        {"MA_CHI_SO": "HBA1C", "TEN_CHI_SO": "HbA1c", "GIA_TRI": hba1c},
                    ]
                },
            )
        )
    trends = {t.code: t for t in view.lab_trends(rows)}
    assert [p.value for p in trends["GLU"].points] == [9.0, 7.0, 6.0]
    assert trends["GLU"].direction == "up"
    assert trends["GLU"].unit == "mmol/L"
    assert [p.value for p in trends["HBA1C"].points] == [7.1, 7.0]
    assert trends["HBA1C"].direction == "steady"


async def test_nobody_reads_a_visit_that_is_not_in_their_book(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    visit_id = (await client.get("/api/v1/me/timeline")).json()["items"][0]["id"]
    await sign_in_as(client, session, settings, STRANGER)
    error(await client.get(f"/api/v1/me/visits/{visit_id}"), 404, "HB-0001")
    error(await client.get(f"/api/v1/me/visits/{visit_id}.pdf"), 404, "HB-0001")
    error(await client.get("/api/v1/me/visits/999999999"), 404, "HB-0001")
    assert (await client.get("/api/v1/me/timeline")).json() == {"items": [], "next_cursor": None}
    error(
        await client.get(
            "/api/v1/me/timeline", params={"for": visits[0].tables["XML1"][0]["SO_CCCD"]}
        ),
        403,
        "HB-0002",
    )
    client.cookies.clear()
    error(await client.get("/api/v1/me/timeline"), 401, "AUTH-0001")
    error(await client.get(f"/api/v1/me/visits/{visit_id}"), 401, "AUTH-0001")


async def test_a_level_one_identity_reads_no_book_and_is_told_to_upgrade(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    owner = who(visits[0])
    await sign_in_as(client, session, settings, owner)
    visit_id = (await client.get("/api/v1/me/timeline")).json()["items"][0]["id"]
    # the same person whose VNeID account is at level 1 (D12)
    await sign_in_as(client, session, settings, owner, level=1)
    for url in (
        "/api/v1/me/timeline",
        "/api/v1/me/summary",
        f"/api/v1/me/visits/{visit_id}",
        f"/api/v1/me/visits/{visit_id}.pdf",
        "/api/v1/me/access-log",
        "/api/v1/me/consents",
    ):
        body = error(await client.get(url), 403, "ID-0101")
        assert "level 2" in body["message"]["en"], url
    error(await client.post("/api/v1/me/reception-codes"), 403, "ID-0101")
    # the web pages say what to do: upgrade at the ward police office
    upgrade = "nâng mức tài khoản VNeID"
    portal = await client.get("/portal")
    assert portal.status_code == 200
    assert upgrade in portal.text
    page = await client.get("/portal/book")
    assert upgrade in page.text
    assert f"/portal/book/visits/{visit_id}" not in page.text


async def test_ids_beyond_64_bits_are_refused_cleanly(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    _, visits = await book(client, session, settings)
    await sign_in_as(client, session, settings, who(visits[0]))
    huge = "9" * 23
    for method, url in (
        ("GET", f"/api/v1/me/visits/{huge}"),
        ("GET", f"/api/v1/me/visits/{huge}.pdf"),
        ("GET", f"/api/v1/me/access-log?before={huge}"),
        ("POST", f"/api/v1/me/access-log/{huge}/dispute"),
        ("DELETE", f"/api/v1/me/consents/{huge}"),
        ("GET", f"/portal/book/visits/{huge}"),
        ("GET", f"/api/v1/patients/{visits[0].tables['XML1'][0]['SO_CCCD']}/visits/{huge}"),
        ("POST", f"/api/v1/emergency-accesses/{huge}/review"),
        ("POST", f"/api/v1/access-disputes/{huge}/close"),
    ):
        response = await client.request(method, url, json={})
        assert response.status_code in (404, 422), (url, response.status_code)
    from tests.web.test_login import _hidden

    csrf = _hidden((await client.get("/portal")).text)["csrf"]
    for url in (
        f"/portal/book/access-log/{huge}/dispute",
        f"/review/emergency/{huge}",
        f"/review/dispute/{huge}",
    ):
        response = await client.post(url, data={"csrf": csrf})
        assert response.status_code in (404, 422), (url, response.status_code)


async def test_a_parent_reads_the_childs_book_and_the_read_is_audited(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    child_visit = visit_of(code, 21, datetime(2026, 10, 1, 9, 0), age_group=0)  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([child_visit], code))).status_code == 201
    child_id = child_visit.tables["XML1"][0]["SO_CCCD"]
    child = (await session.scalars(select(Person).where(Person.personal_id == child_id))).one()
    parent = await sign_in_as(client, session, settings, STRANGER)
    session.add(
        Representative(
            agent_id=parent.id,
            subject_id=child.id,
            relation="parent",
            valid_from=date(2020, 1, 1),
            valid_to=None,
            created_at=utcnow(),
            created_by="test",
        )
    )
    await session.flush()
    own = (await client.get("/api/v1/me/timeline")).json()
    assert own["items"] == []  # the parent's own book is empty
    theirs = await client.get("/api/v1/me/timeline", params={"for": child_id})
    assert theirs.status_code == 200, theirs.text
    [item] = theirs.json()["items"]
    detail = await client.get(f"/api/v1/me/visits/{item['id']}")
    assert detail.status_code == 200
    assert detail.json()["person_name"] == child_visit.tables["XML1"][0]["HO_TEN"]
    rows = list(
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.person_id == child.id, AuditEvent.actor == f"person:{STRANGER[0]}"
            )
        )
    )
    assert sorted(r.action for r in rows) == ["timeline.read", "visit.read"]
    assert all(r.detail == {"as": "parent"} for r in rows)
    # The child's own reads leave no audit rows: only reads by others do.
    before = len(rows)
    await sign_in_as(client, session, settings, who(child_visit))
    assert (await client.get(f"/api/v1/me/visits/{item['id']}")).status_code == 200
    after = await session.scalars(select(AuditEvent).where(AuditEvent.person_id == child.id))
    assert len([r for r in after if r.action.endswith(".read")]) == before


async def test_a_correction_keeps_the_visit_id_and_shows_the_new_version(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 31, datetime(2026, 10, 5, 9, 0))  # noqa: DTZ001
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    await sign_in_as(client, session, settings, who(one))
    [before] = (await client.get("/api/v1/me/timeline")).json()["items"]
    one.tables["XML1"][0]["CHAN_DOAN_RV"] = "Chẩn đoán đã sửa"
    assert (await send(client, headers, synth.envelope([one], code))).status_code == 201
    [after] = (await client.get("/api/v1/me/timeline")).json()["items"]
    assert (after["id"], after["version"]) == (before["id"], 2)
    detail = (await client.get(f"/api/v1/me/visits/{after['id']}")).json()
    assert detail["diagnosis_text"] == "Chẩn đoán đã sửa"


def _header(visit_id: int, ended: datetime) -> Any:
    from vnehr.healthbook import view

    return view.Header(
        id=visit_id,
        facility=FacilityRef(code="01001"),
        care_type="01",
        main_diagnosis=None,
        outcome=None,
        insured=True,
        started_at=None,
        ended_at=ended,
        version=1,
    )


async def test_a_trend_starts_at_the_newest_result_and_never_mixes_units() -> None:
    from datetime import UTC

    from vnehr.healthbook import view

    def glucose(value: str, unit: str, at: str = "") -> dict[str, str]:
        row = {"MA_CHI_SO": "GLU", "TEN_CHI_SO": "Glucose", "GIA_TRI": value, "DON_VI_DO": unit}
        return {**row, "NGAY_KQ": at} if at else row

    # one visit, two results in STT order: 10.0 at 08:00, then 6.0 at 16:00 (falling)
    one_day = [
        (
            _header(2, datetime(2026, 10, 2, 10, tzinfo=UTC)),
            {
                "XML4": [
                    glucose("10.0", "mmol/L", "202610020800"),
                    glucose("6.0", "mmol/L", "202610021600"),
                ]
            },
        ),
        (_header(1, datetime(2026, 9, 2, tzinfo=UTC)), {"XML4": [glucose("5.0", "mmol/L")]}),
    ]
    [trend] = view.lab_trends(one_day)
    assert [p.value for p in trend.points] == [6.0, 10.0, 5.0]
    assert trend.direction == "down"
    # the same index in mg/dL before: another series, not a 94% fall
    units = [
        (_header(2, datetime(2026, 10, 2, tzinfo=UTC)), {"XML4": [glucose("6.0", "mmol/L")]}),
        (_header(1, datetime(2026, 9, 2, tzinfo=UTC)), {"XML4": [glucose("108", "mg/dL")]}),
    ]
    found = {t.unit: [p.value for p in t.points] for t in view.lab_trends(units)}
    assert found == {"mmol/L": [6.0], "mg/dL": [108.0]}
    assert all(t.direction is None for t in view.lab_trends(units))


async def test_current_medicines_are_newest_first_with_the_strength_written_once() -> None:
    from datetime import UTC

    from vnehr.healthbook import view

    now = datetime(2026, 10, 10, tzinfo=UTC)
    drugs = [  # STT order, not time order
        {"STT": "1", "TEN_THUOC": "Omeprazol 20mg", "HAM_LUONG": "20mg", "NGAY_YL": "202610010800"},
        {"STT": "2", "TEN_THUOC": "Amlodipin", "HAM_LUONG": "5 mg", "NGAY_YL": "202610051600"},
    ]
    visits = [(_header(1, datetime(2026, 10, 5, 10, tzinfo=UTC)), {"XML2": drugs})]
    got = view.summary("A", None, visits, _NoTitles(), now=now)
    assert [m.name for m in got.current_medicines] == ["Amlodipin", "Omeprazol 20mg"]
    assert [m.label for m in got.current_medicines] == ["Amlodipin 5 mg", "Omeprazol 20mg"]


class _NoTitles:
    def in_force(self, list_name: str, code: str, day: date) -> Any:
        return None


async def test_titles_are_those_in_force_on_the_vietnam_day_of_the_visit(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Care type 11 is valid from 2026-08-01 (D4); a visit ending 2026-08-01 00:30 in Vietnam
    is 2026-07-31 in UTC, and the book looked its title up on that day (none)."""
    code, headers = await facility_with_token(client, session, settings)
    one = visit_of(code, 71, datetime(2026, 8, 1, 0, 30), care_type="01", age_group=3)  # noqa: DTZ001
    one.tables["XML1"][0]["MA_LOAI_KCB"] = "11"
    response = await send(client, headers, synth.envelope([one], code))
    assert response.json()["status"] != "rejected", response.text
    await sign_in_as(client, session, settings, who(one))
    [item] = (await client.get("/api/v1/me/timeline")).json()["items"]
    assert item["care_type"]["code"] == "11"
    assert item["care_type"]["vi"], item
    got = (await client.get(f"/api/v1/me/visits/{item['id']}")).json()
    assert got["care_type"]["vi"] == item["care_type"]["vi"]
    pdf = await client.get(f"/api/v1/me/visits/{item['id']}.pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "lưu động" in text  # the title of care type 11
    summary = (await client.get("/api/v1/me/summary")).json()
    assert summary["last_visits"][0]["care_type"]["vi"] == item["care_type"]["vi"]
