"""What is counted, and how a visit, a rejection, a paper or an account becomes counts. Pure:
the event consumer and the recount from the stored rows (``vnehr report check``, the tests) use
the same functions, so the two can only differ if data is missing or changed.

Choices (decision D43): a visit counts once, as first received (corrections do not move it), in
the month it ended (Vietnam time), at its facility's province and ward; rejections count per
attempt in the month received; papers per paper in the month issued; health accounts at the
person's ward of residence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from vnehr.kit.clock import VIETNAM
from vnehr.papers.rules import add_working_days

#: The Ministry's six care types (QĐ 2733 Appendix 01 Đ8) from MA_LOAI_KCB (D43).
CATEGORIES: Mapping[str, frozenset[str]] = {
    "outpatient_exam": frozenset({"01", "06", "10", "11", "12", "13", "15", "16"}),
    "outpatient_treatment": frozenset({"02", "05", "08"}),
    "medicine_by_appointment": frozenset({"07"}),
    "inpatient": frozenset({"03", "09"}),
    "day_inpatient": frozenset({"04"}),
    "remote": frozenset({"14"}),
}
CATEGORY_OF = {code: name for name, codes in CATEGORIES.items() for code in codes}
#: Upper bounds of the lag buckets, in minutes (the median and 90th percentile are reported as
#: the bucket they fall in: "at most 2 hours").
LAG_BUCKETS = (
    5,
    15,
    30,
    60,
    120,
    240,
    480,
    720,
    1080,
    1440,
    2160,
    2880,
    4320,
    7200,
    10080,
    14400,
    20160,
    43200,
    86400,
    525600,
)
#: The same bounds in seconds (the database's recount puts lags in buckets by them).
LAG_BOUNDS_SECONDS = tuple(bound * 60 for bound in LAG_BUCKETS)
#: TT 48/2017 Đ7 k1: a visit's data is sent (and corrected) within 7 working days.
DEADLINE_WORKING_DAYS = 7
#: "Within 24 hours" of the visit's end.
QUICK_SECONDS = 24 * 3600
_PERIOD = re.compile(r"^([0-9]{4})H([12])$")
#: Years a report period may be in: others are typing mistakes (9999H2, 0001H1), and the
#: extreme ones would overflow the date arithmetic (a period's end plus one day).
YEARS = range(2000, 2101)


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    start: date  # first day
    end: date  # last day

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match(text.strip().upper())
        if match is None:
            raise ValueError(text)
        year, half = int(match[1]), int(match[2])
        if year not in YEARS:
            raise ValueError(text)
        if half == 1:
            return cls(f"{year}H1", date(year, 1, 1), date(year, 6, 30))
        return cls(f"{year}H2", date(year, 7, 1), date(year, 12, 31))

    @property
    def months(self) -> list[date]:
        return [date(self.start.year, m, 1) for m in range(self.start.month, self.end.month + 1)]

    def bounds_utc(self) -> tuple[datetime, datetime]:
        """[start, end) of the period as UTC instants (the period is in Vietnam time)."""
        start = datetime.combine(self.start, datetime.min.time(), VIETNAM).astimezone(UTC)
        end = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), VIETNAM)
        return start, end.astimezone(UTC)


def month_of(moment: datetime) -> date:
    local = moment.astimezone(VIETNAM)
    return date(local.year, local.month, 1)


def lag_bucket(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    minutes = max(0, seconds) / 60
    for bound in LAG_BUCKETS:
        if minutes <= bound:
            return str(bound)
    return "more"


def bucket_named(index: int | None) -> str:
    """The bucket of ``lag_bucket`` from its index in ``LAG_BOUNDS_SECONDS`` (the first bound
    the lag is within; one past the last: beyond them all; None: no lag)."""
    if index is None:
        return "unknown"
    return str(LAG_BUCKETS[index]) if index < len(LAG_BUCKETS) else "more"


def last_day_on_time(ended: date) -> date:
    """The last day (Vietnam time) a visit that ended on ``ended`` is received on time."""
    return add_working_days(ended, DEADLINE_WORKING_DAYS)


@dataclass(frozen=True, slots=True)
class Count:
    """One increment of one counter."""

    month: date
    province: str
    ward: str
    facility: str
    metric: str
    dim1: str = ""
    dim2: str = ""
    value: int = 1

    @property
    def key(self) -> tuple[date, str, str, str, str, str, str]:
        return (
            self.month,
            self.province,
            self.ward,
            self.facility,
            self.metric,
            self.dim1,
            self.dim2,
        )


@dataclass(frozen=True, slots=True)
class Where:
    """A facility's place in the report."""

    province: str
    ward: str


