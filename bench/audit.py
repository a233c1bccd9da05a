"""``vnehr audit verify`` on PostgreSQL: its time and peak memory (Python allocations, by
tracemalloc) with 50,000 and 200,000 sealed audit rows. The chain is read in pages, so the peak
should not move with the length of the log.

    python -m bench audit
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson

from bench.common import postgres
from vnehr import audit
from vnehr.audit.chain import BATCH, GENESIS, _statement, link
from vnehr.kit.db import Database

SIZES = (50_000, 200_000)
KEY = audit.AuditKey.from_secret("bench-audit-" + "k" * 40)
COLUMNS = ["id", "at", "actor", "action", "person_id", "object_type", "object_id", "detail"]


async def _load(socket_dir: str, first: int, last: int, prev: str) -> str:
    """Rows ``first``..``last`` sealed as the sealer would (a checkpoint every ``BATCH`` rows),
    written with COPY; returns the last hash."""
    import asyncpg

    began = datetime(2026, 7, 1, tzinfo=UTC)
    rows, checkpoints = [], []
    for n in range(first, last + 1):
        row = SimpleNamespace(
            id=n, at=began + timedelta(seconds=n), actor=f"person:00108500{n % 10_000:04d}",
            action="visit.read", person_id=n % 1000 + 1, object_type="visit_version",
            object_id=str(n), detail={"n": n, "ghi chú": "đọc"},
        )  # fmt: skip
        chained = link(prev, row)
        fields = [getattr(row, c) for c in COLUMNS[:-1]]
        rows.append((*fields, orjson.dumps(row.detail).decode(), n, prev, chained))
        prev = chained
        if n % BATCH == 0 or n == last:
            signature = base64.b64encode(KEY.private.sign(_statement(n, chained))).decode()
            checkpoints.append((n, chained, began, KEY.key_id, signature))
    connection = await asyncpg.connect(host=socket_dir, user="postgres", database="audit")
    try:
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda v: b"\x01" + v.encode(),  # jsonb's binary form: version 1, text
            decoder=lambda v: v[1:].decode(),
            schema="pg_catalog",
            format="binary",
        )
        await connection.copy_records_to_table(
            "audit_event", records=rows, columns=[*COLUMNS, "seq", "prev_hash", "hash"]
        )
        await connection.copy_records_to_table(
            "audit_checkpoint",
            records=checkpoints,
            columns=["seq", "hash", "signed_at", "key_id", "signature"],
        )
    finally:
        await connection.close()
    return prev


def _upgrade(url: str) -> None:
    env = {**os.environ, "VNEHR_DATABASE_URL": url, "VNEHR_LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "-m", "vnehr", "db", "upgrade"], env=env, check=True)


async def _verify(db: Database) -> tuple[audit.Report, float, float]:
    async with db.read_session() as session:
        began = time.perf_counter()
        report = await audit.verify(session, [KEY])
        took = time.perf_counter() - began
    tracemalloc.start()
    async with db.read_session() as session:
        await audit.verify(session, [KEY])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if not report.intact:
        raise RuntimeError(report.problems[:3])
    return report, took, peak


async def main() -> None:
    with postgres("audit") as socket_dir:
        url = f"postgresql+asyncpg://postgres@/audit?host={socket_dir}"
        _upgrade(url)
        db = Database.from_urls(url)
        found = []
        loaded, prev = 0, GENESIS
        try:
            for size in SIZES:
                prev = await _load(socket_dir, loaded + 1, size, prev)
                loaded = size
                found.append((size, *await _verify(db)))
        finally:
            await db.dispose()
    print(f"`vnehr audit verify` on PostgreSQL 18 (pages of {BATCH:,} rows)\n")
    print("| sealed rows | checkpoints | time | peak Python memory (tracemalloc) |")
    print("|---|---|---|---|")
    for size, report, took, peak in found:
        print(f"| {size:,} | {report.checkpoints:,} | {took:,.1f} s | {peak / 1e6:,.1f} MB |")


if __name__ == "__main__":
    asyncio.run(main())
