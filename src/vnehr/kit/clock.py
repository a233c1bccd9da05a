"""Time in one place: UTC inside, Asia/Ho_Chi_Minh at the edges."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
#: The days the dates and moments of the national tables lie in: one outside is refused at
#: intake (SUB-0119) and left out where stored data is read. Some systems write "no date" as
#: .NET's ``DateTime.MinValue`` (``000101010000``), which in UTC falls before year 1, or "no
#: end" as its ``MaxValue`` (``99991231``), from which the papers' periods run past year 9999;
#: an open-ended insurance card ends on 2099-12-31.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2099, 12, 31)
#: The same as the national tables write a day (yyyyMMdd, a moment's first 8 characters).
_EARLIEST_TEXT = "19000101"
_LATEST_TEXT = "20991231"


def utcnow() -> datetime:
    return datetime.now(UTC)


def today_in_vietnam() -> date:
    """The calendar date in Vietnam now; catalogues default to what is in force on it."""
    return datetime.now(VIETNAM).date()


def parse_moment(value: str) -> datetime | None:
    """A moment of the national tables, ``yyyyMMddHHmm`` in Vietnam time (naive); None if it is
    not a real moment or lies outside ``EARLIEST_DAY`` to ``LATEST_DAY`` (``out_of_range``
    tells which), so that nothing reading the tables meets a year that breaks arithmetic."""
    found = _real_moment(value)
    return found if found is not None and _in_range(value) else None


def parse_day(value: str) -> date | None:
    """A day of the national tables, ``yyyyMMdd``; None if it is not a real day or lies
    outside ``EARLIEST_DAY`` to ``LATEST_DAY`` (``out_of_range`` tells which)."""
    found = _real_day(value)
    return found if found is not None and _in_range(value) else None


def out_of_range(value: str) -> bool:
    """Whether ``value`` is a real day (``yyyyMMdd``) or moment (``yyyyMMddHHmm``) that lies
    outside ``EARLIEST_DAY`` to ``LATEST_DAY``: refused by the parsers for that alone."""
    real = _real_moment(value) if len(value) == 12 else _real_day(value)
    return real is not None and not _in_range(value)


def _in_range(value: str) -> bool:
    return _EARLIEST_TEXT <= value[:8] <= _LATEST_TEXT  # (digits compare as text)


def _real_moment(value: str) -> datetime | None:
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return None
    try:
        return datetime(  # noqa: DTZ001  (local Vietnam time; the caller attaches the zone)
            int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:])
        )
    except ValueError:
        return None


def _real_day(value: str) -> date | None:
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def vietnam_moment(value: str | None) -> datetime | None:
    """A national ``yyyyMMddHHmm`` moment as an aware UTC datetime; None if absent, bad or out
    of range (stored before the intake refused it: year 1 in Vietnam time is before year 1 in
    UTC, converting it would raise)."""
    moment = parse_moment((value or "").strip())
    return moment.replace(tzinfo=VIETNAM).astimezone(UTC) if moment else None


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # (pydantic reports a ValueError as the parameter's error)
        raise ValueError("the moment is outside the years 1 to 9999 in UTC") from None


#: A moment given by a caller (a query parameter, a field): ISO 8601 with its time zone, in
#: UTC; one that falls outside years 1 to 9999 in UTC is the caller's error (KIT-0422), not
#: the database's (it cannot hold it: a 500).
AwareMoment = Annotated[AwareDatetime, AfterValidator(_in_utc)]
