"""Keyset (cursor) paging: stable under inserts, cheap at any depth, opaque to callers."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel, Field

from vnehr.kit.errors import InvalidCursor

T = TypeVar("T")

Key = tuple[str | int, ...]

#: Keys are compared with database columns: integers must fit a 64-bit column (a larger one
#: overflows the driver) and text cannot hold NUL (PostgreSQL refuses it in text values).
_INT_RANGE = range(-(2**63), 2**63)


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> Key:
    """The key inside ``cursor``, checked against the expected types and what a database column
    holds; ``InvalidCursor`` if not (a forged cursor must not reach the query)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor(cursor=cursor[:64]) from exc
    if not isinstance(values, list) or len(values) != len(shape):
        raise InvalidCursor(cursor=cursor[:64])
    for value, kind in zip(values, shape, strict=True):
        if type(value) is not kind:
            raise InvalidCursor(cursor=cursor[:64])
        if isinstance(value, int) and value not in _INT_RANGE:
            raise InvalidCursor(cursor=cursor[:64])
        if isinstance(value, str) and "\x00" in value:
            raise InvalidCursor(cursor=cursor[:64])
    return tuple(values)


def encode_moment_cursor(moment: datetime, row_id: int) -> str:
    """A cursor after the row with this (moment, id), for lists newest first by both."""
    return encode_cursor((moment.isoformat(), row_id))


def decode_moment_cursor(cursor: str) -> tuple[datetime, int]:
    """The (moment, id) of ``encode_moment_cursor``. The cursor is the caller's text: a date
    that is not an aware moment a column holds is ``InvalidCursor`` here, not a database
    error."""
    moment, row_id = decode_cursor(cursor, (str, int))
    try:
        found = datetime.fromisoformat(str(moment))
        if found.tzinfo is None:
            raise ValueError("naive")
        return found.astimezone(UTC), int(row_id)
    except (ValueError, OverflowError) as exc:  # OverflowError: past year 9999 in UTC
        raise InvalidCursor(cursor=cursor[:64]) from exc


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Opaque; absent on the last page.")
