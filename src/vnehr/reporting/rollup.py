"""Rollups kept up to date by event consumers (each event once per consumer: the worker records
the delivery in the same transaction), and the recount from the stored rows that checks them
(``vnehr report check``) or rebuilds them (``vnehr report rebuild``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, cast, delete, func, or_, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import exchange, facilities, identity, papers, records, submissions
from vnehr.kit.db import insert_for
from vnehr.kit.outbox import OutboxEvent
from vnehr.reporting import errors, metrics
from vnehr.reporting.metrics import Count, Period, Where
from vnehr.reporting.models import ReportCount

Key = tuple[date, str, str, str, str, str, str]
#: a report consumer's answer: the attempt's detail, and the counts to add at the round's end
_Taken = tuple[dict[str, Any] | None, list[Count]]
_Counter = Callable[[AsyncSession, OutboxEvent], Awaitable[_Taken]]

#: the report's consumer of every topic, as the service wires it (``app.exchange_handlers``):
#: a rebuild marks the events it recounted as taken by it (D141)
CONSUMER = "report"
TOPICS = ("visit.accepted", "visit.rejected", "paper.issued", "account.changed")
_REBUILT = {"note": "counted by a report rebuild"}
#: PostgreSQL: what every writer of the counters holds until its commit (an INSERT takes it
#: too); a rebuild holds EXCLUSIVE, which waits for them and makes them wait (D141). A round
#: takes it in its last step, after its portal calls, right before its commit (D163).
_WRITING = text("LOCK TABLE report_count IN ROW EXCLUSIVE MODE")
_REBUILDING = text("LOCK TABLE report_count IN EXCLUSIVE MODE")
#: PostgreSQL's "lock_not_available": a lock not granted within ``lock_timeout``
_LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True, slots=True)
class LockTries:
    """PostgreSQL: how a rebuild asks for the counters' lock (D163). While it waits, every
    writer of the counters that comes after it (intake batches, rounds) queues behind it: it
    waits ``wait_seconds`` at most, then lets them through and tries again ``pause_seconds``
    later, ``tries`` times in all, before it gives up (REP-0007, nothing changed)."""

    wait_seconds: float = 0.5
    tries: int = 20
    pause_seconds: float = 1.0

    @property
    def total_seconds(self) -> float:
        return self.tries * self.wait_seconds + (self.tries - 1) * self.pause_seconds


#: what ``vnehr report rebuild`` uses
REBUILD_LOCK = LockTries()


#: Counters of one statement: SQLite takes 8 parameters a counter (far below its 32,766);
#: PostgreSQL takes eight arrays, so the statement's text (and its prepared plan) is the same
#: for any number. A batch of 200 visits adds to at most 1,200 counters: one statement.
_SQLITE_ROWS = 1000
_PG_ROWS = 20_000
_PG_ADD = text(
    "INSERT INTO report_count (month, province, ward, facility, metric, dim1, dim2, value)"
    " SELECT m, p, w, f, me, d1, d2, v FROM unnest(CAST(:month AS date[]),"
    " CAST(:province AS text[]), CAST(:ward AS text[]), CAST(:facility AS text[]),"
    " CAST(:metric AS text[]), CAST(:dim1 AS text[]), CAST(:dim2 AS text[]),"
    " CAST(:value AS bigint[])) WITH ORDINALITY AS u(m, p, w, f, me, d1, d2, v, n) ORDER BY n"
    " ON CONFLICT (month, province, ward, facility, metric, dim1, dim2)"
    " DO UPDATE SET value = report_count.value + EXCLUDED.value"
)
_COLUMNS = ("month", "province", "ward", "facility", "metric", "dim1", "dim2")
#: The columns of a counter's key after its month.
_PLACE = tuple(getattr(ReportCount, name) for name in _COLUMNS[1:])


async def add(session: AsyncSession, counts: Iterable[Count]) -> int:
    """Add to the counters in one statement (per 20,000 counters on PostgreSQL, 1,000 on
    SQLite), in the counters' order: writers adding to the same counters at once lock them in
    the same order, never in a cycle (a deadlock, which PostgreSQL breaks by failing one of
    them). Returns how many counters were added to."""
    merged = sorted(metrics.merge(counts).items())
    if not merged:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(merged), _PG_ROWS):
            params: dict[str, list[Any]] = {name: [] for name in (*_COLUMNS, "value")}
            for key, value in merged[start : start + _PG_ROWS]:
                for name, part in zip(_COLUMNS, key, strict=True):
                    params[name].append(part)
                params["value"].append(value)
            await session.execute(_PG_ADD, params)
        return len(merged)
    insert = insert_for(session)
    for start in range(0, len(merged), _SQLITE_ROWS):
        rows = [
            {**dict(zip(_COLUMNS, key, strict=True)), "value": value}
            for key, value in merged[start : start + _SQLITE_ROWS]
        ]
        stmt = insert(ReportCount).values(rows)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=list(_COLUMNS),
                set_={"value": ReportCount.value + stmt.excluded.value},
            )
        )
    return len(merged)


class Places:
    """Where each facility is (province, ward), read once per process and refreshed for codes
    not seen yet (a facility's province never changes; its ward rarely)."""

    def __init__(self) -> None:
        self._known: dict[str, Where] = {}

    async def of(self, session: AsyncSession, codes: Iterable[str]) -> dict[str, Where]:
        wanted = set(codes)
        missing = wanted - self._known.keys()
        if missing:
            for code, info in (await facilities.directory(session, missing)).items():
                self._known[code] = Where(info.province_code, info.ward_code or "")
        return {c: self._known.get(c, Where("", "")) for c in wanted}


def _version_counts(row: Any, where: Where) -> list[Count]:
    """The counts of a visit's first version (a stored version row, or the data a batch
    writes) at its facility's place: the intake's, the consumer's and the recount's (they must
    agree)."""
    return metrics.visit_counts(
        facility=row.facility_code,
        where=where,
        care_type=row.care_type,
        insured=row.insured,
        ended_at=row.ended_at,
        received_at=row.received_at,
        lag_seconds=row.lag_seconds,
        has_summary=row.has_summary,
        in_book=row.person_id is not None,
    )


def _rejection_counts(payload: dict[str, Any], where: Where) -> list[Count]:
    """The counts of a rejected visit, from its ``visit.rejected`` event's payload."""
    return metrics.rejection_counts(
        facility=str(payload["facility_code"]),
        where=where,
        codes=payload.get("codes") or [],
        received_at=datetime.fromisoformat(payload["received_at"]),
    )


def intake_counter(places: Places | None = None) -> submissions.BatchCounter:
    """The intake's counter of the visits a batch writes together (group commit, ``vnehr
    import``) and of the papers they issue: their counts added in the batch's transaction, in
    one statement (D113), the same as the consumers would add from the events, which then
    skip them."""
    places = places or Places()

    async def count(
        session: AsyncSession,
        visits: list[records.VisitData],
        rejected: list[dict[str, Any]],
        issued: Sequence[papers.Issued] = (),
    ) -> None:
        codes = {v.facility_code for v in visits} | {str(p["facility_code"]) for p in rejected}
        where = await places.of(session, codes | {paper.facility_code for paper in issued})
        counts: list[Count] = []
        for data in visits:  # (a visit's data has the fields of its stored version)
            counts += _version_counts(data, where[data.facility_code])
        for payload in rejected:
            counts += _rejection_counts(payload, where[str(payload["facility_code"])])
        for paper in issued:
            counts += metrics.paper_counts(
                facility=paper.facility_code,
                where=where[paper.facility_code],
                kind=paper.kind,
                issued_at=paper.issued_at,
            )
        await add(session, counts)

    return count


@dataclass(frozen=True, slots=True)
class _Took:
    """What the report's consumer took from an event, to add when its round settles: the
    event, its attempt's detail (the attempt holds this same dict) and the counts."""

    event_id: str
    detail: dict[str, Any] | None
    counts: list[Count]


async def _add_taken(session: AsyncSession, taken: list[_Took]) -> int:
    """What a delivery round's report consumers took, added in one statement (D121), in the
    round's last step: the portal's calls are over and the commit follows. Here, and only
    here, the counters' lock (PostgreSQL) and whether a rebuild has counted any of these
    events since the round read who had taken them (D141, D163): the lock waits for a rebuild
    under way, and a later rebuild waits for this commit, so the rebuild's snapshot has either
    these attempts and counts, or not, and then it marked the events and this reads the marks
    (READ COMMITTED: a statement after the lock sees its commit). An event so marked adds
    nothing, and its attempt says so. On SQLite the transaction holds the file's write lock,
    and so does a rebuild."""
    counting = [took for took in taken if took.counts]
    if not counting:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_WRITING)
    rebuilt = await exchange.marked(session, CONSUMER, [t.event_id for t in counting], _REBUILT)
    if rebuilt:
        for took in counting:
            if took.event_id in rebuilt and took.detail is not None:
                # (an attempt not written yet, JetStream's, takes this dict as it is now)
                took.detail.clear()
                took.detail.update(_REBUILT)
        await exchange.restate(session, CONSUMER, rebuilt, _REBUILT)  # (those written: a round's)
    return await add(
        session, [one for took in counting if took.event_id not in rebuilt for one in took.counts]
    )


