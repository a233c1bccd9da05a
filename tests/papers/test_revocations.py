"""The revocation list at national volume, as SMART Health Card verifiers read it: the whole
list (``/.well-known/crl/{kid}.json``) answers 304 to a verifier that has the current one;
``?limit=`` pages it in the order of revocation and ``?since=`` goes on from where the last
page ended, so a verifier keeps up by reading only what is new; a revocation committed after
a later one was read (a slow transaction) is still handed out; ``crlVersion`` in the JWKS
changes with every revocation, a late one included."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_api import error
from tests.papers.test_api import SCOPES, driver_body
from tests.submissions.test_intake import facility_with_token
from vnehr.kit.clock import utcnow
from vnehr.kit.settings import Settings
from vnehr.papers import service
from vnehr.papers.models import Paper


def _holder(n: int) -> dict[str, str]:
    return {"personal_id": f"0010910{n:05d}", "name": f"Người Thứ {n}", "birth_date": "1991-01-01"}


class Hub:
    """A facility issuing and revoking driver's certificates, and a verifier reading the
    hub's keys and revocation list."""

    def __init__(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        self.client, self.session = client, session
        self.headers: dict[str, str] = {}
        self.made = 0

    async def revoked(self) -> Paper:
        self.made += 1
        body = driver_body(holder=_holder(self.made))
        made = await self.client.post("/api/v1/papers", json=body, headers=self.headers)
        assert made.status_code == 201, made.text
        paper_id = made.json()["id"]
        done = await self.client.post(
            f"/api/v1/papers/{paper_id}/revoke", json={"reason": "Cấp nhầm"}, headers=self.headers
        )
        assert done.status_code == 200, done.text
        paper = await self.session.get(Paper, paper_id)
        assert paper is not None
        await self.session.refresh(paper)
        return paper

    async def stamp(self, paper: Paper, at: datetime) -> None:
        """When the revocation happened (what a slow or earlier transaction would have
        written)."""
        await self.session.execute(update(Paper).where(Paper.id == paper.id).values(revoked_at=at))
        await self.session.refresh(paper)

    async def kid_and_version(self) -> tuple[str, int]:
        [key] = (await self.client.get("/.well-known/jwks.json")).json()["keys"]
        return key["kid"], key["crlVersion"]

    async def page(self, **params: Any) -> dict[str, Any]:
        kid, _ = await self.kid_and_version()
        answer = await self.client.get(f"/.well-known/crl/{kid}.json", params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


async def _hub(client: httpx.AsyncClient, session: AsyncSession, settings: Settings) -> Hub:
    hub = Hub(client, session)
    _, hub.headers = await facility_with_token(client, session, settings, scopes=SCOPES)
    return hub


async def test_the_list_is_paged_in_revocation_order_and_resumed_from_a_cursor(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    hub = await _hub(client, session, settings)
    long_ago = utcnow() - timedelta(hours=2)
    old = [await hub.revoked() for _ in range(5)]
    for n, paper in enumerate(reversed(old)):  # revoked in the opposite order of issue
        await hub.stamp(paper, long_ago + timedelta(seconds=n))
    expected = [p.rid for p in reversed(old)]

    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        pages.append(await hub.page(**params))
        params["since"] = pages[-1]["next"]
        if not pages[-1]["more"]:
            break
    assert [len(p["rids"]) for p in pages[:-1]] == [2] * (len(pages) - 1)
    read = [rid for p in pages for rid in p["rids"]]
    assert len(read) == len(set(read))
    assert [rid for rid in read if rid in expected] == expected
    assert {(p["kid"], p["method"]) for p in pages} == {(pages[0]["kid"], "rid")}
    caught_up = params["since"]
    assert (await hub.page(since=caught_up))["rids"] == []

    # a revocation of a moment ago is handed out at once, and again on the next read (it
    # is not settled: a transaction still open may yet commit a revocation before it)
    fresh = await hub.revoked()
    now = await hub.page(since=caught_up)
    assert (now["rids"], now["next"], now["more"]) == ([fresh.rid], caught_up, False)
    # ... such as this one, stamped a minute before but committed after it was read
    late = await hub.revoked()
    assert fresh.revoked_at is not None
    await hub.stamp(late, fresh.revoked_at - timedelta(minutes=1))
    assert (await hub.page(since=caught_up))["rids"] == [late.rid, fresh.rid]
    # settled, the cursor moves past them; nothing is lost, nothing comes twice after
    await hub.stamp(late, utcnow() - service.SETTLE - timedelta(seconds=2))
    await hub.stamp(fresh, utcnow() - service.SETTLE - timedelta(seconds=1))
    settled = await hub.page(since=caught_up)
    assert (settled["rids"], settled["more"]) == ([late.rid, fresh.rid], False)
    assert settled["next"] != caught_up
    assert (await hub.page(since=settled["next"]))["rids"] == []

    # the whole list has them all, with the JWKS's version
    whole = await hub.page()
    assert {*expected, late.rid, fresh.rid} <= set(whole["rids"])
    assert whole["ctr"] == (await hub.kid_and_version())[1]


async def test_cache_headers_spare_verifiers_the_list_they_have(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    hub = await _hub(client, session, settings)
    first = await hub.revoked()
    kid, version = await hub.kid_and_version()
    address = f"/.well-known/crl/{kid}.json"
    whole = await client.get(address)
    assert whole.status_code == 200
    assert first.rid in whole.json()["rids"]
    etag = whole.headers["etag"]
    assert "max-age" in whole.headers["cache-control"]
    assert whole.headers["access-control-allow-origin"] == "*"
    unchanged = await client.get(address, headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["etag"] == etag
    jwks = await client.get("/.well-known/jwks.json")
    cached = await client.get(
        "/.well-known/jwks.json", headers={"If-None-Match": jwks.headers["etag"]}
    )
    assert cached.status_code == 304

    # a new revocation: a new version, a new list
    second = await hub.revoked()
    _, newer = await hub.kid_and_version()
    assert newer > version
    changed = await client.get(address, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert {first.rid, second.rid} <= set(changed.json()["rids"])
    assert changed.json()["ctr"] == newer
    assert (
        await client.get("/.well-known/jwks.json", headers={"If-None-Match": jwks.headers["etag"]})
    ).status_code == 200

    # a full page of settled revocations never changes: cached for good; the last page not
    await hub.stamp(first, utcnow() - timedelta(hours=2))
    await hub.stamp(second, utcnow() - timedelta(hours=1))
    full = await client.get(address, params={"limit": 1})
    assert full.json()["more"] is True
    assert "immutable" in full.headers["cache-control"]
    again = await client.get(
        address, params={"limit": 1}, headers={"If-None-Match": full.headers["etag"]}
    )
    assert again.status_code == 304
    rest = await client.get(address, params={"limit": 1000, "since": full.json()["next"]})
    assert rest.json()["more"] is False
    assert "immutable" not in rest.headers["cache-control"]
    assert rest.headers["etag"] != full.headers["etag"]


async def test_a_late_revocation_changes_the_version_once_settled(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A verifier reads version v while a slower transaction, stamped before the newest
    revocation, has not committed yet; when it has, the version must move (so the verifier
    reads the list again) at the latest once the settling time has passed."""
    hub = await _hub(client, session, settings)
    newest = await hub.revoked()
    assert newest.revoked_at is not None
    now = utcnow()
    seen = await service.revocation_version(session, now)
    late = await hub.revoked()
    await hub.stamp(late, newest.revoked_at - timedelta(seconds=1))
    later = await service.revocation_version(session, now + service.SETTLE)
    assert later > seen
    # and it never goes back
    assert await service.revocation_version(session, now + 2 * service.SETTLE) == later


async def test_a_bad_cursor_or_limit_is_refused(client: httpx.AsyncClient) -> None:
    [key] = (await client.get("/.well-known/jwks.json")).json()["keys"]
    address = f"/.well-known/crl/{key['kid']}.json"
    error(await client.get(address, params={"since": "not-a-cursor"}), 400, "KIT-0001")
    error(await client.get(address, params={"since": "WzEsMl0"}), 400, "KIT-0001")  # [1,2]
    error(await client.get(address, params={"limit": 0}), 422, "KIT-0422")
    error(await client.get(address, params={"limit": 100_001}), 422, "KIT-0422")
    assert (await client.get(address, params={"limit": 10})).status_code == 200
