"""Limits on the work an image can ask of its decoder, checked on the encoded bytes before decoding.

A header's pixel count does not bound decode time: a progressive JPEG may carry thousands of
scans (each a pass over the whole image), and a PNG's data stream may inflate far past the size
its header declares. Both sides check these before they decode; no decoder runs on such an image.
"""

from __future__ import annotations

import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_INTERLACE_SLACK = 2
"""Adam7 adds filter bytes per pass; twice the plain size is a generous bound for any valid image."""


class OverBudget(ValueError):
    """The image would cost its decoder more than the limits allow; the text names which."""


def jpeg_scans(data: bytes) -> int:
    """Start-of-scan markers in the stream (entropy-coded data never holds FF DA: FF is stuffed as FF 00)."""
    return data.count(b"\xff\xda")


def _png_chunks(data: bytes):
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        yield kind, data[offset + 8 : offset + 8 + length]
        offset += 12 + length


def png_raw_limit(width: int, height: int, bit_depth: int, colour_type: int) -> int:
    """The most bytes a valid image of this header inflates to (rows with their filter byte)."""
    bits = width * _PNG_CHANNELS.get(colour_type, 4) * bit_depth
    return _INTERLACE_SLACK * height * (1 + (bits + 7) // 8)


def png_inflates_within(data: bytes) -> bool:
    """Whether the PNG's data stream stays within what its header declares; inflation stops at the bound."""
    ihdr = b""
    inflater = zlib.decompressobj()
    limit, produced = 0, 0
    for kind, body in _png_chunks(data):
        if kind == b"IHDR" and len(body) >= 13:
            ihdr = body
            width, height, depth, colour = struct.unpack_from(">IIBB", body)
            limit = png_raw_limit(width, height, depth, colour)
        elif kind == b"IDAT" and ihdr:
            try:
                produced += len(inflater.decompress(inflater.unconsumed_tail + body, limit + 1 - produced))
            except zlib.error:
                return True  # corrupt data: the decoder reports it, cheaply
            if produced > limit:
                return False
    return True


def check_budget(data: bytes, max_scans: int) -> None:
    """Raise OverBudget naming the limit an encoded JPEG or PNG would exceed when decoded."""
    if data.startswith(b"\xff\xd8"):
        scans = jpeg_scans(data)
        if scans > max_scans:
            raise OverBudget(
                f"JPEG image has {scans} scans; at most {max_scans} are decoded (pipeline.max_image_scans)"
            )
    elif data.startswith(_PNG_SIGNATURE) and not png_inflates_within(data):
        raise OverBudget("PNG image data inflates beyond the size its header declares: refused before decoding")