def _counters(places: Places) -> dict[str, _Counter]:
    """What an event of each topic adds to the counters (none: the attempt's note says why),
    read without writing: the consumers' and the check's."""
    counted = {"note": "counted by the batch that wrote it"}

    def adding(counts: list[Count]) -> _Taken:
        return {"counters": len(metrics.merge(counts))}, counts

    async def visit(session: AsyncSession, event: OutboxEvent) -> _Taken:
        payload = event.payload
        if payload.get("test_mode") or int(payload.get("version") or 1) != 1:
            return {"note": "a visit counts once, as first received"}, []
        if payload.get("counted"):
            return counted, []
        row = await records.version_by_id(session, int(payload["version_id"]))
        if row is None:
            return {"note": "version gone"}, []
        where = (await places.of(session, [row.facility_code]))[row.facility_code]
        return adding(_version_counts(row, where))

    async def rejected(session: AsyncSession, event: OutboxEvent) -> _Taken:
        payload = event.payload
        if payload.get("counted"):
            return counted, []
        code = str(payload["facility_code"])
        where = (await places.of(session, [code]))[code]
        return adding(_rejection_counts(payload, where))

    async def paper(session: AsyncSession, event: OutboxEvent) -> _Taken:
        payload = event.payload
        if int(payload.get("version") or 1) != 1 or not payload.get("kind"):
            return {"note": "a paper counts once"}, []
        if payload.get("counted"):
            return counted, []
        code = str(payload["facility_code"])
        where = (await places.of(session, [code]))[code]
        counts = metrics.paper_counts(
            facility=code,
            where=where,
            kind=str(payload["kind"]),
            issued_at=datetime.fromisoformat(payload["issued_at"]),
        )
        return adding(counts)

    async def account(session: AsyncSession, event: OutboxEvent) -> _Taken:
        payload = event.payload
        counts = metrics.account_counts(
            province=str(payload.get("province") or ""),
            ward=str(payload.get("ward") or ""),
            at=datetime.fromisoformat(payload["at"]),
            delta=int(payload["delta"]),
        )
        return adding(counts)

    return dict(zip(TOPICS, (visit, rejected, paper, account), strict=True))


