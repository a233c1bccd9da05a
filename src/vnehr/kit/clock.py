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
