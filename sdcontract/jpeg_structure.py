"""Whether a JPEG stream is whole: every segment fits, the scans cover the picture, the stream ends at EOI.

An end marker alone proves nothing: a cut upload with `FF D9` appended has one. So the stream is
walked marker by marker as a decoder would (lengths must stay inside the data; each scan's
entropy-coded bytes must end at a marker; the end marker must close the walk) and the scans are
checked against the frame: sequential, every component appears in a scan; progressive, every
component gets all 64 coefficients down to their last bit; with restart markers, every restart
interval of a scan is there. Searching the entropy-coded bytes uses `re` (C speed), so even an
8 MiB stream costs milliseconds.

A sequential scan cut inside its entropy-coded data, with no restart markers, is structurally
whole; only its decoder notices, by running out of bits. So the image is decoded twice (sequential
at 1/8 scale, DC only, a fraction of a full decode; progressive, whose last scan usually refines
AC coefficients, at full scale): as sent, and with zero bytes inserted before its end marker. A
whole scan ignores bytes after its last block and decodes the same; a cut one is starved as sent
(its missing blocks flat gray) and fed by the zeros, and the two differ. Still passed: a cut within
the last block or two (nothing visible is missing) and flat mid-gray pictures (starved and fed
decode alike).
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field

from PIL import Image

MAX_SEGMENTS = 4096
"""A real JPEG has a few dozen segments; a stream of thousands of tiny ones is refused, not walked."""
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_SCAN_END = re.compile(rb"\xff+(?=[^\x00\xd0-\xd7\xff])")
"""Where entropy-coded data ends: a marker (FF, fill FFs, then a byte that is no stuffing or restart)."""
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")
_FEED = b"\x00" * 1024
"""Zero bits decode as the shortest codes (in the standard tables 63 ACs of -1, ~190 bits a block):
8192 bits feed several more blocks, whatever the tables."""


class Incomplete(ValueError):
    """The JPEG stream is cut short or malformed; the text says where."""


@dataclass
class _Frame:
    width: int
    height: int
    sampling: dict[int, tuple[int, int]]
    progressive: bool
    done: dict[int, set[int]] = field(default_factory=dict)
    """Per component: the coefficients whose last (Al = 0) pass has arrived."""
    last_scan_end: int = 0
    """Where the last scan's entropy-coded data ends (its marker's first FF)."""


def check_jpeg_complete(data: bytes) -> None:
    """Raise Incomplete naming what is missing; return when the stream is whole up to its EOI."""
    if not data.startswith(b"\xff\xd8"):
        raise Incomplete("JPEG image does not start with its start-of-image marker")
    pos, frame, restart, segments = 2, None, 0, 0
    while True:
        segments += 1
        if segments > MAX_SEGMENTS:
            raise Incomplete(f"JPEG image has more than {MAX_SEGMENTS} segments")
        marker, pos = _next_marker(data, pos)
        if marker == 0xD9:
            _check_coverage(frame)
            assert frame is not None
            if _starved(data, frame.last_scan_end, frame.progressive):
                raise Incomplete("JPEG image is truncated: its last scan ends before its last block")
            return
        if marker in _STANDALONE:
            continue
        if pos + 2 > len(data):
            raise Incomplete("JPEG image is truncated: it ends inside a segment header")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise Incomplete("JPEG image is truncated: a segment runs past the end of the data")
        body = data[pos + 2 : pos + length]
        pos += length
        if marker in _SOF:
            frame = _parse_frame(body, progressive=marker in _PROGRESSIVE)
        elif marker == 0xDD and len(body) >= 2:
            (restart,) = struct.unpack_from(">H", body)
        elif marker == 0xDA:
            if frame is None:
                raise Incomplete("JPEG image has a scan before its frame header")
            pos = _walk_scan(data, pos, frame, body, restart)


def _next_marker(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise Incomplete("JPEG image is truncated: it ends before its end-of-image marker")
    if data[pos] != 0xFF:
        raise Incomplete(f"JPEG image is malformed: no marker at byte {pos}")
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1
    if pos >= len(data):
        raise Incomplete("JPEG image is truncated: it ends before its end-of-image marker")
    return data[pos], pos + 1


def _parse_frame(body: bytes, progressive: bool) -> _Frame:
    if len(body) < 6:
        raise Incomplete("JPEG image has a short frame header")
    _, height, width, count = struct.unpack_from(">BHHB", body)
    if len(body) < 6 + 3 * count or count == 0:
        raise Incomplete("JPEG image has a short frame header")
    sampling = {}
    for i in range(count):
        ident, factors = body[6 + 3 * i], body[7 + 3 * i]
        sampling[ident] = (max(1, factors >> 4), max(1, factors & 15))
    return _Frame(width, max(height, 1), sampling, progressive, {ident: set() for ident in sampling})


def _walk_scan(data: bytes, pos: int, frame: _Frame, header: bytes, restart: int) -> int:
    """Record what the scan covers, skip its entropy-coded data, return where the next marker starts."""
    if not header or len(header) < 1 + 2 * header[0] + 3:
        raise Incomplete("JPEG image has a short scan header")
    count = header[0]
    idents = [header[1 + 2 * i] for i in range(count)]
    start, end, approx = header[1 + 2 * count], header[2 + 2 * count], header[3 + 2 * count]
    if not frame.progressive:
        start, end, approx = 0, 63, 0
    for ident in idents:
        if ident not in frame.done:
            raise Incomplete(f"JPEG image scans component {ident}, which its frame does not have")
        if approx & 15 == 0:
            frame.done[ident].update(range(start, end + 1))
    found = _SCAN_END.search(data, pos)
    if found is None:
        raise Incomplete("JPEG image is truncated: a scan's data runs to the end without a marker")
    if restart:
        intervals = len(_RESTART.findall(data, pos, found.start())) + 1
        expected = _ceil(_scan_units(frame, idents), restart)
        if intervals < expected:
            raise Incomplete(f"JPEG image is truncated: a scan holds {intervals} of its {expected} restart intervals")
    frame.last_scan_end = found.end() - 1
    return frame.last_scan_end


def _starved(data: bytes, scan_end: int, progressive: bool) -> bool:
    """Whether feeding the last scan more bits changes its decode (see the module docstring)."""
    fed = data[:scan_end] + _FEED + data[scan_end:]
    try:
        return _preview(data, progressive) != _preview(fed, progressive)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False  # not decodable at all: the decode that follows reports it


def _preview(data: bytes, full: bool) -> bytes:
    """The decode at 1/8 scale (DC only); `full`: at full scale, where a progressive last scan's ACs show."""
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        if not full:
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        return image.tobytes()


def _scan_units(frame: _Frame, idents: list[int]) -> int:
    """MCUs in a scan: interleaved scans count MCUs of the largest sampling, single components blocks."""
    hmax = max(h for h, _ in frame.sampling.values())
    vmax = max(v for _, v in frame.sampling.values())
    if len(idents) > 1:
        return _ceil(frame.width, 8 * hmax) * _ceil(frame.height, 8 * vmax)
    h, v = frame.sampling[idents[0]]
    return _ceil(_ceil(frame.width * h, hmax), 8) * _ceil(_ceil(frame.height * v, vmax), 8)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _check_coverage(frame: _Frame | None) -> None:
    if frame is None:
        raise Incomplete("JPEG image has no frame header before its end marker")
    for ident, done in frame.done.items():
        if not done:
            raise Incomplete(f"JPEG image is truncated: component {ident} has no scan before the end marker")
        if frame.progressive and len(done) < 64:
            raise Incomplete(
                f"JPEG image is truncated: component {ident} has {len(done)} of its 64 coefficients complete"
            )