def consumers(places: Places | None = None) -> dict[str, exchange.Deferred[_Took]]:
    """The report's consumer of each topic. Each says what to count; the worker adds what a
    round took in one statement at the end of the round (``exchange.Deferred``, D121), in the
    transaction that records the attempts: no counter is locked while the round calls the
    BHXH portal (not even the table, D163), nor in another order than the intake's. An event a
    rebuild counted since the round began counts nothing (D141)."""

    def taking(
        count: _Counter,
    ) -> Callable[[AsyncSession, OutboxEvent], Awaitable[tuple[dict[str, Any] | None, _Took]]]:
        async def take(
            session: AsyncSession, event: OutboxEvent
        ) -> tuple[dict[str, Any] | None, _Took]:
            detail, counts = await count(session, event)
            return detail, _Took(event.event_id, detail, counts)

        return take

    return {
        topic: exchange.Deferred(taking(count), _add_taken)
        for topic, count in _counters(places or Places()).items()
    }


# ------------------------------------------------------------------ reading and recounting


async def one_snapshot(session: AsyncSession) -> None:
    """PostgreSQL: every statement of the session's transaction reads the same snapshot
    (REPEATABLE READ), taken at its first query; so this comes first. (SQLite: a transaction
    reads one snapshot anyway.) A session joined to a transaction begun elsewhere (tests)
    keeps that transaction's level."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and not isinstance(bind, Connection):
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _in(key: Key, period: Period, province: str | None) -> bool:
    """Whether a counter is one of a period's (accounts: every month up to its end)."""
    month, metric = key[0], key[4]
    if province and key[1] != province:
        return False
    return period.start <= month <= period.end or (metric == "accounts" and month <= period.end)


