"""The hash chain over the audit log, its signed checkpoints, and its verification.

Writers add rows in their own transactions without touching the chain (no global lock on the
hot path). A sealer (``vnehr worker``, or ``vnehr serve`` in development, or ``vnehr audit
seal``) takes the rows not yet sealed, in id order, gives each the next position ``seq``,
``prev_hash`` (the hash of the row before) and ``hash`` = SHA-256 over the previous hash and the
row's content, then writes a checkpoint: the position and hash reached, signed with the audit key
(Ed25519). ``verify`` walks the whole chain again and says where it breaks: a changed row (its
hash no longer matches its content), a removed one (a gap in the positions, or the next row's
``prev_hash`` pointing elsewhere), rows swapped, or rows cut off the end (a signed checkpoint
beyond the last row, or one whose hash differs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import BigInteger, Index, String, and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from vnehr.audit.log import AuditEvent
from vnehr.kit.clock import utcnow
from vnehr.kit.db import Base, BigId, Database, UtcDateTime
from vnehr.kit.outage import Outage

log = structlog.get_logger("vnehr.audit")
GENESIS = "0" * 64
BATCH = 5000


class AuditCheckpoint(Base):
    """A signed statement: the chain reached position ``seq`` with hash ``hash``."""

    __tablename__ = "audit_checkpoint"
    __table_args__ = (Index("ix_audit_checkpoint_seq", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(100))


# ------------------------------------------------------------------ keys


@dataclass(frozen=True, slots=True)
class AuditKey:
    private: Ed25519PrivateKey

    @classmethod
    def from_secret(cls, secret: str) -> AuditKey:
        """The audit key derived from the deployment's secret (HKDF-like, domain-separated), so
        no second secret has to be managed; the public key is published (``vnehr audit key``)."""
        seed = hashlib.sha256(b"vnehr.audit.ed25519\x00" + secret.encode()).digest()
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        raw = self.public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def public_b64(self) -> str:
        return base64.b64encode(self.public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _statement(seq: int, chain_hash: str) -> bytes:
    return f"vnehr-audit-checkpoint:{seq}:{chain_hash}".encode()


# ------------------------------------------------------------------ hashing


def content_of(row: Any) -> bytes:
    """What a row's hash covers: every field a reader relies on."""
    return orjson.dumps(
        [
            row.id,
            row.at.isoformat(),
            row.actor,
            row.action,
            row.person_id,
            row.object_type,
            row.object_id,
            row.detail,
        ],
        option=orjson.OPT_SORT_KEYS,
    )


def link(prev_hash: str, row: Any) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\x00" + content_of(row)).hexdigest()


# ------------------------------------------------------------------ sealing


