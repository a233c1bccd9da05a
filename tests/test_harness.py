"""The services `make test` provides are real: PostgreSQL and NATS JetStream."""

from __future__ import annotations

import nats
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def test_database_backend_is_the_one_named(session: AsyncSession, backend: str) -> None:
    connection = await session.connection()
    assert connection.dialect.name == backend
    if backend == "postgresql":
        version = await session.scalar(text("SELECT version()"))
        assert str(version).startswith("PostgreSQL")


async def test_nats_jetstream_keeps_and_delivers_a_message(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        stream = client.jetstream()
        await stream.add_stream(name="HARNESS", subjects=["harness.>"])
        ack = await stream.publish("harness.ping", b"xin chao")
        assert ack.stream == "HARNESS"
        subscription = await stream.pull_subscribe("harness.ping", durable="harness")
        [message] = await subscription.fetch(1, timeout=5)
        assert message.data == b"xin chao"
        await message.ack()
    finally:
        await client.close()