async def waiting(
    session: AsyncSession, period: Period, province: str | None
) -> tuple[int, dict[Key, int]]:
    """What the events the report's consumer has not taken yet will add to a period's
    counters when they are delivered, and how many events will add anything (D141)."""
    counters = _counters(Places())
    events = 0
    found: dict[Key, int] = {}
    async for event in exchange.not_taken(session, CONSUMER, TOPICS):
        _, counts = await counters[event.topic](session, event)
        events += bool(counts)
        for one in counts:
            if _in(one.key, period, province):
                found[one.key] = found.get(one.key, 0) + one.value
    return events, {key: value for key, value in found.items() if value}


def _accounts_to(period: Period) -> ColumnElement[bool]:
    """The accounts' counters a period reads: every month up to its end."""
    return and_(ReportCount.metric == "accounts", ReportCount.month <= period.end)


async def stored(session: AsyncSession, period: Period, province: str | None) -> dict[Key, int]:
    """The rollups of a period (accounts: every month up to its end)."""
    stmt = select(ReportCount.month, *_PLACE, ReportCount.value).where(
        or_(
            and_(ReportCount.month >= period.start, ReportCount.month <= period.end),
            _accounts_to(period),
        )
    )
    if province:
        stmt = stmt.where(ReportCount.province == province)
    found: dict[Key, int] = {}
    for month, prov, ward, fac, metric, dim1, dim2, value in await session.execute(stmt):
        if value:
            found[(month, prov, ward, fac, metric, dim1, dim2)] = value
    return found


#: Rows of the report's counters read at a time.
_SUMMED_PART = 5_000


async def summed(
    session: AsyncSession,
    period: Period,
    province: str | None,
    *,
    ward: str | None = None,
    facility: str | None = None,
) -> dict[Key, int]:
    """The rollups the report reads, added up by the database over the months (the report
    adds up a period's months, and every month of the accounts up to its end) and narrowed to
    the report's ward and facility: each counter under the first month it has (``stored``
    gives the same report from about six times the rows). A province of 5,000 facilities has
    600,000 counters in a half-year: read whole, they held hundreds of MB. Strings repeated
    on every row (wards, facilities, metrics, dimensions) are held once."""
    activity = [
        ReportCount.metric != "accounts",
        ReportCount.month >= period.start,
        ReportCount.month <= period.end,
    ]
    if facility is not None:
        activity.append(ReportCount.facility == facility)
    stmt = (
        select(func.min(ReportCount.month), *_PLACE, cast(func.sum(ReportCount.value), BigInteger))
        .where(or_(and_(*activity), _accounts_to(period)))
        .group_by(*_PLACE)
        # as ``stored``, which leaves out counters at 0: an account opened and closed in a
        # ward still lists the ward (with 0 accounts), one that never held a count does not
        .having(func.max(func.abs(ReportCount.value)) > 0)
    )
    if province:
        stmt = stmt.where(ReportCount.province == province)
    if ward is not None:
        stmt = stmt.where(ReportCount.ward == ward)
    months: dict[date, date] = {}
    strings: dict[str, str] = {}
    one = strings.setdefault
    found: dict[Key, int] = {}
    # read in parts: the event loop serves other requests between them, and the rows are
    # never all held at once
    rows = await session.stream(stmt.execution_options(yield_per=_SUMMED_PART))
    async for part in rows.partitions():
        for month, prov, ward_code, fac, metric, dim1, dim2, value in part:
            found[
                (
                    months.setdefault(month, month),
                    one(prov, prov),
                    one(ward_code, ward_code),
                    one(fac, fac),
                    one(metric, metric),
                    one(dim1, dim1),
                    one(dim2, dim2),
                )
            ] = int(value)
    return found


