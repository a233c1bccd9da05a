from __future__ import annotations

import base64

import pytest

from vnehr.kit.errors import InvalidCursor
from vnehr.kit.paging import decode_cursor, encode_cursor
from vnehr.kit.text import fold


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Hen [suyễn]", "hen [suyen]"),
        ("ĐÁI THÁO ĐƯỜNG", "dai thao duong"),
        ("  Phường   Hoàn Kiếm ", "phuong hoan kiem"),
    ],
)
def test_fold_ignores_case_accents_and_spacing(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(("J45.0", 42)), (str, int)) == ("J45.0", 42)
    assert decode_cursor(encode_cursor(("", 2**63 - 1)), (str, int)) == ("", 2**63 - 1)


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(b'["J45"]').decode(),
        base64.urlsafe_b64encode(b'[45, "J45"]').decode(),
        base64.urlsafe_b64encode(b'["J45", 9223372036854775808]').decode(),  # 2**63
        base64.urlsafe_b64encode(b'["J45", -9223372036854775809]').decode(),
        base64.urlsafe_b64encode(b'["J\\u000045", 1]').decode(),  # NUL in the code
    ],
)
def test_a_bad_cursor_is_a_coded_error(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(cursor, (str, int))
    assert caught.value.code == "KIT-0001"
