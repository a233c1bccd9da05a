"""Stored raw files and packed documents: zstd frames any zstd reader opens, whatever the size."""

from __future__ import annotations

import os

import pytest
import zstandard

from vnehr.kit.db import SMALL_INPUT, compress, pack_json, unpack_json


@pytest.mark.parametrize("size", [0, 1, 42_000, SMALL_INPUT, SMALL_INPUT + 1, 3 * 1024 * 1024])
def test_any_size_comes_back_whole_and_the_frame_names_its_size(size: int) -> None:
    data = (os.urandom(64).hex().encode() * (size // 128 + 1))[:size]
    packed = compress(data)
    assert zstandard.ZstdDecompressor().decompress(packed) == data
    assert zstandard.get_frame_parameters(packed).content_size == size


def test_a_usual_visit_file_shrinks_as_much_as_at_zstd_default_level_3() -> None:
    row = "<CHI_TIET_THUOC><MA_LK>{n}</MA_LK><TEN_THUOC>Paracetamol 500mg</TEN_THUOC></CHI_TIET_THUOC>"
    data = "".join(row.format(n=n) for n in range(500)).encode()
    assert len(data) < SMALL_INPUT
    assert len(compress(data)) <= len(zstandard.ZstdCompressor(level=3).compress(data)) * 1.02


def test_packed_json_round_trips_vietnamese_text() -> None:
    value = {"XML1": [{"HO_TEN": "Nguyễn Thị Ánh", "T_TONGCHI_BV": "125000.50"}]}
    assert unpack_json(pack_json(value)) == value