async def recount(
    session: AsyncSession, period: Period | None, province: str | None
) -> dict[Key, int]:
    """The same counters computed from the stored rows (a scan: for checks and rebuilds).
    The visits are counted by the database and added up as they stream in, the accounts one
    at a time: what is held is the counters, whatever the number of visits and accounts, and
    for a province only its counters (the database reads only its facilities' rows)."""
    found: dict[Key, int] = {}

    def tally(counts: Iterable[Count]) -> None:
        for one in counts:
            found[one.key] = found.get(one.key, 0) + one.value

    places = Places()
    start, end = period.bounds_utc() if period else (None, None)
    among = facilities.codes_query(province) if province else None
    # by facility code first: where each facility is, once the stream has ended
    by_code: dict[tuple[date, str, str, str, str], int] = {}
    async for group in records.first_version_tallies(
        session,
        start,
        end,
        lag_bounds=metrics.LAG_BOUNDS_SECONDS,
        quick_seconds=metrics.QUICK_SECONDS,
        last_day_on_time=metrics.last_day_on_time,
        facilities=among,
    ):
        for one in metrics.visit_group_counts(
            facility=group.facility_code,
            where=Where("", ""),
            month=group.month,
            care_type=group.care_type,
            insured=group.insured,
            lag=metrics.bucket_named(group.lag_bucket),
            visits=group.visits,
            in_book=group.in_book,
            with_summary=group.with_summary,
            within_24h=group.quick,
            within_deadline=group.on_time,
        ):
            key = (one.month, one.facility, one.metric, one.dim1, one.dim2)
            by_code[key] = by_code.get(key, 0) + one.value
    where = await places.of(session, {key[1] for key in by_code})
    for (month, code, metric, dim1, dim2), value in by_code.items():
        place = where[code]
        tally([Count(month, place.province, place.ward, code, metric, dim1, dim2, value)])
    # visits the database cannot place in a Vietnamese month (before 1976: none in practice)
    for row in await records.first_versions(
        session, start, end, before=records.UTC7_SINCE, facilities=among
    ):
        place = (await places.of(session, [row.facility_code]))[row.facility_code]
        tally(_version_counts(row, place))
    async for code, received_at, codes in submissions.rejections(
        session, start, end, facilities=among
    ):
        place = (await places.of(session, [code]))[code]
        tally(
            metrics.rejection_counts(
                facility=code, where=place, received_at=received_at, codes=codes
            )
        )
    async for code, kind, issued_at in papers.first_issues(session, start, end, facilities=among):
        place = (await places.of(session, [code]))[code]
        tally(metrics.paper_counts(facility=code, where=place, issued_at=issued_at, kind=kind))
    wards: dict[str, str] = {}
    async for at, delta, ward in identity.account_changes(
        session, end or datetime.max.replace(tzinfo=UTC)
    ):
        if ward not in wards:
            wards[ward] = await identity.province_of_ward(session, ward)
        if not province or wards[ward] == province:
            tally(metrics.account_counts(province=wards[ward], ward=ward, at=at, delta=delta))
    return {k: v for k, v in found.items() if v and (not province or k[1] == province)}


def _lock_not_granted(exc: BaseException) -> bool:
    found: BaseException | None = exc
    for _ in range(6):  # the driver's error, wrapped by SQLAlchemy's adapter and by SQLAlchemy
        if found is None:
            return False
        if _LOCK_NOT_AVAILABLE in (getattr(found, name, None) for name in ("sqlstate", "pgcode")):
            return True
        found = getattr(found, "orig", None) or found.__cause__
    return False


async def _lock_for_rebuild(session: AsyncSession, tries: LockTries) -> None:
    """PostgreSQL: the counters' EXCLUSIVE lock, asked for as ``tries`` says (D163). Each try
    is a savepoint rolled back when the lock is not granted in time; neither it nor the lock
    statement takes the transaction's snapshot, which the first query after it does."""
    wait_ms = max(1, round(tries.wait_seconds * 1000))
    for tried in range(1, tries.tries + 1):
        try:
            async with session.begin_nested():
                await session.execute(text(f"SET LOCAL lock_timeout = {wait_ms}"))
                await session.execute(_REBUILDING)
                # the rest waits for no lock a writer holds long; it must not fail half-way
                await session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
            return
        except DBAPIError as exc:
            if not _lock_not_granted(exc):
                raise
        if tried < tries.tries:
            await asyncio.sleep(tries.pause_seconds)
    raise errors.RebuildBusy(tries=tries.tries, seconds=round(tries.total_seconds))


async def rebuild(session: AsyncSession, tries: LockTries | None = None) -> int:
    """Replace every rollup with a recount of everything stored, and mark every event that the
    report's consumer has not taken yet as taken: the recount has it (D141). First in its
    transaction: on PostgreSQL the counters are locked against every other writer (intake
    batches, rounds, JetStream consumers) before the one snapshot that the marks and the
    recount read, until the commit; the lock is asked for briefly, a few times (``tries``,
    by default ``REBUILD_LOCK``), so that the writers never queue behind the rebuild for long,
    and ``RebuildBusy`` says when it was never granted (D163)."""
    await one_snapshot(session)
    if session.get_bind().dialect.name == "postgresql":
        await _lock_for_rebuild(session, tries or REBUILD_LOCK)
    await exchange.mark_taken(session, CONSUMER, TOPICS, _REBUILT)
    await session.execute(delete(ReportCount))
    counted = await recount(session, None, None)
    await add(session, [Count(*key, value=value) for key, value in counted.items()])
    return int(await session.scalar(select(func.count()).select_from(ReportCount)) or 0)
