"""Image checks before anything is decoded, the cheap reduced decode, and fitting to the model's size.

Order matters for safety: the format is sniffed from the first bytes and the dimensions read from
the header alone (Pillow's `Image.open` parses only the header) so that a small file that claims a
huge picture is refused before a pixel is allocated. Only then is the image decoded.

Size policy: the models take exactly `pipeline.width x pipeline.height`. An image of another size
is center-cropped to that aspect ratio, resized and re-encoded as JPEG at the mode's quality; an
image of the right size is forwarded byte for byte (no re-encode, no quality loss, no CPU).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from frontends.protocol import BadMessage
from sdcontract.image_budget import OverBudget, check_budget
from sdcontract.jpeg_structure import Incomplete, check_jpeg_complete

ImageFormat = Literal["jpeg", "png", "webp"]
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: ImageFormat
    width: int
    height: int


def sniff_format(data: bytes) -> ImageFormat:
    """Name the format from its magic bytes; refuse anything but JPEG, PNG and WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise BadMessage(f"image is not JPEG, PNG or WebP (it starts with {data[:8].hex(' ')})")


def _check_complete(data: bytes, fmt: ImageFormat) -> None:
    """Catch a truncated upload, which decoders would otherwise pad with gray (JPEG: sdcontract/jpeg_structure.py)."""
    if fmt == "jpeg":
        try:
            check_jpeg_complete(data)
        except Incomplete as exc:
            raise BadMessage(str(exc)) from None
        return
    if fmt == "png":
        complete = b"IEND" in data[-32:]
    else:
        (riff_size,) = struct.unpack_from("<I", data, 4)
        complete = len(data) >= riff_size + 8
    if not complete:
        raise BadMessage(f"{fmt.upper()} image is truncated: its end marker is missing")


def read_header(data: bytes, max_bytes: int, max_pixels: int, max_scans: int = 100) -> ImageHeader:
    """Sniff, check the dimensions and the decode budget without decoding pixels, then completeness."""
    if len(data) > max_bytes:
        raise BadMessage(f"image is {len(data)} bytes; at most {max_bytes} are accepted (pipeline.max_image_bytes)")
    fmt = sniff_format(data)
    try:
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]]) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise BadMessage(
            f"{fmt.upper()} image header claims far more than {max_pixels} pixels (pipeline.max_image_pixels)"
        ) from None
    except UnidentifiedImageError:  # its text names the BytesIO object, which tells the client nothing
        raise BadMessage(
            f"{fmt.upper()} image header does not parse: no valid {fmt.upper()} header follows its magic bytes"
        ) from None
    except Exception as exc:  # Pillow raises many types for a corrupt header
        raise BadMessage(f"{fmt.upper()} image header does not parse: {exc}") from None
    if width <= 0 or height <= 0:
        raise BadMessage(f"{fmt.upper()} image header says {width}x{height}")
    if width * height > max_pixels:
        raise BadMessage(
            f"image is {width}x{height} = {width * height} pixels; at most {max_pixels} are accepted "
            "(pipeline.max_image_pixels)"
        )
    try:
        check_budget(data, max_scans)
    except OverBudget as exc:
        raise BadMessage(str(exc)) from None
    _check_complete(data, fmt)  # after the budget: the JPEG check decodes a little
    return ImageHeader(fmt, width, height)


def _reduced_flag(header: ImageHeader) -> int:
    """The largest JPEG DCT scaling that still leaves at least 64 pixels on the short side."""
    short = min(header.width, header.height)
    for factor, flag in (
        (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
        (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
        (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
    ):
        if short >= 64 * factor:
            return flag
    return cv2.IMREAD_GRAYSCALE


def decode_small(data: bytes, header: ImageHeader) -> np.ndarray:
    """A small grayscale decode: proves the image decodes and feeds the similarity filter.

    For JPEG, libjpeg scales in the DCT domain, so this costs a fraction of a full decode.
    """
    small = cv2.imdecode(np.frombuffer(data, np.uint8), _reduced_flag(header))
    if small is None or small.size == 0:
        raise BadMessage(f"{header.format.upper()} image does not decode")
    return small


def fit_image(data: bytes, width: int, height: int, jpeg_quality: int) -> bytes:
    """Center-crop to width:height, resize to exactly width x height and encode as JPEG."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BadMessage("image does not decode")
    h, w = img.shape[:2]
    if w * height > h * width:  # wider than the target: trim the sides
        crop_w = max(1, round(h * width / height))
        x = (w - crop_w) // 2
        img = img[:, x : x + crop_w]
    else:  # taller: trim top and bottom
        crop_h = max(1, round(w * height / width))
        y = (h - crop_h) // 2
        img = img[y : y + crop_h]
    shrinking = img.shape[1] > width
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    ok, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise BadMessage("image could not be re-encoded after resizing")
    return encoded.tobytes()