def visit_counts(
    *,
    facility: str,
    where: Where,
    care_type: str | None,
    insured: bool,
    ended_at: datetime | None,
    received_at: datetime,
    lag_seconds: int | None,
    has_summary: bool,
    in_book: bool,
) -> list[Count]:
    """The counts of one visit, first received."""
    month = month_of(ended_at or received_at)
    category = CATEGORY_OF.get(care_type or "", "other")
    flag = "insured" if insured else "uninsured"

    def count(metric: str, dim1: str = "", dim2: str = "") -> Count:
        return Count(month, where.province, where.ward, facility, metric, dim1, dim2)

    found = [count("visits_sent", category, flag), count("lag", lag_bucket(lag_seconds))]
    if in_book:
        found.append(count("visits_in_book", category, flag))
    if has_summary:
        found.append(count("with_summary"))
    if lag_seconds is not None and lag_seconds <= QUICK_SECONDS:
        found.append(count("within_24h"))
    if ended_at is not None:
        deadline_day = last_day_on_time(ended_at.astimezone(VIETNAM).date())
        deadline = datetime.combine(deadline_day + timedelta(days=1), datetime.min.time(), VIETNAM)
        if received_at < deadline:
            found.append(count("within_deadline"))
    return found


def visit_group_counts(
    *,
    facility: str,
    where: Where,
    month: date,
    care_type: str | None,
    insured: bool,
    lag: str,
    visits: int,
    in_book: int,
    with_summary: int,
    within_24h: int,
    within_deadline: int,
) -> list[Count]:
    """The counts of ``visits`` visits alike (``visit_counts`` of each, added up): the same
    facility, month, care type, insurance and lag bucket, of which ``in_book`` linked to a
    person, ``with_summary`` with a summary, ``within_24h`` and ``within_deadline`` on time."""
    category = CATEGORY_OF.get(care_type or "", "other")
    flag = "insured" if insured else "uninsured"

    def count(metric: str, value: int, dim1: str = "", dim2: str = "") -> Count:
        return Count(month, where.province, where.ward, facility, metric, dim1, dim2, value)

    found = [count("visits_sent", visits, category, flag), count("lag", visits, lag)]
    if in_book:
        found.append(count("visits_in_book", in_book, category, flag))
    if with_summary:
        found.append(count("with_summary", with_summary))
    if within_24h:
        found.append(count("within_24h", within_24h))
    if within_deadline:
        found.append(count("within_deadline", within_deadline))
    return found


def rejection_counts(
    *, facility: str, where: Where, received_at: datetime, codes: Iterable[str]
) -> list[Count]:
    month = month_of(received_at)
    found = [Count(month, where.province, where.ward, facility, "rejected_visits")]
    for code in sorted(set(codes)):
        found.append(Count(month, where.province, where.ward, facility, "rejected", code))
    return found


def paper_counts(*, facility: str, where: Where, issued_at: datetime, kind: str) -> list[Count]:
    return [Count(month_of(issued_at), where.province, where.ward, facility, "papers", kind)]


def account_counts(*, province: str, ward: str, at: datetime, delta: int) -> list[Count]:
    return [Count(month_of(at), province, ward, "", "accounts", value=delta)]


def merge(counts: Iterable[Count]) -> dict[tuple[date, str, str, str, str, str, str], int]:
    """Counts summed by counter."""
    found: dict[tuple[date, str, str, str, str, str, str], int] = {}
    for one in counts:
        found[one.key] = found.get(one.key, 0) + one.value
    return found
