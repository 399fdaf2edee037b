"""The decode budget both sides check before decoding: JPEG scan counts and PNG inflation."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from frontends.image_intake import read_header
from frontends.protocol import BadMessage
from sdbackend.errors import RequestError
from sdbackend.image_codec import decode_image
from sdcontract.image_budget import OverBudget, check_budget, jpeg_scans, png_inflates_within


def progressive_jpeg(extra_scans: int = 0) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    scan = data[last_scan:-2]  # the last scan up to the end-of-image marker
    return data[:-2] + scan * extra_scans + data[-2:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, raw: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_an_ordinary_progressive_jpeg_is_within_budget() -> None:
    data = progressive_jpeg()
    assert 1 < jpeg_scans(data) <= 20
    check_budget(data, max_scans=100)


def test_a_jpeg_of_many_scans_is_refused_before_decoding_on_both_sides() -> None:
    data = progressive_jpeg(extra_scans=500)
    with pytest.raises(OverBudget, match=r"has 5\d\d scans; at most 100 .*pipeline\.max_image_scans"):
        check_budget(data, max_scans=100)
    with pytest.raises(BadMessage, match="max_image_scans"):
        read_header(data, 10_000_000, 10_000_000, 100)
    with pytest.raises(RequestError, match="max_image_scans"):
        decode_image(data, 64, 64, 10_000_000, 10_000_000, 100)


def test_a_png_whose_data_inflates_past_its_header_is_refused() -> None:
    honest = png(64, 64, b"\x00" + b"\x10" * (64 * 3) * 64)
    assert png_inflates_within(honest)
    bomb = png(64, 64, b"\x00" * 200_000_000)  # 200 MB of rows for a 64x64 picture
    assert not png_inflates_within(bomb)  # inflation stops at the declared size, never reaches 200 MB
    with pytest.raises(BadMessage, match="inflates beyond"):
        read_header(bomb, 10_000_000, 10_000_000, 100)
    with pytest.raises(RequestError, match="inflates beyond"):
        decode_image(bomb, 64, 64, 10_000_000, 10_000_000, 100)