async def _lock(session: AsyncSession) -> None:
    """One sealer at a time (PostgreSQL advisory lock; SQLite's write transaction is already
    exclusive)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(727274)"))


async def seal(session: AsyncSession, key: AuditKey, *, batch: int = BATCH) -> int:
    """Chain the rows not yet sealed (at most ``batch``), sign a checkpoint; returns how many."""
    await _lock(session)
    last = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash)
            .where(AuditEvent.seq.is_not(None))
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev = (last.seq, last.hash) if last is not None else (0, GENESIS)
    rows = list(
        await session.scalars(
            select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(batch)
        )
    )
    for row in rows:
        seq += 1
        chained = link(prev, row)
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.id == row.id)
            .values(seq=seq, prev_hash=prev, hash=chained)
            # (not matched against the rows the session holds: that made a batch quadratic,
            # 136 s for 5,000 rows)
            .execution_options(synchronize_session=False)
        )
        prev = chained
    if rows:
        session.add(
            AuditCheckpoint(
                seq=seq,
                hash=prev,
                signed_at=utcnow(),
                key_id=key.key_id,
                signature=base64.b64encode(key.private.sign(_statement(seq, prev))).decode(),
            )
        )
        await session.flush()
    return len(rows)


async def seal_all(db: Database, key: AuditKey) -> int:
    """Seal until nothing is left (one transaction per batch)."""
    total = 0
    while True:
        async with db.session() as session:
            done = await seal(session, key)
        total += done
        if done < BATCH:
            return total


async def run_sealer(
    db: Database, key: AuditKey, *, stop: asyncio.Event, every: float = 10.0
) -> None:
    """Seal every ``every`` seconds until ``stop`` is set; while the database is lost, one line
    and a growing wait (up to 30 s) instead of a traceback every round."""
    outage = Outage(log, "audit_seal")
    while not stop.is_set():
        wait = every
        try:
            await seal_all(db, key)
            outage.succeeded()
        except Exception as exc:  # a broken database must not end the worker: log, wait, retry
            retry = outage.failed(exc, interval=every)
            if retry is None:
                log.exception("audit_seal_failed")
            else:
                wait = retry
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


# ------------------------------------------------------------------ verification


@dataclass(slots=True)
class Report:
    rows: int = 0
    unsealed: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


async def _sealed(session: AsyncSession, page_size: int) -> AsyncIterator[Any]:
    """Sealed rows in chain order, as plain rows read from the database now (never objects the
    session already holds), a page at a time (keyset on ``seq`` then ``id``: ``seq`` is unique
    by its index, but a forger who drops the index can give two rows one position, and a page
    must not end between them)."""
    columns = AuditEvent.__table__.c
    after: tuple[int, int] = (0, 0)
    while True:
        rows = (
            await session.execute(
                select(*columns)
                .where(
                    columns.seq.is_not(None),
                    # seq >= first, so that the index on seq bounds the scan
                    columns.seq >= after[0],
                    or_(columns.seq > after[0], columns.id > after[1]),
                )
                .order_by(columns.seq, columns.id)
                .limit(page_size)
            )
        ).all()
        for row in rows:
            yield row
        if len(rows) < page_size:
            return
        after = (rows[-1].seq, rows[-1].id)


async def _checkpoints(session: AsyncSession, page_size: int) -> AsyncIterator[Any]:
    """The checkpoints in chain order, a page at a time (keyset on ``seq`` then ``id``: two
    checkpoints may name the same position)."""
    columns = AuditCheckpoint.__table__.c
    after: tuple[int, int] | None = None
    while True:
        stmt = select(*columns).order_by(columns.seq, columns.id).limit(page_size)
        if after is not None:
            stmt = stmt.where(
                or_(
                    columns.seq > after[0],
                    and_(columns.seq == after[0], columns.id > after[1]),
                )
            )
        rows = (await session.execute(stmt)).all()
        for row in rows:
            yield row
        if len(rows) < page_size:
            return
        after = (rows[-1].seq, rows[-1].id)


async def verify(session: AsyncSession, keys: list[AuditKey], *, page_size: int = BATCH) -> Report:
    """Walk the chain and the checkpoints; every break is named with its position and row id.
    ``keys``: the current key, then those of the previous secrets, newest first; a checkpoint
    signed by a previous key after one signed by a newer key is a break (D229).

    Both are read in pages of ``page_size`` rows, side by side in position order: what is held
    is one page, the row before (to check the link) and the hash at the last position seen (to
    check the checkpoints that name it), whatever the length of the log."""
    report = Report()
    signed: list[str] = []  # the checkpoints' problems, reported after the chain's
    # each key's age: the current one 0, then the previous ones, newest first (D229)
    known = {k.key_id: (age, k) for age, k in reversed(list(enumerate(keys)))}
    # the checkpoint signed by the newest key so far, and that key's age
    newest: tuple[Any, int] | None = None
    checkpoints = _checkpoints(session, page_size)

    def check(checkpoint: Any, chain_hash: str | None) -> None:
        """One checkpoint against the hash the chain has at its position (None: no row)."""
        nonlocal newest
        report.checkpoints += 1
        if checkpoint.key_id not in known:
            signed.append(f"checkpoint {checkpoint.id}: signed by unknown key")
            return
        age, key = known[checkpoint.key_id]
        try:
            key.public.verify(
                base64.b64decode(checkpoint.signature),
                _statement(checkpoint.seq, checkpoint.hash),
            )
        except (InvalidSignature, ValueError):
            signed.append(f"checkpoint {checkpoint.id}: signature does not verify")
            return
        # a previous secret vouches for what it signed before the rotation, not after a newer
        # key has signed: one that still signs is leaked or forgotten somewhere
        if newest is not None and age > newest[1]:
            signed.append(
                f"checkpoint {checkpoint.id}: position {checkpoint.seq} was signed by a retired "
                f"key after checkpoint {newest[0].id} (position {newest[0].seq}) was signed by "
                f"a newer one (a previous secret still in use)"
            )
        elif newest is None or age < newest[1]:
            newest = (checkpoint, age)
        if chain_hash is None:
            signed.append(
                f"checkpoint {checkpoint.id}: the chain was signed up to position "
                f"{checkpoint.seq}, which no longer exists (rows cut off the end)"
            )
        elif chain_hash != checkpoint.hash:
            signed.append(
                f"checkpoint {checkpoint.id}: position {checkpoint.seq} no longer has the "
                f"signed hash (the chain was rewritten)"
            )

    pending = await anext(checkpoints, None)
    expected_seq, prev = 1, GENESIS
    # the last position seen and its hash: the checkpoints naming it are checked once the
    # walk has moved past it
    seen_seq: int | None = None
    seen_hash = ""
    async for row in _sealed(session, page_size):
        report.rows += 1
        seq = int(row.seq or 0)
        while pending is not None and pending.seq < seq:
            check(pending, seen_hash if pending.seq == seen_seq else None)
            pending = await anext(checkpoints, None)
        if seq == seen_seq:
            report.problems.append(
                f"position {seq} (row {row.id}): a second row at this position "
                f"(rows inserted or copied)"
            )
        elif seq != expected_seq:
            report.problems.append(
                f"position {expected_seq}..{seq - 1} missing before row {row.id} "
                f"(rows removed or renumbered)"
            )
        if row.prev_hash != prev:
            report.problems.append(
                f"position {seq} (row {row.id}): does not follow the row before it "
                f"(removed, inserted or reordered rows)"
            )
        if link(row.prev_hash or "", row) != row.hash:
            report.problems.append(
                f"position {seq} (row {row.id}): content changed after sealing "
                f"({row.action} by {row.actor})"
            )
        seen_seq, seen_hash = seq, row.hash or ""
        expected_seq, prev = seq + 1, row.hash or ""
    while pending is not None:
        check(pending, seen_hash if pending.seq == seen_seq else None)
        pending = await anext(checkpoints, None)
    report.unsealed = int(
        await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        )
        or 0
    )
    report.problems += signed
    return report
