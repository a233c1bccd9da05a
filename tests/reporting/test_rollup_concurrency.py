"""Several workers add to the same counters at once (PostgreSQL, several `vnehr worker`
processes): no deadlock, and every addition counted."""

from __future__ import annotations

import asyncio
import random
from datetime import date

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vnehr.kit.db import Database
from vnehr.reporting import rollup
from vnehr.reporting.metrics import Count
from vnehr.reporting.models import ReportCount

FACILITY = "98765"


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_concurrent_additions_to_the_same_counters_neither_deadlock_nor_lose(
    postgres_url: str, engine: AsyncEngine
) -> None:
    keys = [(date(2026, 7, 1), "01", f"{n:05d}", FACILITY, "visits_sent", "outpatient_exam",
             "insured") for n in range(12)]  # fmt: skip
    db = Database.from_urls(postgres_url)
    rounds = 25

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            order = keys[:]
            rng.shuffle(order)  # each event touches the counters in its own order
            async with db.session() as session:  # one event: all its counters in one call
                await rollup.add(session, [Count(*key, 1) for key in order])

    try:
        await asyncio.gather(*(worker(seed) for seed in range(3)))
        async with db.read_session() as session:
            total = await session.scalar(
                select(func.sum(ReportCount.value)).where(ReportCount.facility == FACILITY)
            )
        assert total == 3 * rounds * len(keys)
    finally:
        async with db.session() as session:
            await session.execute(delete(ReportCount).where(ReportCount.facility == FACILITY))
        await db.dispose()
