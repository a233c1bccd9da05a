"""The same share sent twice at once (a double click on the sharing page's form sends two
requests) makes one share: on PostgreSQL, each in its own committed transaction, the second
waits for the first and answers with its share."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import func, select

from tests.conftest import new_database_on
from vnehr import catalogs, identity, sharing
from vnehr.demo import demo_icd10_titles
from vnehr.kit.auth import Subject
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.sharing.models import ConsentDirective

PATIENT = "001085004217"


@pytest.fixture
def race_url(postgres_url: str) -> str:
    return new_database_on(postgres_url, "same_share")


async def test_the_same_share_sent_twice_at_once_is_one_share(race_url: str) -> None:
    await upgrade(race_url)
    db = Database.from_urls(race_url, pool_size=10)
    try:
        async with db.session() as session:
            await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
            await identity.sign_in(
                session,
                {"sub": "v-1", "personal_id": PATIENT, "name": "Nguyễn Văn An",
                 "birthdate": "1985-03-14", "gender": "male", "assurance_level": 2},
            )  # fmt: skip
        patient = Subject(kind="person", id=PATIENT, name="An", assurance_level=2)
        tries = 4
        together = asyncio.Barrier(tries)

        async def share() -> int:
            async with db.session() as session:
                row = await sharing.create_directive(
                    session, patient, grantee="*", scope="full", sensitive=["tb"], days=30
                )
                # hold the transaction open until all are in flight (or, when they take
                # turns at the person's shares, a moment), then commit as the route does
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(together.wait(), 0.5)
                return row.id

        made = await asyncio.gather(*(share() for _ in range(tries)))
        assert len(set(made)) == 1
        async with db.session() as session:
            assert await session.scalar(select(func.count()).select_from(ConsentDirective)) == 1
    finally:
        await db.dispose()
