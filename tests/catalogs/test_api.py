"""The catalogue API as a facility's IT staff or a validator would call it."""

from __future__ import annotations

import base64
import json

import httpx
import pytest


def _cursor(key: list[object]) -> str:
    """A cursor as a caller could forge it."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


async def test_asthma_answers_like_the_readme_says(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/catalogs/icd10/J45")
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "J45"
    assert body["title_en"] == "Asthma"
    assert body["title_vi"] == "Hen [suyễn]"
    assert [a["code"] for a in body["ancestors"]] == ["X", "J40-J47"]


async def test_the_index_lists_every_catalogue_with_its_source(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/catalogs")
    assert response.status_code == 200
    by_name = {c["name"]: c for c in response.json()}
    assert {"icd10", "province", "district", "ward", "care-type", "treatment-result"} <= set(
        by_name
    )
    assert by_name["icd10"]["entries"] == 12542
    assert by_name["care-type"]["national_field"] == "MA_LOAI_KCB"
    assert "1804" in by_name["care-type"]["source"]


async def test_paging_walks_a_whole_list_once(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"on": "2025-07-01", "limit": "7"}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/api/v1/catalogs/province", params=params)
        assert response.status_code == 200
        page = response.json()
        seen += [item["code"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 34
    assert seen == sorted(set(seen))
    assert seen[0] == "01"


async def test_search_by_vietnamese_words_without_accents(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/catalogs/ward", params={"q": "hang bac", "on": "2025-01-01"}
    )
    assert [(i["code"], i["title_vi"]) for i in response.json()["items"]] == [
        ("00061", "Phường Hàng Bạc")
    ]


async def test_all_versions_shows_a_reused_code_twice(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/catalogs/ward", params={"q": "00070", "all_versions": "true"}
    )
    titles = [i["title_vi"] for i in response.json()["items"] if i["code"] == "00070"]
    assert titles == ["Phường Hàng Trống", "Phường Hoàn Kiếm"]


async def test_children_of_a_code_by_parent(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/catalogs/icd10", params={"parent": "J45"})
    assert [i["code"] for i in response.json()["items"]] == ["J45.0", "J45.1", "J45.8", "J45.9"]


async def test_the_entry_on_a_date_before_the_reform(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/catalogs/MAXA_CU_TRU/00061", params={"on": "2025-06-30"})
    assert response.status_code == 200
    body = response.json()
    assert body["catalog"] == "ward"
    assert body["successors"][0]["code"] == "00070"


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/catalogs/nonsense", {}, 404, "CAT-0001"),
        ("/api/v1/catalogs/nonsense/J45", {}, 404, "CAT-0001"),
        ("/api/v1/catalogs/icd10/ZZZ", {}, 404, "CAT-0002"),
        ("/api/v1/catalogs/ward/00061", {"on": "2025-07-01"}, 404, "CAT-0003"),
        ("/api/v1/catalogs/ward", {"on": "01/07/2025"}, 422, "CAT-0004"),
        ("/api/v1/catalogs/ward", {"on": "2025-02-30"}, 422, "CAT-0004"),
        ("/api/v1/catalogs/ward", {"cursor": "garbage!"}, 400, "KIT-0001"),
        ("/api/v1/catalogs/ward", {"limit": "0"}, 422, "KIT-0422"),
        # forged cursors: ids beyond a 64-bit column, NUL in the code (both were a 500)
        ("/api/v1/catalogs/province", {"cursor": _cursor(["01", 2**63])}, 400, "KIT-0001"),
        ("/api/v1/catalogs/province", {"cursor": _cursor(["01", 2**64 - 1])}, 400, "KIT-0001"),
        ("/api/v1/catalogs/province", {"cursor": _cursor(["01", -(2**63) - 1])}, 400, "KIT-0001"),
        ("/api/v1/catalogs/province", {"cursor": _cursor(["\x00", 1])}, 400, "KIT-0001"),
        # NUL anywhere in the address: no text column holds it (a 500 on PostgreSQL)
        ("/api/v1/catalogs/province", {"q": "a\x00b"}, 400, "KIT-0002"),
        ("/api/v1/catalogs/province", {"kind": "a\x00b"}, 400, "KIT-0002"),
        ("/api/v1/catalogs/icd10", {"parent": "J\x0045"}, 400, "KIT-0002"),
        ("/api/v1/catalogs/prov%00ince", {}, 400, "KIT-0002"),
        ("/api/v1/catalogs/icd10/J%0045", {}, 400, "KIT-0002"),
    ],
)
async def test_bad_requests_get_stable_codes_in_both_languages(
    client: httpx.AsyncClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert body["message"]["vi"]
    assert body["message"]["en"]


async def test_openapi_documents_every_error_response(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    entry = spec["paths"]["/api/v1/catalogs/{name}/{code}"]["get"]
    assert {"404", "422"} <= set(entry["responses"])
    assert (await client.get("/docs")).status_code == 200


async def test_wards_of_a_province_by_parent(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/catalogs/ward", params={"parent": "01", "on": "2025-07-01", "limit": "500"}
    )
    items = response.json()["items"]
    assert len(items) == 126
    assert {i["parent_list"] for i in items} == {"province"}
