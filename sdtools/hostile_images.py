"""Small images that cost their decoder far more than their size: the inputs the probe sends.

Each is a valid file as far as its header goes. A progressive JPEG may carry any number of
scans, each a pass of the decoder over the whole picture, and a repeated refinement scan of a
flat picture is a few bytes; a PNG's data stream may inflate far past what its header declares.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class HostileImage:
    name: str
    data: bytes
    mode: str
    """The mode it is sent to: an exact-size image matters on canvas, where it is forwarded as it is."""


def scans_jpeg(width: int, height: int, extra_scans: int) -> bytes:
    """A flat progressive JPEG with its last scan repeated `extra_scans` times."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    scan = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + scan * extra_scans + data[-2:]


def scans_jpeg_of_size(width: int, height: int, target_bytes: int) -> bytes:
    """As scans_jpeg, with as many scans as make about `target_bytes`."""
    one = scans_jpeg(width, height, 1)
    scan_bytes = len(one) - len(scans_jpeg(width, height, 0))
    return scans_jpeg(width, height, max(1, (target_bytes - len(one)) // scan_bytes))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def inflating_png(width: int, height: int, raw_bytes: int) -> bytes:
    """An RGB PNG whose data stream inflates to `raw_bytes` (compressed in pieces: no big buffer)."""
    compressor = zlib.compressobj(9)
    piece = b"\0" * (1 << 20)
    idat = bytearray()
    for _ in range(raw_bytes // len(piece)):
        idat += compressor.compress(piece)
    idat += compressor.compress(b"\0" * (raw_bytes % len(piece))) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(idat)) + _png_chunk(b"IEND", b"")
    )


def probe_inputs(model_width: int, model_height: int) -> list[HostileImage]:
    """The probe's inputs: the figures of the outside report, and one of the model's exact size."""
    return [
        HostileImage("jpeg 4096x4096, 2000 scans", scans_jpeg(4096, 4096, 2000), "realtime"),
        HostileImage("jpeg 512x512, 100000 scans", scans_jpeg(512, 512, 100_000), "realtime"),
        HostileImage("png 512x512 inflating to 1 GiB", inflating_png(512, 512, 1 << 30), "realtime"),
        HostileImage(
            f"jpeg {model_width}x{model_height} (exact size), 600 KB",
            scans_jpeg_of_size(model_width, model_height, 600_000),
            "canvas",
        ),
    ]
