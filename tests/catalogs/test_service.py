"""Catalogue rules a validator or a user relies on, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs
from vnehr.catalogs import snapshot
from vnehr.catalogs.errors import TitlesFileInvalid
from vnehr.catalogs.loaders import load_icd10, read_titles_csv
from vnehr.kit.db import Database

BEFORE = date(2025, 6, 30)
AFTER = date(2025, 7, 1)


async def test_asthma_has_its_titles_and_icd10_hierarchy(session: AsyncSession) -> None:
    entry = await catalogs.lookup(session, "icd10", "J45")
    assert entry.title_en == "Asthma"
    assert entry.title_vi == "Hen [suyễn]"
    assert [a.code for a in entry.ancestors] == ["X", "J40-J47"]
    assert entry.kind == "category"
    assert entry.children == 4  # J45.0, J45.1, J45.8, J45.9
    assert entry.ancestors[0].kind == "chapter"


@pytest.mark.parametrize("typed", ["J45.0", "j450", " J450 "])
async def test_icd10_codes_are_found_with_or_without_the_dot(
    session: AsyncSession, typed: str
) -> None:
    entry = await catalogs.lookup(session, "icd10", typed)
    assert entry.code == "J45.0"
    assert entry.parent_code == "J45"


async def test_a_province_code_means_what_it_meant_on_the_day(session: AsyncSession) -> None:
    # Code 24 was Bắc Giang until the reform; since 2025-07-01 it is the merged Bắc Ninh.
    old = await catalogs.lookup(session, "province", "24", BEFORE)
    new = await catalogs.lookup(session, "province", "24", AFTER)
    assert old.title_vi == "Tỉnh Bắc Giang"
    assert new.title_vi == "Tỉnh Bắc Ninh"
    assert sorted(p.code for p in new.predecessors) == ["24", "27"]
    assert [o.valid_to for o in new.other_versions] == [BEFORE]


async def test_province_and_ward_counts_before_and_after_the_reform(
    session: AsyncSession,
) -> None:
    async def count(name: str, on: date) -> int:
        total, cursor = 0, None
        while True:
            page = await catalogs.browse(session, name, on=on, cursor=cursor, limit=500)
            total += len(page.items)
            if page.next_cursor is None:
                return total
            cursor = page.next_cursor

    assert await count("province", BEFORE) == 63
    assert await count("province", AFTER) == 34
    assert await count("ward", AFTER) == 3321
    assert await count("district", AFTER) == 0
    assert await count("district", BEFORE) > 600


async def test_an_old_ward_points_to_the_ward_that_replaced_it(session: AsyncSession) -> None:
    hang_bac = await catalogs.lookup(session, "ward", "00061", BEFORE)
    assert hang_bac.title_vi == "Phường Hàng Bạc"
    assert [a.code for a in hang_bac.ancestors] == ["01", "002"]  # Hà Nội, Quận Hoàn Kiếm
    assert [s.code for s in hang_bac.successors] == ["00070"]
    assert hang_bac.successors[0].title_vi == "Phường Hoàn Kiếm"
    assert hang_bac.successors[0].effective_on == AFTER


async def test_an_old_ward_is_not_in_force_after_the_reform(session: AsyncSession) -> None:
    with pytest.raises(catalogs.CodeNotInForce) as caught:
        await catalogs.lookup(session, "ward", "00061", AFTER)
    assert caught.value.code == "CAT-0003"
    assert caught.value.detail["versions"][0]["valid_to"] == "2025-06-30"


async def test_a_divided_ward_lists_every_part_with_the_default_first(
    session: AsyncSession,
) -> None:
    page = await catalogs.browse(session, "ward", on=BEFORE, limit=500)
    divided = None
    cursor = page.next_cursor
    while divided is None:
        for item in page.items:
            detail = await catalogs.lookup(session, "ward", item.code, BEFORE)
            if len(detail.successors) > 1:
                divided = detail
                break
        else:
            assert cursor is not None, "no divided ward found"
            page = await catalogs.browse(session, "ward", on=BEFORE, cursor=cursor, limit=500)
            cursor = page.next_cursor
    assert divided.successors[0].is_default
    assert sum(s.is_default for s in divided.successors) == 1


async def test_care_type_codes_keep_leading_zeros_and_follow_decision_1804(
    session: AsyncSession,
) -> None:
    check = await catalogs.check_codes(
        session, "MA_LOAI_KCB", ["01", "1", "09", "14"], date(2026, 7, 31)
    )
    assert check.in_force == {"01", "09"}
    assert check.unknown == {"1", "14"}
    later = await catalogs.check_codes(session, "care-type", ["14", "16"], date(2026, 8, 1))
    assert later.in_force == {"14", "16"}


async def test_national_field_names_are_aliases_of_lists(session: AsyncSession) -> None:
    entry = await catalogs.lookup(session, "KET_QUA_DTRI", "8", date(2025, 1, 1))
    assert entry.catalog == "treatment-result"
    assert entry.title_vi == "Tử vong ngoại viện"
    with pytest.raises(catalogs.CodeNotInForce):
        await catalogs.lookup(session, "KET_QUA_DTRI", "8", date(2024, 6, 30))


async def test_search_ignores_accents_and_case(session: AsyncSession) -> None:
    page = await catalogs.browse(session, "ward", q="hoan kiem", on=AFTER)
    assert [e.title_vi for e in page.items] == ["Phường Hoàn Kiếm"]
    icd = await catalogs.browse(session, "icd10", q="ASTHMA", limit=20)
    assert {"J45", "J45.0", "J46"} <= {e.code for e in icd.items}


async def test_unknown_list_and_unknown_code_are_distinct_errors(session: AsyncSession) -> None:
    with pytest.raises(catalogs.UnknownCatalog):
        await catalogs.lookup(session, "no-such-list", "1")
    with pytest.raises(catalogs.UnknownCode):
        await catalogs.lookup(session, "icd10", "Q99.99")


async def test_reloading_a_list_replaces_it_whole(session: AsyncSession) -> None:
    before = {c.name: c.entries for c in await catalogs.list_catalogs(session)}
    loaded = await catalogs.load_builtin(session, only=["ward", "gender"])
    after = {c.name: c.entries for c in await catalogs.list_catalogs(session)}
    assert loaded == {"ward": before["ward"], "gender": 3}
    assert after == before
    detail = await catalogs.lookup(session, "ward", "00061", BEFORE)
    assert [s.code for s in detail.successors] == ["00070"]


def test_vietnamese_titles_file_is_merged_by_normalised_code(tmp_path: Path) -> None:
    csv = tmp_path / "vi.csv"
    csv.write_text("code,title_vi\nj450,Hen dị ứng\nI10,Tăng huyết áp\n", encoding="utf-8")
    data = load_icd10(csv)
    titles = {e.code: e.title_vi for e in data.entries if e.title_vi}
    assert titles == {"J45.0": "Hen dị ứng", "I10": "Tăng huyết áp"}
    assert "vi.csv" in data.edition


def test_a_broken_titles_file_names_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "vi.csv"
    csv.write_text("code,title_vi\nJ45,Hen\nI10\n", encoding="utf-8")
    with pytest.raises(TitlesFileInvalid) as caught:
        read_titles_csv(csv)
    assert caught.value.detail["line"] == 3
    assert caught.value.code == "CAT-0005"


async def test_a_province_counts_the_units_below_it_on_the_day(session: AsyncSession) -> None:
    hanoi_after = await catalogs.lookup(session, "province", "01", AFTER)
    hanoi_before = await catalogs.lookup(session, "province", "01", BEFORE)
    assert hanoi_after.children == 126  # wards and communes of Hà Nội after the reform
    assert hanoi_before.children == 30  # its districts before


async def test_an_expired_catalogue_copy_is_refreshed_by_one_request_at_a_time(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load, every request in flight when the copy expired used to query the database.
    first = await snapshot.recent(db, max_age=0)
    opened = 0
    release = asyncio.Event()
    real = db.read_session

    @asynccontextmanager
    async def slow_read_session() -> AsyncIterator[AsyncSession]:
        nonlocal opened
        opened += 1
        await release.wait()
        async with real() as session:
            yield session

    monkeypatch.setattr(db, "read_session", slow_read_session)
    refreshing = asyncio.create_task(snapshot.recent(db, max_age=0))
    await asyncio.sleep(0)  # the refresh has begun and waits on the database
    others = await asyncio.wait_for(
        asyncio.gather(*(snapshot.recent(db, max_age=0) for _ in range(10))), timeout=5
    )
    assert opened == 1
    assert all(copy is first for copy in others)  # served at once from the copy in hand
    release.set()
    assert (await refreshing).stamp == first.stamp
    assert opened == 1
    await snapshot.recent(db, max_age=0)  # the next expiry refreshes again
    assert opened == 2
