"""Time in one place: UTC inside, Asia/Ho_Chi_Minh at the edges."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def utcnow() -> datetime:
    return datetime.now(UTC)


def today_in_vietnam() -> date:
    """The calendar date in Vietnam now; catalogues default to what is in force on it."""
    return datetime.now(VIETNAM).date()


def parse_moment(value: str) -> datetime | None:
    """A moment of the national tables, ``yyyyMMddHHmm`` in Vietnam time (naive); None if it is
    not a real moment."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return None
    try:
        return datetime(  # noqa: DTZ001  (local Vietnam time; the caller attaches the zone)
            int(value[:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]), int(value[10:])
        )
    except ValueError:
        return None


def parse_day(value: str) -> date | None:
    """A day of the national tables, ``yyyyMMdd``; None if it is not a real day."""
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def vietnam_moment(value: str | None) -> datetime | None:
    """A national ``yyyyMMddHHmm`` moment as an aware UTC datetime (None if absent or bad)."""
    moment = parse_moment((value or "").strip())
    return moment.replace(tzinfo=VIETNAM).astimezone(UTC) if moment else None
