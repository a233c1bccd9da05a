"""The demo's visits read as the demo citizens': the narrative of each visit names the
citizen's own sex and age, not those of the synthetic patient it was drawn from."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.web.test_login import login
from vnehr import demo


async def test_each_demo_visit_tells_the_citizens_own_sex_and_age(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await demo.load(session)
    await session.commit()
    said: list[str] = []
    for personal_id, _, born, sex, _, visits in demo.PATIENTS:
        await login(client, personal_id)
        timeline = (await client.get("/api/v1/me/timeline")).json()["items"]
        assert len(timeline) == len(visits)
        for item in timeline:
            visit = (await client.get(f"/api/v1/me/visits/{item['id']}")).json()
            started = re.sub(r"\D", "", str(visit["started_at"]))[:8]
            age = int(started[:4]) - int(born[:4]) - (started[4:8] < born[4:8])
            who = ("Nam" if sex == "1" else "Nữ", str(age))
            told = re.findall(r"(Nam|Nữ), (\d+) tuổi", str(visit))
            assert told, str(visit)[:500]
            assert set(told) == {who}, (personal_id, told, who)
            said.extend(" ".join(t) for t in told)
        await client.post("/auth/logout")
    assert len(said) >= 8
